//! Use cases: one request struct in, one response out (RORO). They take ports, never clients,
//! and decide what every store outcome means for the caller.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod broadcast;
pub mod error;
pub mod notify;
pub mod operations;
pub mod ratelimit;
pub mod realtime;
pub mod runs;
pub mod schedules;
pub mod schemas;
pub mod workflows;

pub use error::AppError;

/// The refusal of the admin API to anyone else.
pub(crate) const ADMIN_API: &str = "only admins may use the admin API";

/// Password, MFA and key management, and notification settings (where security alerts go), need
/// a signed-in person, not an API key.
pub fn require_session(principal: &crate::domain::Principal) -> Result<(), AppError> {
    if principal.scopes.is_some() {
        Err(AppError::Forbidden("sign in to do this; API keys cannot"))
    } else {
        Ok(())
    }
}

/// `Forbidden(refusal)` unless the caller is an admin.
pub(crate) fn require_admin(
    principal: &crate::domain::Principal,
    refusal: &'static str,
) -> Result<(), AppError> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(refusal))
    }
}
pub use workflows::idempotency::{IdempotencyKey, Outcome};
