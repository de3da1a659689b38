//! The local stack as `make dev` runs it, for end-to-end tests: the gateway started through
//! [`localstack::gateway::start_dev`] on the emulator at `AWS_ENDPOINT_URL` (which `make test`
//! starts), with the real function binaries, and a plain HTTP/1.1 client over TCP.
//!
//! Each [`Stack`] names its resources with a suffix of its own and listens on a port of its
//! own, so tests run in parallel against one emulator.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use localstack::gateway::logs::Captured;
use localstack::gateway::{Gateway, GatewayConfig, LogSink, ScheduleOptions, start_dev};
use localstack::template::Template;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The password every test account uses (strong enough for the strength check).
pub const PASSWORD: &str = "correct horse battery staple 7";

pub struct Stack {
    pub gateway: Gateway,
    /// What this stack's resources are named with (`WorkflowTable<suffix>`).
    pub suffix: String,
    pub base: String,
    pub logs: Captured,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Accounts made by [`Stack::user`], by the name tests call them.
    users: Mutex<HashMap<String, TestUser>>,
}

/// An account signed up, verified and logged in through the API.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub user_id: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(Template::load_default().expect("the template loads"), &[]).await
    }

    /// The stack of `template` (the repository's, or a variant a test made of it), with
    /// `parameters` overriding the template's defaults (as `PARAMETER_OVERRIDES`).
    pub async fn start_with(template: Template, parameters: &[(&str, &str)]) -> Stack {
        Stack::start_full(template, parameters, ScheduleOptions::default()).await
    }

    /// The repository's stack whose schedules fire on a virtual clock starting at `t0`: the
    /// test moves it with `stack.gateway.schedules().advance_to(t)`.
    pub async fn start_with_clock(t0: chrono::DateTime<chrono::Utc>) -> Stack {
        let template = Template::load_default().expect("the template loads");
        Stack::start_full(template, &[], ScheduleOptions::virtual_clock(t0)).await
    }

    async fn start_full(
        template: Template,
        parameters: &[(&str, &str)],
        schedules: ScheduleOptions,
    ) -> Stack {
        let endpoint =
            localstack::testing::emulator_endpoint(std::env::var("AWS_ENDPOINT_URL").ok())
                .unwrap_or_else(|e| panic!("{e}"));
        let mut config = GatewayConfig::from_env(template.clone()).expect("gateway configuration");
        config.parameters.extend(
            parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        config.bind = "127.0.0.1:0".parse().expect("an address");
        config.ws_bind = Some("127.0.0.1:0".parse().expect("an address"));
        config.endpoint_url = endpoint;
        config.name_suffix = format!("-e2e-{}", ulid::Ulid::new());
        config.schedules = schedules;
        let (logs, lines) = LogSink::capture();
        config.logs = logs;
        let client = localstack::testing::emulator_client().await;
        localstack::provision::provision_tables_with_suffix(
            &client,
            &template,
            &config.name_suffix,
        )
        .await
        .expect("tables provisioned");
        let config_suffix = config.name_suffix.clone();
        let (gateway, _) = start_dev(config)
            .await
            .expect("the gateway starts (are the binaries built? cargo build --workspace --bins)");
        Stack {
            suffix: config_suffix,
            base: format!("http://{}", gateway.addr()),
            gateway,
            logs: lines,
            client: Client::builder(TokioExecutor::new()).build_http(),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// The account tests call `name`, signed up on first use (register, the emailed token,
    /// verify, login: the flow a person goes through).
    pub async fn user(&self, name: &str) -> TestUser {
        let mut users = self.users.lock().await;
        if let Some(u) = users.get(name) {
            return u.clone();
        }
        let u = self.sign_up(name).await;
        users.insert(name.to_string(), u.clone());
        u
    }

    /// A fresh account: registered, verified through the emailed token, logged in.
    pub async fn sign_up(&self, name: &str) -> TestUser {
        let email =
            format!("{}-{}@example.com", name.to_lowercase(), ulid::Ulid::new()).to_lowercase();
        let r = self
            .send_as(
                "POST",
                "/api/v3/auth/register",
                None,
                Some(json!({"email": email, "password": PASSWORD, "display_name": name})),
                &[],
            )
            .await;
        assert_eq!(r.status, 202, "register {email}: {}", r.text);
        let token = localstack::testing::emailed_token(&email, "confirm").await;
        let r = self
            .send_as(
                "POST",
                "/api/v3/auth/verify-email",
                None,
                Some(json!({"token": token, "password": PASSWORD})),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "verify {email}: {}", r.text);
        let r = self.login(&email, PASSWORD).await;
        assert_eq!(r.status, 200, "login {email}: {}", r.text);
        TestUser {
            // A refresh token is `<user_id>.<session_id>.<secret>`.
            user_id: r.body["refresh_token"]
                .as_str()
                .and_then(|t| t.split('.').next())
                .unwrap_or_default()
                .to_string(),
            email,
            access_token: r.body["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            refresh_token: r.body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.send_as(
            "POST",
            "/api/v3/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
            &[],
        )
        .await
    }

    pub async fn token(&self, user: &str) -> String {
        self.user(user).await.access_token
    }

    /// One HTTP request over TCP to the gateway, as the test user named `user`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let bearer = match user {
            Some(u) => Some(self.token(u).await),
            None => None,
        };
        self.send_as(method, path, bearer.as_deref(), body, headers)
            .await
    }

    /// One HTTP request over TCP to the gateway with `Authorization: Bearer <bearer>`.
    pub async fn send_as(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            req = req.header("authorization", format!("Bearer {bearer}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let response = self
            .client
            .request(req.body(Full::new(body)).expect("a request"))
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        self.send("GET", path, Some(user), None, &[]).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.send("POST", path, Some(user), Some(body), &[]).await
    }

    /// A workflow of `user` named `name` with `settings`, made `active`: its path
    /// (`/api/v3/workflows/{id}`).
    pub async fn active_workflow(&self, user: &str, name: &str, settings: Value) -> String {
        let created = self
            .post(
                "/api/v3/workflows",
                user,
                json!({"name": name, "settings": settings}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let w = format!(
            "/api/v3/workflows/{}",
            created.body["id"].as_str().expect("a workflow id")
        );
        let active = self
            .post(&format!("{w}/status"), user, json!({"status": "active"}))
            .await;
        assert_eq!(
            (active.status, active.body["status"].as_str()),
            (200, Some("active")),
            "{}",
            active.text
        );
        w
    }

    /// Polls run `run_id` of workflow `w` every `poll` until it has succeeded, and returns it;
    /// a failed or cancelled run, or `deadline` passing, fails at once with the worker's log.
    pub async fn until_succeeded(
        &self,
        w: &str,
        run_id: &str,
        user: &str,
        deadline: Duration,
        poll: Duration,
    ) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("{w}/runs/{run_id}"), user).await;
            assert_eq!(r.status, 200, "{}", r.text);
            match r.body["status"].as_str() {
                Some("succeeded") => return r.body,
                Some("failed" | "cancelled") => panic!(
                    "the run ended {}: {:#}\nworker log:\n{}",
                    r.body["status"],
                    r.body,
                    self.log_lines("WorkerFunction").join("\n")
                ),
                _ => {}
            }
            assert!(
                start.elapsed() < deadline,
                "the run has not succeeded within {deadline:?}: {:#}\nworker log:\n{}",
                r.body,
                self.log_lines("WorkerFunction").join("\n")
            );
            tokio::time::sleep(poll).await;
        }
    }

    /// Lines a function (or the gateway about it) logged.
    pub fn log_lines(&self, source: &str) -> Vec<String> {
        self.logs
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(s, _)| s.starts_with(source))
                    .map(|(_, l)| l.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Polls `check` until it holds or `deadline` passes (no sleeping as synchronisation: the wait
/// ends as soon as the condition is seen).
pub async fn eventually(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A WebSocket client of the local WebSocket API (tokio-tungstenite, as any client would
/// connect), keeping every message it received.
pub struct WsClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Every JSON message received so far, in order.
    pub received: Vec<Value>,
}

impl Stack {
    /// The WebSocket API's URL (`ws://127.0.0.1:<port>/ws`).
    pub fn ws_url(&self) -> String {
        let addr = self
            .gateway
            .ws_addr()
            .expect("the template has a WebSocket API, so the gateway serves it");
        format!("ws://{addr}/ws")
    }

    /// Opens a connection with `query` (e.g. `?token=...`): the client, or the HTTP status the
    /// handshake was refused with.
    pub async fn ws_connect(&self, query: &str) -> Result<WsClient, u16> {
        let url = format!("{}{query}", self.ws_url());
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => Ok(WsClient {
                ws,
                received: Vec::new(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }
}

impl WsClient {
    pub async fn send(&mut self, message: Value) {
        use futures::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                message.to_string(),
            ))
            .await
            .expect("the message is sent");
    }

    /// Reads messages until one satisfies `matches` (all are kept in `received`), or panics
    /// with what was received when `deadline` passes.
    pub async fn until(
        &mut self,
        what: &str,
        deadline: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        use futures::StreamExt;
        let start = Instant::now();
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            let next = tokio::time::timeout(left, self.ws.next()).await;
            let message = match next {
                Ok(Some(Ok(m))) => m,
                Ok(other) => panic!("the connection ended waiting for {what}: {other:?}"),
                Err(_) => panic!(
                    "no {what} within {deadline:?}; received: {:#?}",
                    self.received
                ),
            };
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            self.received.push(value.clone());
            if matches(&value) {
                return value;
            }
        }
    }

    /// Sends `message` and returns the reply of type `reply_type` (or an error reply).
    pub async fn command(&mut self, message: Value, reply_type: &str) -> Value {
        self.send(message).await;
        self.until(reply_type, Duration::from_secs(10), |m| {
            m["type"] == reply_type || m["type"] == "error"
        })
        .await
    }

    /// Closes the connection as a client does (a close frame).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
