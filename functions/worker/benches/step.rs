//! Worker CPU per step with I/O replayed (DESIGN.md §8: worker overhead per step, generation
//! excluded, CPU p50 <= 200 us).
//!
//! Each benchmark hands [`worker::handle`] an SQS event of one step message, as the Lambda
//! runtime would, against DynamoDB and SQS clients whose answers come from `aws-smithy-mocks`:
//! no network, no sleeping, one current-thread runtime (as in `main.rs`), so an iteration's time
//! is its CPU time: parsing the message, decoding the run, workflow and node items, the claim and
//! commit expressions, rendering the prompt, the metrics and quality scores of the new text, the
//! SDK's own per-request work (serialisation, endpoint resolution, SigV4, parsing the replayed
//! responses) and the step's log line (no subscriber is installed here; `main.rs` installs one).
//!
//! The replayed answers are recorded, not written by hand: at start the benchmark makes a
//! three-step `continue` chain in the emulator (`AWS_ENDPOINT_URL`; `make bench-worker` starts
//! it), runs its first step for real, then runs the second (a middle step) with an interceptor
//! recording every HTTP response the worker's clients receive. The replay answers each
//! operation with its recorded responses in order (a middle step: one BatchGetItem of the run,
//! workflow, node and parent; the claim's UpdateItem; the commit's TransactWriteItems; one
//! SendMessage). Before measuring, one replayed step is checked to
//! send exactly the recorded requests, so the benchmark cannot measure a step that was dropped
//! early.
//!
//! Benchmarks (group `worker_step`):
//! - `builtin`: the step with the `builtin` generator, as `make dev` runs it;
//! - `fixed_text`: the step with a generator that returns a ready text of the same length at
//!   once: the worker's overhead with generation excluded (the budget's figure);
//! - `read_inputs`: the step's first read alone (one BatchGetItem, replayed, decoded);
//! - `claim_request`: the claim alone (one UpdateItem, replayed): about one SDK request's cost;
//! - `builtin_generate`: the `builtin` generator alone on a prompt like the step's.
//!
//! Run: `make bench-worker` (or `cargo bench -p worker --bench step` with the emulator up).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_sqs::Client as Sqs;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::{QueueUrls, SqsQueue};
use shared::domain::run::StepError;
use shared::domain::{Principal, Role, ids};
use shared::generators::Builtin;
use shared::ports::{
    GenFut, Generated, Generation, OnDelta, Runs, StepMessage, TextGenerator, Workflows,
};
use shared::testing::runs::{active_workflow, chain, message};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Runtime;
use worker::{Deps, handle};

/// One HTTP response a client received, with the operation it answered.
#[derive(Clone, Debug)]
struct Recorded {
    /// `Service.Operation`, for instance `DynamoDB.GetItem`.
    op: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Records every response (after the SDK has read its body) while `on` is set.
#[derive(Clone, Default, Debug)]
struct Recorder {
    on: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "ResponseRecorder"
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !self.on.load(Ordering::SeqCst) {
            return Ok(());
        }
        let op = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_default();
        let response = ctx.response();
        let body = response
            .body()
            .bytes()
            .ok_or("a response body not in memory")?
            .to_vec();
        let recorded = Recorded {
            op,
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        };
        self.seen.lock().map_err(|e| e.to_string())?.push(recorded);
        Ok(())
    }
}

/// A generator that answers at once with a ready text: the step without generation.
struct FixedText(String);

impl TextGenerator for FixedText {
    fn generate<'a>(&'a self, request: &'a Generation, _: OnDelta<'a>) -> GenFut<'a> {
        Box::pin(async move {
            Ok::<_, StepError>(Generated {
                input_tokens: request.prompt.split_whitespace().count() as u64,
                output_tokens: self.0.split_whitespace().count() as u64,
                text: self.0.clone(),
                finish_reason: "stop".into(),
            })
        })
    }
}

/// The recorded middle step and what replays it.
struct Fixture {
    rt: Runtime,
    /// The middle step's message.
    message: StepMessage,
    /// Every response of the middle step, in the order received.
    recorded: Vec<Recorded>,
    /// The recorded table's name (BatchGetItem answers by table).
    table: String,
}

