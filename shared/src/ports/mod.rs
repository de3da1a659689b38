//! What the use cases need from the world, as narrow traits. Adapters in [`crate::aws`]
//! implement them; tests may implement them too.

mod accounts;
mod analytics;
mod audit;
mod connections;
mod health;
mod notify;
mod runs;
mod schedules;
mod workflows;

pub use accounts::*;
pub use analytics::*;
pub use audit::*;
pub use connections::*;
pub use health::*;
pub use notify::*;
pub use runs::*;
pub use schedules::*;
pub use workflows::*;

use crate::domain::{Node, Workflow};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;

/// The time, so that use cases and their tests agree on "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
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

/// The future a port method returns (boxed, so ports can be used as trait objects).
pub type Fut<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

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
