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
use localstack::gateway::dev_auth::DevAuth;
use localstack::gateway::logs::Captured;
use localstack::gateway::{Gateway, GatewayConfig, LogSink, start_dev};
use localstack::template::Template;
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Stack {
    pub gateway: Gateway,
    pub base: String,
    pub auth: DevAuth,
    pub logs: Captured,
    client: Client<HttpConnector, Full<Bytes>>,
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
        let endpoint =
            localstack::testing::emulator_endpoint(std::env::var("AWS_ENDPOINT_URL").ok())
                .unwrap_or_else(|e| panic!("{e}"));
        let template = Template::load_default().expect("the template loads");
        let mut config = GatewayConfig::from_env(template.clone()).expect("gateway configuration");
        config.bind = "127.0.0.1:0".parse().expect("an address");
        config.endpoint_url = endpoint;
        config.name_suffix = format!("-e2e-{}", ulid::Ulid::new());
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
        let (gateway, auth) = start_dev(config)
            .await
            .expect("the gateway starts (are the binaries built? cargo build --workspace --bins)");
        Stack {
            base: format!("http://{}", gateway.addr()),
            gateway,
            auth: auth.expect("the template has JWT parameters"),
            logs: lines,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn token(&self, user: &str) -> String {
        self.auth.token(user, 1)
    }

    /// One HTTP request over TCP to the gateway.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(user) = user {
            req = req.header("authorization", format!("Bearer {}", self.token(user)));
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
