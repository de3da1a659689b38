//! `api-analytics` against the emulator: a run written the way the worker writes it (claim, a
//! failed attempt, a retry, the commit of the document), the table's real stream records
//! counted by the stream function (once, and again as a retried batch), then every route read
//! over HTTP by the owner, another user and an admin.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use api_analytics::stream::{NotifySink, Sinks, process};
use api_analytics::{Api, handle};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use lambda_http::Body;
use serde_json::Value;
use shared::app::notify;
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::clock::SystemClock;
use shared::domain::analytics::{Bucket, Scope, Tally, Window};
use shared::domain::notification::QueueMessage;
use shared::domain::notify::EventKind;
use shared::domain::run::{ErrorKind, ModelRef, RetryPolicy, StepError, StepStatus, Usage};
use shared::domain::{ContentMetrics, NodeStatus, Principal, QualityScores, Role};
use shared::http::pipeline::Pipeline;
use shared::http::{Authenticator, Gate, KeyRing};
use shared::ports::{
    Analytics, Fut, Notifications, NotifyQueue, Probe, Runs, StepCommit, StoreError, Workflows,
};
use shared::testing::TestKeys;
use shared::testing::runs::{active_workflow, chain};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const ADMIN: &str = "root";
const MODEL: &str = "openai:smollm2";
const TEXT: &str = "The chain begins here. It goes on for a while.\n\nThen it ends.";

struct Stack {
    api: Api,
    store: Arc<DynamoStore>,
    sealer: Arc<shared::aws::kms::KmsSealer>,
    client: aws_sdk_dynamodb::Client,
    table: String,
    keys: TestKeys,
}

async fn stack() -> Stack {
    stack_with_probes(|_, _| Vec::new()).await
}

/// A stack whose health checker runs the probes `probes` makes of the table's client and name.
async fn stack_with_probes(
    probes: impl FnOnce(aws_sdk_dynamodb::Client, String) -> Vec<Arc<dyn Probe>>,
) -> Stack {
    let (client, table) = localstack::testing::fresh_table("analytics").await;
    let probes = probes(client.clone(), table.clone());
    let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let accounts = Arc::new(DynamoAccounts::new(client.clone(), table.clone()));
    for (user, role) in [
        (ALICE, Role::Editor),
        (BOB, Role::Editor),
        (ADMIN, Role::Admin),
    ] {
        shared::testing::accounts::seed_signed_in(accounts.as_ref(), user, role).await;
    }
    let keys = TestKeys::generate("test-key");
    let sealer = Arc::new(shared::aws::kms::KmsSealer::new(
        &localstack::testing::emulator_config().await,
        localstack::testing::fresh_hmac_alias("audit").await,
    ));
    let api = Api {
        analytics: store.clone(),
        audit: store.clone(),
        reports: store.clone(),
        sealer: sealer.clone(),
        // 1 MB parts, so an export of thousands of events comes in several.
        export_max_bytes: 1024 * 1024,
        retention: None,
        workflows: store.clone(),
        probes,
        pipeline: Pipeline {
            auth: Arc::new(Authenticator {
                keys: KeyRing::fixed(keys.verifier()),
                accounts,
            }),
            gate: Gate::open(),
            clock: Arc::new(SystemClock),
            audit: store.clone(),
        },
    };
    Stack {
        api,
        store,
        sealer,
        client,
        table,
        keys,
    }
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    content_type: String,
    text: String,
    body: Value,
}

impl Stack {
    async fn get(&self, uri: &str, user: Option<&str>) -> Reply {
        let auth = user.map(|u| format!("Bearer {}", self.keys.token(u)));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let req =
            localstack::testing::gateway_request("GET", uri, &headers, Body::Empty, "203.0.113.9");
        let r = handle(&self.api, req).await;
        let text = String::from_utf8_lossy(r.body().as_ref()).to_string();
        Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            content_type: r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn ok(&self, uri: &str, user: &str) -> Value {
        let r = self.get(uri, Some(user)).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.text);
        r.body
    }

    /// Alice's workflow with a one-step run that fails once (upstream error), is retried and
    /// writes its document, written with the store calls the worker makes. Returns the
    /// workflow's id.
    async fn run_written_like_the_worker(&self) -> String {
        let alice = Principal::user(ALICE, Role::Editor);
        let now = Utc::now();
        let w = active_workflow(&alice, "Analytics", now);
        let (run, steps, nodes) = chain(&w, 1, Some(ModelRef::parse(MODEL).unwrap()), 3, now);
        // Alice's requests create the workflow and start the run; the rest is the worker's.
        shared::context::with_changed_by(alices_request(), async {
            self.store.create_workflow(&w, &[], None).await.unwrap();
            self.store
                .create_run(&alice, &run, &steps, &nodes, w.settings.max_nodes(), None)
                .await
                .unwrap();
        })
        .await;
        let policy = RetryPolicy::default();
        // Attempt 1: claimed, fails with a retryable error.
        let mut step = steps[0].clone();
        step.start(now, std::time::Duration::from_secs(60)).unwrap();
        assert!(
            self.store
                .claim_step(&step, StepStatus::Pending, 0, now)
                .await
                .unwrap()
        );
        step.fail(
            now,
            StepError::new(ErrorKind::Upstream, "502"),
            &policy,
            0.0,
        )
        .unwrap();
        let mut written = run.clone();
        written
            .transition(shared::domain::run::RunStatus::Running, now)
            .unwrap();
        let commit = StepCommit {
            step: step.clone(),
            attempt: 1,
            node: None,
            run: written.clone(),
            run_version: run.version,
        };
        assert!(self.store.commit_step(&commit).await.unwrap());
        // Attempt 2, once the retry is due: claimed, succeeds with the document.
        let later = step.lease_until.unwrap() + Duration::seconds(1);
        step.start(later, std::time::Duration::from_secs(60))
            .unwrap();
        assert!(
            self.store
                .claim_step(&step, StepStatus::Pending, 1, later)
                .await
                .unwrap()
        );
        let usage = Usage {
            model: Some("smollm2".into()),
            input_tokens: 40,
            output_tokens: 120,
            latency_ms: 1_800,
        };
        step.succeed(later, usage).unwrap();
        let mut node = nodes[0].clone();
        node.metrics = ContentMetrics::of(TEXT);
        node.quality = QualityScores::of(TEXT, &node.metrics);
        node.content = TEXT.into();
        node.status = NodeStatus::Completed;
        node.version += 1;
        node.updated_at = later;
        step.words = node.metrics.words;
        step.quality = Some(node.quality.overall);
        let mut done = written.clone();
        done.steps_succeeded = 1;
        done.transition(shared::domain::run::RunStatus::Succeeded, later)
            .unwrap();
        let commit = StepCommit {
            step,
            attempt: 2,
            node: Some(node),
            run: done,
            run_version: run.version + 1,
        };
        assert!(self.store.commit_step(&commit).await.unwrap());
        w.id
    }
}

