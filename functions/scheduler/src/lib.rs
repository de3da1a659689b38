//! `scheduler`: what EventBridge Scheduler fires. Each event names its job:
//!
//! - `{"kind": "user_schedule", "workflow_id", "schedule_id", "scheduled_time"}`: a user's
//!   schedule is due; its run starts once per scheduled time, as the schedule's owner, or the
//!   schedule records why not ([`shared::app::schedules::fire`]);
//! - `{"kind": "sweep"}` (the template's `ScheduleV2` every 5 minutes): step messages that were
//!   lost (an attempt or retry long past its lease, a ready step of a quiet run) are sent again
//!   ([`shared::app::runs::sweep`]), also retries that wait longer than SQS's 900 s delay;
//! - `{"kind": "seal_audit"}` (the template's `ScheduleV2` every hour): each audit chain with
//!   events appended since its last seal gets a KMS MAC of its head
//!   ([`shared::app::audit::seal_chains`]);
//! - `{"kind": "compliance_report", "date"?}` (the template's `ScheduleV2` at 00:15 UTC): the
//!   day's compliance report (yesterday's by default), sealed with the audit key
//!   ([`shared::app::audit::make_report`]);
//! - `{"kind": "queue_depths"}` (the template's `ScheduleV2` every 5 minutes): the messages in
//!   each step queue's dead-letter queue, as the EMF metric `DeadLetterMessages` by `Queue`
//!   (the dashboard's and the DLQ alarms' figure, also where CloudWatch's own SQS metrics lag).
//!
//! Only a store or queue that cannot be reached fails the invocation (Scheduler then retries
//! it); everything else is answered with what was done.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::app::schedules::{self, FireEvent, Fired};
use shared::ports::{
    Accounts, AuditLog, AuditReports, DeadLetters, Idempotency, Runs, Schedules, Sealer, StepQueue,
    TaskQueue, Workflows,
};

/// What the handler needs from the world, built once per cold start.
pub struct Deps<S, A, Q, D, K> {
    pub store: S,
    pub accounts: A,
    pub queue: Q,
    pub dead_letters: D,
    /// The KMS key that seals the audit chains' heads.
    pub sealer: K,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Job {
    UserSchedule(FireEvent),
    Sweep {},
    QueueDepths {},
    SealAudit {},
    /// The compliance report of `date` (default: yesterday, UTC).
    ComplianceReport {
        #[serde(default)]
        date: Option<chrono::NaiveDate>,
    },
}

/// Runs the job `event` names; `Err` (the invocation fails, Scheduler retries) only when a
/// store or queue is unreachable, or the event is not one of ours.
pub async fn handle<S, A, Q, D, K>(
    deps: &Deps<S, A, Q, D, K>,
    event: Value,
    now: DateTime<Utc>,
) -> Result<Value, String>
where
    S: Workflows + Runs + Idempotency + Schedules + AuditLog + AuditReports,
    A: Accounts,
    Q: TaskQueue,
    D: DeadLetters,
    K: Sealer,
{
    let job: Job = serde_json::from_value(event.clone())
        .map_err(|e| format!("not a job of this function ({e}): {event}"))?;
    match job {
        Job::UserSchedule(fire) => {
            let fired = schedules::fire(
                &deps.store,
                &deps.store,
                &deps.accounts,
                &deps.queue,
                &fire,
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
            let answer = match &fired {
                Fired::Started { run_id, replayed } => {
                    json!({"started": run_id, "replayed": replayed})
                }
                Fired::Skipped(why) => json!({"skipped": why}),
                Fired::Gone => json!({"skipped": "the schedule no longer exists"}),
            };
            tracing::info!(schedule = %fire.schedule_id, scheduled_time = %fire.scheduled_time, outcome = %answer, "schedule fired");
            Ok(answer)
        }
        Job::Sweep {} => {
            let swept = shared::app::runs::sweep::sweep(&deps.store, &deps.queue, now)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(runs = swept.runs, resent = swept.resent, "sweep");
            Ok(json!({"runs": swept.runs, "resent": swept.resent}))
        }
        Job::SealAudit {} => {
            let sealed = shared::app::audit::seal_chains(&deps.store, &deps.sealer, now)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(sealed, "audit chains sealed");
            Ok(json!({ "sealed": sealed }))
        }
        Job::ComplianceReport { date } => {
            let date = date.unwrap_or_else(|| (now - chrono::Duration::days(1)).date_naive());
            let report = shared::app::audit::make_report(&deps.store, &deps.sealer, date, now)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(%date, events = report.figures.events, "compliance report made");
            Ok(json!({ "date": date, "events": report.figures.events }))
        }
        Job::QueueDepths {} => {
            let mut depths = serde_json::Map::new();
            for q in StepQueue::ALL {
                let n = deps
                    .dead_letters
                    .approximate_count(q)
                    .await
                    .map_err(|e| e.to_string())?;
                shared::emf::Record::new()
                    .dimension(shared::emf::dim::QUEUE, q.as_str())
                    .dimension_set(&[shared::emf::dim::QUEUE])
                    .count(shared::emf::metric::DEAD_LETTER_MESSAGES, n)
                    .emit();
                depths.insert(q.as_str().to_string(), json!(n));
            }
            Ok(json!({"dead_letter_messages": depths}))
        }
    }
}