impl Fixture {
    fn record() -> Fixture {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let recorder = Recorder::default();
        let (message, table) = rt.block_on(async {
            let (plain, table) = localstack::testing::fresh_table("worker-bench").await;
            let client = Dynamo::from_conf(
                plain
                    .config()
                    .to_builder()
                    .interceptor(recorder.clone())
                    .build(),
            );
            let sdk = localstack::testing::emulator_config().await;
            let plain_sqs = Sqs::new(&sdk);
            let urls = localstack::testing::step_queues(&plain_sqs, "bench").await;
            let sqs = Sqs::from_conf(
                plain_sqs
                    .config()
                    .to_builder()
                    .interceptor(recorder.clone())
                    .build(),
            );
            let deps = Deps {
                store: DynamoStore::new(client, table.clone()),
                queue: SqsQueue::new(sqs, QueueUrls::from(urls)),
                generator: Builtin,
                default_model: "builtin".into(),
                poster: None,
            };
            let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
            let owner = Principal::user(ids::new_id(), Role::Editor);
            let workflow = active_workflow(&owner, "Benchmarked chain", now);
            deps.store
                .create_workflow(&workflow, &[], None)
                .await
                .unwrap();
            let (r, steps, nodes) = chain(&workflow, 3, None, 4, now);
            deps.store
                .create_run(
                    &owner,
                    &r,
                    &steps,
                    &nodes,
                    workflow.settings.max_nodes(),
                    None,
                )
                .await
                .unwrap();
            let first = handle(&deps, event(&message(&r, &steps[0])), None).await;
            assert!(
                first.batch_item_failures.is_empty(),
                "the first step failed"
            );
            recorder.on.store(true, Ordering::SeqCst);
            let middle = message(&r, &steps[1]);
            let second = handle(&deps, event(&middle), None).await;
            recorder.on.store(false, Ordering::SeqCst);
            assert!(
                second.batch_item_failures.is_empty(),
                "the middle step failed"
            );
            let (_, done) = deps
                .store
                .get_run(&workflow.id, &r.id)
                .await
                .unwrap()
                .unwrap();
            assert!(
                done[1].status.is_done(),
                "the middle step is not done: {done:?}"
            );
            (middle, table)
        });
        let recorded = std::mem::take(&mut *recorder.seen.lock().unwrap());
        for r in &recorded {
            assert_eq!(r.status, 200, "{} answered {}", r.op, r.status);
        }
        Fixture {
            rt,
            message,
            recorded,
            table,
        }
    }

    /// The recorded responses of `op`, in order.
    fn of(&self, op: &str) -> Vec<Recorded> {
        self.recorded
            .iter()
            .filter(|r| r.op == op)
            .cloned()
            .collect()
    }

    /// Rules answering every recorded operation with its recorded responses, in turn, forever.
    fn rules(&self) -> (Vec<Rule>, Vec<Rule>) {
        let mut dynamo = Vec::new();
        let mut sqs = Vec::new();
        let ops: BTreeMap<&str, usize> = self.recorded.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.op.as_str()).or_default() += 1;
            m
        });
        for op in ops.keys() {
            let replay = cycle(self.of(op));
            match *op {
                "DynamoDB.GetItem" => {
                    dynamo.push(mock!(Dynamo::get_item).then_http_response(replay))
                }
                "DynamoDB.BatchGetItem" => {
                    dynamo.push(mock!(Dynamo::batch_get_item).then_http_response(replay))
                }
                "DynamoDB.Query" => dynamo.push(mock!(Dynamo::query).then_http_response(replay)),
                "DynamoDB.UpdateItem" => {
                    dynamo.push(mock!(Dynamo::update_item).then_http_response(replay))
                }
                "DynamoDB.PutItem" => {
                    dynamo.push(mock!(Dynamo::put_item).then_http_response(replay))
                }
                "DynamoDB.TransactWriteItems" => {
                    dynamo.push(mock!(Dynamo::transact_write_items).then_http_response(replay))
                }
                "SQS.SendMessage" => sqs.push(mock!(Sqs::send_message).then_http_response(replay)),
                other => panic!("the worker sent {other}; add a replay rule for it"),
            }
        }
        (dynamo, sqs)
    }

    /// The worker's dependencies over replaying clients, with `generator`; the rules, to count
    /// their calls.
    fn deps<G>(&self, generator: G) -> (Deps<DynamoStore, SqsQueue, G>, Vec<Rule>) {
        let (dynamo, sqs) = self.rules();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &dynamo);
        let queue = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &sqs);
        let url = "https://sqs.us-east-1.amazonaws.com/000000000000/steps".to_string();
        let deps = Deps {
            store: DynamoStore::new(client, self.table.clone()),
            queue: SqsQueue::new(
                queue,
                QueueUrls {
                    critical: url.clone(),
                    high: url.clone(),
                    normal: url.clone(),
                    low: url,
                },
            ),
            generator,
            default_model: "builtin".into(),
            poster: None,
        };
        (deps, dynamo.into_iter().chain(sqs).collect())
    }

    /// One replayed step, checked to send exactly the recorded requests (so it was claimed,
    /// generated, committed and queued its next step, not dropped early).
    fn check<G: TextGenerator>(&self, deps: &Deps<DynamoStore, SqsQueue, G>, rules: &[Rule]) {
        let response = self.rt.block_on(handle(deps, event(&self.message), None));
        assert!(response.batch_item_failures.is_empty());
        let calls: usize = rules.iter().map(Rule::num_calls).sum();
        assert_eq!(calls, self.recorded.len(), "replayed requests of one step");
    }
}

