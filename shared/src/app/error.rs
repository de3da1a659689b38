//! What a use case can answer instead of a result. The HTTP layer maps each to one problem type.

use crate::domain::run::{IllegalTransition, StatusMachine};
use crate::domain::{DomainError, FieldError};
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The caller is known and may see the resource, but not do this to it.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Credentials or a token that do not prove who the caller is.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Login needs a second factor: `totp_code` or `recovery_code`.
    #[error("MFA required")]
    MfaRequired,
    /// Too many failed logins: refused until `retry_after_s` have passed.
    #[error("account locked")]
    Locked { retry_after_s: i64 },
    /// A state conflict other than versions: `slug` names it, `detail` explains.
    #[error("conflict: {detail}")]
    Conflict {
        slug: &'static str,
        detail: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("version conflict")]
    VersionConflict { current_version: u64 },
    /// A status machine (a workflow's, a run's, a step's) does not allow this move.
    #[error("illegal status transition")]
    IllegalTransition {
        from: &'static str,
        to: &'static str,
        allowed: Vec<&'static str>,
    },
    #[error("node limit reached")]
    NodeLimitReached { max_nodes: u64 },
    #[error("max_nodes below node count")]
    MaxNodesBelowCount { node_count: u64 },
    #[error("node has children")]
    NodeHasChildren { child_count: u64 },
    #[error("tree changed")]
    TreeChanged,
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    #[error("precondition required")]
    PreconditionRequired,
    #[error("bad cursor")]
    BadCursor,
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl<S: StatusMachine> From<IllegalTransition<S>> for AppError {
    fn from(e: IllegalTransition<S>) -> Self {
        AppError::IllegalTransition {
            from: e.from.as_str(),
            to: e.to.as_str(),
            allowed: e.allowed.iter().map(|s| s.as_str()).collect(),
        }
    }
}

impl AppError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(v) => AppError::Validation(v),
            DomainError::IllegalTransition { from, to, allowed } => AppError::IllegalTransition {
                from: from.as_str(),
                to: to.as_str(),
                allowed: allowed.iter().map(|s| s.as_str()).collect(),
            },
        }
    }
}

/// The context-free meaning of store errors; use cases map the conditional ones themselves
/// before falling back to this.
impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WorkflowRejected(_) => AppError::NotFound("workflow"),
            StoreError::NodeRejected(_) => AppError::NotFound("node"),
            StoreError::ParentMissing => {
                AppError::field("parent_id", "names no node of this workflow")
            }
            StoreError::IdempotencyKeyUsed(_) => AppError::IdempotencyKeyReused,
            StoreError::BadPageKey => AppError::BadCursor,
            StoreError::Conflict => AppError::Conflict {
                slug: "concurrent-change",
                detail: "the resource changed meanwhile; repeat the request",
            },
            StoreError::Duplicate => AppError::Conflict {
                slug: "already-exists",
                detail: "it exists already",
            },
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::Internal(m) => AppError::Internal(m),
        }
    }
}
