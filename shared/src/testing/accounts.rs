//! In-memory fakes of the identity ports: [`MemoryAccounts`] (accounts, what each request
//! checks of them, sessions, API keys, emailed tokens and signing keys), [`MemoryMailer`] and
//! [`MemoryVault`]; and [`identity`], the identity use cases wired over them.
//!
//! [`MemoryAccounts`] keeps the semantics of the DynamoDB adapter
//! (`crate::aws::dynamo::DynamoAccounts`): the same conditions and the same errors for them,
//! what a delete leaves behind (emailed tokens stay until their TTL), what the table does to
//! values (TTL attributes are whole epoch seconds, `last_failed_at` is stored to the
//! millisecond), and the admin list's paging (DynamoDB's `Limit` counts the items read before
//! the status/role filter, so a page may be short and still have a next key). Expired items
//! stay readable, as they do until DynamoDB's TTL sweep removes them; the use cases check
//! expiry themselves.
//!
//! Every call yields to the scheduler once before it runs, as a request to DynamoDB would, then
//! runs atomically (one lock), like one DynamoDB request: use cases run at once with
//! `tokio::join!` interleave at their store calls the way concurrent requests do. A test can
//! make the next call fail with [`StoreError::Unavailable`] ([`MemoryAccounts::fail_next`],
//! [`MemoryAccounts::fail_next_call_to`]) and read back what was stored.

use crate::app::auth::{Identity, Signer};
use crate::domain::account::{Account, ApiKey, Session};
use crate::ports::{
    AccountFilter, AccountState, AccountStates, AccountStore, Accounts, ApiKeys, Clock, DataKey,
    Email, Fut, KeyVault, Mailer, OneTimeToken, OneTimeTokens, Page, PageKey, Sessions,
    SigningKeyStore, StoreError, StoredSigningKey,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Base URL of the links in the emails of [`identity`].
pub const PUBLIC_URL: &str = "https://app.example.com";
/// Product name of [`identity`] (email subjects start with it).
pub const PRODUCT_NAME: &str = "DWC test";

/// The port methods of [`MemoryAccounts`], by the names [`MemoryAccounts::fail_next_call_to`]
/// and [`MemoryAccounts::calls`] use.
pub const OPERATIONS: &[&str] = &[
    "create_account",
    "get_account",
    "find_account_by_email",
    "update_account",
    "record_login_failure",
    "delete_account",
    "list_accounts",
    "session_state",
    "api_key_with_state",
    "put_session",
    "get_session",
    "rotate_session",
    "list_sessions",
    "delete_session",
    "put_api_key",
    "list_api_keys",
    "delete_api_key",
    "put_token",
    "take_token",
    "signing_keys",
    "put_signing_key",
    "retire_signing_key",
];

// The attribute names of a page key of the admin's account list (the adapter's GSI1 keys).
const PK: &str = "PK";
const SK: &str = "SK";
const GSI1PK: &str = "GSI1PK";
const GSI1SK: &str = "GSI1SK";
const ACCOUNT_SK: &str = "#ACCOUNT";
const ACCOUNTS_INDEX_PK: &str = "ACCOUNTS";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `t` as a TTL attribute holds it: whole epoch seconds.
fn epoch_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// A session as it reads back from the table (its TTL in epoch seconds).
fn stored_session(s: &Session) -> Session {
    Session {
        expires_at: epoch_seconds(s.expires_at),
        ..s.clone()
    }
}

/// An API key as it reads back from the table (its TTL in epoch seconds).
fn stored_api_key(k: &ApiKey) -> ApiKey {
    ApiKey {
        expires_at: k.expires_at.map(epoch_seconds),
        ..k.clone()
    }
}

/// A token as it reads back from the table (its TTL in epoch seconds).
fn stored_token(t: &OneTimeToken) -> OneTimeToken {
    OneTimeToken {
        expires_at: epoch_seconds(t.expires_at),
        ..t.clone()
    }
}

/// A signing key as it reads back: the item holds one expiry (the TTL, from `expires_at`), read
/// into both the key's and its public half's.
fn stored_signing_key(k: &StoredSigningKey) -> StoredSigningKey {
    let ttl = k.expires_at.map(epoch_seconds);
    let mut k = k.clone();
    k.expires_at = ttl;
    k.public.expires_at = ttl;
    k
}

fn state_of(a: &Account) -> AccountState {
    AccountState {
        role: a.role,
        status: a.status,
        tokens_valid_after: a.tokens_valid_after,
    }
}

/// Where an account sorts in the admin's list (the index's sort key, then the table's key).
fn index_position(a: &Account) -> (String, String) {
    (a.email.clone(), format!("USER#{}", a.user_id))
}

fn page_key_of(a: &Account) -> PageKey {
    PageKey(BTreeMap::from([
        (PK.to_string(), format!("USER#{}", a.user_id)),
        (SK.to_string(), ACCOUNT_SK.to_string()),
        (GSI1PK.to_string(), ACCOUNTS_INDEX_PK.to_string()),
        (GSI1SK.to_string(), a.email.clone()),
    ]))
}

/// What the table holds.
#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<String, Account>,
    /// Email guards: email -> user id.
    guards: BTreeMap<String, String>,
    /// By (user id, session id).
    sessions: BTreeMap<(String, String), Session>,
    /// By (user id, key id).
    api_keys: BTreeMap<(String, String), ApiKey>,
    /// By hash.
    tokens: BTreeMap<String, OneTimeToken>,
    /// By kid.
    signing_keys: BTreeMap<String, StoredSigningKey>,
    /// Calls to fail, whatever they are.
    fail_any: usize,
    /// Methods whose next call fails (one entry per failure).
    fail_ops: Vec<&'static str>,
    calls: Vec<&'static str>,
}