fn overview_figures(v: &Value) -> Vec<u64> {
    [
        "runs_started",
        "runs_succeeded",
        "runs_failed",
        "steps_succeeded",
        "retries",
        "documents",
        "words",
        "tokens_in",
        "tokens_out",
    ]
    .iter()
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")))
    .collect()
}

const EXPECTED: [u64; 9] = [1, 1, 0, 1, 1, 1, 13, 40, 120];

#[tokio::test]
async fn each_change_is_counted_once_even_when_the_stream_batch_is_delivered_again() {
    let s = stack().await;
    let w = s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    let first = process(s.store.as_ref().into(), event.clone()).await;
    assert!(first.failures.is_empty(), "{first:?}");
    assert_eq!(first.skipped, 0);
    // The run: created, attempt 1 claimed (counts nothing) and failed, attempt 2 claimed (a
    // retry) and committed with its document.
    assert_eq!(first.counted.counted, 4, "{first:?}");
    let once = s.ok("/api/v3/analytics/overview", ALICE).await;
    assert_eq!(overview_figures(&once), EXPECTED, "{once}");
    assert_eq!(once["completion_rate"], 1.0);
    assert_eq!(once["period"]["scope"], "user:alice");

    let again = process(s.store.as_ref().into(), event).await;
    assert_eq!(again.counted.counted, 0, "{again:?}");
    assert_eq!(again.counted.repeated, first.counted.counted);
    let twice = s.ok("/api/v3/analytics/overview", ALICE).await;
    assert_eq!(overview_figures(&twice), EXPECTED, "{twice}");

    let wf = s
        .ok(&format!("/api/v3/analytics/workflows/{w}?range=1h"), ALICE)
        .await;
    assert_eq!(overview_figures(&wf["overview"]), EXPECTED, "{wf}");
}

/// The notifications queue, in memory: what was queued, with its delay.
#[derive(Default)]
struct QueuedNotifications(std::sync::Mutex<Vec<(QueueMessage, u32)>>);

impl NotifyQueue for QueuedNotifications {
    fn send<'a>(&'a self, messages: &'a [(QueueMessage, u32)]) -> Fut<'a, ()> {
        self.0.lock().unwrap().extend(messages.iter().cloned());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_finished_run_notifies_its_owner_on_the_chosen_channel_once_and_a_notice_starts_its_fan_out()
 {
    let s = stack().await;
    let vault = shared::aws::kms::KmsVault::new(
        &localstack::testing::emulator_config().await,
        localstack::testing::fresh_kms_alias("notify").await,
    );
    let request = serde_json::from_value(
        serde_json::json!({"kind": "webhook", "name": "ci", "target": "https://example.com/hook"}),
    )
    .unwrap();
    let hook = notify::create_channel(s.store.as_ref(), &vault, false, ALICE, request, Utc::now())
        .await
        .unwrap()
        .view;
    let prefs = serde_json::from_value(serde_json::json!({"events": {"run_succeeded": [hook.id]}}))
        .unwrap();
    notify::set_preferences(s.store.as_ref(), ALICE, prefs)
        .await
        .unwrap();
    s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    let queue = QueuedNotifications::default();
    let sinks = || {
        let mut sinks: Sinks<'_> = s.store.as_ref().into();
        sinks.notify = Some(NotifySink {
            store: s.store.as_ref(),
            queue: &queue,
        });
        sinks
    };
    let first = process(sinks(), event.clone()).await;
    assert!(first.failures.is_empty(), "{first:?}");
    assert_eq!(first.notified, 1, "{first:?}");
    let log = s.store.list_notifications(ALICE, 10, None).await.unwrap();
    assert_eq!(log.items.len(), 1);
    let n = &log.items[0];
    assert_eq!(n.event, EventKind::RunSucceeded);
    assert_eq!(n.vars["steps_succeeded"], 1);
    // The run knows its workflow by id; the notification names it.
    let w = s
        .store
        .get_workflow(n.vars["workflow_id"].as_str().unwrap())
        .await;
    assert_eq!(n.vars["workflow_name"], w.unwrap().unwrap().name.as_str());
    assert_eq!(
        n.deliveries.keys().collect::<Vec<_>>(),
        [&hook.id],
        "exactly the chosen channel"
    );
    let queued = queue.0.lock().unwrap().clone();
    assert_eq!(queued.len(), 1);
    let QueueMessage::Deliver(m) = &queued[0].0 else {
        panic!("{queued:?}")
    };
    assert_eq!((&m.notification_id, &m.channel_id), (&n.id, &hook.id));

    // The batch delivered again raises the same notification: stored once.
    let again = process(sinks(), event).await;
    assert!(again.failures.is_empty(), "{again:?}");
    let log = s.store.list_notifications(ALICE, 10, None).await.unwrap();
    assert_eq!(log.items.len(), 1);

    // An admin's notice: its stream record starts the fan-out.
    let admin = Principal {
        user_id: ADMIN.into(),
        role: Role::Admin,
        scopes: None,
        session_id: None,
    };
    let request =
        serde_json::from_value(serde_json::json!({"subject": "Maintenance", "body": "Tonight."}))
            .unwrap();
    let notice = notify::send_notice(s.store.as_ref(), &admin, request, Utc::now())
        .await
        .unwrap();
    let event = localstack::testing::stream_event(&s.table).await;
    queue.0.lock().unwrap().clear();
    let out = process(sinks(), event).await;
    assert!(out.failures.is_empty(), "{out:?}");
    let queued = queue.0.lock().unwrap().clone();
    assert!(
        queued.iter().any(|(m, _)| *m
            == QueueMessage::Notice {
                notice_id: notice.id.clone(),
                after: None
            }),
        "{queued:?}"
    );
}

/// Fails `record` from the `fail_at`-th call on (0-based), once.
struct FailingOnce {
    inner: Arc<DynamoStore>,
    calls: AtomicUsize,
    fail_at: usize,
}

impl FailingOnce {
    /// The store's sinks with this in place of the counters.
    fn sinks(&self) -> Sinks<'_> {
        Sinks {
            analytics: self,
            audit: self.inner.as_ref(),
            workflows: self.inner.as_ref(),
            notify: None,
        }
    }
}

impl Analytics for FailingOnce {
    fn record<'a>(&'a self, event_id: &'a str, tally: &'a Tally) -> Fut<'a, bool> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Box::pin(async { Err(StoreError::Unavailable("throttled".into())) });
        }
        self.inner.record(event_id, tally)
    }

    fn buckets<'a>(&'a self, scope: &'a Scope, window: &'a Window) -> Fut<'a, Vec<Bucket>> {
        self.inner.buckets(scope, window)
    }
}

