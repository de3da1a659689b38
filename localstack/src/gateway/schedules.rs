//! The schedule event source: what EventBridge (rules) and EventBridge Scheduler do, which the
//! emulator stores but never fires.
//!
//! Two kinds of schedules fire:
//!
//! - the template's function events of `Type: Schedule` (an EventBridge rule) and `Type:
//!   ScheduleV2` (a Scheduler schedule), read when the gateway starts;
//! - the Scheduler schedules created at run time (by the functions, or by hand), read from the
//!   emulator with ListSchedules and GetSchedule on every step of the clock, so that new,
//!   changed and deleted schedules are picked up. Each delivers its `Target.Input` to its
//!   `Target.Arn`: a function of the template (invoked through its [`FunctionPool`]) or a queue
//!   of the template (SendMessage, with `SqsParameters.MessageGroupId` for a FIFO queue).
//!   Other targets (including functions and queues of another gateway sharing the emulator,
//!   such as a parallel test's) are left alone. `State: DISABLED` does not fire, `at()` fires
//!   once, and `ActionAfterCompletion: DELETE` deletes a schedule after its last run.
//!
//! Payloads: a rule sends its `Input` if it has one, else EventBridge's "Scheduled Event"
//! envelope (`version`, `id`, `detail-type`, `source` `aws.events`, `account`, `time` (the
//! scheduled time), `region`, `resources` [the rule's ARN], `detail` `{}`). A Scheduler schedule
//! sends its `Input`; without one AWS "delivers a default notification" (API reference,
//! `Target.Input`), which for a templated Lambda target is an empty JSON object, so locally
//! `{}` (the console itself fills in `{}` for a Lambda target).
//!
//! Time comes from a [`ScheduleClock`]. With the real clock (`make dev`) a ticker fires, every
//! [`DEFAULT_TICK`], everything that fell due since the last tick; the clock starts when the
//! gateway does, so nothing due while it was down fires late. With a virtual clock (tests),
//! time moves only through [`Schedules::advance_to`], which fires, in time order, everything
//! due up to the given instant, awaits each delivery, and returns them: no test sleeps.
//! Deliveries are one at a time, in order, so a slow function delays the ones after it.
//!
//! `rate()` schedules fire one period after their anchor and every period after that: a
//! template event is anchored at the clock's start (the gateway's start, or the virtual
//! clock's), a run-time schedule at its `StartDate`, else its `CreationDate` (see
//! `schedule-expr`). Each delivery is logged under the target function's name (or
//! [`LOG_SOURCE`] for a queue).

use super::logs::LogSink;
use super::{FunctionPool, config_error};
use crate::Error;
use crate::resolve::Resolver;
use crate::template::{ScheduleEventKind, Template};
use aws_sdk_scheduler::types::{ActionAfterCompletion, ScheduleState};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use schedule_expr::Schedule;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the real clock fires what is due.
pub const DEFAULT_TICK: Duration = Duration::from_secs(2);
/// At most this many fire times of one schedule in one step of the clock (a virtual clock
/// moved far ahead of a `rate(1 minute)`); the rest are skipped and logged.
pub const MAX_FIRES_PER_STEP: usize = 1000;
/// Deliveries kept for [`Schedules::deliveries`] (the oldest are dropped).
pub const KEPT_DELIVERIES: usize = 10_000;
/// The log source of what concerns no function (queue targets, listing errors).
pub const LOG_SOURCE: &str = "schedules";

/// Where the schedules' time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleClock {
    /// Wall-clock time: every `tick`, what fell due since the last tick fires.
    Real { tick: Duration },
    /// Time moves only through [`Schedules::advance_to`]; it starts at `start`.
    Virtual { start: DateTime<Utc> },
}

/// How the gateway fires schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleOptions {
    pub clock: ScheduleClock,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            clock: ScheduleClock::Real { tick: DEFAULT_TICK },
        }
    }
}

impl ScheduleOptions {
    /// A virtual clock starting at `start` (tests).
    pub fn virtual_clock(start: DateTime<Utc>) -> ScheduleOptions {
        ScheduleOptions {
            clock: ScheduleClock::Virtual { start },
        }
    }
}

/// What kind of schedule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A `Type: Schedule` event of the template (an EventBridge rule).
    Rule,
    /// A `Type: ScheduleV2` event of the template.
    TemplateSchedule,
    /// A Scheduler schedule read from the emulator.
    Scheduler,
}