impl State {
    /// Whether this call of `op` is to fail (using up the failure).
    fn take_failure(&mut self, op: &str) -> bool {
        if let Some(i) = self.fail_ops.iter().position(|o| *o == op) {
            self.fail_ops.remove(i);
            return true;
        }
        if self.fail_any > 0 {
            self.fail_any -= 1;
            return true;
        }
        false
    }

    fn list_accounts(
        &self,
        filter: &AccountFilter,
        limit: u32,
        after: Option<&PageKey>,
    ) -> Result<Page<Account>, StoreError> {
        let start = match after {
            None => None,
            Some(k) => {
                let get = |name: &str| k.0.get(name).map(String::as_str);
                let ok = k.0.len() == 4
                    && get(GSI1PK) == Some(ACCOUNTS_INDEX_PK)
                    && get(SK) == Some(ACCOUNT_SK)
                    && get(PK).is_some_and(|pk| pk.starts_with("USER#"));
                match (ok, get(GSI1SK), get(PK)) {
                    (true, Some(email), Some(pk)) => Some((email.to_string(), pk.to_string())),
                    _ => return Err(StoreError::BadPageKey),
                }
            }
        };
        if limit == 0 {
            return Err(StoreError::Internal(
                "ValidationException: Limit must be at least 1".into(),
            ));
        }
        let prefix = filter.email_prefix.as_deref().filter(|p| !p.is_empty());
        // The adapter refuses a key from a list with another prefix before DynamoDB would.
        if let (Some(p), Some((email, _))) = (prefix, &start)
            && !email.starts_with(p)
        {
            return Err(StoreError::BadPageKey);
        }
        let mut index: Vec<&Account> = self
            .accounts
            .values()
            .filter(|a| prefix.is_none_or(|p| a.email.starts_with(p)))
            .filter(|a| start.as_ref().is_none_or(|s| index_position(a) > *s))
            .collect();
        index.sort_by_key(|a| index_position(a));
        // DynamoDB reads `limit` items, then filters them: a short page can have a next key,
        // and a page that reaches the limit has one even when nothing follows.
        let read: Vec<&Account> = index.into_iter().take(limit as usize).collect();
        let next = match read.last() {
            Some(last) if read.len() == limit as usize => Some(page_key_of(last)),
            _ => None,
        };
        let items = read
            .into_iter()
            .filter(|a| filter.status.is_none_or(|s| a.status == s))
            .filter(|a| filter.role.is_none_or(|r| a.role == r))
            .cloned()
            .collect();
        Ok(Page { items, next })
    }
}

