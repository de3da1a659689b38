//! Use cases: one request struct in, one response out (RORO). They take ports, never clients,
//! and decide what every store outcome means for the caller.

pub mod bulk;
pub mod error;
pub mod idempotency;
pub mod nodes;
pub mod ratelimit;
pub mod requests;
pub mod transfer;
pub mod workflows;

pub use error::AppError;
pub use idempotency::{IdempotencyKey, Outcome};

use crate::domain::{Principal, Workflow};
use crate::ports::StoreError;

/// The workflow if the caller may see it: it exists, is not deleted and is theirs. Anything
/// else looks the same to the caller as a workflow that never existed.
pub(crate) fn visible(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<Workflow, AppError> {
    match workflow {
        Some(w)
            if principal.owns(&w.owner_id)
                && w.status != crate::domain::WorkflowStatus::Deleted =>
        {
            Ok(w)
        }
        _ => Err(AppError::NotFound("workflow")),
    }
}

/// Maps a failed conditional workflow write: not visible -> 404; otherwise `conflict` explains.
pub(crate) fn workflow_rejection(
    err: StoreError,
    principal: &Principal,
    conflict: impl FnOnce(Workflow) -> AppError,
) -> AppError {
    match err {
        StoreError::WorkflowRejected(current) => match visible(current.map(|b| *b), principal) {
            Ok(w) => conflict(w),
            Err(e) => e,
        },
        other => other.into(),
    }
}