/// Where a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A function, by its local (physical) name.
    Function(String),
    /// A queue, by its ARN.
    Queue(String),
}

/// One firing of one schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The scheduled time.
    pub at: DateTime<Utc>,
    /// `Function.Event` for a template event, `group/name` for a Scheduler schedule.
    pub schedule: String,
    pub origin: Origin,
    pub target: Target,
    /// What was delivered: the invocation's payload, or the message's body.
    pub payload: String,
    /// The function's answer (or the message id), or why the delivery failed.
    pub outcome: Result<String, String>,
}

impl Delivery {
    /// The payload as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.payload).ok()
    }
}

/// A schedule event of the template, resolved.
struct TemplateSchedule {
    id: String,
    origin: Origin,
    pool: Arc<FunctionPool>,
    schedule: Schedule,
    input: Option<String>,
    rule_arn: String,
}

/// A Scheduler schedule as read from the emulator.
struct Found {
    id: String,
    group: String,
    name: String,
    schedule: Schedule,
    target: ResolvedTarget,
    input: Option<String>,
    message_group_id: Option<String>,
    delete_after_completion: bool,
}

#[derive(Clone)]
enum ResolvedTarget {
    Function(Arc<FunctionPool>),
    Queue { arn: String, name: String },
}

enum Job {
    Template(usize),
    Found(Arc<Found>),
}

/// The schedule event source of one gateway.
pub struct Schedules {
    template: Vec<TemplateSchedule>,
    /// The gateway's functions, by local name.
    functions: HashMap<String, Arc<FunctionPool>>,
    /// The template's queues, by ARN: their local names.
    queues: HashMap<String, String>,
    scheduler: aws_sdk_scheduler::Client,
    sqs: aws_sdk_sqs::Client,
    region: String,
    account: String,
    logs: LogSink,
    clock: ScheduleClock,
    /// When the clock started (the anchor of the template's `rate()` events).
    started: DateTime<Utc>,
    /// Everything due up to this instant has fired; held while a step runs.
    fired_until: tokio::sync::Mutex<DateTime<Utc>>,
    now: Mutex<DateTime<Utc>>,
    deliveries: Mutex<Vec<Delivery>>,
    /// Problems already logged (a bad run-time schedule is logged once, not every tick).
    complaints: Mutex<HashSet<String>>,
}

impl Schedules {
    /// Resolves the template's schedule events against `functions` (an event naming a function
    /// the gateway does not run is an error). Nothing fires until [`Schedules::advance_to`]
    /// or, with the real clock, [`Schedules::spawn_ticker`].
    pub fn new(
        template: &Template,
        resolver: &Resolver,
        functions: &HashMap<String, Arc<FunctionPool>>,
        sdk: &aws_config::SdkConfig,
        logs: &LogSink,
        options: &ScheduleOptions,
    ) -> Result<Schedules, Error> {
        let started = match options.clock {
            ScheduleClock::Real { .. } => Utc::now(),
            ScheduleClock::Virtual { start } => start,
        };
        let mut resolved = Vec::new();
        for spec in template.schedule_events()? {
            if !spec.enabled {
                continue;
            }
            let kind = match spec.kind {
                ScheduleEventKind::Rule => "Schedule event",
                ScheduleEventKind::Scheduler => "ScheduleV2 event",
            };
            let pool = super::function_pool(functions, kind, &spec.event, &spec.function)?;
            let context = format!("{}: event {}", spec.function, spec.event);
            let schedule = spec
                .schedule()
                .map_err(|e| config_error(format!("{context}: {e}")))?
                .anchored_at(started);
            let input = spec
                .input
                .as_ref()
                .map(|value| resolver.string(&format!("{context}: Input"), value))
                .transpose()?;
            let rule_name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", pool.name, spec.event));
            resolved.push(TemplateSchedule {
                id: format!("{}.{}", spec.function, spec.event),
                origin: match spec.kind {
                    ScheduleEventKind::Rule => Origin::Rule,
                    ScheduleEventKind::Scheduler => Origin::TemplateSchedule,
                },
                pool: pool.clone(),
                schedule,
                input,
                rule_arn: format!(
                    "arn:aws:events:{}:{}:rule/{rule_name}",
                    resolver.region, resolver.account
                ),
            });
        }
        let queues = template
            .queues()
            .iter()
            .filter_map(|q| {
                Some((
                    resolver.queue_arn(&q.logical_id)?,
                    resolver.name(&q.logical_id)?.to_owned(),
                ))
            })
            .collect();
        Ok(Schedules {
            template: resolved,
            functions: functions
                .values()
                .map(|pool| (pool.name.clone(), pool.clone()))
                .collect(),
            queues,
            scheduler: aws_sdk_scheduler::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            region: resolver.region.clone(),
            account: resolver.account.clone(),
            logs: logs.clone(),
            clock: options.clock,
            started,
            fired_until: tokio::sync::Mutex::new(started),
            now: Mutex::new(started),
            deliveries: Mutex::new(Vec::new()),
            complaints: Mutex::new(HashSet::new()),
        })
    }

