//! What raises a notification: item changes from the table's stream (runs, workflows,
//! schedules) and the audit notes of a user's chain (sign-ins, password, MFA, API keys).
//!
//! A trigger's time comes from the item or note itself, never the clock, so a retried stream
//! record raises the same trigger (and the notifier can derive the same notification id).

use super::EventKind;
use crate::domain::audit::{Draft, Outcome};
use crate::domain::broadcast::Change;
use crate::domain::run::{Run, RunStatus, Step, StepStatus, can_approve};
use crate::domain::schedule::Schedule;
use crate::domain::{Workflow, WorkflowStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// One notification to raise for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub user_id: String,
    pub event: EventKind,
    pub at: DateTime<Utc>,
    /// The template variables (strings and numbers); a variable with no value is absent.
    pub vars: Map<String, Value>,
}

/// The notifications an item change raises:
/// - a run newly finished `succeeded` or `failed` (not `cancelled`: its owner did that) tells
///   its owner (`run_succeeded` / `run_failed`: `workflow_id`, `run_id`, `status`,
///   `steps_total`, `steps_succeeded`, `steps_failed`, and `error`, `error_kind` when the run
///   or a step carries one), as [`crate::domain::broadcast::run_notification`] does;
/// - a step newly waiting for an approve it can get (waiting, and the step it continues is
///   done: see [`can_approve`]) tells the run's owner (`step_waiting_approval`: `workflow_id`,
///   `run_id`, `step_id`, `node_id`, `step_number`, `steps_total`). A run with approvals creates
///   every step waiting; each is told when it becomes the reviewer's turn, not all at once;
/// - a workflow newly shared with a user, or their access changed, tells that user
///   (`workflow_shared`: `workflow_id`, `workflow_name`, `access`, `owner_id`), as
///   [`crate::domain::broadcast::share_notifications`] does;
/// - a schedule whose latest fire changed and started no run tells its owner
///   (`schedule_skipped`: `schedule_id`, `schedule_name` (schedules have no name: the
///   expression), `expression`, `timezone`, `workflow_id`, `reason`, `scheduled_time`).
pub fn from_change(change: &Change) -> Vec<Trigger> {
    match change {
        Change::Run { old, new } => {
            let Some((run, steps)) = new else {
                return Vec::new();
            };
            let (old_run, old_steps) = match old {
                Some((r, s)) => (Some(r), s.as_slice()),
                None => (None, &[][..]),
            };
            let mut out: Vec<Trigger> = run_finished(old_run, run, steps).into_iter().collect();
            out.extend(steps_waiting(run, old_steps, steps));
            out
        }
        Change::Workflow { old, new } => shared(old.as_ref(), new.as_ref()),
        Change::Schedule { old, new } => schedule_skipped(old.as_deref(), new.as_deref())
            .into_iter()
            .collect(),
        Change::Node { .. } => Vec::new(),
    }
}

fn run_finished(old: Option<&Run>, run: &Run, steps: &[Step]) -> Option<Trigger> {
    if !run.status.is_terminal() || old.is_some_and(|o| o.status == run.status) {
        return None;
    }
    let event = match run.status {
        RunStatus::Succeeded => EventKind::RunSucceeded,
        RunStatus::Failed => EventKind::RunFailed,
        _ => return None,
    };
    let mut vars = Map::new();
    put(&mut vars, "workflow_id", &run.workflow_id);
    put(&mut vars, "run_id", &run.id);
    put(&mut vars, "status", to_str(&run.status));
    vars.insert("steps_total".into(), run.steps_total.into());
    vars.insert("steps_succeeded".into(), run.steps_succeeded.into());
    vars.insert("steps_failed".into(), run.steps_failed.into());
    let mut failed: Vec<&Step> = steps.iter().filter(|s| s.last_error.is_some()).collect();
    failed.sort_by_key(|s| (s.status != StepStatus::Failed, s.position));
    let error = run
        .last_error
        .as_ref()
        .or_else(|| failed.first().and_then(|s| s.last_error.as_ref()));
    if let Some(e) = error.filter(|_| event == EventKind::RunFailed) {
        put(&mut vars, "error", &e.message);
        put(&mut vars, "error_kind", to_str(&e.kind));
    }
    Some(Trigger {
        user_id: run.owner_id.clone(),
        event,
        at: run.finished_at.unwrap_or(run.updated_at),
        vars,
    })
}

