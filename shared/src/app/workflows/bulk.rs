//! Bulk status actions: every id gets its own result; partial success is reported, not hidden.

use super::requests::*;
use super::require_write;
use crate::app::AppError;
use crate::domain::{Access, Principal, WorkflowStatus, ids};
use crate::ports::{ChangeOutcome, Runs, WorkflowChange, WorkflowUpdate, Workflows};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

impl BulkAction {
    pub fn target(self) -> WorkflowStatus {
        match self {
            BulkAction::Delete => WorkflowStatus::Deleted,
            BulkAction::Activate => WorkflowStatus::Active,
            BulkAction::Pause => WorkflowStatus::Paused,
        }
    }
}

pub fn validate(body: &BulkRequest) -> Result<(), AppError> {
    if body.ids.is_empty() || body.ids.len() > MAX_BULK_IDS {
        return Err(AppError::field(
            "ids",
            format!("must hold 1 to {MAX_BULK_IDS} ids (got {})", body.ids.len()),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, id) in body.ids.iter().enumerate() {
        if !seen.insert(id) {
            return Err(AppError::field(format!("ids[{i}]"), "duplicate id"));
        }
    }
    Ok(())
}

/// Reads all named workflows in one request, decides each locally against the status machine,
/// and applies the legal changes together; a change that loses a race is reported as a
/// conflict.
pub async fn apply(
    store: &(impl Workflows + Runs + ?Sized),
    principal: &Principal,
    body: BulkRequest,
    now: DateTime<Utc>,
) -> Result<BulkResponse, AppError> {
    require_write(principal)?;
    validate(&body)?;
    let target = body.action.target();
    let well_formed: Vec<String> = body
        .ids
        .iter()
        .filter(|id| ids::is_valid_id(id))
        .cloned()
        .collect();
    let found: HashMap<String, crate::domain::Workflow> = store
        .get_workflows(&well_formed)
        .await?
        .into_iter()
        .filter(|w| {
            w.status != WorkflowStatus::Deleted
                && principal.access(&w.owner_id, &w.shares) == Some(Access::Write)
        })
        .map(|w| (w.id.clone(), w))
        .collect();
    let mut results: Vec<BulkResult> = Vec::with_capacity(body.ids.len());
    let mut changes = Vec::new();
    let mut change_index = Vec::new();
    for id in &body.ids {
        let result = match found.get(id) {
            None => BulkResult {
                id: id.clone(),
                outcome: BulkOutcome::NotFound,
                status: None,
                version: None,
                detail: Some("no such workflow".into()),
            },
            Some(w) if !w.status.can_become(target) => BulkResult {
                id: id.clone(),
                outcome: BulkOutcome::Conflict,
                status: Some(w.status),
                version: Some(w.version),
                detail: Some(format!(
                    "cannot go from {} to {target}; allowed: {}",
                    w.status,
                    w.status
                        .allowed_targets()
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            Some(w) => {
                change_index.push(results.len());
                changes.push(WorkflowChange {
                    id: id.clone(),
                    actor: principal.clone(),
                    expected_version: Some(w.version),
                    allowed_from: vec![w.status],
                    max_nodes: None,
                    update: WorkflowUpdate {
                        status: Some(target),
                        ..Default::default()
                    },
                    now,
                });
                BulkResult {
                    id: id.clone(),
                    outcome: BulkOutcome::Ok,
                    status: Some(target),
                    version: Some(w.version + 1),
                    detail: None,
                }
            }
        };
        results.push(result);
    }
    let outcomes = store.change_workflows(&changes).await?;
    for (&i, outcome) in change_index.iter().zip(outcomes) {
        if let ChangeOutcome::Rejected = outcome {
            let r = &mut results[i];
            r.outcome = BulkOutcome::Conflict;
            r.status = None;
            r.version = None;
            r.detail = Some("changed concurrently; read it again and retry".into());
        }
    }
    // The runs of the workflows changed follow them (pause or cancel).
    for r in results.iter().filter(|r| r.outcome == BulkOutcome::Ok) {
        crate::app::runs::follow_workflow(store, &r.id, target, now).await?;
    }
    let succeeded = results
        .iter()
        .filter(|r| r.outcome == BulkOutcome::Ok)
        .count() as u32;
    Ok(BulkResponse {
        action: body.action,
        succeeded,
        failed: results.len() as u32 - succeeded,
        results,
    })
}
