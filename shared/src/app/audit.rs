//! Audit use cases: recording the table's changes as audit events (the stream side), and the
//! routes of `/api/v3/audit` (whose chain a caller may read, listing, verifying a chain).

use super::AppError;
use super::analytics::{Counted, scope_of};
use crate::domain::Principal;
use crate::domain::analytics::Scope;
use crate::domain::audit::{self, AuditEvent, Chain, ChainOf, Verification, Verifier};
use crate::domain::ids;
use crate::ports::{AuditFilter, AuditLog, Page, PageKey, StoreError, Workflows};

/// Events read per Query while verifying a chain.
const VERIFY_PAGE: usize = 500;

/// What a batch recorded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Changes whose events were appended now.
    pub recorded: usize,
    /// Changes recorded before (a retried batch): nothing appended.
    pub repeated: usize,
    /// Changes that are no audit event.
    pub ignored: usize,
}

/// Appends the audit events of `records`' changes, in order, each change's exactly once.
/// Stops at the first change that cannot be recorded and returns its index with the error, so
/// the caller reports it and what follows as the batch's failures.
pub async fn record(
    log: &(impl AuditLog + ?Sized),
    workflows: &(impl Workflows + ?Sized),
    records: &[Counted],
) -> Result<RecordOutcome, (usize, RecordOutcome, StoreError)> {
    let mut out = RecordOutcome::default();
    for (i, record) in records.iter().enumerate() {
        let Some((chain, drafts)) = audit::from_change(&record.change, ids::new_id) else {
            out.ignored += 1;
            continue;
        };
        let chain = match chain {
            ChainOf::Known(c) => c,
            ChainOf::OwnerOfWorkflow(id) => match workflows.get_workflow(&id).await {
                Ok(Some(w)) => Chain::User(w.owner_id),
                // A workflow purged since: its node's events go to the system's chain.
                Ok(None) => Chain::System,
                Err(e) => return Err((i, out, e)),
            },
        };
        match log.append(&chain, Some(&record.event_id), &drafts).await {
            Ok(true) => out.recorded += 1,
            Ok(false) => out.repeated += 1,
            Err(e) => return Err((i, out, e)),
        }
    }
    Ok(out)
}

/// Whose chain a request reads: `user` (admins: anyone's; others: only their own) or, with
/// `system`, the system's (admins only); the caller's own by default.
pub fn chain_of(
    principal: &Principal,
    user: Option<&str>,
    system: bool,
) -> Result<Chain, AppError> {
    Ok(match scope_of(principal, user, system)? {
        Scope::System => Chain::System,
        Scope::User(u) => Chain::User(u),
        Scope::Workflow(_) => Chain::User(principal.user_id.clone()),
    })
}

/// A page of `chain`'s events that pass `filter`, newest first.
pub async fn list(
    log: &(impl AuditLog + ?Sized),
    chain: &Chain,
    filter: &AuditFilter,
    limit: usize,
    after: Option<PageKey>,
) -> Result<Page<AuditEvent>, AppError> {
    if let Some(a) = &filter.action
        && !audit::ACTIONS.contains(&a.as_str())
    {
        return Err(AppError::Validation(vec![crate::domain::FieldError::new(
            "action",
            format!("unknown action; one of {}", audit::ACTIONS.join(", ")),
        )]));
    }
    Ok(log.events(chain, filter, limit, after).await?)
}

/// Walks `chain` from its first event, a page at a time, and reports its first broken link
/// (an edited event, a deleted one, a head that does not match the chain's end).
pub async fn verify(
    log: &(impl AuditLog + ?Sized),
    chain: &Chain,
) -> Result<Verification, AppError> {
    let mut verifier = Verifier::new(chain);
    let mut after = 0;
    loop {
        let page = log.chain_after(chain, after, VERIFY_PAGE).await?;
        for e in &page {
            verifier.push(e);
            after = e.seq;
        }
        if page.len() < VERIFY_PAGE || verifier.is_broken() {
            break;
        }
    }
    let head = log.head(chain).await?;
    Ok(verifier.finish(head))
}
