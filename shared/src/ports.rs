//! What the use cases need from the world, as narrow traits. Adapters in [`crate::aws`]
//! implement them; tests may implement them too.

use crate::domain::{Node, Principal, Workflow, WorkflowStatus};
use chrono::{DateTime, Utc};

use std::collections::BTreeMap;
use std::future::Future;

/// The time, so that use cases and their tests agree on "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, truncated to milliseconds (the precision stored and sorted on).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_millis(Utc::now())
    }
}

pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// A position in a list, as the store left it. The HTTP layer makes it opaque for clients and
/// the store checks it belongs to the list it is given back to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageKey(pub BTreeMap<String, String>);

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageKey>,
}

pub use crate::domain::workflow::WorkflowFilter;

/// A stored response to a request that carried an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub owner_id: String,
    pub key: String,
    /// Hash of the route and body the key was first used with.
    pub request_hash: String,
    pub status: u16,
    /// The response body, or empty when it was too large to keep (see `location`).
    pub body: String,
    /// What was created (`<workflow_id>` or `<workflow_id>/<node_id>`), to read again for a
    /// replay whose body was not kept.
    pub location: String,
    /// When the key was first used; the key is free again from `expires_at` on, even while
    /// the table's TTL has not yet removed the record.
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Changes to a workflow's own fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// The whole new `settings` (the use case merges the client's patch into what it read).
    pub settings: Option<crate::domain::Settings>,
    pub status: Option<WorkflowStatus>,
}

/// One conditional write of a workflow: it happens only if the workflow exists, belongs to
/// may be changed by `actor` (see [`Principal::access`]), is not deleted, is at `expected_version` (when given) and its status is one of
/// `allowed_from` (when not empty).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowChange {
    pub id: String,
    pub actor: Principal,
    pub expected_version: Option<u64>,
    pub allowed_from: Vec<WorkflowStatus>,
    /// When the merge patch sets `max_nodes`, the write also requires `node_count <= max_nodes`.
    pub max_nodes: Option<u64>,
    pub update: WorkflowUpdate,
    pub now: DateTime<Utc>,
}

/// One node of a deletion plan: deleted only if it still has `child_count` children (so a child
/// added meanwhile is never orphaned).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDeletion {
    pub id: String,
    pub child_count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The workflow's condition failed: it is missing, someone else's, deleted, at another
    /// version or status, or full. Carries the current workflow when it exists.
    #[error("workflow condition failed")]
    WorkflowRejected(Option<Box<Workflow>>),
    /// The node's condition failed; carries the current node when it exists.
    #[error("node condition failed")]
    NodeRejected(Option<Box<Node>>),
    /// A new node's parent does not exist in the workflow.
    #[error("parent node missing")]
    ParentMissing,
    /// The idempotency key was used before; carries what was stored for it.
    #[error("idempotency key already used")]
    IdempotencyKeyUsed(Box<IdempotencyRecord>),
    /// A conditional write lost to a concurrent one (accounts, sessions).
    #[error("concurrent change")]
    Conflict,
    /// A uniqueness guard exists already (an email in use).
    #[error("already exists")]
    Duplicate,
    /// A page key that this list never handed out.
    #[error("page key does not belong to this list")]
    BadPageKey,
    /// The backend could not be reached or refused for a transient reason (throttling, network).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered in a way this code does not expect: a defect, not bad input.
    #[error("store failure: {0}")]
    Internal(String),
}

/// The outcome of one change in [`WorkflowStore::change_workflows`].
#[derive(Debug)]
pub enum ChangeOutcome {
    Done,
    /// The change's conditions did not hold when it was applied (a concurrent write).
    Rejected,
}

