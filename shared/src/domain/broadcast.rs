//! What subscribers of a workflow are told when one of its items changes: the table's stream
//! gives each change as the item before and after (either may be absent), and this turns it
//! into the specification's messages (`workflow_update`, `node_update` with `update_type`, and
//! `run_update`, `step_update` with `event`). A change whose two images do not differ tells
//! nothing. Every message fits in one WebSocket frame (API Gateway's 32 KB): one that would
//! not is sent without its large parts, for the client to read them over REST.

use super::run::{Run, RunStatus, Step, StepStatus};
use super::{Node, Workflow, WorkflowStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// The largest frame sent (API Gateway's limit for a WebSocket frame is 32 KB).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// How an item changed, as `update_type` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateType {
    Created,
    Updated,
    Deleted,
    StatusChanged,
}

/// What happened to a run or a step, as `event` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEvent {
    Started,
    Succeeded,
    Failed,
    Retrying,
    Paused,
    Resumed,
    Cancelled,
    WaitingApproval,
}

/// One message to the subscribers of `workflow_id`, as its JSON frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub workflow_id: String,
    pub frame: String,
}

/// The change of how an item with a status changed: created, deleted, status changed, or
/// otherwise updated; `None` when nothing differs.
fn update_type<T: PartialEq, S: PartialEq>(
    old: Option<&T>,
    new: Option<&T>,
    status: impl Fn(&T) -> S,
    deleted: impl Fn(&T) -> bool,
) -> Option<UpdateType> {
    match (old, new) {
        (None, None) => None,
        (None, Some(_)) => Some(UpdateType::Created),
        (Some(_), None) => Some(UpdateType::Deleted),
        (Some(o), Some(n)) if o == n => None,
        (Some(_), Some(n)) if deleted(n) => Some(UpdateType::Deleted),
        (Some(o), Some(n)) if status(o) != status(n) => Some(UpdateType::StatusChanged),
        (Some(_), Some(_)) => Some(UpdateType::Updated),
    }
}

/// The message of a workflow's change. The workflow is described, not copied: its settings
/// and shares stay with those who may read them over REST.
pub fn workflow_update(old: Option<&Workflow>, new: Option<&Workflow>) -> Option<Message> {
    let kind = update_type(
        old,
        new,
        |w| w.status,
        |w| w.status == WorkflowStatus::Deleted,
    )?;
    let w = new.or(old)?;
    let frame = json!({
        "type": "workflow_update",
        "update_type": kind,
        "workflow_id": w.id,
        "workflow": {
            "id": w.id,
            "name": w.name,
            "status": w.status,
            "node_count": w.node_count,
            "version": w.version,
            "updated_at": w.updated_at,
        },
    });
    Some(message(&w.id, frame, &["workflow"]))
}

/// The message of a node's change, with the node as the API shows it (without its content
/// when that would not fit in a frame).
pub fn node_update(old: Option<&Node>, new: Option<&Node>) -> Option<Message> {
    let kind = update_type(old, new, |n| n.status, |_| false)?;
    let n = new.or(old)?;
    let frame = json!({
        "type": "node_update",
        "update_type": kind,
        "workflow_id": n.workflow_id,
        "node_id": n.id,
        "node": if kind == UpdateType::Deleted { Value::Null } else { serde_json::to_value(n).unwrap_or(Value::Null) },
    });
    Some(message(&n.workflow_id, frame, &["node"]))
}

/// The messages of a run's change (the run item holds its steps): a `run_update` when the
/// run's status moved, and a `step_update` for each step whose status or attempt moved, in
/// plan order. `now` dates a retry's delay.
pub fn run_updates(
    old: Option<(&Run, &[Step])>,
    new: Option<(&Run, &[Step])>,
    now: DateTime<Utc>,
) -> Vec<Message> {
    let Some((run, steps)) = new else {
        return Vec::new();
    };
    let (old_run, old_steps) = match old {
        Some((r, s)) => (Some(r), s),
        None => (None, &[][..]),
    };
    let mut messages = Vec::new();
    let from = old_run.map(|r| r.status);
    if from != Some(run.status) {
        let event = match (from, run.status) {
            (_, RunStatus::Queued) => None,
            (Some(RunStatus::Paused), RunStatus::Running) => Some(RunEvent::Resumed),
            (_, RunStatus::Running) => Some(RunEvent::Started),
            (_, RunStatus::Paused) => Some(RunEvent::Paused),
            (_, RunStatus::Succeeded) => Some(RunEvent::Succeeded),
            (_, RunStatus::Failed) => Some(RunEvent::Failed),
            (_, RunStatus::Cancelled) => Some(RunEvent::Cancelled),
        };
        if let Some(event) = event {
            let frame = json!({
                "type": "run_update",
                "event": event,
                "workflow_id": run.workflow_id,
                "run_id": run.id,
                "status": run.status,
                "steps_total": run.steps_total,
                "steps_succeeded": run.steps_succeeded,
                "steps_failed": run.steps_failed,
                "last_error": run.last_error,
            });
            messages.push(message(&run.workflow_id, frame, &["last_error"]));
        }
    }
    for step in steps {
        let before = old_steps.iter().find(|s| s.id == step.id);
        if before.is_some_and(|b| b.status == step.status && b.attempts == step.attempts) {
            continue;
        }
        let event = match step.status {
            StepStatus::Running => RunEvent::Started,
            StepStatus::Succeeded => RunEvent::Succeeded,
            StepStatus::Failed => RunEvent::Failed,
            StepStatus::Skipped => RunEvent::Cancelled,
            StepStatus::WaitingApproval => RunEvent::WaitingApproval,
            // Back to pending after an attempt: a retry is scheduled.
            StepStatus::Pending
                if before.is_some_and(|b| step.attempts > 0 && b.status == StepStatus::Running) =>
            {
                RunEvent::Retrying
            }
            StepStatus::Pending => continue,
        };
        let delay_s = (event == RunEvent::Retrying)
            .then(|| step.lease_until.map(|t| (t - now).num_seconds().max(0)))
            .flatten();
        let frame = json!({
            "type": "step_update",
            "event": event,
            "workflow_id": run.workflow_id,
            "run_id": run.id,
            "step_id": step.id,
            "node_id": step.node_id,
            "status": step.status,
            "attempt": step.attempts,
            "delay_s": delay_s,
            "last_error": step.last_error,
            "model": step.model,
            "output_tokens": step.output_tokens,
            "latency_ms": step.latency_ms,
        });
        messages.push(message(&run.workflow_id, frame, &["last_error"]));
    }
    messages
}

/// `frame` as text, with the fields `large` set to null (and `truncated: true`) when the whole
/// would exceed [`MAX_FRAME_BYTES`].
fn message(workflow_id: &str, mut frame: Value, large: &[&str]) -> Message {
    let mut text = frame.to_string();
    if text.len() > MAX_FRAME_BYTES
        && let Some(object) = frame.as_object_mut()
    {
        for field in large {
            object.insert((*field).to_string(), Value::Null);
        }
        object.insert("truncated".into(), Value::Bool(true));
        text = frame.to_string();
    }
    Message {
        workflow_id: workflow_id.to_string(),
        frame: text,
    }
}