    /// With the real clock, the task that fires what is due every tick (until aborted); with
    /// a virtual clock, none.
    pub fn spawn_ticker(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let ScheduleClock::Real { tick } = self.clock else {
            return None;
        };
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                this.advance_to(Utc::now()).await;
            }
        }))
    }

    pub fn clock(&self) -> ScheduleClock {
        self.clock
    }

    /// Everything due up to this instant has fired.
    pub fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every delivery so far (the last [`KEPT_DELIVERIES`]), in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Moves the clock to `t`: reads the Scheduler schedules from the emulator, then fires, in
    /// time order, every fire time of every enabled schedule after the previous step and up
    /// to `t` (inclusive), waiting for each delivery; returns them. A `t` not after the
    /// current time does nothing. With the real clock the ticker calls this; tests call it on
    /// a virtual clock.
    pub async fn advance_to(&self, t: DateTime<Utc>) -> Vec<Delivery> {
        let mut fired_until = self.fired_until.lock().await;
        let from = *fired_until;
        if t <= from {
            return Vec::new();
        }
        let mut due: Vec<(DateTime<Utc>, String, Job)> = Vec::new();
        for (i, event) in self.template.iter().enumerate() {
            let times = self.fire_times(&event.id, &event.schedule, from, t);
            due.extend(
                times
                    .into_iter()
                    .map(|at| (at, event.id.clone(), Job::Template(i))),
            );
        }
        for found in self.read_scheduler().await {
            let found = Arc::new(found);
            let times = self.fire_times(&found.id, &found.schedule, from, t);
            due.extend(
                times
                    .into_iter()
                    .map(|at| (at, found.id.clone(), Job::Found(found.clone()))),
            );
        }
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let mut delivered = Vec::with_capacity(due.len());
        for (at, _, job) in due {
            let delivery = match job {
                Job::Template(i) => self.fire_template(&self.template[i], at).await,
                Job::Found(found) => self.fire_found(&found, at).await,
            };
            delivered.push(delivery);
        }
        *fired_until = t;
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
        let mut kept = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        kept.extend(delivered.iter().cloned());
        let excess = kept.len().saturating_sub(KEPT_DELIVERIES);
        kept.drain(..excess);
        delivered
    }

    /// The fire times of `schedule` in `(from, to]`, at most [`MAX_FIRES_PER_STEP`].
    fn fire_times(
        &self,
        id: &str,
        schedule: &Schedule,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let times = schedule.between(from, to, MAX_FIRES_PER_STEP);
        if times.len() == MAX_FIRES_PER_STEP
            && let Some(last) = times.last()
            && schedule.next_after(*last).is_some_and(|next| next <= to)
        {
            self.logs.line(
                LOG_SOURCE,
                &format!(
                    "schedule {id}: more than {MAX_FIRES_PER_STEP} runs due up to {to}; the runs after {last} are skipped"
                ),
            );
        }
        times
    }

    async fn fire_template(&self, event: &TemplateSchedule, at: DateTime<Utc>) -> Delivery {
        let payload = match (&event.input, event.origin) {
            (Some(input), _) => input.clone(),
            (None, Origin::Rule) => {
                scheduled_event(at, &self.account, &self.region, &event.rule_arn).to_string()
            }
            (None, _) => "{}".to_owned(),
        };
        let payload = match event.origin {
            Origin::Rule => payload,
            _ => context_attributes(&payload, &event.rule_arn, at),
        };
        let outcome = invoke(&event.pool, &payload).await;
        self.log_delivery(&event.pool.name, &event.id, at, &outcome);
        Delivery {
            at,
            schedule: event.id.clone(),
            origin: event.origin,
            target: Target::Function(event.pool.name.clone()),
            payload,
            outcome,
        }
    }

    async fn fire_found(&self, found: &Found, at: DateTime<Utc>) -> Delivery {
        let arn = format!(
            "arn:aws:scheduler:{}:{}:schedule/{}/{}",
            self.region, self.account, found.group, found.name
        );
        let payload = context_attributes(
            &found.input.clone().unwrap_or_else(|| "{}".to_owned()),
            &arn,
            at,
        );
        let (target, source, outcome) = match &found.target {
            ResolvedTarget::Function(pool) => (
                Target::Function(pool.name.clone()),
                pool.name.clone(),
                invoke(pool, &payload).await,
            ),
            ResolvedTarget::Queue { arn, name } => (
                Target::Queue(arn.clone()),
                LOG_SOURCE.to_owned(),
                self.send(name, &payload, found.message_group_id.as_deref())
                    .await,
            ),
        };
        self.log_delivery(&source, &found.id, at, &outcome);
        if found.delete_after_completion && found.schedule.next_after(at).is_none() {
            let deleted = self
                .scheduler
                .delete_schedule()
                .group_name(&found.group)
                .name(&found.name)
                .send()
                .await;
            let line = match deleted {
                Ok(_) => format!(
                    "schedule {}: completed, deleted (ActionAfterCompletion DELETE)",
                    found.id
                ),
                Err(e) => format!(
                    "schedule {}: completed, but DeleteSchedule failed: {}",
                    found.id,
                    crate::provision::sdk_message(&e)
                ),
            };
            self.logs.line(&source, &line);
        }
        Delivery {
            at,
            schedule: found.id.clone(),
            origin: Origin::Scheduler,
            target,
            payload,
            outcome,
        }
    }

    fn log_delivery(
        &self,
        source: &str,
        id: &str,
        at: DateTime<Utc>,
        outcome: &Result<String, String>,
    ) {
        let how = match outcome {
            Ok(_) => "delivered".to_owned(),
            Err(e) => format!("failed: {e}"),
        };
        self.logs.line(
            source,
            &format!("schedule {id}: run of {} {how}", rfc3339(at)),
        );
    }

    /// SendMessage of `body` to the queue named `name` (a FIFO queue needs a message group).
    async fn send(
        &self,
        name: &str,
        body: &str,
        message_group_id: Option<&str>,
    ) -> Result<String, String> {
        let url = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(&self.account)
            .send()
            .await
            .map_err(|e| format!("GetQueueUrl {name}: {}", crate::provision::sdk_message(&e)))?
            .queue_url
            .ok_or_else(|| format!("GetQueueUrl {name}: no URL"))?;
        let mut request = self.sqs.send_message().queue_url(url).message_body(body);
        if name.ends_with(".fifo") {
            request = request
                .message_group_id(message_group_id.unwrap_or("default"))
                .message_deduplication_id(ulid::Ulid::new().to_string());
        }
        let sent = request
            .send()
            .await
            .map_err(|e| format!("SendMessage {name}: {}", crate::provision::sdk_message(&e)))?;
        Ok(sent.message_id.unwrap_or_default())
    }

    /// Logs `problem` the first time it is seen under `key`.
    fn complain(&self, key: String, problem: &str) {
        let new = self
            .complaints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        if new {
            self.logs.line(LOG_SOURCE, problem);
        }
    }

    /// The enabled Scheduler schedules of the emulator that target this gateway's functions or
    /// its template's queues. Listing errors are logged (once per message) and give none.
    async fn read_scheduler(&self) -> Vec<Found> {
        let mut summaries = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .scheduler
                .list_schedules()
                .set_next_token(token.clone())
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let message = crate::provision::sdk_message(&e);
                    self.complain(
                        format!("list:{message}"),
                        &format!("ListSchedules failed: {message}"),
                    );
                    return Vec::new();
                }
            };
            // Only enabled schedules aimed at this gateway are read in full.
            summaries.extend(page.schedules().iter().filter_map(|s| {
                let disabled = s.state() == Some(&ScheduleState::Disabled);
                let ours = s
                    .target()
                    .is_some_and(|t| self.resolve_target(t.arn()).is_some());
                Some((s.group_name()?.to_owned(), s.name()?.to_owned()))
                    .filter(|_| ours && !disabled)
            }));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut found = Vec::new();
        for (group, name) in summaries {
            let id = format!("{group}/{name}");
            let got = self
                .scheduler
                .get_schedule()
                .group_name(&group)
                .name(&name)
                .send()
                .await;
            // Deleted since it was listed: nothing to fire.
            let Ok(got) = got else { continue };
            if got.state() == Some(&ScheduleState::Disabled) {
                continue;
            }
            let Some(target) = got.target() else { continue };
            let resolved = match self.resolve_target(target.arn()) {
                Some(resolved) => resolved,
                None => continue,
            };
            let expression = got.schedule_expression().unwrap_or_default();
            let schedule = Schedule::new(
                expression,
                got.schedule_expression_timezone().unwrap_or_default(),
            )
            .and_then(|s| {
                s.with_window(
                    got.start_date().and_then(chrono_time),
                    got.end_date().and_then(chrono_time),
                )
            });
            let schedule = match schedule {
                Ok(s) => s.anchored_at(
                    got.creation_date()
                        .and_then(chrono_time)
                        .unwrap_or(self.started),
                ),
                Err(e) => {
                    self.complain(
                        format!("bad:{id}:{expression}"),
                        &format!("schedule {id}: {e}; it does not fire"),
                    );
                    continue;
                }
            };
            found.push(Found {
                id,
                group,
                name,
                schedule,
                target: resolved,
                input: target.input().map(str::to_owned),
                message_group_id: target
                    .sqs_parameters()
                    .and_then(|p| p.message_group_id())
                    .map(str::to_owned),
                delete_after_completion: got.action_after_completion()
                    == Some(&ActionAfterCompletion::Delete),
            });
        }
        found
    }

    /// A function this gateway runs (by the function's ARN, qualifier ignored), or a queue of
    /// its template (by ARN).
    fn resolve_target(&self, arn: &str) -> Option<ResolvedTarget> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "lambda", _, _, "function", name, ..] => self
                .functions
                .get(*name)
                .map(|pool| ResolvedTarget::Function(pool.clone())),
            ["arn", _, "sqs", ..] => self.queues.get(arn).map(|name| ResolvedTarget::Queue {
                arn: arn.to_owned(),
                name: name.clone(),
            }),
            _ => None,
        }
    }
}

