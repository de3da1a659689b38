//! The gateway's schedule event source against the emulator at AWS_ENDPOINT_URL (`make test`
//! starts it), on a virtual clock: `Schedules::advance_to(t)` fires everything due up to `t`
//! and returns the deliveries, so no test sleeps or depends on the time of day.
//!
//! The template (fixtures/schedules.yaml) gives the function `Clock` (hello-lambda, which
//! answers with the event it got) rule and Scheduler events; the tests also create Scheduler
//! schedules with the SDK, aimed at the function and at the template's queue.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target,
};
use chrono::{DateTime, TimeDelta, Utc};
use common::Local;
use localstack::gateway::schedules::{Delivery, Origin};
use localstack::gateway::{Gateway, ScheduleOptions, start_dev};
use localstack::template::Template;
use localstack::testing::{emulator_config, emulator_endpoint, sqs_client};
use serde_json::{Value, json};
use std::time::Duration;

const TEMPLATE: &str = include_str!("fixtures/schedules.yaml");
const DEADLINE: Duration = Duration::from_secs(30);
const ACCOUNT: &str = "123456789012";

/// The virtual clock's start: a Tuesday, in winter (Berlin is UTC+1, New York UTC-5).
fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn at(hours: i64, minutes: i64) -> DateTime<Utc> {
    t0() + TimeDelta::hours(hours) + TimeDelta::minutes(minutes)
}

struct Stack {
    gateway: Gateway,
    local: Local,
    region: String,
}

async fn stack() -> Stack {
    let endpoint = emulator_endpoint(std::env::var("AWS_ENDPOINT_URL").ok()).unwrap();
    let template = Template::from_yaml("schedules-test.yaml", TEMPLATE).unwrap();
    let (local, mut config) = common::setup(
        "schedules",
        template,
        &[("echo", env!("CARGO_BIN_EXE_hello-lambda").into())],
        DEADLINE,
    );
    config.endpoint_url = endpoint;
    config.schedules = ScheduleOptions::virtual_clock(t0());
    let region = config.region.clone();
    let (gateway, _) = start_dev(config).await.unwrap();
    Stack {
        gateway,
        local,
        region,
    }
}

impl Stack {
    fn function_name(&self) -> String {
        format!("Clock{}", self.local.suffix)
    }

    fn function_arn(&self) -> String {
        self.gateway.function("Clock").unwrap().arn().to_owned()
    }

    fn queue_arn(&self) -> String {
        format!(
            "arn:aws:sqs:{}:{ACCOUNT}:Inbox{}",
            self.region, self.local.suffix
        )
    }

    fn queue_url(&self) -> String {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
        format!(
            "{}/{ACCOUNT}/Inbox{}",
            endpoint.trim_end_matches('/'),
            self.local.suffix
        )
    }

    /// A schedule name of this test's own.
    fn name(&self, name: &str) -> String {
        format!("{name}{}", self.local.suffix)
    }
}

/// The deliveries of one schedule.
fn of<'a>(deliveries: &'a [Delivery], schedule: &str) -> Vec<&'a Delivery> {
    deliveries
        .iter()
        .filter(|d| d.schedule == schedule)
        .collect()
}

fn times(deliveries: &[&Delivery]) -> Vec<DateTime<Utc>> {
    deliveries.iter().map(|d| d.at).collect()
}

/// The function (hello-lambda) answered with what it was sent.
fn echoed(delivery: &Delivery) -> Value {
    let answer = delivery.outcome.as_ref().unwrap();
    let answer: Value = serde_json::from_str(answer).unwrap();
    assert_eq!(Some(&answer), delivery.json().as_ref(), "{delivery:?}");
    answer
}

