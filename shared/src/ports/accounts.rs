//! The identity side's ports: accounts, what each request checks of them, sessions, API keys,
//! emailed one-time tokens and signing keys, one trait per capability.

use super::{Fut, Page, PageKey};
use crate::domain::account::{Account, AccountStatus, ApiKey, Session};
use chrono::{DateTime, Utc};

/// What an access token or API key needs from its account on every request.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountState {
    pub role: crate::domain::Role,
    pub status: AccountStatus,
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
    /// When it was sent: a reset link sent before the account's `tokens_valid_after` (a later
    /// reset or password change) no longer works.
    pub created_at: DateTime<Utc>,
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
    pub status: Option<AccountStatus>,
    pub role: Option<crate::domain::Role>,
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

/// Accounts and their email guard.
pub trait Accounts: Send + Sync {
    /// Stores a new account with its email guard (and the verification token), all or
    /// nothing; [`StoreError::Duplicate`] when the email is taken.
    fn create_account<'a>(&'a self, account: &'a Account, token: &'a OneTimeToken) -> Fut<'a, ()>;
    fn get_account<'a>(&'a self, user_id: &'a str) -> Fut<'a, Option<Account>>;
    fn find_account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>>;
    /// Writes `account` if the stored one is at `account.version - 1`;
    /// [`StoreError::Conflict`] otherwise.
    fn update_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()>;
    /// Counts one failed login (or wrong password) at `now`, atomically: concurrent failures
    /// all count.
    fn record_login_failure<'a>(&'a self, user_id: &'a str, now: DateTime<Utc>) -> Fut<'a, ()>;
    /// Deletes the account, its email guard, sessions and API keys.
    fn delete_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()>;
    fn list_accounts<'a>(
        &'a self,
        filter: &'a AccountFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Account>>;
}

/// What every authenticated request reads of its account: one small read each.
pub trait AccountStates: Send + Sync {
    /// The state of an account and whether its session `session_id` still exists (one read
    /// of two items): an access token counts only while its session does.
    fn session_state<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> Fut<'a, (Option<AccountState>, bool)>;
    /// An API key with its account's state, in one read.
    fn api_key_with_state<'a>(
        &'a self,
        user_id: &'a str,
        key_id: &'a str,
    ) -> Fut<'a, (Option<ApiKey>, Option<AccountState>)>;
}

/// Signed-in sessions (one refresh token each).
pub trait Sessions: Send + Sync {
    fn put_session<'a>(&'a self, session: &'a Session) -> Fut<'a, ()>;
    fn get_session<'a>(&'a self, user_id: &'a str, session_id: &'a str)
    -> Fut<'a, Option<Session>>;
    /// Replaces the session if its refresh hash is still `expected_hash`;
    /// [`StoreError::Conflict`] otherwise (a concurrent refresh won).
    fn rotate_session<'a>(&'a self, session: &'a Session, expected_hash: &'a str) -> Fut<'a, ()>;
    fn list_sessions<'a>(&'a self, user_id: &'a str) -> Fut<'a, Vec<Session>>;
    /// Deletes one session; whether it existed.
    fn delete_session<'a>(&'a self, user_id: &'a str, session_id: &'a str) -> Fut<'a, bool>;
}

/// A user's API keys.
pub trait ApiKeys: Send + Sync {
    fn put_api_key<'a>(&'a self, key: &'a ApiKey) -> Fut<'a, ()>;
    fn list_api_keys<'a>(&'a self, user_id: &'a str) -> Fut<'a, Vec<ApiKey>>;
    fn delete_api_key<'a>(&'a self, user_id: &'a str, key_id: &'a str) -> Fut<'a, bool>;
}

/// Single-use tokens sent by email (verification and reset links).
pub trait OneTimeTokens: Send + Sync {
    fn put_token<'a>(&'a self, token: &'a OneTimeToken) -> Fut<'a, ()>;
    /// Removes and returns the token with this hash, if it exists (expired or not): a token
    /// is consumed at most once even under concurrent use.
    fn take_token<'a>(&'a self, hash: &'a str) -> Fut<'a, Option<OneTimeToken>>;
}

/// Every account capability of one backend, for wiring one adapter into a function.
pub trait AccountStore: Accounts + AccountStates + Sessions + ApiKeys + OneTimeTokens {}

impl<T: Accounts + AccountStates + Sessions + ApiKeys + OneTimeTokens + ?Sized> AccountStore for T {}
