//! Who is calling: the account rules every authenticated request applies once the HTTP layer
//! has checked an access token's signature or read an API key. The account must exist and be
//! active; a token issued, or a key made, before the account's `tokens_valid_after` (a password
//! change, a reset, "sign out everywhere") no longer counts; an API key's secret must match
//! its stored hash and the key must not have expired.

use crate::domain::Principal;
use crate::domain::Role;
use crate::domain::account::AccountStatus;
use crate::ports::{AccountState, AccountStates};
use chrono::{DateTime, Utc};

/// Why a caller is not let in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallerError {
    /// The credential does not (or no longer) stand for an account that may act (401).
    #[error("{0}")]
    Refused(&'static str),
    /// The account could not be read: not the caller's fault (503).
    #[error("accounts unavailable: {0}")]
    Unavailable(String),
}

/// The caller of a verified access token: `user_id` from `sub`, `session_id` from `sid` (a
/// token counts only while its session exists: logout, "end this session", a reused refresh
/// token and "end every session" end its access tokens at once),
/// `issued_at_ms` from `iat` (epoch milliseconds: a token issued before a password change in
/// the same second does not survive it).
pub async fn from_access_token(
    accounts: &(impl AccountStates + ?Sized),
    user_id: String,
    session_id: Option<String>,
    issued_at_ms: i64,
) -> Result<Principal, CallerError> {
    let sid = session_id.ok_or(CallerError::Refused("no session: sign in again"))?;
    let (state, session) = accounts
        .session_state(&user_id, &sid)
        .await
        .map_err(|e| CallerError::Unavailable(e.to_string()))?;
    let (role, cutoff) = usable(state)?;
    if !session {
        return Err(CallerError::Refused("session ended: sign in again"));
    }
    if issued_at_ms < cutoff.timestamp_millis() {
        return Err(CallerError::Refused("revoked: sign in again"));
    }
    Ok(Principal {
        user_id,
        role,
        scopes: None,
        session_id: Some(sid),
    })
}

/// The caller of an API key, from the parts of its well-formed text.
pub async fn from_api_key(
    accounts: &(impl AccountStates + ?Sized),
    user_id: &str,
    key_id: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Principal, CallerError> {
    let (key, state) = accounts
        .api_key_with_state(user_id, key_id)
        .await
        .map_err(|e| CallerError::Unavailable(e.to_string()))?;
    let key = key.ok_or(CallerError::Refused("unknown API key"))?;
    if !crate::crypto::constant_time_eq(&crate::crypto::sha256_hex(secret), &key.secret_hash) {
        return Err(CallerError::Refused("unknown API key"));
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(CallerError::Refused("API key expired"));
    }
    let (role, cutoff) = usable(state)?;
    // Keys made before a password change, reset or "end everything" end with the tokens.
    if key.created_at < cutoff {
        return Err(CallerError::Refused(
            "API key revoked: the account's credentials were reset",
        ));
    }
    Ok(Principal {
        user_id: user_id.to_string(),
        role,
        scopes: Some(key.scopes),
        session_id: None,
    })
}

/// The role and token cutoff of an account that may act now.
fn usable(state: Option<AccountState>) -> Result<(Role, DateTime<Utc>), CallerError> {
    let state = state.ok_or(CallerError::Refused("account no longer exists"))?;
    match state.status {
        AccountStatus::Active => Ok((state.role, state.tokens_valid_after)),
        AccountStatus::Suspended => Err(CallerError::Refused("account suspended")),
        AccountStatus::Pending => Err(CallerError::Refused("email not verified")),
    }
}
