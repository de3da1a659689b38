//! A table, a KMS key and an SES identity of its own, a handler wired to them, a clock the
//! tests can move, and helpers that go through the flows a person would.

use api_auth::{Api, handle};
use chrono::{DateTime, Duration, Utc};
use http::HeaderMap;
use lambda_http::Body;
use serde_json::{Value, json};
use shared::app::auth::{Identity, Signer};
use shared::app::ratelimit::MemoryFront;
use shared::aws::dynamo::{DynamoAccounts, DynamoRateLimits, DynamoStore};
use shared::aws::kms::KmsVault;
use shared::aws::ses::SesMailer;
use shared::http::pipeline::Pipeline;
use shared::http::{Authenticator, Gate, GateConfig, KeyRing};
use shared::ports::Clock;
use shared::testing::{AUDIENCE, ISSUER};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub const PASSWORD: &str = "correct horse battery staple 7";
pub const MAIL_FROM: &str = "no-reply@example.com";

/// The wall clock moved by what the test says.
#[derive(Default)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        shared::domain::time::truncate_to_millis(
            Utc::now() + Duration::milliseconds(self.0.load(Ordering::SeqCst)),
        )
    }
}

pub struct Harness {
    pub api: Api,
    pub accounts: Arc<DynamoAccounts>,
    pub clock: Arc<TestClock>,
    pub table: String,
    pub client: aws_sdk_dynamodb::Client,
    /// The audit notes the identity service left.
    pub audit: Arc<shared::testing::audit::RecordingInbox>,
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
        &self.body
    }

    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.body
    }
}

/// An account made through register, the emailed link and login.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

pub fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", ulid::Ulid::new()).to_lowercase()
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_gate("", "", "").await
    }

    /// The same with the answer floor of a deployment (or another).
    pub fn with_answer_floor(mut self, floor: std::time::Duration) -> Harness {
        self.api.answer_floor = floor;
        self
    }

    /// With IP lists and rate limit rules as the function reads them from its environment.
    pub async fn with_gate(allow: &str, deny: &str, rules: &str) -> Harness {
        let (client, table) = localstack::testing::fresh_table("auth").await;
        let alias = localstack::testing::fresh_kms_alias("auth").await;
        localstack::testing::ses_identity(MAIL_FROM).await;
        let sdk = localstack::testing::emulator_config().await;
        let clock = Arc::new(TestClock::default());
        let accounts = Arc::new(DynamoAccounts::new(client.clone(), table.clone()));
        let vault = Arc::new(KmsVault::new(&sdk, alias));
        let signer = Signer::new(accounts.clone(), vault.clone(), ISSUER, AUDIENCE)
            .with_activation_delay(Duration::zero());
        // A deployment's first key, made before the verifiers load (as after the first login).
        signer
            .access_token(
                &shared::domain::ids::new_id(),
                "warm-up",
                shared::domain::Role::Editor,
                clock.now(),
            )
            .await
            .unwrap();
        let keys = KeyRing::load(accounts.clone(), clock.clone(), ISSUER, AUDIENCE)
            .await
            .unwrap();
        let audit = Arc::new(shared::testing::audit::RecordingInbox::default());
        let identity = Identity {
            accounts: accounts.clone(),
            signer: Arc::new(signer),
            vault,
            mailer: Arc::new(SesMailer::new(&sdk, MAIL_FROM)),
            audit: audit.clone(),
            clock: clock.clone(),
            public_url: "https://app.example.com".into(),
            product_name: "DWC test".into(),
        };
        let limits = MemoryFront::new(DynamoRateLimits::new(client.clone(), table.clone()));
        let api = Api {
            identity: Arc::new(identity),
            keys: accounts.clone(),
            // Tests of the floor set it (`with_answer_floor`); the rest do not wait for it.
            answer_floor: std::time::Duration::ZERO,
            pipeline: Pipeline {
                auth: Arc::new(Authenticator {
                    keys,
                    accounts: accounts.clone(),
                }),
                gate: Gate::new(
                    GateConfig::parse(allow, deny, rules).unwrap(),
                    Arc::new(limits),
                ),
                clock: clock.clone(),
                audit: audit.clone(),
            },
            notify: Arc::new(DynamoStore::new(client.clone(), table.clone())),
            notify_vault: Arc::new(KmsVault::new(
                &sdk,
                localstack::testing::fresh_kms_alias("notify").await,
            )),
            allow_private_targets: false,
        };
        Harness {
            api,
            accounts,
            clock,
            table,
            client,
            audit,
        }
    }

    /// One request from `ip` with `Authorization: Bearer <bearer>` when given.
    pub async fn send_from(
        &self,
        ip: &str,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let authorization = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("user-agent", "harness/1.0")];
        if let Some(a) = &authorization {
            headers.push(("authorization", a.as_str()));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body
            .map(|b| Body::Text(b.to_string()))
            .unwrap_or(Body::Empty);
        let req = localstack::testing::gateway_request(method, uri, &headers, body, ip);
        let response = handle(&self.api, req).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8_lossy(response.body().as_ref()).to_string();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send_from("203.0.113.7", method, uri, bearer, body)
            .await
    }

    pub async fn post(&self, uri: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.send("POST", uri, bearer, Some(body)).await
    }

    pub async fn get(&self, uri: &str, bearer: &str) -> Reply {
        self.send("GET", uri, Some(bearer), None).await
    }

    pub async fn register(&self, email: &str) -> Reply {
        self.post(
            "/api/v3/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "Test User"}),
        )
        .await
    }

    /// The token of the last email to `email` about `subject`.
    pub async fn mailed_token(&self, email: &str, subject: &str) -> String {
        localstack::testing::emailed_token(email, subject).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v3/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers, verifies through the emailed token and logs in.
    pub async fn sign_up(&self, name: &str) -> User {
        let email = unique_email(name);
        self.register(&email).await.ok(202);
        let token = self.mailed_token(&email, "confirm").await;
        self.post(
            "/api/v3/auth/verify-email",
            None,
            json!({"token": token, "password": PASSWORD}),
        )
        .await
        .ok(200);
        let r = self.login(&email, PASSWORD).await;
        user_from(&email, r.ok(200))
    }

    /// A signed-up user made admin the way the first admin is made (`dwc-admin promote`).
    pub async fn admin(&self, name: &str) -> User {
        let u = self.sign_up(name).await;
        shared::app::auth::admin::promote(self.accounts.as_ref(), &u.email, Utc::now())
            .await
            .unwrap();
        u
    }
}