async fn invoke(pool: &FunctionPool, payload: &str) -> Result<String, String> {
    pool.invoke(Bytes::from(payload.to_owned()))
        .await
        .map(|answer| String::from_utf8_lossy(&answer).into_owned())
        .map_err(|e| e.to_string())
}

fn chrono_time(t: &aws_sdk_scheduler::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// EventBridge Scheduler's context attributes in a target's `Input`, as it substitutes them:
/// `<aws.scheduler.schedule-arn>`, `<aws.scheduler.scheduled-time>` (RFC 3339, UTC, seconds),
/// `<aws.scheduler.execution-id>` and `<aws.scheduler.attempt-number>` (1: the gateway
/// delivers once).
pub fn context_attributes(input: &str, schedule_arn: &str, at: DateTime<Utc>) -> String {
    input
        .replace("<aws.scheduler.schedule-arn>", schedule_arn)
        .replace("<aws.scheduler.scheduled-time>", &rfc3339(at))
        .replace("<aws.scheduler.execution-id>", &uuid_like())
        .replace("<aws.scheduler.attempt-number>", "1")
}

/// EventBridge's event for a scheduled rule without `Input`.
pub fn scheduled_event(
    at: DateTime<Utc>,
    account: &str,
    region: &str,
    rule_arn: &str,
) -> serde_json::Value {
    json!({
        "version": "0",
        "id": uuid_like(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": rfc3339(at),
        "region": region,
        "resources": [rule_arn],
        "detail": {}
    })
}

/// A random id in a UUID's shape, as EventBridge's event ids are.
fn uuid_like() -> String {
    let n = ulid::Ulid::new().0;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduled_event_has_eventbridges_shape() {
        let at: DateTime<Utc> = "2030-01-01T00:05:00Z".parse().unwrap();
        let event = scheduled_event(
            at,
            "123456789012",
            "us-east-1",
            "arn:aws:events:us-east-1:123456789012:rule/r",
        );
        assert_eq!(event["version"], "0");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["account"], "123456789012");
        assert_eq!(event["time"], "2030-01-01T00:05:00Z");
        assert_eq!(event["region"], "us-east-1");
        assert_eq!(
            event["resources"],
            json!(["arn:aws:events:us-east-1:123456789012:rule/r"])
        );
        assert_eq!(event["detail"], json!({}));
        let id = event["id"].as_str().unwrap();
        assert_eq!(
            id.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }
}
