//! A table of its own, a handler wired to it, tokens for any user, and a count of the DynamoDB
//! requests each call makes.

use api_workflows::{Api, handle};
use aws_sdk_dynamodb::Client;
use http::HeaderMap;
use lambda_http::Body;
use serde_json::Value;
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::aws::sqs::{QueueUrls, SqsDeadLetters};
use shared::clock::SystemClock;
use shared::domain::account::{Account, ApiKey};
use shared::domain::{Role, Scope, ids};
use shared::http::pipeline::Pipeline;
use shared::http::{Authenticator, Gate, KeyRing};
use shared::ports::{Accounts, ApiKeys};
use shared::ports::{DeadLetters, StepQueue};
use shared::testing::TestKeys;
use shared::testing::runs::{MemoryDeadLetters, MemoryQueue};
use shared::testing::schedules::RecordingTriggers;
use std::collections::HashSet;
use std::sync::Arc;

/// Records the operation name of every request sent to DynamoDB (retries included).
pub type Counter = shared::testing::RequestCounter;

pub struct Harness {
    pub api: Api,
    pub client: Client,
    pub table: String,
    pub keys: TestKeys,
    /// Requests of the workflow store (the operation itself).
    pub counter: Counter,
    /// Requests of the account store (authentication, share lookups).
    pub auth_counter: Counter,
    pub accounts: Arc<DynamoAccounts>,
    /// What would have been sent to EventBridge Scheduler.
    pub triggers: Arc<RecordingTriggers>,
    /// The audit notes the handlers and the pipeline left.
    pub audit: Arc<shared::testing::audit::RecordingInbox>,
    /// What starting and controlling runs queued.
    pub queue: Arc<MemoryQueue>,
    /// The step queues and their dead-letter queues in the emulator, when the harness was made
    /// with them ([`Harness::with_queues`]); the dead-letter routes use an empty in-memory
    /// fake otherwise.
    pub queues: Option<Queues>,
    known: tokio::sync::Mutex<HashSet<String>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer of `status` and `slug`, returning its body.
    pub fn problem(&self, status: u16, slug: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(
            self.body["type"],
            format!("urn:dwc:problem:{slug}"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        &self.body
    }

    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.body
    }
}

/// A test's own step queues and dead-letter queues in the emulator (the template's, under
/// names of their own).
pub struct Queues {
    pub sqs: aws_sdk_sqs::Client,
    pub sources: QueueUrls,
    pub dead_letters: QueueUrls,
}

impl Queues {
    /// Sends `body` straight to `queue`'s dead-letter queue (as the redrive policy would have
    /// moved it), grouped by `group`.
    pub async fn put_dead(&self, queue: StepQueue, body: &str, group: &str) {
        self.sqs
            .send_message()
            .queue_url(self.dead_letters.by_name(queue))
            .message_body(body)
            .message_group_id(group)
            .send()
            .await
            .unwrap();
    }

    /// Receives (and deletes) every message `url` holds now: bodies and groups.
    pub async fn drain(&self, url: &str) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                )
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return out;
            }
            for m in got {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                let group = m
                    .attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    })
                    .cloned();
                out.push((m.body.unwrap_or_default(), group));
            }
        }
    }
}

pub const ALICE: &str = "alice";
pub const BOB: &str = "bob";

impl Harness {
    pub async fn new() -> Harness {
        Self::build(None).await
    }

    /// A harness whose dead-letter routes work on queues of the test's own in the emulator
    /// (the template's eight step and dead-letter queues, created under a new suffix).
    pub async fn with_queues() -> Harness {
        let template = localstack::template::Template::load_default().unwrap();
        let suffix = format!("-{}", ids::new_id());
        let resolver = localstack::testing::provision_queues(&template, &suffix).await;
        let urls = |kind: &str| -> QueueUrls {
            ["Critical", "High", "Normal", "Low"]
                .map(|p| resolver.queue_url(&format!("{p}{kind}")).unwrap())
                .into()
        };
        Self::build(Some(Queues {
            sqs: localstack::testing::sqs_client().await,
            sources: urls("StepQueue"),
            dead_letters: urls("StepDeadLetterQueue"),
        }))
        .await
    }

    async fn build(queues: Option<Queues>) -> Harness {
        let (plain, table) = localstack::testing::fresh_table("api").await;
        let counter = Counter::default();
        let client = Client::from_conf(
            plain
                .config()
                .to_builder()
                .interceptor(counter.clone())
                .build(),
        );
        let auth_counter = Counter::default();
        let accounts_client = Client::from_conf(
            plain
                .config()
                .to_builder()
                .interceptor(auth_counter.clone())
                .build(),
        );
        let accounts = Arc::new(DynamoAccounts::new(accounts_client, table.clone()));
        let keys = TestKeys::generate("test-key");
        let queue = Arc::new(MemoryQueue::new());
        let dead_letters: Arc<dyn DeadLetters> = match &queues {
            Some(q) => Arc::new(SqsDeadLetters::new(
                q.sqs.clone(),
                q.sources.clone(),
                q.dead_letters.clone(),
            )),
            None => Arc::new(MemoryDeadLetters::new()),
        };
        let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
        let triggers = Arc::new(RecordingTriggers::new());
        let audit = Arc::new(shared::testing::audit::RecordingInbox::default());
        let api = Api {
            store: store.clone(),
            schedules: store,
            triggers: triggers.clone(),
            queue: queue.clone(),
            dead_letters,
            accounts: accounts.clone(),
            pipeline: Pipeline {
                auth: Arc::new(Authenticator {
                    keys: KeyRing::fixed(keys.verifier()),
                    accounts: accounts.clone(),
                }),
                gate: Gate::open(),
                clock: Arc::new(SystemClock),
                audit: audit.clone(),
            },
        };
        counter.take();
        Harness {
            api,
            client,
            table,
            keys,
            counter,
            auth_counter,
            accounts,
            queue,
            queues,
            triggers,
            audit,
            known: Default::default(),
        }
    }

