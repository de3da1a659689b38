//! Who a request acts for, for the length of its handling: the HTTP pipeline sets it once the
//! caller is known ([`with_changed_by`]), and the table adapter stamps it on the workflow, node
//! and run items it writes (`changed_by`), so the audit trail, derived from the table's stream,
//! knows who made each change and from where. Work outside a request (the worker, the
//! scheduler) has none and is stamped as the system.

use crate::domain::audit::ChangedBy;
use std::future::Future;

tokio::task_local! {
    static CHANGED_BY: ChangedBy;
}

/// The request's actor and context, if this runs inside one.
pub fn changed_by() -> Option<ChangedBy> {
    CHANGED_BY.try_with(Clone::clone).ok()
}

/// Runs `f` as `by`'s: every write it makes is stamped with `by`.
pub async fn with_changed_by<F: Future>(by: ChangedBy, f: F) -> F::Output {
    CHANGED_BY.scope(by, f).await
}
