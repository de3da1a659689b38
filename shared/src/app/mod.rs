//! Use cases: one request struct in, one response out (RORO). They take ports, never clients,
//! and decide what every store outcome means for the caller.

pub mod auth;
pub mod bulk;
pub mod error;
pub mod idempotency;
pub mod nodes;
pub mod ratelimit;
pub mod requests;
pub mod schemas;
pub mod shares;
pub mod transfer;
pub mod workflows;

pub use error::AppError;
pub use idempotency::{IdempotencyKey, Outcome};

use crate::domain::{Access, Principal, Role, Workflow};
use crate::ports::StoreError;

/// The workflow if the caller may see it: it exists, is not deleted, and is theirs, shared with
/// them, or they are an admin. Anything else looks the same to the caller as a workflow that
/// never existed.
pub(crate) fn visible(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<Workflow, AppError> {
    access(workflow, principal).map(|(w, _)| w)
}

/// The workflow if the caller may change it: visible, and with write access (else 403).
pub(crate) fn changeable(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<Workflow, AppError> {
    match access(workflow, principal)? {
        (w, Access::Write) => Ok(w),
        (_, Access::Read) => Err(read_only(principal)),
    }
}

fn access(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<(Workflow, Access), AppError> {
    match workflow {
        Some(w) if w.status != crate::domain::WorkflowStatus::Deleted => {
            match principal.access(&w.owner_id, &w.shares) {
                Some(a) => Ok((w, a)),
                None => Err(AppError::NotFound("workflow")),
            }
        }
        _ => Err(AppError::NotFound("workflow")),
    }
}

/// Refuses a change up front when the caller's role or key scopes allow none at all.
pub(crate) fn require_write(principal: &Principal) -> Result<(), AppError> {
    if principal.can_write() {
        Ok(())
    } else {
        Err(read_only(principal))
    }
}

fn read_only(principal: &Principal) -> AppError {
    AppError::Forbidden(
        if principal.scopes.is_some() && principal.role != Role::Viewer {
            "this API key's scopes do not include workflows:write"
        } else if principal.role == Role::Viewer {
            "the viewer role can read but not change workflows"
        } else {
            "this workflow is shared with you read-only"
        },
    )
}

/// Maps a failed conditional workflow write: not visible -> 404, read-only -> 403; otherwise
/// `conflict` explains.
pub(crate) fn workflow_rejection(
    err: StoreError,
    principal: &Principal,
    conflict: impl FnOnce(Workflow) -> AppError,
) -> AppError {
    match err {
        StoreError::WorkflowRejected(current) => match changeable(current.map(|b| *b), principal) {
            Ok(w) => conflict(w),
            Err(e) => e,
        },
        other => other.into(),
    }
}
