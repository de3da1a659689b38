//! Handler CPU per request with DynamoDB replayed (DESIGN.md §8: p50 <= 100 us for get, create
//! and list).
//!
//! Each benchmark sends one request through [`api_workflows::handle`] exactly as the Lambda
//! runtime would hand it over, against a DynamoDB client whose responses come from
//! `aws-smithy-mocks`: no network, no sleeping, so an iteration is only our CPU work (routing,
//! ES256 verification, JSON parsing and validation, item conversion, response serialisation)
//! plus the SDK's own per-request work (request serialisation, endpoint resolution, SigV4).
//!
//! DynamoDB's answers are replayed two ways, one benchmark each:
//! - `modeled`: the mock hands the SDK a ready-made output struct (`then_output`), so the SDK
//!   never parses a response body;
//! - `http_replay`: the mock answers with the HTTP body DynamoDB would send (`then_http_response`),
//!   so the SDK also parses the wire JSON into items, as it does in production.
//!
//! `verify_token` isolates `JwtVerifier::verify`, the ES256 share of every authenticated request.
//! Every request also reads the caller's account state and session (one more replayed
//! BatchGetItem), as in production.
//!
//! Not measured: building the request from the API Gateway event, and the `request` log line
//! (no tracing subscriber is installed here; `main.rs` installs one).
//!
//! Run: `cargo bench -p api-workflows --bench handler`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use api_workflows::{Api, handle};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::aws::dynamo::{DynamoAccounts, DynamoStore, WORKFLOW_FIELDS};
use shared::clock::SystemClock;
use shared::http::pipeline::Pipeline;
use shared::http::{Authenticator, Gate, KeyRing};
use shared::testing::TestKeys;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;

type Item = HashMap<String, AttributeValue>;
/// Builds a fresh request of one kind (the handler consumes it).
type MakeRequest = fn(&Fixture) -> Request;

/// The caller of every request; seeded workflows belong to it, or get and list would answer 404
/// or an empty page.
const USER: &str = "bench-user";
const TABLE: &str = "bench-table";
/// Workflows in the list page: the default and most common page size.
const PAGE: usize = 20;
/// A small create body without nodes: the common case of the API.
const CREATE_BODY: &str = r#"{"name":"Quarterly report","description":"Numbers and commentary for the third quarter","tags":["finance","q3"],"settings":{"model":"gpt-4o-mini","timeout_s":300}}"#;

/// Everything the benchmarks share, built once.
struct Fixture {
    rt: Runtime,
    keys: TestKeys,
    /// `Authorization` header value with a token valid for the whole run.
    authorization: String,
    /// The workflow `get_workflow` reads.
    id: String,
    /// Real workflow items as the store writes them, newest first (the order of the list).
    items: Vec<Item>,
}

/// Which way DynamoDB's answers are replayed (see the module docs).
#[derive(Clone, Copy)]
enum Replay {
    Modeled,
    Http,
}

impl Replay {
    fn name(self) -> &'static str {
        match self {
            Replay::Modeled => "modeled",
            Replay::Http => "http_replay",
        }
    }
}

impl Fixture {
    fn new() -> Fixture {
        // The handler is async but never waits on anything real here; a current-thread runtime,
        // as in `main.rs`, adds the least scheduling overhead around it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let keys = TestKeys::generate("bench");
        // `TestKeys::token` expires after 15 minutes; a long `--measurement-time` must not turn
        // the benchmarks into 401 measurements halfway through.
        let mut claims = TestKeys::claims(USER);
        claims["exp"] = json!(unix_now() + 24 * 3600);
        let authorization = format!("Bearer {}", keys.sign(&claims));
        let mut fixture = Fixture {
            rt,
            keys,
            authorization,
            id: String::new(),
            items: Vec::new(),
        };
        fixture.items = fixture.seed_items();
        fixture.id = match &fixture.items[0]["id"] {
            AttributeValue::S(id) => id.clone(),
            other => panic!("workflow item without a string id: {other:?}"),
        };
        fixture
    }