/// Accounts, sessions, API keys, emailed tokens and signing keys in memory, with the DynamoDB
/// adapter's semantics (module docs).
#[derive(Debug, Default)]
pub struct MemoryAccounts {
    state: Mutex<State>,
}

impl MemoryAccounts {
    /// An empty store.
    pub fn new() -> MemoryAccounts {
        MemoryAccounts::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// One port call: yields once (a request in flight), then runs `f` under the lock unless
    /// a failure is due.
    fn call<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        f: impl FnOnce(&mut State) -> Result<T, StoreError> + Send + 'a,
    ) -> Fut<'a, T> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut state = self.state();
            state.calls.push(op);
            if state.take_failure(op) {
                return Err(StoreError::Unavailable(format!(
                    "injected failure of {op} (MemoryAccounts)"
                )));
            }
            f(&mut state)
        })
    }

    /// Makes the next call (of any method) fail with [`StoreError::Unavailable`], changing
    /// nothing; called `n` times, the next `n` calls fail.
    pub fn fail_next(&self) {
        self.state().fail_any += 1;
    }

    /// Makes the next call of the port method named `op` (one of [`OPERATIONS`]) fail with
    /// [`StoreError::Unavailable`], changing nothing. Other calls go through.
    ///
    /// # Panics
    /// If `op` names no port method (a typo in a test).
    pub fn fail_next_call_to(&self, op: &'static str) {
        assert!(
            OPERATIONS.contains(&op),
            "{op} is none of MemoryAccounts' methods: {OPERATIONS:?}"
        );
        self.state().fail_ops.push(op);
    }

    /// The port methods called so far, in order (failed calls included).
    pub fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// Stores `account` and its email guard as they are, with no condition (a test's starting
    /// point: an account without going through registration and its password hashing).
    pub fn insert_account(&self, account: Account) {
        let mut state = self.state();
        state
            .guards
            .insert(account.email.clone(), account.user_id.clone());
        state.accounts.insert(account.user_id.clone(), account);
    }

    /// The stored account of `user_id`.
    pub fn account(&self, user_id: &str) -> Option<Account> {
        self.state().accounts.get(user_id).cloned()
    }

    /// Every stored account, by user id.
    pub fn accounts(&self) -> Vec<Account> {
        self.state().accounts.values().cloned().collect()
    }

    /// The user id the email guard of `email` names, if the guard exists.
    pub fn email_owner(&self, email: &str) -> Option<String> {
        self.state().guards.get(email).cloned()
    }

    /// The stored sessions of `user_id` (expired ones included), by session id.
    pub fn sessions_of(&self, user_id: &str) -> Vec<Session> {
        self.state()
            .sessions
            .values()
            .filter(|s| s.user_id == user_id)
            .cloned()
            .collect()
    }

    /// The stored API keys of `user_id`, by key id.
    pub fn api_keys_of(&self, user_id: &str) -> Vec<ApiKey> {
        self.state()
            .api_keys
            .values()
            .filter(|k| k.user_id == user_id)
            .cloned()
            .collect()
    }

    /// Every stored emailed token (expired ones included), by hash.
    pub fn tokens(&self) -> Vec<OneTimeToken> {
        self.state().tokens.values().cloned().collect()
    }

    /// The stored emailed tokens naming `user_id`.
    pub fn tokens_of(&self, user_id: &str) -> Vec<OneTimeToken> {
        self.state()
            .tokens
            .values()
            .filter(|t| t.user_id == user_id)
            .cloned()
            .collect()
    }

    /// Every stored signing key (expired ones included), by kid.
    pub fn stored_signing_keys(&self) -> Vec<StoredSigningKey> {
        self.state().signing_keys.values().cloned().collect()
    }
}