fn steps_waiting(run: &Run, old_steps: &[Step], steps: &[Step]) -> Vec<Trigger> {
    steps
        .iter()
        .filter(|s| can_approve(s, steps))
        .filter(|s| {
            !old_steps
                .iter()
                .find(|o| o.id == s.id)
                .is_some_and(|o| can_approve(o, old_steps))
        })
        .map(|s| {
            let mut vars = Map::new();
            put(&mut vars, "workflow_id", &run.workflow_id);
            put(&mut vars, "run_id", &run.id);
            put(&mut vars, "step_id", &s.id);
            put(&mut vars, "node_id", &s.node_id);
            vars.insert("step_number".into(), (s.position + 1).into());
            vars.insert("steps_total".into(), run.steps_total.into());
            Trigger {
                user_id: run.owner_id.clone(),
                event: EventKind::StepWaitingApproval,
                at: run.updated_at,
                vars,
            }
        })
        .collect()
}

fn shared(old: Option<&Workflow>, new: Option<&Workflow>) -> Vec<Trigger> {
    let Some(w) = new else { return Vec::new() };
    if w.status == WorkflowStatus::Deleted {
        return Vec::new();
    }
    w.shares
        .iter()
        .filter(|(user, access)| old.and_then(|o| o.shares.get(*user)) != Some(*access))
        .map(|(user, access)| {
            let mut vars = Map::new();
            put(&mut vars, "workflow_id", &w.id);
            put(&mut vars, "workflow_name", &w.name);
            put(&mut vars, "access", access.as_str());
            put(&mut vars, "owner_id", &w.owner_id);
            Trigger {
                user_id: user.clone(),
                event: EventKind::WorkflowShared,
                at: w.updated_at,
                vars,
            }
        })
        .collect()
}

fn schedule_skipped(old: Option<&Schedule>, new: Option<&Schedule>) -> Option<Trigger> {
    let s = new?;
    let fire = s.last_fire.as_ref()?;
    let reason = fire.skipped.as_deref()?;
    if old.is_some_and(|o| o.last_fire.as_ref() == Some(fire)) {
        return None;
    }
    let mut vars = Map::new();
    put(&mut vars, "schedule_id", &s.id);
    put(&mut vars, "schedule_name", &s.expression);
    put(&mut vars, "expression", &s.expression);
    put(&mut vars, "timezone", &s.timezone);
    put(&mut vars, "workflow_id", &s.workflow_id);
    put(&mut vars, "reason", reason);
    put(&mut vars, "scheduled_time", rfc3339(fire.scheduled_time));
    Some(Trigger {
        user_id: s.owner_id.clone(),
        event: EventKind::ScheduleSkipped,
        at: fire.scheduled_time,
        vars,
    })
}

/// The notification an audit note of a user's chain raises (successful ones only):
/// - `auth.login_succeeded`: `new_login` (`source_ip`, `user_agent`, `at`);
/// - `account.password_changed`, `account.password_reset`: `password_changed` (`change`:
///   `changed` or `reset`, `source_ip`, `user_agent`, `at`);
/// - `mfa.enabled`, `mfa.disabled`, `mfa.reset`: `mfa_changed` (`change`: `enabled`, `disabled`
///   or `reset`, `source_ip`, `user_agent`, `at`);
/// - `api_key.created`: `key_created` (`key_id` from the target, `key_name` from the detail's
///   `name` when the identity service records one, `scopes` comma-separated, `expires_at`,
///   `source_ip`, `user_agent`, `at`).
///
/// Anything else: none. The trigger's time is the note's.
pub fn from_note(user_id: &str, draft: &Draft) -> Option<Trigger> {
    if draft.outcome != Outcome::Success {
        return None;
    }
    let mut vars = Map::new();
    let event = match draft.action.as_str() {
        "auth.login_succeeded" => EventKind::NewLogin,
        "account.password_changed" => {
            put(&mut vars, "change", "changed");
            EventKind::PasswordChanged
        }
        "account.password_reset" => {
            put(&mut vars, "change", "reset");
            EventKind::PasswordChanged
        }
        "mfa.enabled" | "mfa.disabled" | "mfa.reset" => {
            put(&mut vars, "change", draft.action.trim_start_matches("mfa."));
            EventKind::MfaChanged
        }
        "api_key.created" => {
            if draft.target.kind == "api_key" {
                put(&mut vars, "key_id", &draft.target.id);
            }
            if let Some(name) = draft.detail.get("name").and_then(Value::as_str) {
                put(&mut vars, "key_name", name);
            }
            if let Some(scopes) = draft.detail.get("scopes").and_then(Value::as_array) {
                let scopes: Vec<&str> = scopes.iter().filter_map(Value::as_str).collect();
                put(&mut vars, "scopes", scopes.join(", "));
            }
            if let Some(expires) = draft.detail.get("expires_at").and_then(Value::as_str) {
                put(&mut vars, "expires_at", expires);
            }
            EventKind::KeyCreated
        }
        _ => return None,
    };
    if let Some(ip) = &draft.source_ip {
        put(&mut vars, "source_ip", ip);
    }
    if let Some(agent) = &draft.user_agent {
        put(&mut vars, "user_agent", agent);
    }
    put(&mut vars, "at", rfc3339(draft.at));
    Some(Trigger {
        user_id: user_id.to_string(),
        event,
        at: draft.at,
        vars,
    })
}