    /// Creates `PAGE` workflows through the handler against a mock that records the items of
    /// each TransactWriteItems: the items the benchmarks replay are then exactly what the store
    /// writes (keys, `type`, `search_text`, GSI1 keys), without reaching into its private code.
    fn seed_items(&self) -> Vec<Item> {
        let written: Arc<Mutex<Vec<Item>>> = Arc::default();
        let record = {
            let written = written.clone();
            mock!(Client::transact_write_items).then_compute_output(move |input| {
                let put = input.transact_items()[0]
                    .put()
                    .expect("create puts the workflow");
                written.lock().unwrap().push(put.item().clone());
                TransactWriteItemsOutput::builder().build()
            })
        };
        let api = self.api(mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&record]
        ));
        for i in 0..PAGE {
            let body = json!({
                "name": format!("Quarterly report {i}"),
                "description": "Numbers and commentary for the third quarter, reviewed by finance",
                "tags": ["finance", "q3"],
                "settings": {"model": "gpt-4o-mini", "timeout_s": 300},
            });
            let response = self
                .rt
                .block_on(handle(&api, self.create_request(&body.to_string())));
            assert_eq!(response.status(), 201, "seeding: {}", text(&response));
        }
        let mut items = std::mem::take(&mut *written.lock().unwrap());
        assert_eq!(items.len(), PAGE, "one item per create");
        // GSI1 is queried backwards: newest first.
        items.reverse();
        items
    }

    /// The handler's dependencies with `client` as the table; the rest as in `main.rs`.
    fn api(&self, client: Client) -> Api {
        // Every request also reads the caller's account state and session (one BatchGetItem).
        let state: Item = HashMap::from([
            ("SK".to_string(), AttributeValue::S("#ACCOUNT".into())),
            ("role".to_string(), AttributeValue::S("editor".into())),
            ("status".to_string(), AttributeValue::S("active".into())),
            (
                "tokens_valid_after".to_string(),
                AttributeValue::S("2020-01-01T00:00:00Z".into()),
            ),
        ]);
        let session: Item = HashMap::from([(
            "SK".to_string(),
            AttributeValue::S(format!("SESSION#{}", shared::testing::session_of(USER))),
        )]);
        let account = mock!(Client::batch_get_item).then_output(move || {
            BatchGetItemOutput::builder()
                .responses(TABLE, vec![state.clone(), session.clone()])
                .build()
        });
        let accounts = Arc::new(DynamoAccounts::new(
            mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&account]),
            TABLE,
        ));
        let store = Arc::new(DynamoStore::new(client, TABLE));
        Api {
            store: store.clone(),
            schedules: store,
            triggers: Arc::new(shared::testing::schedules::RecordingTriggers::new()),
            queue: Arc::new(shared::testing::runs::MemoryQueue::new()),
            dead_letters: Arc::new(shared::testing::runs::MemoryDeadLetters::new()),
            accounts: accounts.clone(),
            pipeline: Pipeline {
                auth: Arc::new(Authenticator {
                    keys: KeyRing::fixed(self.keys.verifier()),
                    accounts,
                }),
                gate: Gate::open(),
                clock: Arc::new(SystemClock),
                audit: Arc::new(shared::testing::audit::RecordingInbox::default()),
            },
        }
    }

    /// An API whose table answers every TransactWriteItems, GetItem and Query, forever, with the
    /// seeded items. `then_output`/`then_http_response` build rules that repeat without limit
    /// (`repeatedly()`), and `RuleMode::MatchAny` keeps them in place after use (Sequential
    /// would drop such a rule after one call).
    fn replaying_api(&self, replay: Replay) -> Api {
        let item = self.items[0].clone();
        // A list asks only for the workflow's own attributes (a ProjectionExpression).
        let items: Vec<Item> = self
            .items
            .iter()
            .map(|i| {
                i.iter()
                    .filter(|(k, _)| WORKFLOW_FIELDS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        // A full page means more may follow: DynamoDB then returns the key of the last item,
        // which the handler turns into `next_cursor`.
        let last_key: Item = self.items[PAGE - 1]
            .iter()
            .filter(|(k, _)| ["PK", "SK", "GSI1PK", "GSI1SK"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rules: [Rule; 3] = match replay {
            Replay::Modeled => [
                mock!(Client::transact_write_items)
                    .then_output(|| TransactWriteItemsOutput::builder().build()),
                mock!(Client::get_item).then_output(move || {
                    GetItemOutput::builder()
                        .set_item(Some(item.clone()))
                        .build()
                }),
                mock!(Client::query).then_output(move || {
                    QueryOutput::builder()
                        .set_items(Some(items.clone()))
                        .count(PAGE as i32)
                        .scanned_count(PAGE as i32)
                        .set_last_evaluated_key(Some(last_key.clone()))
                        .build()
                }),
            ],
            Replay::Http => {
                let get = json!({"Item": wire_item(&item)}).to_string();
                let query = json!({
                    "Count": PAGE,
                    "ScannedCount": PAGE,
                    "Items": items.iter().map(wire_item).collect::<Vec<_>>(),
                    "LastEvaluatedKey": wire_item(&last_key),
                })
                .to_string();
                [
                    mock!(Client::transact_write_items).then_http_response(|| ok("{}".into())),
                    mock!(Client::get_item).then_http_response(move || ok(get.clone())),
                    mock!(Client::query).then_http_response(move || ok(query.clone())),
                ]
            }
        };
        self.api(mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &rules))
    }

    /// The request as API Gateway hands it over (route key and path parameters from the template).
    fn request(&self, method: &str, uri: &str, body: Body) -> Request {
        let mut headers = vec![("authorization", self.authorization.as_str())];
        if !matches!(body, Body::Empty) {
            headers.push(("content-type", "application/json"));
        }
        localstack::testing::gateway_request(method, uri, &headers, body, "203.0.113.9")
    }

    fn create_request(&self, body: &str) -> Request {
        self.request("POST", "/api/v3/workflows", Body::Text(body.to_string()))
    }

    fn get_request(&self) -> Request {
        let uri = format!("/api/v3/workflows/{}", self.id);
        self.request("GET", &uri, Body::Empty)
    }

    fn list_request(&self) -> Request {
        let uri = format!("/api/v3/workflows?limit={PAGE}");
        self.request("GET", &uri, Body::Empty)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A 200 response of the DynamoDB JSON protocol.
fn ok(body: String) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(200u16).expect("200"),
        SdkBody::from(body),
    )
}

/// An item in DynamoDB's wire format (`{"S": ..}`, `{"N": ..}`, `{"M": ..}`, ...).
fn wire_item(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), wire(v))).collect())
}