pub fn user_from(email: &str, pair: &Value) -> User {
    let refresh = pair["refresh_token"].as_str().unwrap().to_string();
    User {
        user_id: refresh.split('.').next().unwrap().to_string(),
        email: email.to_string(),
        access: pair["access_token"].as_str().unwrap().to_string(),
        refresh,
        session_id: pair["session_id"].as_str().unwrap().to_string(),
    }
}

impl Harness {
    /// The stored account item of `user_id`, as JSON.
    pub async fn accounts_item(&self, user_id: &str) -> Value {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{user_id}")),
            )
            .key(
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S("#ACCOUNT".into()),
            )
            .send()
            .await
            .unwrap();
        serde_dynamo::from_item(out.item.unwrap()).unwrap()
    }

    /// Every item in the table (tests only: the table is small).
    pub async fn all_items(&self) -> Vec<Value> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap();
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| serde_dynamo::from_item::<_, Value>(i).unwrap())
            .collect()
    }

    /// Every item in the table but rate limit counters and signing keys (tests only).
    pub async fn stored_items(&self) -> Vec<Value> {
        self.all_items()
            .await
            .into_iter()
            .filter(|v| {
                let pk = v["PK"].as_str().unwrap_or_default();
                !pk.starts_with("RL#") && pk != "SIGNING_KEYS"
            })
            .collect()
    }
}

impl Harness {
    /// The signing key items as stored.
    pub async fn signing_key_items(&self) -> Vec<Value> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S("SIGNING_KEYS".into()),
            )
            .send()
            .await
            .unwrap();
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| serde_dynamo::from_item::<_, Value>(i).unwrap())
            .collect()
    }
}

impl Harness {
    /// A new API key of `u` with `scopes`, as its bearer string (shown once at creation).
    pub async fn api_key(&self, u: &User, scopes: &[&str]) -> String {
        self.post(
            "/api/v3/auth/api-keys",
            Some(&u.access),
            json!({"name": "test key", "scopes": scopes}),
        )
        .await
        .ok(201)["api_key"]
            .as_str()
            .unwrap()
            .to_string()
    }
}