#[tokio::test]
async fn template_schedules_fire_at_their_times() {
    let s = stack().await;
    let schedules = s.gateway.schedules();
    assert_eq!(schedules.now(), t0());

    // The rate is anchored at the clock's start: its first run is one period later.
    let first = schedules.advance_to(at(0, 59)).await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let run = &first[0];
    assert_eq!(run.schedule, "Clock.Every30");
    assert_eq!(run.origin, Origin::Rule);
    assert_eq!(run.at, at(0, 30));
    let event = echoed(run);
    assert_eq!(event["version"], "0");
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["account"], ACCOUNT);
    assert_eq!(event["time"], "2030-01-01T00:30:00Z");
    assert_eq!(event["region"], s.region.as_str());
    assert_eq!(
        event["resources"],
        json!([format!(
            "arn:aws:events:{}:{ACCOUNT}:rule/{}-Every30",
            s.region,
            s.function_name()
        )])
    );
    assert_eq!(event["detail"], json!({}));
    assert_eq!(event["id"].as_str().unwrap().len(), 36);
    assert_eq!(schedules.now(), at(0, 59));

    let day = schedules.advance_to(at(12, 0)).await;
    // In time order.
    assert!(day.windows(2).all(|w| w[0].at <= w[1].at));
    let every30 = of(&day, "Clock.Every30");
    assert_eq!(
        times(&every30),
        (2..=24).map(|k| at(0, 30 * k)).collect::<Vec<_>>()
    );
    // The cron rule with Input: at noon, with the Input as the event.
    let noon = of(&day, "Clock.Noon");
    assert_eq!(times(&noon), [at(12, 0)]);
    assert_eq!(echoed(noon[0]), json!({"job": "noon"}));
    // 09:30 in Berlin is 08:30 UTC in winter.
    let berlin = of(&day, "Clock.Berlin");
    assert_eq!(times(&berlin), [at(8, 30)]);
    assert_eq!(berlin[0].origin, Origin::TemplateSchedule);
    assert_eq!(echoed(berlin[0]), json!({"job": "digest"}));
    // A Scheduler schedule without Input sends {}.
    let no_input = of(&day, "Clock.NoInput");
    assert_eq!(times(&no_input), [at(6, 0), at(12, 0)]);
    assert_eq!(echoed(no_input[0]), json!({}));
    // Disabled ones never fire.
    assert!(of(&day, "Clock.Off").is_empty());
    assert!(of(&day, "Clock.Paused").is_empty());
    assert_eq!(day.len(), 23 + 1 + 1 + 2);

    // Every run was delivered exactly once, and the clock does not go back.
    assert_eq!(schedules.deliveries().len(), 1 + day.len());
    assert!(schedules.advance_to(at(11, 0)).await.is_empty());
    assert!(
        s.local
            .lines("Clock")
            .iter()
            .any(|l| l == "schedule Clock.Noon: run of 2030-01-01T12:00:00Z delivered"),
        "{:?}",
        s.local.lines("Clock")
    );
}

