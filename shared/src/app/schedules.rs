//! User schedules: create, read, change and delete them (the table's view and the EventBridge
//! Scheduler schedule that fires each), and [`fire`], what the scheduler function does when
//! one fires: start the run once per scheduled time, or record why not.

use super::AppError;
use super::runs::{self, StartRun};
use super::workflows::{changeable, expected_version, visible};
use crate::app::IdempotencyKey;
use crate::domain::account::AccountStatus;
use crate::domain::canonical::canonical;
use crate::domain::error::Errors;
use crate::domain::schedule::{
    self as sch, CreateScheduleRequest, Fire, MAX_SCHEDULES_PER_WORKFLOW, Schedule, ScheduleView,
    UpdateScheduleRequest,
};
use crate::domain::{Principal, WorkflowStatus, ids};
use crate::ports::{
    Accounts, Idempotency, Runs, Schedules, StoreError, TaskQueue, Triggers, Workflows,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

fn view(schedule: Schedule, now: DateTime<Utc>) -> ScheduleView {
    ScheduleView {
        next_fire_times: schedule.upcoming(now),
        schedule,
    }
}

fn validated(expression: &str, timezone: &str, run: &serde_json::Value) -> Result<(), AppError> {
    let mut errors = Errors::default();
    sch::check(&mut errors, expression, timezone);
    sch::check_run(&mut errors, run);
    Ok(errors.into_result(())?)
}

/// Creates a schedule of a workflow the caller may change, and its trigger. The schedule's
/// runs are started as the caller.
pub async fn create(
    workflows: &(impl Workflows + ?Sized),
    store: &(impl Schedules + ?Sized),
    triggers: &(impl Triggers + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    body: CreateScheduleRequest,
    now: DateTime<Utc>,
) -> Result<ScheduleView, AppError> {
    changeable(workflows.get_workflow(workflow_id).await?, principal)?;
    let timezone = body.timezone.unwrap_or_else(|| "UTC".into());
    validated(&body.expression, &timezone, &body.run)?;
    let schedule = Schedule {
        id: ids::new_id(),
        workflow_id: workflow_id.to_string(),
        owner_id: principal.user_id.clone(),
        expression: body.expression,
        timezone,
        run: body.run,
        enabled: body.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
        version: 1,
        last_fire: None,
    };
    if !store
        .create_schedule(&schedule, MAX_SCHEDULES_PER_WORKFLOW)
        .await?
    {
        return Err(AppError::Conflict {
            slug: "schedule-limit",
            detail: "a workflow has at most 20 schedules",
        });
    }
    if let Err(e) = triggers.put_trigger(&schedule, true).await {
        // Without its trigger the schedule would never fire: take it back.
        store.delete_schedule(workflow_id, &schedule.id).await.ok();
        return Err(e.into());
    }
    Ok(view(schedule, now))
}

pub async fn list(
    workflows: &(impl Workflows + ?Sized),
    store: &(impl Schedules + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleView>, AppError> {
    visible(workflows.get_workflow(workflow_id).await?, principal)?;
    Ok(store
        .list_schedules(workflow_id)
        .await?
        .into_iter()
        .map(|s| view(s, now))
        .collect())
}

pub async fn get(
    workflows: &(impl Workflows + ?Sized),
    store: &(impl Schedules + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ScheduleView, AppError> {
    visible(workflows.get_workflow(workflow_id).await?, principal)?;
    let schedule = store
        .get_schedule(workflow_id, id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    Ok(view(schedule, now))
}

/// Changes a schedule at the version the caller read (`If-Match` or `expected_version`), and
/// its trigger; if the trigger cannot be changed, the schedule is put back as it was.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    workflows: &(impl Workflows + ?Sized),
    store: &(impl Schedules + ?Sized),
    triggers: &(impl Triggers + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    id: &str,
    body: UpdateScheduleRequest,
    if_match: Option<u64>,
    now: DateTime<Utc>,
) -> Result<ScheduleView, AppError> {
    changeable(workflows.get_workflow(workflow_id).await?, principal)?;
    let expected =
        expected_version(if_match, body.expected_version)?.ok_or(AppError::PreconditionRequired)?;
    let old = store
        .get_schedule(workflow_id, id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    if old.version != expected {
        return Err(AppError::VersionConflict {
            current_version: old.version,
        });
    }
    let mut new = old.clone();
    if let Some(e) = body.expression {
        new.expression = e;
    }
    if let Some(t) = body.timezone {
        new.timezone = t;
    }
    if let Some(r) = body.run {
        new.run = r;
    }
    if let Some(e) = body.enabled {
        new.enabled = e;
    }
    validated(&new.expression, &new.timezone, &new.run)?;
    new.version = old.version + 1;
    new.updated_at = now;
    store
        .update_schedule(&new, expected)
        .await
        .map_err(|e| conflict(e, old.version))?;
    if let Err(e) = triggers.put_trigger(&new, false).await {
        let mut back = old.clone();
        back.version = new.version + 1;
        store.update_schedule(&back, new.version).await.ok();
        return Err(e.into());
    }
    Ok(view(new, now))
}

fn conflict(e: StoreError, current_version: u64) -> AppError {
    match e {
        StoreError::Conflict => AppError::VersionConflict { current_version },
        e => e.into(),
    }
}

/// Deletes a schedule's trigger, then the schedule (404 when there is none).
pub async fn delete(
    workflows: &(impl Workflows + ?Sized),
    store: &(impl Schedules + ?Sized),
    triggers: &(impl Triggers + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    id: &str,
) -> Result<(), AppError> {
    changeable(workflows.get_workflow(workflow_id).await?, principal)?;
    store
        .get_schedule(workflow_id, id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    triggers.delete_trigger(id).await?;
    store.delete_schedule(workflow_id, id).await?;
    Ok(())
}

/// The event a trigger hands the scheduler function (its `Input`, with Scheduler's
/// `<aws.scheduler.scheduled-time>` filled in).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FireEvent {
    pub workflow_id: String,
    pub schedule_id: String,
    pub scheduled_time: DateTime<Utc>,
}

/// What a fire did.
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    /// A run was started (or, for a scheduled time fired before, the one started then).
    Started { run_id: String, replayed: bool },
    /// No run: why (recorded on the schedule).
    Skipped(String),
    /// The schedule is gone (deleted after its trigger fired): nothing to record.
    Gone,
}

/// Starts the schedule's run as its owner, once per scheduled time: the scheduled time is the
/// run's idempotency key, so a fire delivered twice starts one run. A workflow that is not
/// `active`, a disabled schedule, an owner no longer active, or a run the workflow refuses is
/// no run, and the reason is recorded on the schedule (`last_fire.skipped`). Only a store or
/// queue that cannot be reached is an error (the fire is then retried by Scheduler).
pub async fn fire(
    store: &(impl Workflows + Runs + Idempotency + ?Sized),
    schedules: &(impl Schedules + ?Sized),
    accounts: &(impl Accounts + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    event: &FireEvent,
    now: DateTime<Utc>,
) -> Result<Fired, AppError> {
    let Some(schedule) = schedules
        .get_schedule(&event.workflow_id, &event.schedule_id)
        .await?
    else {
        return Ok(Fired::Gone);
    };
    let outcome = start_for(store, accounts, queue, &schedule, event, now).await?;
    let record = match &outcome {
        Fired::Started { run_id, .. } => Fire {
            scheduled_time: event.scheduled_time,
            run_id: Some(run_id.clone()),
            skipped: None,
        },
        Fired::Skipped(why) => Fire {
            scheduled_time: event.scheduled_time,
            run_id: None,
            skipped: Some(why.clone()),
        },
        Fired::Gone => return Ok(outcome),
    };
    schedules
        .record_fire(&event.workflow_id, &event.schedule_id, &record)
        .await?;
    Ok(outcome)
}

async fn start_for(
    store: &(impl Workflows + Runs + Idempotency + ?Sized),
    accounts: &(impl Accounts + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    schedule: &Schedule,
    event: &FireEvent,
    now: DateTime<Utc>,
) -> Result<Fired, AppError> {
    if !schedule.enabled {
        return Ok(Fired::Skipped("the schedule is disabled".into()));
    }
    let workflow = store.get_workflow(&schedule.workflow_id).await?;
    match workflow.as_ref().map(|w| w.status) {
        Some(WorkflowStatus::Active) => {}
        Some(status) => {
            return Ok(Fired::Skipped(format!(
                "the workflow is {status}, not active"
            )));
        }
        None => return Ok(Fired::Skipped("the workflow no longer exists".into())),
    }
    let account = accounts.get_account(&schedule.owner_id).await?;
    let Some(account) = account.filter(|a| a.status == AccountStatus::Active) else {
        return Ok(Fired::Skipped(
            "the schedule's owner is no longer an active account".into(),
        ));
    };
    let principal = Principal::user(&schedule.owner_id, account.role);
    let body = match schedule.run_request() {
        Ok(b) => b,
        Err(e) => return Ok(Fired::Skipped(format!("the run body is invalid: {e}"))),
    };
    let key = format!(
        "schedule:{}:{}",
        schedule.id,
        event
            .scheduled_time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let hash = crate::crypto::sha256_hex(&canonical(&schedule.run));
    let started = runs::start(
        store,
        queue,
        StartRun {
            principal: &principal,
            workflow_id: &schedule.workflow_id,
            body,
            idempotency: Some(IdempotencyKey::new(&key, hash)?),
            now,
        },
    )
    .await;
    match started {
        Ok(super::Outcome::Created(detail)) => Ok(Fired::Started {
            run_id: detail.run.id,
            replayed: false,
        }),
        Ok(super::Outcome::Replayed { body, .. }) => {
            let run_id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            Ok(Fired::Started {
                run_id,
                replayed: true,
            })
        }
        Err(e @ (AppError::Unavailable(_) | AppError::Internal(_))) => Err(e),
        Err(e) => Ok(Fired::Skipped(format!(
            "the run was refused: {}",
            describe(&e)
        ))),
    }
}

/// A refusal in words for the schedule's record.
fn describe(e: &AppError) -> String {
    match e {
        AppError::Validation(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