/// The future a port method returns (boxed, so ports can be used as trait objects).
pub type Fut<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Workflows and their nodes.
pub trait WorkflowStore: Send + Sync {
    /// Stores a new workflow with its nodes (parents before children) and, when given, the
    /// idempotency record, all or nothing where the backend allows it.
    fn create_workflow<'a>(
        &'a self,
        workflow: &'a Workflow,
        nodes: &'a [Node],
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()>;
    fn get_workflow<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Workflow>>;
    /// Several workflows at once; missing ids are left out.
    fn get_workflows<'a>(&'a self, ids: &'a [String]) -> Fut<'a, Vec<Workflow>>;
    /// A workflow and all its nodes, nodes in creation order.
    fn get_tree<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Workflow, Vec<Node>)>>;
    /// The workflows a user owns or that are shared with them, newest first.
    fn list_workflows<'a>(
        &'a self,
        owner_id: &'a str,
        filter: &'a WorkflowFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Workflow>>;
    /// Applies one conditional change and returns the workflow as written.
    fn change_workflow<'a>(&'a self, change: &'a WorkflowChange) -> Fut<'a, Workflow>;
    /// Applies several conditional changes, each on its own: one rejected change does not stop
    /// the others. Outcomes are in the order of `changes`.
    fn change_workflows<'a>(&'a self, changes: &'a [WorkflowChange])
    -> Fut<'a, Vec<ChangeOutcome>>;
    /// Adds a node to a workflow the owner has and that is below its `max_nodes`; the parent,
    /// when named, must exist in the same workflow.
    fn add_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()>;
    /// A workflow and one of its nodes.
    fn get_node<'a>(
        &'a self,
        workflow_id: &'a str,
        node_id: &'a str,
    ) -> Fut<'a, (Option<Workflow>, Option<Node>)>;
    /// A page of a workflow's nodes in creation order, with the workflow.
    fn list_nodes<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, (Option<Workflow>, Page<Node>)>;
    /// Replaces a node of an owned, not deleted workflow with `node`, if the stored node is at
    /// `expected_version`.
    fn update_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        expected_version: u64,
    ) -> Fut<'a, ()>;
    /// Deletes nodes in the order given (children before parents); `parent_id` is the parent of
    /// the last node, whose child count drops by one.
    fn delete_nodes<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        plan: &'a [NodeDeletion],
        parent_id: Option<&'a str>,
    ) -> Fut<'a, ()>;
    /// Shares `workflow` with `user_id` (or changes what they may do): only its owner or an
    /// admin may; [`StoreError::WorkflowRejected`] otherwise. The share also puts the workflow
    /// in that user's list.
    fn put_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow: &'a Workflow,
        user_id: &'a str,
        access: crate::domain::ShareAccess,
    ) -> Fut<'a, Workflow>;
    /// Stops sharing; `WorkflowRejected` when the actor may not or the share does not exist.
    fn delete_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        user_id: &'a str,
    ) -> Fut<'a, ()>;
    /// The record of an idempotency key, unless it has expired by `now`.
    fn get_idempotency<'a>(
        &'a self,
        owner_id: &'a str,
        key: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<IdempotencyRecord>>;
}

/// Rate limit counters shared by every instance of every function.
pub trait RateLimitStore: Send + Sync {
    /// Decides one request of `key` (a scope built by the caller, such as
    /// `route:POST /api/v3/workflows|user:alice`) under `limit` at `now_ms` (epoch ms), and
    /// records it when admitted. Concurrent checks of one key never admit more than the limit.
    fn check<'a>(
        &'a self,
        key: &'a str,
        limit: &'a crate::domain::ratelimit::Limit,
        now_ms: i64,
    ) -> Fut<'a, crate::domain::ratelimit::Decision>;
}

/// A public key that verifies access tokens (EC P-256, coordinates base64url).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicKey {
    pub kid: String,
    pub x: String,
    pub y: String,
    pub created_at: DateTime<Utc>,
    /// Set once the key is rotated out: tokens it signed verify until then, not after.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A signing key as stored: the private key only ever encrypted (envelope encryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub public: PublicKey,
    /// The PKCS#8 private key, AES-256-GCM encrypted under `encrypted_data_key`'s plaintext.
    pub encrypted_private_key: Vec<u8>,
    pub nonce: Vec<u8>,
    /// The data key as the key service encrypted it.
    pub encrypted_data_key: Vec<u8>,
    /// Newer keys sign; a retired key only verifies until `expires_at`.
    pub retired: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Signing keys in the table: every API function reads the public halves.
pub trait SigningKeyStore: Send + Sync {
    /// Keys that still verify at `now`, newest first.
    fn signing_keys<'a>(&'a self, now: DateTime<Utc>) -> Fut<'a, Vec<StoredSigningKey>>;
    /// Stores a new key (never overwrites one with the same kid).
    fn put_signing_key<'a>(&'a self, key: &'a StoredSigningKey) -> Fut<'a, ()>;
    /// Marks a key retired: it verifies until `expires_at`, then the table's TTL removes it.
    fn retire_signing_key<'a>(&'a self, kid: &'a str, expires_at: DateTime<Utc>) -> Fut<'a, ()>;
}