fn wire(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::M(m) => json!({ "M": wire_item(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(wire).collect::<Vec<_>>() }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        other => panic!("workflow items hold no {other:?}"),
    }
}

fn text(response: &Response<Body>) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}

/// Sends one request and checks the answer is the success being measured: a benchmark of 401 or
/// 404 answers would look fast and mean nothing.
fn check(f: &Fixture, api: &Api, req: Request, status: u16) -> Value {
    let response = f.rt.block_on(handle(api, req));
    assert_eq!(response.status(), status, "{}", text(&response));
    serde_json::from_str(&text(&response)).expect("JSON body")
}

fn benches(c: &mut Criterion) {
    let f = Fixture::new();

    let apis = [Replay::Modeled, Replay::Http].map(|replay| {
        let api = f.replaying_api(replay);
        let created = check(&f, &api, f.create_request(CREATE_BODY), 201);
        assert_eq!(created["name"], "Quarterly report");
        let got = check(&f, &api, f.get_request(), 200);
        assert_eq!(got["id"], f.id.as_str());
        assert_eq!(got["owner_id"], USER);
        let listed = check(&f, &api, f.list_request(), 200);
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(PAGE));
        assert!(
            listed["next_cursor"].is_string(),
            "a full page has a cursor"
        );
        (replay, api)
    });

    // One group per request, one benchmark per replay. Requests are built outside the timed
    // routine (`iter_batched`): the Lambda runtime builds them from the event before the handler
    // runs. Responses are dropped outside it too.
    let requests: [(&str, MakeRequest); 3] = [
        ("create_workflow", |f| f.create_request(CREATE_BODY)),
        ("get_workflow", Fixture::get_request),
        ("list_workflows_20", Fixture::list_request),
    ];
    for (name, request) in requests {
        let mut group = c.benchmark_group(name);
        for (replay, api) in &apis {
            group.bench_function(replay.name(), |b| {
                b.iter_batched(
                    || request(&f),
                    |req| f.rt.block_on(handle(api, req)),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }

    let verifier = f.keys.verifier();
    let header = HeaderValue::from_str(&f.authorization).expect("header value");
    assert_eq!(
        verifier.verify(Some(&header)).expect("valid token").sub,
        USER
    );
    c.bench_function("verify_token", |b| {
        b.iter(|| verifier.verify(black_box(Some(&header))))
    });
}

criterion_group!(handler, benches);
criterion_main!(handler);