impl Accounts for MemoryAccounts {
    fn create_account<'a>(&'a self, account: &'a Account, token: &'a OneTimeToken) -> Fut<'a, ()> {
        self.call("create_account", move |s| {
            // One transaction: the guard's condition first (the email taken), then the others'.
            if s.guards.contains_key(&account.email) {
                return Err(StoreError::Duplicate);
            }
            if s.accounts.contains_key(&account.user_id) || s.tokens.contains_key(&token.hash) {
                return Err(StoreError::Internal(
                    "account transaction cancelled: [None, ConditionalCheckFailed]".into(),
                ));
            }
            s.guards
                .insert(account.email.clone(), account.user_id.clone());
            s.accounts.insert(account.user_id.clone(), account.clone());
            s.tokens.insert(token.hash.clone(), stored_token(token));
            Ok(())
        })
    }

    fn get_account<'a>(&'a self, user_id: &'a str) -> Fut<'a, Option<Account>> {
        self.call("get_account", move |s| Ok(s.accounts.get(user_id).cloned()))
    }

    fn find_account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        self.call("find_account_by_email", move |s| {
            Ok(s.guards
                .get(email)
                .and_then(|user_id| s.accounts.get(user_id))
                .cloned())
        })
    }

    fn update_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        self.call("update_account", move |s| {
            match s.accounts.get_mut(&account.user_id) {
                Some(current) if current.version == account.version.saturating_sub(1) => {
                    *current = account.clone();
                    Ok(())
                }
                _ => Err(StoreError::Conflict),
            }
        })
    }

    fn record_login_failure<'a>(&'a self, user_id: &'a str, now: DateTime<Utc>) -> Fut<'a, ()> {
        self.call("record_login_failure", move |s| {
            // `ADD failed_logins 1 SET last_failed_at`: no version change; no account, nothing.
            if let Some(a) = s.accounts.get_mut(user_id) {
                a.failed_logins = a.failed_logins.saturating_add(1);
                a.last_failed_at = Some(crate::domain::time::truncate_to_millis(now));
            }
            Ok(())
        })
    }

    fn delete_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        self.call("delete_account", move |s| {
            s.accounts.remove(&account.user_id);
            s.guards.remove(&account.email);
            s.sessions.retain(|(user, _), _| *user != account.user_id);
            s.api_keys.retain(|(user, _), _| *user != account.user_id);
            // Emailed tokens live in their own partitions: they stay until their TTL.
            Ok(())
        })
    }

    fn list_accounts<'a>(
        &'a self,
        filter: &'a AccountFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Account>> {
        self.call("list_accounts", move |s| {
            s.list_accounts(filter, limit, after)
        })
    }
}

impl AccountStates for MemoryAccounts {
    fn session_state<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> Fut<'a, (Option<AccountState>, bool)> {
        self.call("session_state", move |s| {
            let session = s
                .sessions
                .contains_key(&(user_id.to_string(), session_id.to_string()));
            Ok((s.accounts.get(user_id).map(state_of), session))
        })
    }

    fn api_key_with_state<'a>(
        &'a self,
        user_id: &'a str,
        key_id: &'a str,
    ) -> Fut<'a, (Option<ApiKey>, Option<AccountState>)> {
        self.call("api_key_with_state", move |s| {
            let key = s
                .api_keys
                .get(&(user_id.to_string(), key_id.to_string()))
                .cloned();
            Ok((key, s.accounts.get(user_id).map(state_of)))
        })
    }
}

impl Sessions for MemoryAccounts {
    fn put_session<'a>(&'a self, session: &'a Session) -> Fut<'a, ()> {
        self.call("put_session", move |s| {
            s.sessions.insert(
                (session.user_id.clone(), session.session_id.clone()),
                stored_session(session),
            );
            Ok(())
        })
    }