#[tokio::test]
async fn a_batch_that_fails_midway_is_retried_from_the_failed_record_and_counts_each_change_once() {
    let s = stack().await;
    s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    let failing = FailingOnce {
        inner: s.store.clone(),
        calls: AtomicUsize::new(0),
        fail_at: 2,
    };
    let first = process(failing.sinks(), event.clone()).await;
    assert_eq!(first.counted.counted, 2, "{first:?}");
    assert!(!first.failures.is_empty(), "the failed record is reported");
    let records = event["Records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["dynamodb"]["SequenceNumber"] == first.failures[0].as_str()),
        "failures name sequence numbers of the batch"
    );
    // Lambda delivers the batch again (ReportBatchItemFailures retries from the failed record;
    // a whole batch again is the worse case).
    let retried = process(failing.sinks(), event).await;
    assert!(retried.failures.is_empty(), "{retried:?}");
    assert_eq!(retried.counted.repeated, 2);
    let figures = s.ok("/api/v3/analytics/overview", ALICE).await;
    assert_eq!(overview_figures(&figures), EXPECTED, "{figures}");
}

#[tokio::test]
async fn every_route_answers_its_figures_and_only_to_whom_they_belong() {
    let s = stack().await;
    let w = s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    process(s.store.as_ref().into(), event).await;

    // generation: per model, with the failed attempt by class and the latency.
    let g = s.ok("/api/v3/analytics/generation?range=24h", ALICE).await;
    let m = &g["models"][0];
    assert_eq!(m["model"], MODEL, "{g}");
    assert_eq!(
        (m["generations"].as_u64(), m["errors"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(m["error_rate"], 0.5);
    assert_eq!(m["errors_by_class"]["upstream"], 1);
    let p50 = m["latency_ms"]["p50"].as_f64().unwrap();
    assert!((p50 - 1_800.0).abs() <= 36.0, "{p50}");

    // quality: one document in its band.
    let q = s.ok("/api/v3/analytics/quality?range=7d", ALICE).await;
    assert_eq!(q["documents"], 1, "{q}");
    let banded: u64 = q["distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(banded, 1);

    // Every range reads; long ones by day.
    for range in ["1h", "24h", "7d", "30d", "90d", "1y"] {
        let o = s
            .ok(&format!("/api/v3/analytics/overview?range={range}"), ALICE)
            .await;
        assert_eq!(o["runs_started"], 1, "{range}: {o}");
        let by_day = matches!(range, "30d" | "90d" | "1y");
        assert_eq!(
            o["period"]["granularity"],
            if by_day { "day" } else { "hour" },
            "{range}"
        );
    }
    let from = (Utc::now() - Duration::hours(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let o = s
        .ok(&format!("/api/v3/analytics/overview?from={from}"), ALICE)
        .await;
    assert_eq!(o["runs_started"], 1, "{o}");

    // insights: answers with its window and the previous one (too few runs to find anything).
    let i = s.ok("/api/v3/analytics/insights?range=7d", ALICE).await;
    assert!(i["insights"].is_array(), "{i}");
    assert!(
        i["previous"]["to"] == i["period"]["from"],
        "the previous window ends where this one starts: {i}"
    );

    // export: CSV with a header and a row per hour and group, and JSON.
    let csv = s
        .get("/api/v3/analytics/export?format=csv", Some(ALICE))
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(csv.content_type.starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(lines[0].starts_with("period_start,granularity,model,runs_started"));
    assert!(
        lines.iter().any(|l| l.contains(&format!(",{MODEL},"))),
        "{}",
        csv.text
    );
    let json = s.ok("/api/v3/analytics/export", ALICE).await;
    assert_eq!(json["columns"][0], "period_start");
    assert_eq!(json["rows"].as_array().unwrap().len(), lines.len() - 1);

    // Bob sees his own (empty) figures, not Alice's, and not her workflow's.
    let bob = s.ok("/api/v3/analytics/overview", BOB).await;
    assert_eq!(bob["runs_started"], 0, "{bob}");
    for uri in [
        "/api/v3/analytics/overview?user=alice".to_string(),
        "/api/v3/analytics/generation?scope=system".to_string(),
        "/api/v3/analytics/export?user=alice&format=csv".to_string(),
    ] {
        let r = s.get(&uri, Some(BOB)).await;
        assert_eq!(r.status, 403, "{uri}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
    }
    let r = s
        .get(&format!("/api/v3/analytics/workflows/{w}"), Some(BOB))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Admins may read anyone's and the system's.
    let a = s.ok("/api/v3/analytics/overview?user=alice", ADMIN).await;
    assert_eq!(overview_figures(&a), EXPECTED);
    let sys = s.ok("/api/v3/analytics/overview?scope=system", ADMIN).await;
    assert_eq!(overview_figures(&sys), EXPECTED);
    assert_eq!(sys["period"]["scope"], "system");
    s.ok(&format!("/api/v3/analytics/workflows/{w}"), ADMIN)
        .await;

    // No token: 401; bad input: 400 naming the parameter, never a 500.
    assert_eq!(s.get("/api/v3/analytics/overview", None).await.status, 401);
    for (uri, param) in [
        ("/api/v3/analytics/overview?range=2w", "range"),
        (
            "/api/v3/analytics/overview?range=1h&from=2026-01-01T00:00:00Z",
            "from",
        ),
        ("/api/v3/analytics/overview?from=yesterday", "from"),
        ("/api/v3/analytics/overview?scope=everyone", "scope"),
        ("/api/v3/analytics/overview?colour=blue", "colour"),
        ("/api/v3/analytics/export?format=xml", "format"),
    ] {
        let r = s.get(uri, Some(ALICE)).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.text);
        assert!(r.text.contains(param), "{uri}: {}", r.text);
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_of_the_template() {
    let s = stack().await;
    let doc = s.get("/api/v3/analytics/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let keys = localstack::testing::template_route_keys("ApiAnalyticsFunction");
    assert_eq!(keys.len(), 15);
    for key in keys {
        let (method, path) = key.split_once(' ').unwrap();
        assert!(
            doc.body["paths"][path][method.to_lowercase()].is_object(),
            "{key} is not in the document"
        );
    }
}

#[tokio::test]
async fn status_checks_every_dependency_for_admins_and_says_which_failed() {
    use shared::aws::health::{GeneratorProbe, KeyProbe, QueueProbe, TableProbe};
    let template = localstack::template::Template::load_default().unwrap();
    let suffix = format!("-{}", shared::domain::ids::new_id());
    let resolver = localstack::testing::provision_queues(&template, &suffix).await;
    let urls = |kind: &str| -> shared::aws::sqs::QueueUrls {
        ["Critical", "High", "Normal", "Low"]
            .map(|p| resolver.queue_url(&format!("{p}{kind}")).unwrap())
            .into()
    };
    let (sources, dead) = (urls("StepQueue"), urls("StepDeadLetterQueue"));
    let sqs = localstack::testing::sqs_client().await;
    sqs.send_message()
        .queue_url(&dead.high)
        .message_body("{}")
        .message_group_id("g")
        .send()
        .await
        .unwrap();
    let alias = localstack::testing::fresh_kms_alias("status").await;
    let kms = aws_sdk_kms::Client::new(&localstack::testing::emulator_config().await);
    // A port nothing listens on: the generator check fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let generator = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let s = stack_with_probes(move |client, table| {
        vec![
            Arc::new(TableProbe { client, table }) as Arc<dyn Probe>,
            Arc::new(QueueProbe {
                client: sqs,
                sources,
                dead_letters: dead,
            }),
            Arc::new(KeyProbe {
                client: kms,
                key_id: alias,
            }),
            Arc::new(GeneratorProbe {
                url: Some(generator),
            }),
        ]
    })
    .await;
    let r = s.get("/status", Some(ADMIN)).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["status"], "degraded");
    let checks = r.body["checks"].as_array().unwrap();
    let named = |n: &str| {
        checks
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {}", r.text))
    };
    assert_eq!(named("table")["ok"], true);
    assert_eq!(named("key")["ok"], true);
    assert_eq!(named("key")["detail"]["state"], "Enabled");
    assert_eq!(named("queue:critical")["ok"], true);
    assert_eq!(named("queue:high")["ok"], false, "a dead letter waits");
    assert_eq!(named("queue:high")["detail"]["dead_letters"], 1);
    assert_eq!(named("generator")["ok"], false);
    assert!(
        named("generator")["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("connect")
    );
    for c in checks {
        assert!(c["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(s.get("/api/v3/status", Some(ADMIN)).await.status, 503);
    let bob = s.get("/status", Some(BOB)).await;
    assert_eq!(bob.status, 403, "{}", bob.text);
    assert_eq!(s.get("/status", None).await.status, 401);
}

#[tokio::test]
async fn metrics_are_prometheus_text_for_admins_only() {
    let s = stack().await;
    s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    process(s.store.as_ref().into(), event).await;
    let r = s.get("/metrics", Some(ADMIN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    assert!(r.text.contains("dwc_runs_started_total 1\n"), "{}", r.text);
    assert!(
        r.text.contains("dwc_runs_succeeded_total 1\n"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains(&format!("dwc_generations_total{{model=\"{MODEL}\"}} 1")),
        "{}",
        r.text
    );
    assert!(r.text.contains(&format!(
        "dwc_generation_latency_ms_count{{model=\"{MODEL}\"}} 1"
    )));
    let bob = s.get("/metrics", Some(BOB)).await;
    assert_eq!(bob.status, 403, "{}", bob.text);
    assert_eq!(bob.content_type, "application/problem+json");
}

/// What the HTTP pipeline sets while it handles one of Alice's requests.
fn alices_request() -> shared::domain::audit::ChangedBy {
    shared::domain::audit::ChangedBy {
        actor: shared::domain::audit::Actor::user(ALICE),
        source_ip: Some("203.0.113.9".into()),
        user_agent: Some("curl/8.5".into()),
        request_id: Some("req-alice-1".into()),
    }
}

/// The actions of a page of audit events, oldest first.
fn actions(page: &Value) -> Vec<String> {
    let mut a: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    a.reverse();
    a
}

#[tokio::test]
async fn each_change_becomes_its_audit_events_once_even_when_the_batch_is_delivered_again() {
    let s = stack().await;
    let w = s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    let first = process(s.store.as_ref().into(), event.clone()).await;
    assert!(first.failures.is_empty(), "{first:?}");
    let page = s.ok("/api/v3/audit", ALICE).await;
    let mut got = actions(&page);
    got.sort();
    assert_eq!(
        got,
        [
            "node.created",
            "node.updated",
            "run.started",
            "run.succeeded",
            "workflow.created"
        ],
        "{page}"
    );
    let items = page["items"].as_array().unwrap();
    let by = |action: &str| items.iter().find(|e| e["action"] == action).unwrap();
    let created = by("workflow.created");
    assert_eq!(
        created["actor"],
        serde_json::json!({"kind": "user", "id": ALICE})
    );
    assert_eq!(created["target"]["id"], w.as_str());
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["chain"], "U#alice");
    // Who and from where, as stamped on the items Alice's requests wrote.
    for action in ["workflow.created", "node.created", "run.started"] {
        let e = by(action);
        assert_eq!(e["actor"]["id"], ALICE, "{e}");
        assert_eq!(
            (&e["source_ip"], &e["user_agent"], &e["request_id"]),
            (
                &"203.0.113.9".into(),
                &"curl/8.5".into(),
                &"req-alice-1".into()
            ),
            "{e}"
        );
    }
    // The worker's changes are the system's, with no request.
    for action in ["run.succeeded", "node.updated"] {
        let e = by(action);
        assert_eq!(
            e["actor"],
            serde_json::json!({"kind": "system", "id": null}),
            "{e}"
        );
        assert_eq!(e["source_ip"], Value::Null, "{e}");
    }
    assert_eq!(by("node.updated")["detail"]["status"], "completed");
    // Newest first, numbered 5..1, each linked to the one before.
    let seqs: Vec<u64> = items.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"]);
    }

    let again = process(s.store.as_ref().into(), event).await;
    assert_eq!(again.audited.recorded, 0, "{again:?}");
    assert_eq!(again.audited.repeated, first.audited.recorded);
    assert_eq!(actions(&s.ok("/api/v3/audit", ALICE).await).len(), 5);
    let v = s.ok("/api/v3/audit/verify", ALICE).await;
    assert_eq!(
        (v["ok"].as_bool(), v["checked"].as_u64()),
        (Some(true), Some(5)),
        "{v}"
    );

    // Filters and pages.
    let runs = s.ok("/api/v3/audit?action=run.started", ALICE).await;
    assert_eq!(actions(&runs), ["run.started"]);
    let hers = s.ok("/api/v3/audit?actor=alice&limit=50", ALICE).await;
    let mut hers = actions(&hers);
    hers.sort();
    assert_eq!(hers, ["node.created", "run.started", "workflow.created"]);
    let first_page = s.ok("/api/v3/audit?limit=2", ALICE).await;
    assert_eq!(first_page["items"].as_array().unwrap().len(), 2);
    let cursor = first_page["next_cursor"].as_str().unwrap();
    let second = s
        .ok(&format!("/api/v3/audit?limit=2&cursor={cursor}"), ALICE)
        .await;
    assert_eq!(second["items"][0]["seq"], 3);
    let future = s.ok("/api/v3/audit?from=2100-01-01T00:00:00Z", ALICE).await;
    assert!(future["items"].as_array().unwrap().is_empty(), "{future}");
}

#[tokio::test]
async fn audit_chains_are_their_owners_and_admins_and_bad_queries_are_refused() {
    let s = stack().await;
    s.run_written_like_the_worker().await;
    let event = localstack::testing::stream_event(&s.table).await;
    process(s.store.as_ref().into(), event).await;
    // Bob has no events and may not read Alice's or the system's.
    let bob = s.ok("/api/v3/audit", BOB).await;
    assert!(bob["items"].as_array().unwrap().is_empty(), "{bob}");
    for uri in [
        "/api/v3/audit?user=alice",
        "/api/v3/audit?scope=system",
        "/api/v3/audit/verify?user=alice",
    ] {
        let r = s.get(uri, Some(BOB)).await;
        assert_eq!(r.status, 403, "{uri}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
    }
    // Admins read anyone's.
    let admin = s.ok("/api/v3/audit?user=alice", ADMIN).await;
    assert_eq!(admin["items"].as_array().unwrap().len(), 5);
    assert_eq!(
        s.ok("/api/v3/audit/verify?user=alice", ADMIN).await["ok"],
        true
    );
    for (uri, status) in [
        ("/api/v3/audit?action=workflow.exploded", 422),
        ("/api/v3/audit?outcome=maybe", 400),
        ("/api/v3/audit?limit=0", 400),
        ("/api/v3/audit?cursor=not-a-cursor", 400),
        ("/api/v3/audit?from=yesterday", 400),
        ("/api/v3/audit?scope=galaxy", 400),
        ("/api/v3/audit?colour=red", 400),
    ] {
        let r = s.get(uri, Some(ALICE)).await;
        assert_eq!(r.status, status, "{uri}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json", "{uri}");
    }
    assert_eq!(s.get("/api/v3/audit", None).await.status, 401);
}

/// Appends `n` events to `user`'s chain, as the stream consumer does.
async fn chain_of(s: &Stack, user: &str, n: usize) {
    use shared::domain::audit::{Actor, Chain, Draft, Outcome, Target};
    use shared::ports::AuditLog;
    let drafts: Vec<Draft> = (0..n)
        .map(|i| Draft {
            id: shared::domain::ids::new_id(),
            at: Utc::now(),
            actor: Actor::user(user),
            action: "workflow.updated".into(),
            target: Target::new("workflow", "w1"),
            outcome: Outcome::Success,
            source_ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8".into()),
            request_id: Some(format!("req-{i}")),
            detail: serde_json::Map::from_iter([("steps".to_string(), serde_json::json!(i))]),
        })
        .collect();
    // One at a time (each its own source), then none twice.
    for (i, d) in drafts.iter().enumerate() {
        let source = format!("{user}-{i}");
        let chain = Chain::User(user.into());
        assert!(
            s.store
                .append(&chain, Some(&source), std::slice::from_ref(d))
                .await
                .unwrap()
        );
        assert!(
            !s.store
                .append(&chain, Some(&source), std::slice::from_ref(d))
                .await
                .unwrap()
        );
    }
}

fn audit_key(user: &str, seq: u64) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        (
            "PK".to_string(),
            AttributeValue::S(format!("AUDIT#U#{user}")),
        ),
        ("SK".to_string(), AttributeValue::S(format!("E#{seq:012}"))),
    ])
}

#[tokio::test]
async fn verify_reports_the_first_edited_or_deleted_event() {
    let s = stack().await;
    chain_of(&s, ALICE, 5).await;
    chain_of(&s, BOB, 5).await;
    let v = s.ok("/api/v3/audit/verify?user=alice", ADMIN).await;
    assert_eq!(
        (v["ok"].as_bool(), v["checked"].as_u64()),
        (Some(true), Some(5)),
        "{v}"
    );
    assert_eq!(v["head"]["seq"], 5);

    // Someone with table access changes event 3's outcome.
    s.client
        .update_item()
        .table_name(&s.table)
        .set_key(Some(audit_key(ALICE, 3)))
        .update_expression("SET outcome = :o")
        .expression_attribute_values(":o", AttributeValue::S("failure".into()))
        .send()
        .await
        .unwrap();
    let v = s.ok("/api/v3/audit/verify?user=alice", ADMIN).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["checked"], 2);
    assert_eq!(v["first_broken"]["seq"], 3, "{v}");
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("do not match its hash"),
        "{v}"
    );

    // ... and deletes Bob's event 2, then his last one.
    s.client
        .delete_item()
        .table_name(&s.table)
        .set_key(Some(audit_key(BOB, 2)))
        .send()
        .await
        .unwrap();
    let v = s.ok("/api/v3/audit/verify?user=bob", ADMIN).await;
    assert_eq!(
        (v["ok"].as_bool(), v["first_broken"]["seq"].as_u64()),
        (Some(false), Some(2)),
        "{v}"
    );
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{v}"
    );
    // With the events after the first all gone, the chain is short of what its head counts.
    for seq in 3..=5 {
        s.client
            .delete_item()
            .table_name(&s.table)
            .set_key(Some(audit_key(BOB, seq)))
            .send()
            .await
            .unwrap();
    }
    let v = s.ok("/api/v3/audit/verify?user=bob", ADMIN).await;
    assert_eq!(
        (v["ok"].as_bool(), v["checked"].as_u64()),
        (Some(false), Some(1)),
        "{v}"
    );
    assert_eq!(v["first_broken"]["seq"], 2, "{v}");
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("head counts 5"),
        "{v}"
    );
    // The events read back exactly as written: request context and numbers in `detail`.
    let page = s.ok("/api/v3/audit?user=bob", ADMIN).await;
    assert_eq!(page["items"][0]["request_id"], "req-0");
    assert_eq!(page["items"][0]["detail"]["steps"], 0);
}

#[tokio::test]
async fn a_note_left_in_the_inbox_reaches_its_chain_once() {
    use shared::app::audit::{Note, note};
    use shared::domain::audit::{Actor, Chain, ChangedBy, Outcome, Target};
    let s = stack().await;
    let request = ChangedBy {
        actor: Actor::unknown(),
        source_ip: Some("198.51.100.4".into()),
        user_agent: Some("Mozilla/5.0".into()),
        request_id: Some("req-login".into()),
    };
    // As the identity service leaves a failed sign-in: one write on the request's path.
    shared::context::with_changed_by(request, async {
        note(
            s.store.as_ref(),
            Note {
                chain: Chain::User(ALICE.into()),
                action: "auth.login_failed",
                target: Target::new("account", ALICE),
                outcome: Outcome::Failure,
                actor: Actor::user(ALICE),
                detail: serde_json::json!({"reason": "password", "failures_in_a_row": 2}),
            },
            Utc::now(),
        )
        .await
    })
    .await;
    let event = localstack::testing::stream_event(&s.table).await;
    let first = process(s.store.as_ref().into(), event.clone()).await;
    assert!(first.failures.is_empty(), "{first:?}");
    let again = process(s.store.as_ref().into(), event).await;
    assert_eq!(again.audited.recorded, 0, "{again:?}");
    let page = s.ok("/api/v3/audit", ALICE).await;
    assert_eq!(actions(&page), ["auth.login_failed"], "{page}");
    let e = &page["items"][0];
    assert_eq!(e["outcome"], "failure");
    assert_eq!(
        e["actor"]["id"], ALICE,
        "the account signing in, the request had no caller"
    );
    assert_eq!(e["source_ip"], "198.51.100.4");
    assert_eq!(e["request_id"], "req-login");
    assert_eq!(e["detail"]["failures_in_a_row"], 2);
    let failures = s
        .ok(
            "/api/v3/audit?outcome=failure&action=auth.login_failed",
            ALICE,
        )
        .await;
    assert_eq!(failures["items"].as_array().unwrap().len(), 1);
    assert_eq!(s.ok("/api/v3/audit/verify", ALICE).await["ok"], true);
}

/// Sets `attributes` (strings) on audit item `sk` of `user`'s chain, as someone with write
/// access to the table (but not to the KMS key) could.
async fn overwrite(s: &Stack, user: &str, sk: &str, attributes: &[(&str, String)]) {
    let mut update = s
        .client
        .update_item()
        .table_name(&s.table)
        .key("PK", AttributeValue::S(format!("AUDIT#U#{user}")))
        .key("SK", AttributeValue::S(sk.to_string()));
    let mut sets = Vec::new();
    for (i, (name, value)) in attributes.iter().enumerate() {
        sets.push(format!("#n{i} = :v{i}"));
        update = update
            .expression_attribute_names(format!("#n{i}"), *name)
            .expression_attribute_values(format!(":v{i}"), AttributeValue::S(value.clone()));
    }
    update
        .update_expression(format!("SET {}", sets.join(", ")))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_chain_rewritten_after_its_seal_or_a_forged_seal_is_reported() {
    use shared::app::audit::seal_chains;
    use shared::ports::AuditLog;
    let s = stack().await;
    chain_of(&s, ALICE, 4).await;
    let sealed = seal_chains(s.store.as_ref(), s.sealer.as_ref(), Utc::now())
        .await
        .unwrap();
    assert_eq!(sealed, 1);
    // Nothing appended since: nothing to seal.
    let again = seal_chains(s.store.as_ref(), s.sealer.as_ref(), Utc::now())
        .await
        .unwrap();
    assert_eq!(again, 0);
    let v = s.ok("/api/v3/audit/verify?user=alice", ADMIN).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["seal"],
        serde_json::json!({"seq": 4, "at": v["seal"]["at"], "mac_valid": true, "matches": true}),
        "{v}"
    );

    // Event 2 changed, and every later hash and the head recomputed to match: the links hold,
    // but event 4 no longer has the hash that was sealed.
    let chain = shared::domain::audit::Chain::User(ALICE.into());
    let mut events = s.store.chain_after(&chain, 0, 10).await.unwrap();
    events[1].outcome = shared::domain::audit::Outcome::Failure;
    for i in 1..events.len() {
        events[i].prev_hash = events[i - 1].hash.clone();
        events[i].hash = events[i].computed_hash();
    }
    for e in &events[1..] {
        overwrite(
            &s,
            ALICE,
            &format!("E#{:012}", e.seq),
            &[
                ("outcome", e.outcome.as_str().to_string()),
                ("prev_hash", e.prev_hash.clone()),
                ("hash", e.hash.clone()),
            ],
        )
        .await;
    }
    overwrite(&s, ALICE, "#HEAD", &[("hash", events[3].hash.clone())]).await;
    let v = s.ok("/api/v3/audit/verify?user=alice", ADMIN).await;
    assert_eq!(
        (v["ok"].as_bool(), v["checked"].as_u64()),
        (Some(false), Some(4)),
        "{v}"
    );
    assert_eq!(v["first_broken"]["seq"], 4, "{v}");
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("rewritten after it was sealed"),
        "{v}"
    );
    assert_eq!(
        (
            v["seal"]["mac_valid"].as_bool(),
            v["seal"]["matches"].as_bool()
        ),
        (Some(true), Some(false))
    );

    // ... and the seal made to match: the KMS key does not confirm it.
    overwrite(
        &s,
        ALICE,
        &format!("SEAL#{:012}", 4),
        &[("hash", events[3].hash.clone())],
    )
    .await;
    let v = s.ok("/api/v3/audit/verify?user=alice", ADMIN).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["seal"]["mac_valid"], false, "{v}");
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("forged"),
        "{v}"
    );
}

/// `n` events in `user`'s chain, as many to an append as one takes; every 10th has a user
/// agent a spreadsheet would run as a formula.
async fn many_events(s: &Stack, user: &str, n: usize) {
    use shared::domain::audit::{Actor, Chain, Draft, Outcome, Target};
    use shared::ports::AuditLog;
    let chain = Chain::User(user.into());
    let mut i = 0;
    while i < n {
        let drafts: Vec<Draft> = (i..n.min(i + shared::aws::dynamo::AUDIT_MAX_APPEND))
            .map(|k| Draft {
                id: shared::domain::ids::new_id(),
                at: Utc::now(),
                actor: Actor::user(user),
                action: "workflow.updated".into(),
                target: Target::new("workflow", &format!("w{k}")),
                outcome: Outcome::Success,
                source_ip: Some("203.0.113.9".into()),
                user_agent: Some(if k % 10 == 0 {
                    "=HYPERLINK(\"http://evil\",\"x\")".into()
                } else {
                    "curl/8.5, \"quoted\"".into()
                }),
                request_id: Some(format!("req-{k}")),
                detail: serde_json::Map::from_iter([("k".to_string(), serde_json::json!(k))]),
            })
            .collect();
        i += drafts.len();
        assert!(s.store.append(&chain, None, &drafts).await.unwrap());
    }
}

/// Counts the events each read hands out, to show an export holds one page at a time.
struct CountingLog {
    inner: Arc<DynamoStore>,
    largest_read: AtomicUsize,
}

impl shared::ports::AuditLog for CountingLog {
    fn append<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
        source: Option<&'a str>,
        drafts: &'a [shared::domain::audit::Draft],
    ) -> Fut<'a, bool> {
        self.inner.append(chain, source, drafts)
    }
    fn events<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
        filter: &'a shared::ports::AuditFilter,
        limit: usize,
        after: Option<shared::ports::PageKey>,
    ) -> Fut<'a, shared::ports::Page<shared::domain::audit::AuditEvent>> {
        Box::pin(async move {
            let page = self.inner.events(chain, filter, limit, after).await?;
            self.largest_read
                .fetch_max(page.items.len(), Ordering::SeqCst);
            Ok(page)
        })
    }
    fn chain_after<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
        after_seq: u64,
        limit: usize,
    ) -> Fut<'a, Vec<shared::domain::audit::AuditEvent>> {
        self.inner.chain_after(chain, after_seq, limit)
    }
    fn head<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
    ) -> Fut<'a, Option<shared::domain::audit::Head>> {
        self.inner.head(chain)
    }
    fn event<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
        seq: u64,
    ) -> Fut<'a, Option<shared::domain::audit::AuditEvent>> {
        self.inner.event(chain, seq)
    }
    fn unsealed<'a>(
        &'a self,
        limit: usize,
    ) -> Fut<'a, Vec<(shared::domain::audit::Chain, shared::domain::audit::Head)>> {
        self.inner.unsealed(limit)
    }
    fn put_seal<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
        seal: &'a shared::domain::audit::Seal,
    ) -> Fut<'a, ()> {
        self.inner.put_seal(chain, seal)
    }
    fn latest_seal<'a>(
        &'a self,
        chain: &'a shared::domain::audit::Chain,
    ) -> Fut<'a, Option<shared::domain::audit::Seal>> {
        self.inner.latest_seal(chain)
    }
}