    /// The account of `user` (made active, as an editor, on first use), as the identity
    /// service would have stored it; tokens of users without one are refused.
    pub async fn account(&self, user: &str) -> Account {
        if self.known.lock().await.insert(user.to_string()) {
            shared::testing::accounts::seed_signed_in(self.accounts.as_ref(), user, Role::Editor)
                .await;
        }
        let a = self.accounts.get_account(user).await.unwrap().unwrap();
        self.auth_counter.take();
        a
    }

    /// Changes `user`'s role or status as an admin would.
    pub async fn set_account(&self, user: &str, change: impl FnOnce(&mut Account)) {
        let mut a = self.account(user).await;
        change(&mut a);
        a.version += 1;
        self.accounts.update_account(&a).await.unwrap();
        self.auth_counter.take();
    }

    /// Stores an API key of `user` (whose account is made on first use) with `scopes`, as
    /// `POST /api/v3/auth/api-keys` would, and returns its bearer credential
    /// `dwc_<user_id>.<key_id>.<secret>`. `user` must be a ULID.
    pub async fn api_key(&self, user: &str, scopes: &[Scope]) -> String {
        self.api_key_until(user, scopes, None).await
    }

    /// [`Harness::api_key`] expiring at `expires_at`.
    pub async fn api_key_until(
        &self,
        user: &str,
        scopes: &[Scope],
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> String {
        self.account(user).await;
        let key_id = ids::new_id();
        let secret = format!("secret-{}", ids::new_id());
        let key = ApiKey {
            key_id: key_id.clone(),
            user_id: user.to_string(),
            name: "test key".to_string(),
            scopes: scopes.to_vec(),
            created_at: chrono::Utc::now(),
            expires_at,
            secret_hash: shared::crypto::sha256_hex(&secret),
        };
        self.accounts.put_api_key(&key).await.unwrap();
        self.auth_counter.take();
        format!(
            "{}{user}.{key_id}.{secret}",
            shared::http::auth::API_KEY_PREFIX
        )
    }

    /// Sends a request with `Authorization: Bearer <credential>`, the credential as given (an
    /// API key, or a token minted earlier).
    pub async fn send_bearer(
        &self,
        method: &str,
        uri: &str,
        credential: &str,
        body: Option<Value>,
    ) -> Reply {
        let auth = format!("Bearer {credential}");
        self.send(method, uri, None, body, &[("authorization", auth.as_str())])
            .await
    }

    /// Sends a request as `user` (no Authorization header when `None`).
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        user: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = body
            .map(|b| Body::Text(b.to_string()))
            .unwrap_or(Body::Empty);
        self.send_raw(method, uri, user, body, headers).await
    }

    pub async fn send_raw(
        &self,
        method: &str,
        uri: &str,
        user: Option<&str>,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut all: Vec<(String, String)> = Vec::new();
        if let Some(user) = user {
            self.account(user).await;
            all.push((
                "authorization".into(),
                format!("Bearer {}", self.keys.token(user)),
            ));
        }
        if !matches!(body, Body::Empty)
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            all.push(("content-type".into(), "application/json".into()));
        }
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = localstack::testing::gateway_request(method, uri, &all, body, "203.0.113.9");
        self.counter.take();
        self.auth_counter.take();
        let response = handle(&self.api, req).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8_lossy(response.body().as_ref()).to_string();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn get(&self, uri: &str, user: &str) -> Reply {
        self.send("GET", uri, Some(user), None, &[]).await
    }

    pub async fn post(&self, uri: &str, user: &str, body: Value) -> Reply {
        self.send("POST", uri, Some(user), Some(body), &[]).await
    }

    /// Creates a workflow as `user` and returns its body.
    pub async fn create(&self, user: &str, body: Value) -> Value {
        let r = self.post("/api/v3/workflows", user, body).await;
        r.ok(201).clone()
    }

    pub async fn create_named(&self, user: &str, name: &str) -> String {
        self.create(user, serde_json::json!({"name": name})).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every item of workflows, nodes, shares and idempotency records in the table (not the
    /// accounts the harness made; tests only: requests never scan).
    pub async fn items(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap();
        self.counter.take();
        out.items
            .unwrap_or_default()
            .into_iter()
            .filter(|item| {
                !matches!(item.get("PK"), Some(aws_sdk_dynamodb::types::AttributeValue::S(pk))
                    if pk.starts_with("USER#") || pk.starts_with("EMAIL#") || pk.starts_with("TOKEN#"))
            })
            .collect()
    }
}