    fn get_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> Fut<'a, Option<Session>> {
        self.call("get_session", move |s| {
            Ok(s.sessions
                .get(&(user_id.to_string(), session_id.to_string()))
                .cloned())
        })
    }

    fn rotate_session<'a>(&'a self, session: &'a Session, expected_hash: &'a str) -> Fut<'a, ()> {
        self.call("rotate_session", move |s| {
            let key = (session.user_id.clone(), session.session_id.clone());
            match s.sessions.get_mut(&key) {
                Some(current) if current.refresh_hash == expected_hash => {
                    *current = stored_session(session);
                    Ok(())
                }
                // Rotated by another request, or gone: the condition fails on a missing item.
                _ => Err(StoreError::Conflict),
            }
        })
    }

    fn list_sessions<'a>(&'a self, user_id: &'a str) -> Fut<'a, Vec<Session>> {
        self.call("list_sessions", move |s| {
            Ok(s.sessions
                .values()
                .filter(|x| x.user_id == user_id)
                .cloned()
                .collect())
        })
    }

    fn delete_session<'a>(&'a self, user_id: &'a str, session_id: &'a str) -> Fut<'a, bool> {
        self.call("delete_session", move |s| {
            Ok(s.sessions
                .remove(&(user_id.to_string(), session_id.to_string()))
                .is_some())
        })
    }
}

impl ApiKeys for MemoryAccounts {
    fn put_api_key<'a>(&'a self, key: &'a ApiKey) -> Fut<'a, ()> {
        self.call("put_api_key", move |s| {
            let id = (key.user_id.clone(), key.key_id.clone());
            if s.api_keys.contains_key(&id) {
                return Err(StoreError::Duplicate);
            }
            s.api_keys.insert(id, stored_api_key(key));
            Ok(())
        })
    }

    fn list_api_keys<'a>(&'a self, user_id: &'a str) -> Fut<'a, Vec<ApiKey>> {
        self.call("list_api_keys", move |s| {
            Ok(s.api_keys
                .values()
                .filter(|k| k.user_id == user_id)
                .cloned()
                .collect())
        })
    }

    fn delete_api_key<'a>(&'a self, user_id: &'a str, key_id: &'a str) -> Fut<'a, bool> {
        self.call("delete_api_key", move |s| {
            Ok(s.api_keys
                .remove(&(user_id.to_string(), key_id.to_string()))
                .is_some())
        })
    }
}

impl OneTimeTokens for MemoryAccounts {
    fn put_token<'a>(&'a self, token: &'a OneTimeToken) -> Fut<'a, ()> {
        self.call("put_token", move |s| {
            s.tokens.insert(token.hash.clone(), stored_token(token));
            Ok(())
        })
    }

    fn take_token<'a>(&'a self, hash: &'a str) -> Fut<'a, Option<OneTimeToken>> {
        self.call("take_token", move |s| Ok(s.tokens.remove(hash)))
    }
}

impl SigningKeyStore for MemoryAccounts {
    fn signing_keys<'a>(&'a self, now: DateTime<Utc>) -> Fut<'a, Vec<StoredSigningKey>> {
        self.call("signing_keys", move |s| {
            // Read in kid order, as the Query returns them, then newest first (a stable sort).
            let mut keys: Vec<StoredSigningKey> = s
                .signing_keys
                .values()
                .filter(|k| k.expires_at.is_none_or(|t| t > now))
                .cloned()
                .collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.public.created_at));
            Ok(keys)
        })
    }

    fn put_signing_key<'a>(&'a self, key: &'a StoredSigningKey) -> Fut<'a, ()> {
        self.call("put_signing_key", move |s| {
            if s.signing_keys.contains_key(&key.public.kid) {
                return Err(StoreError::Duplicate);
            }
            s.signing_keys
                .insert(key.public.kid.clone(), stored_signing_key(key));
            Ok(())
        })
    }

    fn retire_signing_key<'a>(&'a self, kid: &'a str, expires_at: DateTime<Utc>) -> Fut<'a, ()> {
        self.call("retire_signing_key", move |s| {
            let Some(key) = s.signing_keys.get_mut(kid) else {
                // The adapter's condition `attribute_exists(PK)` fails: not a transient error.
                return Err(StoreError::Internal(
                    "ConditionalCheckFailedException: The conditional request failed".into(),
                ));
            };
            key.retired = true;
            key.expires_at = Some(epoch_seconds(expires_at));
            key.public.expires_at = key.expires_at;
            Ok(())
        })
    }
}

#[derive(Debug, Default)]
struct MailState {
    sent: Vec<Email>,
    fail: usize,
}

