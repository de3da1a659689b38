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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateType {
    Created,
    Updated,
    Deleted,
    StatusChanged,
}

/// What happened to a run or a step, as `event` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The connections subscribed to a workflow.
    Workflow(String),
    /// Every connection of a user (notifications).
    User(String),
}

/// One message and who it is for, as its JSON frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub audience: Audience,
    pub frame: String,
}

/// The most text one `node_delta` carries, in bytes as JSON writes it (escapes counted), so
/// that a frame with its ids stays well under [`MAX_FRAME_BYTES`]; a longer delta is split
/// across messages.
pub const MAX_DELTA_BYTES: usize = 24 * 1024;

/// How many bytes `c` takes inside a JSON string.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Live text of a node being written: `text` follows the first `offset` characters already
/// sent for this attempt (`seq` counts the deltas of the attempt from 0), so a client that
/// missed one can tell and read the node over REST when it completes. Text longer than
/// [`MAX_DELTA_BYTES`] is split at character boundaries.
pub fn node_deltas(
    workflow_id: &str,
    node_id: &str,
    run_id: &str,
    attempt: u32,
    first_seq: u64,
    offset: usize,
    text: &str,
) -> Vec<Message> {
    let mut pieces: Vec<(usize, String)> = Vec::new();
    let (mut piece, mut bytes, mut at) = (String::new(), 0, offset);
    for c in text.chars() {
        if bytes + json_len(c) > MAX_DELTA_BYTES {
            let n = piece.chars().count();
            pieces.push((at, std::mem::take(&mut piece)));
            at += n;
            bytes = 0;
        }
        bytes += json_len(c);
        piece.push(c);
    }
    if !piece.is_empty() {
        pieces.push((at, piece));
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, (offset, piece))| {
            let frame = json!({
                "type": "node_delta",
                "workflow_id": workflow_id,
                "node_id": node_id,
                "run_id": run_id,
                "attempt": attempt,
                "seq": first_seq + i as u64,
                "offset": offset,
                "text": piece,
            });
            message(Audience::Workflow(workflow_id.into()), frame, &[])
        })
        .collect()
}

/// The notifications a run's change sends its owner: when it finished (succeeded, failed or
/// was cancelled).
pub fn run_notification(old: Option<&Run>, new: Option<&Run>) -> Option<Message> {
    let run = new?;
    if !run.status.is_terminal() || old.is_some_and(|o| o.status == run.status) {
        return None;
    }
    let event = match run.status {
        RunStatus::Succeeded => "run_succeeded",
        RunStatus::Failed => "run_failed",
        _ => "run_cancelled",
    };
    let frame = json!({
        "type": "notification",
        "event": event,
        "workflow_id": run.workflow_id,
        "run_id": run.id,
        "status": run.status,
        "steps_succeeded": run.steps_succeeded,
        "steps_failed": run.steps_failed,
    });
    Some(message(Audience::User(run.owner_id.clone()), frame, &[]))
}

/// The notifications a workflow's change sends the users it was just shared with.
pub fn share_notifications(old: Option<&Workflow>, new: Option<&Workflow>) -> Vec<Message> {
    let Some(w) = new else { return Vec::new() };
    if w.status == WorkflowStatus::Deleted {
        return Vec::new();
    }
    w.shares
        .iter()
        .filter(|(user, access)| old.and_then(|o| o.shares.get(*user)) != Some(*access))
        .map(|(user, access)| {
            let frame = json!({
                "type": "notification",
                "event": "workflow_shared",
                "workflow_id": w.id,
                "name": w.name,
                "access": access,
            });
            message(Audience::User(user.clone()), frame, &["name"])
        })
        .collect()
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
    Some(message(
        Audience::Workflow(w.id.clone()),
        frame,
        &["workflow"],
    ))
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
    Some(message(
        Audience::Workflow(n.workflow_id.clone()),
        frame,
        &["node"],
    ))
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
    let mut run_message = None;
    let mut opening = false;
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
            opening = matches!(event, RunEvent::Started | RunEvent::Resumed);
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
            run_message = Some(message(
                Audience::Workflow(run.workflow_id.clone()),
                frame,
                &["last_error"],
            ));
        }
    }
    // The run's opening event comes before its steps' events, its closing one (paused, over)
    // after them, so a client that stops listening at the run's end has seen every step.
    if opening {
        messages.extend(run_message.take());
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
        messages.push(message(
            Audience::Workflow(run.workflow_id.clone()),
            frame,
            &["last_error"],
        ));
    }
    messages.extend(run_message);
    messages
}

/// `frame` as text, with the fields `large` set to null (and `truncated: true`) when the whole
/// would exceed [`MAX_FRAME_BYTES`].
fn message(audience: Audience, mut frame: Value, large: &[&str]) -> Message {
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
        audience,
        frame: text,
    }
}

/// One change of an item, as the table's stream gives it: the item before and after (absent
/// before a creation and after a deletion).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Workflow {
        old: Option<Workflow>,
        new: Option<Workflow>,
    },
    Node {
        old: Option<Node>,
        new: Option<Node>,
    },
    Run {
        old: Option<(Run, Vec<Step>)>,
        new: Option<(Run, Vec<Step>)>,
    },
    /// A user's schedule (audited; nothing is broadcast of it).
    Schedule {
        old: Option<Box<crate::domain::schedule::Schedule>>,
        new: Option<Box<crate::domain::schedule::Schedule>>,
    },
}

/// The users who could read a workflow through a share before a change and cannot after it (the
/// share revoked, or the workflow deleted): their connections stop following it.
pub fn revoked_readers(change: &Change) -> Vec<(String, String)> {
    let Change::Workflow {
        old: Some(old),
        new,
    } = change
    else {
        return Vec::new();
    };
    old.shares
        .keys()
        .filter(|user| match new {
            None => true,
            Some(n) => n.status == WorkflowStatus::Deleted || !n.shares.contains_key(*user),
        })
        .map(|user| (user.clone(), old.id.clone()))
        .collect()
}

/// Every message a change sends: to the workflow's subscribers, and the notifications to users.
pub fn messages(change: &Change, now: DateTime<Utc>) -> Vec<Message> {
    match change {
        Change::Workflow { old, new } => {
            let mut out: Vec<Message> = workflow_update(old.as_ref(), new.as_ref())
                .into_iter()
                .collect();
            out.extend(share_notifications(old.as_ref(), new.as_ref()));
            out
        }
        Change::Node { old, new } => node_update(old.as_ref(), new.as_ref())
            .into_iter()
            .collect(),
        Change::Run { old, new } => {
            let mut out = run_updates(pair(old), pair(new), now);
            out.extend(run_notification(
                old.as_ref().map(|(r, _)| r),
                new.as_ref().map(|(r, _)| r),
            ));
            out
        }
        Change::Schedule { .. } => Vec::new(),
    }
}

fn pair(r: &Option<(Run, Vec<Step>)>) -> Option<(&Run, &[Step])> {
    r.as_ref().map(|(r, s)| (r, s.as_slice()))
}