#[tokio::test]
async fn ten_thousand_events_export_as_csv_and_json_in_parts_a_page_at_a_time() {
    use shared::app::audit::{ExportFormat, export};
    let s = stack().await;
    many_events(&s, ALICE, 10_000).await;

    // Through the route: parts of at most about 1 MB here (4 MB deployed), each naming where
    // the next starts.
    let mut csv = String::new();
    let mut cursor: Option<String> = None;
    let mut parts = 0;
    loop {
        let uri = match &cursor {
            None => "/api/v3/audit/export?format=csv".to_string(),
            Some(c) => format!("/api/v3/audit/export?format=csv&cursor={c}"),
        };
        let r = s.get(&uri, Some(ALICE)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.content_type, "text/csv; charset=utf-8");
        assert!(r.text.len() < 1024 * 1024 + 4096, "{}", r.text.len());
        parts += 1;
        csv.push_str(&r.text);
        match r.headers.get("x-next-cursor") {
            Some(c) => cursor = Some(c.to_str().unwrap().to_string()),
            None => break,
        }
    }
    assert!(parts >= 3, "3 MB of CSV comes in parts, got {parts}");
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(rows[0].starts_with("seq,id,at,actor_kind"), "{}", rows[0]);
    assert_eq!(rows.len(), 10_001, "a header and every event once");
    for (i, row) in rows[1..].iter().enumerate() {
        assert!(
            row.starts_with(&format!("{},", i + 1)),
            "in chain order: {row}"
        );
    }
    // Formulas defused, quotes doubled.
    assert!(
        rows[1].contains(",\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\","),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].contains(",\"curl/8.5, \"\"quoted\"\"\","),
        "{}",
        rows[2]
    );

    // JSON Lines from a cursor (after event 9,990), and filtered: one event per line.
    let after =
        shared::http::cursor::encode(&shared::ports::PageKey(std::collections::BTreeMap::from([
            ("PK".to_string(), "AUDIT#U#alice".to_string()),
            ("SK".to_string(), format!("E#{:012}", 9_990)),
        ])));
    let r = s
        .get(
            &format!("/api/v3/audit/export?format=json&cursor={after}"),
            Some(ALICE),
        )
        .await;
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (9_991..=10_000).collect::<Vec<u64>>());
    assert!(r.headers.get("x-next-cursor").is_none(), "the last part");
    let r = s
        .get(
            &format!("/api/v3/audit/export?format=json&target=w9999&cursor={after}"),
            Some(ALICE),
        )
        .await;
    let only: Value = serde_json::from_str(r.text.trim()).unwrap();
    assert_eq!(
        (only["seq"].as_u64(), only["detail"]["k"].as_u64()),
        (Some(10_000), Some(9_999))
    );

    // The use case reads a page (at most 500 events) at a time and writes each as it comes.
    let counting = CountingLog {
        inner: s.store.clone(),
        largest_read: AtomicUsize::new(0),
    };
    let chain = shared::domain::audit::Chain::User(ALICE.into());
    let part = export(
        &counting,
        &chain,
        &Default::default(),
        ExportFormat::JsonLines,
        None,
        1024 * 1024,
    )
    .await
    .unwrap();
    assert!(part.next.is_some());
    assert!(part.text.len() < 1024 * 1024 + 4096, "{}", part.text.len());
    assert!(part.events > 500 && part.events < 10_000, "{}", part.events);
    assert_eq!(counting.largest_read.load(Ordering::SeqCst), 500);
    for bad in ["format=xml", "cursor=nope", "limit=5"] {
        let r = s
            .get(&format!("/api/v3/audit/export?{bad}"), Some(ALICE))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let bob = s.get("/api/v3/audit/export?user=alice", Some(BOB)).await;
    assert_eq!(bob.status, 403);
}