/// Answers with `responses` in turn, starting over after the last.
fn cycle(responses: Vec<Recorded>) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    let next = AtomicUsize::new(0);
    move || {
        let r = &responses[next.fetch_add(1, Ordering::Relaxed) % responses.len()];
        let mut response = HttpResponse::new(
            StatusCode::try_from(r.status).expect("a status"),
            SdkBody::from(r.body.clone()),
        );
        for (k, v) in &r.headers {
            response.headers_mut().insert(k.clone(), v.clone());
        }
        response
    }
}

/// The event of one step message, as the SQS event source hands it over.
fn event(message: &StepMessage) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some(ids::new_id());
    record.body = Some(serde_json::to_string(message).expect("a step message"));
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

fn benches(c: &mut Criterion) {
    let f = Fixture::record();
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &f.recorded {
        *summary.entry(r.op.as_str()).or_default() += 1;
    }
    eprintln!(
        "recorded middle step: {:?}",
        f.recorded.iter().map(|r| r.op.as_str()).collect::<Vec<_>>()
    );
    eprintln!("per operation: {summary:?}");

    let (builtin, builtin_rules) = f.deps(Builtin);
    f.check(&builtin, &builtin_rules);
    // A ready text of the length `builtin` writes (its cap, 120 words).
    let text = Builtin::text("a prompt like the step's", 120);
    let (fixed, fixed_rules) = f.deps(FixedText(text));
    f.check(&fixed, &fixed_rules);

    let mut group = c.benchmark_group("worker_step");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("builtin", |b| {
        b.iter_batched(
            || event(&f.message),
            |e| f.rt.block_on(handle(&builtin, e, None)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("fixed_text", |b| {
        b.iter_batched(
            || event(&f.message),
            |e| f.rt.block_on(handle(&fixed, e, None)),
            BatchSize::SmallInput,
        )
    });
    // The prompt of a middle step: the parent's text continued (about 120 words of it).
    let request = Generation {
        model: "builtin".into(),
        system: None,
        prompt: Builtin::text("the parent's document", 120),
        max_tokens: 1024,
        temperature: 0.7,
        timeout: Duration::from_secs(120),
    };
    // Two parts of the step alone, through the same replaying clients: the first read (one
    // BatchGetItem: decoding the run with its steps, the workflow and two nodes) and the claim
    // (one UpdateItem with a small request and an empty answer: about what any SDK request
    // costs here, whatever its content).
    let store = &fixed.store;
    let m = &f.message;
    group.bench_function("read_inputs", |b| {
        b.iter(|| {
            f.rt.block_on(store.get_run_with(
                &m.workflow_id,
                &m.run_id,
                m.node_id.as_deref(),
                m.parent_node_id.as_deref(),
            ))
            .unwrap()
        })
    });
    let now = chrono::Utc::now();
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (_, steps, _) = chain(&active_workflow(&owner, "Claimed", now), 2, None, 3, now);
    group.bench_function("claim_request", |b| {
        b.iter(|| {
            f.rt.block_on(store.claim_step(
                black_box(&steps[1]),
                shared::domain::run::StepStatus::Pending,
                0,
                now,
            ))
            .unwrap()
        })
    });
    group.bench_function("builtin_generate", |b| {
        b.iter(|| {
            f.rt.block_on(Builtin.generate(black_box(&request), &|_| {}))
        })
    });
    group.finish();
}

criterion_group!(step, benches);
criterion_main!(step);