/// A [`Mailer`] that keeps what it is asked to send.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    state: Mutex<MailState>,
}

impl MemoryMailer {
    /// A mailer that has sent nothing.
    pub fn new() -> MemoryMailer {
        MemoryMailer::default()
    }

    /// Every email sent so far, in order.
    pub fn sent(&self) -> Vec<Email> {
        lock(&self.state).sent.clone()
    }

    /// The emails sent to `to`, in order.
    pub fn sent_to(&self, to: &str) -> Vec<Email> {
        lock(&self.state)
            .sent
            .iter()
            .filter(|e| e.to == to)
            .cloned()
            .collect()
    }

    /// The last email sent to `to`.
    pub fn last_to(&self, to: &str) -> Option<Email> {
        lock(&self.state)
            .sent
            .iter()
            .rev()
            .find(|e| e.to == to)
            .cloned()
    }

    /// The token in the last email to `to` whose subject contains `subject`.
    pub fn token_to(&self, to: &str, subject: &str) -> Option<String> {
        lock(&self.state)
            .sent
            .iter()
            .rev()
            .find(|e| e.to == to && e.subject.contains(subject))
            .and_then(|e| token_in(&e.text))
    }

    /// Makes the next send fail with [`StoreError::Unavailable`] (nothing is kept of it).
    pub fn fail_next(&self) {
        lock(&self.state).fail += 1;
    }
}

/// The token of an emailed link (`...?token=<token>`) in an email's text.
pub fn token_in(text: &str) -> Option<String> {
    let start = text.find("?token=")? + "?token=".len();
    Some(text.get(start..)?.split_whitespace().next()?.to_string())
}

impl Mailer for MemoryMailer {
    fn send<'a>(&'a self, email: &'a Email) -> Fut<'a, ()> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut state = lock(&self.state);
            if state.fail > 0 {
                state.fail -= 1;
                return Err(StoreError::Unavailable(
                    "injected failure of send (MemoryMailer)".into(),
                ));
            }
            state.sent.push(email.clone());
            Ok(())
        })
    }
}

const DATA_KEY_LEN: usize = 32;
const WRAPPED_PREFIX: &[u8] = b"memory-vault:";

#[derive(Debug, Default)]
struct VaultState {
    generated: u64,
    decrypted: u64,
    fail: usize,
}

/// A [`KeyVault`] in memory: data keys are derived from a counter (deterministic) and wrapped
/// by XOR with a fixed mask behind a marker, so they round-trip and a ciphertext this vault
/// did not make is refused.
#[derive(Debug, Default)]
pub struct MemoryVault {
    state: Mutex<VaultState>,
}

impl MemoryVault {
    /// A vault that has made no key yet.
    pub fn new() -> MemoryVault {
        MemoryVault::default()
    }

    /// How many data keys it made.
    pub fn generated(&self) -> u64 {
        lock(&self.state).generated
    }

    /// How many data keys it decrypted.
    pub fn decrypted(&self) -> u64 {
        lock(&self.state).decrypted
    }

    /// Makes the next call fail with [`StoreError::Unavailable`].
    pub fn fail_next(&self) {
        lock(&self.state).fail += 1;
    }

    fn mask() -> [u8; DATA_KEY_LEN] {
        Sha256::digest(b"memory-vault mask").into()
    }

    fn xor(key: &[u8]) -> Vec<u8> {
        key.iter().zip(Self::mask()).map(|(b, m)| b ^ m).collect()
    }

    fn failing(state: &mut VaultState) -> Result<(), StoreError> {
        if state.fail > 0 {
            state.fail -= 1;
            return Err(StoreError::Unavailable(
                "injected failure (MemoryVault)".into(),
            ));
        }
        Ok(())
    }
}