/// A data key from the key service: the plaintext to use once, the ciphertext to store.
pub struct DataKey {
    pub plaintext: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The key service (KMS) that wraps data keys (envelope encryption).
pub trait KeyVault: Send + Sync {
    /// A new 256-bit data key.
    fn generate_data_key(&self) -> Fut<'_, DataKey>;
    /// The plaintext of a data key this vault made.
    fn decrypt_data_key<'a>(&'a self, ciphertext: &'a [u8]) -> Fut<'a, Vec<u8>>;
}

/// One email to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Sends email (SES).
pub trait Mailer: Send + Sync {
    fn send<'a>(&'a self, email: &'a Email) -> Fut<'a, ()>;
}

/// What an access token or API key needs from its account on every request.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountState {
    pub role: crate::domain::Role,
    pub status: crate::domain::account::AccountStatus,
    pub tokens_valid_after: DateTime<Utc>,
}

/// What a one-time token (emailed link) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }
}

/// A single-use token: stored by the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    pub hash: String,
    pub purpose: TokenPurpose,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    /// For email verification: the password hash and display name of the registration that
    /// asked for this token, applied when it is used (so a link sets the password of whoever
    /// registered it, not of another registration of the same pending address).
    pub password_hash: Option<String>,
    pub display_name: Option<String>,
}

/// Filters of the admin's account list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountFilter {
    /// Emails starting with this (lower case).
    pub email_prefix: Option<String>,
    pub status: Option<crate::domain::account::AccountStatus>,
    pub role: Option<crate::domain::Role>,
}

/// Accounts, sessions, API keys and one-time tokens.
pub trait AccountStore: Send + Sync {
    /// Stores a new account with its email guard (and the verification token), all or
    /// nothing; [`StoreError::Duplicate`] when the email is taken.
    fn create_account<'a>(
        &'a self,
        account: &'a crate::domain::account::Account,
        token: &'a OneTimeToken,
    ) -> Fut<'a, ()>;
    fn get_account<'a>(
        &'a self,
        user_id: &'a str,
    ) -> Fut<'a, Option<crate::domain::account::Account>>;
    fn find_account_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> Fut<'a, Option<crate::domain::account::Account>>;
    /// The state every authenticated request checks (one small read).
    fn account_state<'a>(&'a self, user_id: &'a str) -> Fut<'a, Option<AccountState>>;
    /// Writes `account` if the stored one is at `account.version - 1`;
    /// [`StoreError::Conflict`] otherwise.
    fn update_account<'a>(&'a self, account: &'a crate::domain::account::Account) -> Fut<'a, ()>;
    /// Counts one failed login (or wrong password) at `now`, atomically: concurrent failures
    /// all count.
    fn record_login_failure<'a>(&'a self, user_id: &'a str, now: DateTime<Utc>) -> Fut<'a, ()>;
    /// Deletes the account, its email guard, sessions and API keys.
    fn delete_account<'a>(&'a self, account: &'a crate::domain::account::Account) -> Fut<'a, ()>;
    fn list_accounts<'a>(
        &'a self,
        filter: &'a AccountFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<crate::domain::account::Account>>;

    fn put_token<'a>(&'a self, token: &'a OneTimeToken) -> Fut<'a, ()>;
    /// Removes and returns the token with this hash, if it exists (expired or not): a token
    /// is consumed at most once even under concurrent use.
    fn take_token<'a>(&'a self, hash: &'a str) -> Fut<'a, Option<OneTimeToken>>;

    fn put_session<'a>(&'a self, session: &'a crate::domain::account::Session) -> Fut<'a, ()>;
    fn get_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> Fut<'a, Option<crate::domain::account::Session>>;
    /// Replaces the session if its refresh hash is still `expected_hash`;
    /// [`StoreError::Conflict`] otherwise (a concurrent refresh won).
    fn rotate_session<'a>(
        &'a self,
        session: &'a crate::domain::account::Session,
        expected_hash: &'a str,
    ) -> Fut<'a, ()>;
    fn list_sessions<'a>(
        &'a self,
        user_id: &'a str,
    ) -> Fut<'a, Vec<crate::domain::account::Session>>;
    /// Deletes one session; whether it existed.
    fn delete_session<'a>(&'a self, user_id: &'a str, session_id: &'a str) -> Fut<'a, bool>;

    fn put_api_key<'a>(&'a self, key: &'a crate::domain::account::ApiKey) -> Fut<'a, ()>;
    fn list_api_keys<'a>(
        &'a self,
        user_id: &'a str,
    ) -> Fut<'a, Vec<crate::domain::account::ApiKey>>;
    fn delete_api_key<'a>(&'a self, user_id: &'a str, key_id: &'a str) -> Fut<'a, bool>;
    /// An API key with its account's state, in one read.
    fn api_key_with_state<'a>(
        &'a self,
        user_id: &'a str,
        key_id: &'a str,
    ) -> Fut<'a, (Option<crate::domain::account::ApiKey>, Option<AccountState>)>;
}