/// CreateSchedule in the default group.
#[allow(clippy::too_many_arguments)]
async fn create(
    scheduler: &aws_sdk_scheduler::Client,
    name: &str,
    expression: &str,
    timezone: Option<&str>,
    start: Option<DateTime<Utc>>,
    target_arn: &str,
    input: Option<&str>,
    state: ScheduleState,
    after: ActionAfterCompletion,
) {
    let mut target = Target::builder()
        .arn(target_arn)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/scheduler"));
    if let Some(input) = input {
        target = target.input(input);
    }
    scheduler
        .create_schedule()
        .name(name)
        .schedule_expression(expression)
        .set_schedule_expression_timezone(timezone.map(str::to_owned))
        .set_start_date(
            start.map(|t| aws_sdk_scheduler::primitives::DateTime::from_secs(t.timestamp())),
        )
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .unwrap(),
        )
        .target(target.build().unwrap())
        .state(state)
        .action_after_completion(after)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn scheduler_schedules_fire_at_their_targets() {
    let s = stack().await;
    let scheduler = aws_sdk_scheduler::Client::new(&emulator_config().await);
    let function = s.function_arn();
    let queue = s.queue_arn();
    let names = [
        "fn-rate",
        "queue-cron",
        "off",
        "once",
        "once-delete",
        "late",
    ]
    .map(|n| s.name(n));
    let [fn_rate, queue_cron, off, once, once_delete, late] = &names;
    use ActionAfterCompletion::{Delete, None as Keep};
    use ScheduleState::{Disabled, Enabled};
    create(
        &scheduler,
        fn_rate,
        "rate(2 hours)",
        None,
        Some(t0()),
        &function,
        Some(r#"{"from": "scheduler"}"#),
        Enabled,
        Keep,
    )
    .await;
    create(
        &scheduler,
        queue_cron,
        "cron(0 6 * * ? *)",
        Some("America/New_York"),
        None,
        &queue,
        Some("hello queue"),
        Enabled,
        Keep,
    )
    .await;
    create(
        &scheduler,
        off,
        "rate(1 hour)",
        None,
        Some(t0()),
        &function,
        Some("{}"),
        Disabled,
        Keep,
    )
    .await;
    create(
        &scheduler,
        once,
        "at(2030-01-01T03:00:00)",
        None,
        None,
        &function,
        Some(r#"{"once": true, "at": "<aws.scheduler.scheduled-time>", "attempt": "<aws.scheduler.attempt-number>"}"#),
        Enabled,
        Keep,
    )
    .await;
    create(
        &scheduler,
        once_delete,
        "at(2030-01-01T04:00:00)",
        None,
        None,
        &function,
        None,
        Enabled,
        Delete,
    )
    .await;

    let schedules = s.gateway.schedules();
    let day: Vec<Delivery> = schedules
        .advance_to(at(12, 0))
        .await
        .into_iter()
        .filter(|d| d.origin == Origin::Scheduler)
        .collect();
    let id = |name: &str| format!("default/{name}");

    let rate = of(&day, &id(fn_rate));
    assert_eq!(times(&rate), [2, 4, 6, 8, 10, 12].map(|h| at(h, 0)));
    assert_eq!(echoed(rate[0]), json!({"from": "scheduler"}));
    assert_eq!(
        rate[0].target,
        localstack::gateway::schedules::Target::Function(s.function_name())
    );
    // 06:00 in New York is 11:00 UTC in winter; the Input is the message body.
    let to_queue = of(&day, &id(queue_cron));
    assert_eq!(times(&to_queue), [at(11, 0)]);
    assert_eq!(
        to_queue[0].target,
        localstack::gateway::schedules::Target::Queue(queue.clone())
    );
    assert_eq!(to_queue[0].payload, "hello queue");
    assert!(to_queue[0].outcome.is_ok(), "{:?}", to_queue[0]);
    let body = common::receive_one(
        &sqs_client().await,
        &s.queue_url(),
        DEADLINE,
        "no message from the schedule",
    )
    .await;
    assert_eq!(body.as_deref(), Some("hello queue"));
    // Disabled: never; at(): once; without Input: {}.
    assert!(of(&day, &id(off)).is_empty());
    let one = of(&day, &id(once));
    assert_eq!(times(&one), [at(3, 0)]);
    // Scheduler's context attributes are substituted in the Input.
    assert_eq!(
        echoed(one[0]),
        json!({"once": true, "at": "2030-01-01T03:00:00Z", "attempt": "1"})
    );
    let deleted = of(&day, &id(once_delete));
    assert_eq!(times(&deleted), [at(4, 0)]);
    assert_eq!(echoed(deleted[0]), json!({}));
    assert_eq!(day.len(), 6 + 1 + 1 + 1);

    // ActionAfterCompletion DELETE removed the completed schedule; NONE kept the other one.
    assert!(
        scheduler
            .get_schedule()
            .name(once_delete)
            .send()
            .await
            .is_err()
    );
    assert!(scheduler.get_schedule().name(once).send().await.is_ok());

    // Changes are picked up on the next step: a deleted schedule stops, a new one starts.
    scheduler
        .delete_schedule()
        .name(fn_rate)
        .send()
        .await
        .unwrap();
    create(
        &scheduler,
        late,
        "rate(3 hours)",
        None,
        Some(at(12, 0)),
        &function,
        Some(r#"{"late": 1}"#),
        Enabled,
        Keep,
    )
    .await;
    let next: Vec<Delivery> = schedules
        .advance_to(at(24, 0))
        .await
        .into_iter()
        .filter(|d| d.origin == Origin::Scheduler)
        .collect();
    assert!(of(&next, &id(fn_rate)).is_empty());
    assert!(of(&next, &id(once)).is_empty(), "at() fires once");
    assert_eq!(
        times(&of(&next, &id(late))),
        [15, 18, 21, 24].map(|h| at(h, 0))
    );
    assert_eq!(next.len(), 4, "{next:#?}");

    for name in [queue_cron, off, once, late] {
        let _ = scheduler.delete_schedule().name(name).send().await;
    }
}