impl KeyVault for MemoryVault {
    fn generate_data_key(&self) -> Fut<'_, DataKey> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut state = lock(&self.state);
            Self::failing(&mut state)?;
            state.generated += 1;
            let plaintext: [u8; DATA_KEY_LEN] =
                Sha256::digest(format!("memory-vault data key {}", state.generated)).into();
            let mut ciphertext = WRAPPED_PREFIX.to_vec();
            ciphertext.extend(Self::xor(&plaintext));
            Ok(DataKey {
                plaintext: plaintext.to_vec(),
                ciphertext,
            })
        })
    }

    fn decrypt_data_key<'a>(&'a self, ciphertext: &'a [u8]) -> Fut<'a, Vec<u8>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut state = lock(&self.state);
            Self::failing(&mut state)?;
            match ciphertext.strip_prefix(WRAPPED_PREFIX) {
                Some(wrapped) if wrapped.len() == DATA_KEY_LEN => {
                    state.decrypted += 1;
                    Ok(Self::xor(wrapped))
                }
                _ => Err(StoreError::Internal(
                    "InvalidCiphertextException: not a data key of this vault".into(),
                )),
            }
        })
    }
}

/// The identity use cases over fresh fakes, at `clock`'s time: returns them with the store and
/// the mailer to look into. Links in emails start with [`PUBLIC_URL`], subjects with
/// [`PRODUCT_NAME`]; tokens are signed for [`super::ISSUER`] and [`super::AUDIENCE`] with a key
/// made on first use, and a rotated-in key signs at once (no activation delay).
pub fn identity(
    clock: Arc<super::ManualClock>,
) -> (Identity, Arc<MemoryAccounts>, Arc<MemoryMailer>) {
    let accounts = Arc::new(MemoryAccounts::new());
    let mailer = Arc::new(MemoryMailer::new());
    let identity = identity_over(
        clock,
        accounts.clone(),
        mailer.clone(),
        Arc::new(MemoryVault::new()),
    );
    (identity, accounts, mailer)
}

/// The identity use cases over the given store, mailer and vault (as [`identity`] wires them).
pub fn identity_over<S>(
    clock: Arc<dyn Clock>,
    store: Arc<S>,
    mailer: Arc<dyn Mailer>,
    vault: Arc<dyn KeyVault>,
) -> Identity
where
    S: AccountStore + SigningKeyStore + 'static,
{
    let signer = Signer::new(store.clone(), vault.clone(), super::ISSUER, super::AUDIENCE)
        .with_activation_delay(chrono::Duration::zero());
    Identity {
        accounts: store,
        signer: Arc::new(signer),
        vault,
        mailer,
        audit: Arc::new(super::audit::RecordingInbox::default()),
        clock,
        public_url: PUBLIC_URL.into(),
        product_name: PRODUCT_NAME.into(),
    }
}

/// Stores an active, verified account for `user` with `role`, and the session that
/// [`super::TestKeys::token`]'s tokens of `user` name: what a signed-in user has, for handler
/// tests against any [`Accounts`] + [`Sessions`] store.
pub async fn seed_signed_in(
    store: &(impl crate::ports::Accounts + crate::ports::Sessions + ?Sized),
    user: &str,
    role: crate::domain::Role,
) {
    let now = chrono::Utc::now();
    let account = Account {
        user_id: user.to_string(),
        // Stored normalised (lower case), as the identity service stores every email.
        email: format!("{user}@example.com").to_lowercase(),
        display_name: user.to_string(),
        role,
        status: crate::domain::account::AccountStatus::Active,
        password_hash: String::new(),
        mfa: Default::default(),
        failed_logins: 0,
        last_failed_at: None,
        tokens_valid_after: now - chrono::Duration::hours(1),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let token = OneTimeToken {
        hash: format!("seed-{user}"),
        purpose: crate::ports::TokenPurpose::VerifyEmail,
        user_id: user.to_string(),
        created_at: now,
        expires_at: now,
        password_hash: None,
        display_name: None,
    };
    store
        .create_account(&account, &token)
        .await
        .expect("the seeded account is stored");
    store
        .put_session(&Session {
            session_id: super::session_of(user),
            user_id: user.to_string(),
            device: "tests".into(),
            ip: "192.0.2.1".into(),
            created_at: now,
            last_used_at: now,
            expires_at: now + chrono::Duration::days(1),
            refresh_hash: String::new(),
            used_hashes: vec![],
        })
        .await
        .expect("the seeded session is stored");
}