#[tokio::test]
async fn schedule_changes_are_audited_but_their_fires_are_not() {
    use shared::domain::schedule::{Fire, Schedule};
    use shared::ports::Schedules;
    let s = stack().await;
    let now = Utc::now();
    let mut sched = Schedule {
        id: shared::domain::ids::new_id(),
        workflow_id: "01J00000000000000000000000".into(),
        owner_id: ALICE.into(),
        expression: "rate(1 hour)".into(),
        timezone: "Europe/Paris".into(),
        run: serde_json::json!({"plan": {"mode": "continue", "steps": 1}}),
        enabled: true,
        created_at: now,
        updated_at: now,
        version: 1,
        last_fire: None,
    };
    shared::context::with_changed_by(alices_request(), async {
        assert!(s.store.create_schedule(&sched, 20).await.unwrap());
        let mut changed = sched.clone();
        changed.enabled = false;
        changed.version = 2;
        s.store.update_schedule(&changed, 1).await.unwrap();
        sched = changed;
    })
    .await;
    // The scheduler records a fire on the schedule: no audit event of its own.
    let fire = Fire {
        scheduled_time: now,
        run_id: None,
        skipped: Some("the workflow is paused".into()),
    };
    s.store
        .record_fire(&sched.workflow_id, &sched.id, &fire)
        .await
        .unwrap();
    shared::context::with_changed_by(alices_request(), async {
        s.store
            .delete_schedule(&sched.workflow_id, &sched.id)
            .await
            .unwrap();
    })
    .await;
    let event = localstack::testing::stream_event(&s.table).await;
    let out = process(s.store.as_ref().into(), event).await;
    assert!(out.failures.is_empty(), "{out:?}");
    let page = s.ok("/api/v3/audit", ALICE).await;
    assert_eq!(
        actions(&page),
        ["schedule.created", "schedule.changed", "schedule.deleted"],
        "{page}"
    );
    let items = page["items"].as_array().unwrap();
    for e in items {
        assert_eq!(e["target"]["id"], sched.id.as_str());
    }
    // Newest first: deleted, changed, created. A deleted item has no new image to carry who
    // deleted it (README, "Audit trail").
    for e in &items[1..] {
        assert_eq!(e["actor"]["id"], ALICE, "{e}");
        assert_eq!(e["request_id"], "req-alice-1", "{e}");
    }
    assert_eq!(items[0]["actor"]["kind"], "unknown");
    assert_eq!(items[1]["detail"]["enabled"], false);
}