/// Sets a string variable, unless empty.
fn put(vars: &mut Map<String, Value>, key: &str, value: impl Into<String>) {
    let value = value.into();
    if !value.is_empty() {
        vars.insert(key.to_string(), Value::String(value));
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A unit enum's serde name (`throttled`).
fn to_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{Actor, ChangedBy, Target};
    use crate::domain::run::{ErrorKind, StepError};
    use crate::domain::schedule::Fire;
    use crate::domain::{Settings, ShareAccess};
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn run(status: RunStatus) -> Run {
        Run {
            id: "r1".into(),
            workflow_id: "w1".into(),
            owner_id: "ann".into(),
            status,
            model: None,
            priority: 3,
            max_attempts: 3,
            timeout_s: 900,
            approval: true,
            steps_total: 3,
            steps_succeeded: 0,
            steps_failed: 0,
            created_at: t("2025-01-15T10:00:00Z"),
            updated_at: t("2025-01-15T10:05:00Z"),
            started_at: Some(t("2025-01-15T10:00:01Z")),
            finished_at: None,
            version: 4,
            last_error: None,
        }
    }

    use crate::domain::run::tests::step;

    fn workflow(shares: &[(&str, ShareAccess)]) -> Workflow {
        Workflow {
            id: "w1".into(),
            owner_id: "ann".into(),
            name: "Quarterly <report>".into(),
            description: String::new(),
            status: WorkflowStatus::Active,
            settings: Settings::default(),
            tags: vec![],
            node_count: 0,
            created_at: t("2025-01-15T09:00:00Z"),
            updated_at: t("2025-01-15T09:30:00Z"),
            version: 2,
            shares: shares.iter().map(|(u, a)| (u.to_string(), *a)).collect(),
        }
    }

    fn schedule(fire: Option<Fire>) -> Box<Schedule> {
        Box::new(Schedule {
            id: "s1".into(),
            workflow_id: "w1".into(),
            owner_id: "ann".into(),
            expression: "cron(0 9 * * ? *)".into(),
            timezone: "Europe/Paris".into(),
            run: json!({"plan": {"mode": "pending"}}),
            enabled: true,
            created_at: t("2025-01-01T00:00:00Z"),
            updated_at: t("2025-01-15T08:00:00Z"),
            version: 3,
            last_fire: fire,
        })
    }

    fn run_change(old: Option<(Run, Vec<Step>)>, new: Option<(Run, Vec<Step>)>) -> Change {
        Change::Run { old, new }
    }

    #[test]
    fn a_finished_run_tells_its_owner_once() {
        let running = run(RunStatus::Running);
        let mut failed = run(RunStatus::Failed);
        failed.steps_failed = 1;
        failed.steps_succeeded = 2;
        failed.finished_at = Some(t("2025-01-15T10:06:00Z"));
        let mut bad = step("s2", 1, Some("s1"), StepStatus::Failed);
        bad.last_error = Some(StepError::new(
            ErrorKind::Throttled,
            "rate limited by the model",
        ));
        let steps = vec![step("s1", 0, None, StepStatus::Succeeded), bad];

        let change = run_change(
            Some((running.clone(), steps.clone())),
            Some((failed.clone(), steps.clone())),
        );
        let triggers = from_change(&change);
        assert_eq!(triggers.len(), 1);
        let tr = &triggers[0];
        assert_eq!(
            (tr.user_id.as_str(), tr.event),
            ("ann", EventKind::RunFailed)
        );
        assert_eq!(tr.at, t("2025-01-15T10:06:00Z"));
        assert_eq!(
            Value::Object(tr.vars.clone()),
            json!({
                "workflow_id": "w1", "run_id": "r1", "status": "failed", "steps_total": 3,
                "steps_succeeded": 2, "steps_failed": 1,
                "error": "rate limited by the model", "error_kind": "throttled"
            })
        );
        // The same record again gives the same trigger; an unchanged status gives none.
        assert_eq!(from_change(&change), triggers);
        assert!(
            from_change(&run_change(
                Some((failed.clone(), steps.clone())),
                Some((failed, steps.clone()))
            ))
            .is_empty()
        );

        let mut ok = run(RunStatus::Succeeded);
        ok.steps_succeeded = 3;
        let tr = from_change(&run_change(
            Some((running.clone(), vec![])),
            Some((ok, vec![])),
        ));
        assert_eq!(tr[0].event, EventKind::RunSucceeded);
        assert_eq!(tr[0].at, t("2025-01-15T10:05:00Z"));
        assert!(!tr[0].vars.contains_key("error"));
        // Cancelled: the owner did it, nothing to tell.
        let cancelled = run(RunStatus::Cancelled);
        assert!(
            from_change(&run_change(
                Some((running, vec![])),
                Some((cancelled, vec![]))
            ))
            .is_empty()
        );
    }

    #[test]
    fn a_step_is_announced_when_it_is_the_reviewers_turn() {
        use StepStatus::*;
        let r = run(RunStatus::Running);
        // A new run with approvals: every step waits, only the first can be approved.
        let created = vec![
            step("s1", 0, None, WaitingApproval),
            step("s2", 1, Some("s1"), WaitingApproval),
            step("s3", 2, Some("s2"), WaitingApproval),
        ];
        let tr = from_change(&run_change(None, Some((r.clone(), created.clone()))));
        assert_eq!(tr.len(), 1);
        assert_eq!(tr[0].event, EventKind::StepWaitingApproval);
        assert_eq!(tr[0].user_id, "ann");
        assert_eq!(
            Value::Object(tr[0].vars.clone()),
            json!({"workflow_id": "w1", "run_id": "r1", "step_id": "s1", "node_id": "n-s1",
                   "step_number": 1, "steps_total": 3})
        );
        // Approved and running: nothing new.
        let mut approved = created.clone();
        approved[0].status = Running;
        assert!(
            from_change(&run_change(
                Some((r.clone(), created)),
                Some((r.clone(), approved.clone()))
            ))
            .is_empty()
        );
        // The first done: the second's turn.
        let mut done = approved.clone();
        done[0].status = Succeeded;
        let tr = from_change(&run_change(
            Some((r.clone(), approved)),
            Some((r.clone(), done.clone())),
        ));
        assert_eq!(tr.len(), 1);
        assert_eq!(tr[0].vars["step_id"], "s2");
        // Another write while it still waits: no repeat.
        assert!(
            from_change(&run_change(
                Some((r.clone(), done.clone())),
                Some((r, done))
            ))
            .is_empty()
        );
    }

    #[test]
    fn a_share_tells_the_user_it_was_shared_with() {
        let old = workflow(&[("bob", ShareAccess::Viewer)]);
        let new = workflow(&[("bob", ShareAccess::Viewer), ("cy", ShareAccess::Editor)]);
        let tr = from_change(&Change::Workflow {
            old: Some(old.clone()),
            new: Some(new.clone()),
        });
        assert_eq!(tr.len(), 1);
        assert_eq!(
            (tr[0].user_id.as_str(), tr[0].event),
            ("cy", EventKind::WorkflowShared)
        );
        assert_eq!(tr[0].at, t("2025-01-15T09:30:00Z"));
        assert_eq!(
            Value::Object(tr[0].vars.clone()),
            json!({"workflow_id": "w1", "workflow_name": "Quarterly <report>", "access": "editor", "owner_id": "ann"})
        );
        // Access changed.
        let upgraded = workflow(&[("bob", ShareAccess::Editor)]);
        let tr = from_change(&Change::Workflow {
            old: Some(old.clone()),
            new: Some(upgraded),
        });
        assert_eq!(
            (tr[0].user_id.as_str(), tr[0].vars["access"].as_str()),
            ("bob", Some("editor"))
        );
        // Revoked, unchanged or deleted: nothing.
        assert!(
            from_change(&Change::Workflow {
                old: Some(old.clone()),
                new: Some(workflow(&[]))
            })
            .is_empty()
        );
        assert!(
            from_change(&Change::Workflow {
                old: Some(old.clone()),
                new: Some(old.clone())
            })
            .is_empty()
        );
        let mut deleted = new;
        deleted.status = WorkflowStatus::Deleted;
        assert!(
            from_change(&Change::Workflow {
                old: Some(old),
                new: Some(deleted)
            })
            .is_empty()
        );
    }

    #[test]
    fn a_skipped_fire_tells_the_schedules_owner() {
        let fire = Fire {
            scheduled_time: t("2025-01-15T08:00:00Z"),
            run_id: None,
            skipped: Some("the workflow is paused".into()),
        };
        let change = Change::Schedule {
            old: Some(schedule(None)),
            new: Some(schedule(Some(fire.clone()))),
        };
        let tr = from_change(&change);
        assert_eq!(tr.len(), 1);
        assert_eq!(
            (tr[0].user_id.as_str(), tr[0].event),
            ("ann", EventKind::ScheduleSkipped)
        );
        assert_eq!(tr[0].at, fire.scheduled_time);
        assert_eq!(tr[0].vars["reason"], "the workflow is paused");
        assert_eq!(tr[0].vars["schedule_id"], "s1");
        assert_eq!(tr[0].vars["schedule_name"], "cron(0 9 * * ? *)");
        assert_eq!(tr[0].vars["workflow_id"], "w1");
        // The same fire again (another edit of the schedule): nothing.
        let again = Change::Schedule {
            old: Some(schedule(Some(fire.clone()))),
            new: Some(schedule(Some(fire))),
        };
        assert!(from_change(&again).is_empty());
        // A fire that started a run: nothing.
        let ran = Fire {
            scheduled_time: t("2025-01-16T08:00:00Z"),
            run_id: Some("r9".into()),
            skipped: None,
        };
        assert!(
            from_change(&Change::Schedule {
                old: Some(schedule(None)),
                new: Some(schedule(Some(ran)))
            })
            .is_empty()
        );
        assert!(
            from_change(&Change::Schedule {
                old: Some(schedule(None)),
                new: None
            })
            .is_empty()
        );
        assert!(
            from_change(&Change::Node {
                old: None,
                new: None
            })
            .is_empty()
        );
    }

    fn note(action: &str, target: Target, detail: Value) -> Draft {
        let by = ChangedBy {
            actor: Actor::user("ann"),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("Firefox/128".into()),
            request_id: Some("req".into()),
        };
        Draft::new(
            "01J".into(),
            t("2025-01-15T12:00:00Z"),
            by,
            action,
            target,
            Outcome::Success,
            detail,
        )
    }

    #[test]
    fn security_notes_raise_security_notifications() {
        let tr = from_note(
            "ann",
            &note(
                "auth.login_succeeded",
                Target::new("session", "se1"),
                json!({"mfa": true}),
            ),
        )
        .unwrap();
        assert_eq!(
            (tr.user_id.as_str(), tr.event),
            ("ann", EventKind::NewLogin)
        );
        assert_eq!(tr.at, t("2025-01-15T12:00:00Z"));
        assert_eq!(
            Value::Object(tr.vars),
            json!({"source_ip": "203.0.113.7", "user_agent": "Firefox/128", "at": "2025-01-15T12:00:00Z"})
        );
        let account = Target::new("account", "ann");
        for (action, event, change) in [
            (
                "account.password_changed",
                EventKind::PasswordChanged,
                "changed",
            ),
            (
                "account.password_reset",
                EventKind::PasswordChanged,
                "reset",
            ),
            ("mfa.enabled", EventKind::MfaChanged, "enabled"),
            ("mfa.disabled", EventKind::MfaChanged, "disabled"),
            ("mfa.reset", EventKind::MfaChanged, "reset"),
        ] {
            let tr = from_note("ann", &note(action, account.clone(), json!({}))).unwrap();
            assert_eq!(tr.event, event, "{action}");
            assert_eq!(tr.vars["change"], change, "{action}");
        }
        let tr = from_note(
            "ann",
            &note("api_key.created", Target::new("api_key", "k1"), json!({"scopes": ["workflows:read", "runs:write"], "expires_at": null, "name": "CI"})),
        )
        .unwrap();
        assert_eq!(tr.event, EventKind::KeyCreated);
        assert_eq!(tr.vars["key_id"], "k1");
        assert_eq!(tr.vars["key_name"], "CI");
        assert_eq!(tr.vars["scopes"], "workflows:read, runs:write");
        assert!(!tr.vars.contains_key("expires_at"));
        // Other actions, and failures, raise nothing.
        assert_eq!(
            from_note("ann", &note("workflow.created", account.clone(), json!({}))),
            None
        );
        assert_eq!(
            from_note(
                "ann",
                &note("auth.login_failed", account.clone(), json!({}))
            ),
            None
        );
        let mut failed = note("mfa.enabled", account, json!({}));
        failed.outcome = Outcome::Failure;
        assert_eq!(from_note("ann", &failed), None);
    }
}