#[tokio::test]
async fn compliance_reports_are_for_admins_sealed_and_downloadable() {
    use shared::app::audit::{Note, make_report, note};
    use shared::domain::audit::{Actor, Chain, Outcome, Target};
    let s = stack().await;
    // A role change and a failed sign-in, through the inbox and the stream like any note.
    for (action, outcome, detail) in [
        (
            "account.role_changed",
            Outcome::Success,
            serde_json::json!({"from": "editor", "to": "admin"}),
        ),
        (
            "auth.login_failed",
            Outcome::Failure,
            serde_json::json!({"reason": "password"}),
        ),
    ] {
        let n = Note {
            chain: Chain::User(BOB.into()),
            action,
            target: Target::new("account", BOB),
            outcome,
            actor: Actor::user(ADMIN),
            detail,
        };
        note(s.store.as_ref(), n, Utc::now()).await;
    }
    let event = localstack::testing::stream_event(&s.table).await;
    process(s.store.as_ref().into(), event.clone()).await;
    // A retried batch counts nothing twice.
    process(s.store.as_ref().into(), event).await;
    let today = Utc::now().date_naive();
    let report = make_report(s.store.as_ref(), s.sealer.as_ref(), today, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.figures.events, 2);
    assert_eq!(report.figures.failed_logins, 1);
    assert_eq!(report.figures.by_class["security"], 2);
    assert_eq!(report.figures.privilege_changes.len(), 1);

    let uri = format!("/api/v3/audit/reports/{today}");
    let r = s.ok(&uri, ADMIN).await;
    assert_eq!(r["mac_valid"], true, "{r}");
    assert_eq!(r["figures"]["by_action"]["account.role_changed"], 1, "{r}");
    assert_eq!(
        r["figures"]["privilege_changes"][0]["detail"]["to"],
        "admin"
    );
    let csv = s.get(&format!("{uri}?format=csv"), Some(ADMIN)).await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert!(csv.text.contains("failed_logins,,1\r\n"), "{}", csv.text);
    assert!(csv.text.contains("privilege_change,"), "{}", csv.text);
    let list = s.ok("/api/v3/audit/reports", ADMIN).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Altered in the table, the report no longer matches its seal.
    let item = s
        .client
        .get_item()
        .table_name(&s.table)
        .key("PK", AttributeValue::S("AUDITREPORT".into()))
        .key("SK", AttributeValue::S(format!("D#{today}")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let text = item["report"]
        .as_s()
        .unwrap()
        .replace("\"failed_logins\":1", "\"failed_logins\":0");
    s.client
        .put_item()
        .table_name(&s.table)
        .item("PK", AttributeValue::S("AUDITREPORT".into()))
        .item("SK", AttributeValue::S(format!("D#{today}")))
        .item("report", AttributeValue::S(text))
        .send()
        .await
        .unwrap();
    assert_eq!(s.ok(&uri, ADMIN).await["mac_valid"], false);

    for (who, path, status) in [
        (BOB, uri.clone(), 403),
        (BOB, "/api/v3/audit/reports".to_string(), 403),
        (ADMIN, "/api/v3/audit/reports/2001-01-01".to_string(), 404),
        (ADMIN, "/api/v3/audit/reports/yesterday".to_string(), 400),
        (ADMIN, format!("{uri}?format=pdf"), 400),
    ] {
        let r = s.get(&path, Some(who)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn events_expire_by_class_and_verify_counts_the_expired_ones() {
    use shared::domain::audit::{Actor, Chain, Draft, Outcome, Retention, Target};
    use shared::ports::AuditLog;
    let s = stack().await;
    let retention = Retention {
        security_days: 400,
        data_days: 90,
    };
    let store =
        DynamoStore::new(s.client.clone(), s.table.clone()).with_audit_retention(Some(retention));
    let long_ago = Utc::now() - Duration::days(200);
    let draft = |action: &str, at| Draft {
        id: shared::domain::ids::new_id(),
        at,
        actor: Actor::user(ALICE),
        action: action.into(),
        target: Target::new("account", ALICE),
        outcome: Outcome::Success,
        source_ip: None,
        user_agent: None,
        request_id: None,
        detail: serde_json::Map::new(),
    };
    let chain = Chain::User(ALICE.into());
    let drafts = [
        draft("run.started", long_ago),
        draft("run.succeeded", long_ago),
        draft("auth.login_succeeded", Utc::now()),
    ];
    assert!(store.append(&chain, None, &drafts).await.unwrap());
    let expires = |seq: u64| {
        let key = audit_key(ALICE, seq);
        let client = s.client.clone();
        let table = s.table.clone();
        async move {
            let item = client
                .get_item()
                .table_name(table)
                .set_key(Some(key))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            item["expires_at"].as_n().unwrap().parse::<i64>().unwrap()
        }
    };
    assert_eq!(
        expires(1).await,
        (long_ago + Duration::days(90)).timestamp()
    );
    let third = store.event(&chain, 3).await.unwrap().unwrap();
    assert_eq!(
        expires(3).await,
        (third.at + Duration::days(400)).timestamp()
    );
    // The TTL removes the two data events (long past their 90 days).
    for seq in [1, 2] {
        s.client
            .delete_item()
            .table_name(&s.table)
            .set_key(Some(audit_key(ALICE, seq)))
            .send()
            .await
            .unwrap();
    }
    let now = Utc::now();
    let v = shared::app::audit::verify(
        &store,
        s.sealer.as_ref(),
        &chain,
        Some(retention.horizon(now)),
    )
    .await
    .unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.checked, v.expired), (1, 2));
    // Without retention (or with a longer one), the same gap is a deletion.
    let v = shared::app::audit::verify(&store, s.sealer.as_ref(), &chain, None)
        .await
        .unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_broken.unwrap().seq, 1);
}
