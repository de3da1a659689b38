//! The API Gateway WebSocket API event source: what API Gateway does for the template's
//! `AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET` (see
//! [`crate::template::WebSocketApiSpec`]), on a listener of its own.
//!
//! - **Connect**: `GET /{stage}` (or `GET /`) with `Upgrade: websocket` invokes the `$connect`
//!   route's function with an API Gateway WebSocket proxy event (`eventType` `CONNECT`, the
//!   request's headers and query). An answer whose `statusCode` is not 2xx refuses the handshake
//!   with that status and body; a failed or timed-out invocation refuses it with 500. Otherwise
//!   the connection is registered, then upgraded, echoing the answer's `Sec-WebSocket-Protocol`.
//! - **Messages**: each text (or binary, base64 in the event) message goes to the route whose
//!   key equals the route selection expression's value (`$request.body.action`: the `action`
//!   string of a JSON body), else `$default`. The invocations of one connection run
//!   concurrently, as on API Gateway. A two-way route's answer `body` is sent back; a failed
//!   invocation sends API Gateway's `{"message": "Internal server error", ...}` and keeps the
//!   connection. A message over [`MAX_MESSAGE_BYTES`] closes the connection with 1009.
//! - **Disconnect**: when the client closes, the socket dies, the connection is deleted, idle
//!   for [`WebSocketSettings::idle_timeout`] or older than [`WebSocketSettings::max_lifetime`],
//!   the connection is forgotten and `$disconnect` invoked once (best effort).
//! - **Management API** (`@connections`) on the same listener, with or without the `/{stage}`
//!   prefix: `POST` sends the body to the client (410 `GoneException` for an unknown id, 413
//!   over [`MAX_MESSAGE_BYTES`]), `GET` describes the connection, `DELETE` closes it. Functions
//!   reach it through `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI` (see [`super::Gateway`]).
//!   Request signatures are not checked.
//!
//! Every connection and disconnection is logged under the API's logical id.

use super::FunctionPool;
use super::logs::LogSink;
use super::server::{self, Reply};
use crate::Error;
use crate::template::WebSocketApiSpec;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Limited};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// API Gateway's limit on one message, in either direction.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// What the socket reads before refusing outright (messages between this and
/// [`MAX_MESSAGE_BYTES`] are read, then refused with 1009 like the ones just over).
const MAX_READ_BYTES: usize = 1024 * 1024;
/// API Gateway's idle connection timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// API Gateway's maximum connection duration.
pub const MAX_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// How long a closing socket waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Limits and test hooks of the WebSocket API.
#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Added before each `POST @connections` answer (simulates API Gateway's latency).
    pub management_post_delay: Duration,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            idle_timeout: IDLE_TIMEOUT,
            max_lifetime: MAX_LIFETIME,
            management_post_delay: Duration::ZERO,
        }
    }
}

/// What the connection's task is asked to do.
enum Outgoing {
    Text(String),
    Binary(Bytes),
    Close(u16, String),
}

/// One open connection.
struct Connection {
    id: String,
    connected_at: DateTime<Utc>,
    last_active: Mutex<DateTime<Utc>>,
    source_ip: String,
    user_agent: Option<String>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    posts: AtomicU64,
}

impl Connection {
    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Utc::now();
        }
    }
}

struct Route {
    pool: Arc<FunctionPool>,
    two_way: bool,
}

/// The WebSocket API: its routes, open connections and the `@connections` endpoint.
pub struct WebSocketApi {
    logical_id: String,
    api_id: String,
    stage: String,
    selection: Vec<String>,
    routes: HashMap<String, Route>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    settings: WebSocketSettings,
    post_delay_us: AtomicU64,
    logs: LogSink,
}

/// A function's answer, as API Gateway reads it (the Lambda proxy response fields).
#[derive(Debug, Default, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
    text: bool,
}

impl WebSocketApi {
    /// The API of `spec`, its routes' functions taken from `functions`; `api_id` is what `!Ref`
    /// of the API gives (see [`crate::resolve::Resolver`]).
    pub fn new(
        spec: &WebSocketApiSpec,
        functions: &HashMap<String, Arc<FunctionPool>>,
        api_id: &str,
        settings: WebSocketSettings,
        logs: LogSink,
    ) -> Result<WebSocketApi, Error> {
        let mut routes = HashMap::new();
        for route in &spec.routes {
            let pool = super::function_pool(
                functions,
                "WebSocket route",
                &route.route_key,
                &route.function,
            )?;
            routes.insert(
                route.route_key.clone(),
                Route {
                    pool: pool.clone(),
                    two_way: route.two_way,
                },
            );
        }
        let delay = u64::try_from(settings.management_post_delay.as_micros()).unwrap_or(u64::MAX);
        Ok(WebSocketApi {
            logical_id: spec.logical_id.clone(),
            api_id: api_id.to_owned(),
            stage: spec.stage.clone(),
            selection: spec
                .selection_field()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            routes,
            connections: Mutex::new(HashMap::new()),
            settings,
            post_delay_us: AtomicU64::new(delay),
            logs,
        })
    }

    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Changes the delay added before each `POST @connections` answer.
    pub fn set_post_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.post_delay_us.store(us, Ordering::Relaxed);
    }

    /// The ids of the open connections.
    pub fn connection_ids(&self) -> Vec<String> {
        self.connections
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `POST @connections` requests that reached the open connection `id`.
    pub fn posts_received(&self, id: &str) -> Option<u64> {
        self.find(id).map(|c| c.posts.load(Ordering::Relaxed))
    }

    /// Serves `listener` until the task is aborted.
    pub fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(server::serve(listener, move |req| {
            let api = self.clone();
            async move { api.handle(req).await }
        }))
    }

    fn find(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections.lock().ok()?.get(id).cloned()
    }

    fn forget(&self, id: &str) {
        if let Ok(mut c) = self.connections.lock() {
            c.remove(id);
        }
    }

    fn log(&self, line: &str) {
        self.logs.line(&self.logical_id, line);
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_owned();
        let rest = strip_stage(&path, &self.stage);
        if let Some(id) = rest.strip_prefix("/@connections/") {
            let id = super::http_api::percent_decode(id);
            return self.manage(req, &id).await;
        }
        if rest != "/" {
            return message(403, "Forbidden");
        }
        if !is_upgrade(&req) {
            return message(426, "Upgrade Required");
        }
        self.handshake(req).await
    }

    async fn handshake(self: Arc<Self>, mut req: Request<Incoming>) -> Reply {
        let key = req
            .headers()
            .get(http::header::SEC_WEBSOCKET_KEY)
            .map(|k| derive_accept_key(k.as_bytes()));
        let Some(accept) = key else {
            return message(400, "Bad Request");
        };
        if req
            .headers()
            .get(http::header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v != "13")
        {
            let mut r = message(426, "Upgrade Required");
            r.headers_mut().insert(
                http::header::SEC_WEBSOCKET_VERSION,
                http::HeaderValue::from_static("13"),
            );
            return r;
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        let id = connection_id();
        let now = Utc::now();
        let (parts, _) = req.into_parts();
        // Registered only once `$connect` accepts it.
        let (outbox, inbox) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection {
            id: id.clone(),
            connected_at: now,
            last_active: Mutex::new(now),
            source_ip: "127.0.0.1".into(),
            user_agent: header(&parts, "user-agent"),
            outbox,
            posts: AtomicU64::new(0),
        });
        let event = connect_event(
            &parts,
            &self.context(&connection, header(&parts, "host"), "$connect", "CONNECT"),
        );
        let answer = match self.routes.get("$connect") {
            Some(route) => match self.invoke(route, &event).await {
                Ok(answer) => answer,
                Err(why) => {
                    self.log(&format!("$connect {id}: {why}; refused with 500"));
                    return message(500, "Internal server error");
                }
            },
            None => Answer {
                status: 200,
                ..Answer::default()
            },
        };
        if !(200..300).contains(&answer.status) {
            self.log(&format!("$connect {id}: refused with {}", answer.status));
            let mut r = server::reply(
                answer.status,
                "application/json",
                answer.body.clone().unwrap_or_default(),
            );
            for (k, v) in &answer.headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    r.headers_mut().append(k, v);
                }
            }
            return r;
        }
        if let Ok(mut c) = self.connections.lock() {
            c.insert(id.clone(), connection.clone());
        }
        self.log(&format!("$connect {id}: connected"));
        tokio::spawn(self.clone().run(connection, on_upgrade, inbox));
        let mut r = server::reply(101, "text/plain", Bytes::new());
        r.headers_mut().remove(http::header::CONTENT_TYPE);
        let headers = r.headers_mut();
        headers.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        if let Ok(v) = http::HeaderValue::from_str(&accept) {
            headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
        }
        let protocol = answer
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
            .and_then(|(_, v)| http::HeaderValue::from_str(v).ok());
        if let Some(v) = protocol {
            headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, v);
        }
        r
    }

    /// The connection's life once upgraded: its messages, what is sent to it, its end.
    async fn run(
        self: Arc<Self>,
        connection: Arc<Connection>,
        on_upgrade: hyper::upgrade::OnUpgrade,
        mut inbox: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                self.forget(&connection.id);
                self.disconnect(&connection, 1006, format!("the upgrade failed: {e}"))
                    .await;
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_READ_BYTES))
            .max_frame_size(Some(MAX_READ_BYTES));
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let ends_at = Instant::now() + self.settings.max_lifetime;
        let mut idle_at = Instant::now() + self.settings.idle_timeout;
        let (code, reason) = loop {
            tokio::select! {
                incoming = ws.next() => {
                    idle_at = Instant::now() + self.settings.idle_timeout;
                    connection.touch();
                    match incoming {
                        None => break (1006, "the connection was lost".to_string()),
                        Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                            break close(&mut ws, 1009, "Message too big").await;
                        }
                        Some(Err(e)) => break (1006, format!("the connection failed: {e}")),
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            // The close reply goes out as the stream is read to its end.
                            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                                while ws.next().await.is_some() {}
                            })
                            .await;
                            break (
                                code,
                                format!("Client-side close frame status code '{code}' - reason '{reason}'"),
                            );
                        }
                        Some(Ok(Message::Text(text))) if text.len() > MAX_MESSAGE_BYTES => {
                            break close(&mut ws, 1009, "Message too big").await;
                        }
                        Some(Ok(Message::Binary(data))) if data.len() > MAX_MESSAGE_BYTES => {
                            break close(&mut ws, 1009, "Message too big").await;
                        }
                        Some(Ok(Message::Text(text))) => {
                            self.clone().on_message(connection.clone(), text.to_string(), false);
                        }
                        Some(Ok(Message::Binary(data))) => {
                            self.clone().on_message(connection.clone(), STANDARD.encode(&data), true);
                        }
                        Some(Ok(_)) => {}
                    }
                }
                out = inbox.recv() => {
                    let sent = match out {
                        Some(Outgoing::Text(t)) => ws.send(Message::text(t)).await,
                        Some(Outgoing::Binary(b)) => ws.send(Message::binary(b)).await,
                        Some(Outgoing::Close(code, reason)) => break close(&mut ws, code, &reason).await,
                        None => break close(&mut ws, 1001, "Going away").await,
                    };
                    if let Err(e) = sent {
                        break (1006, format!("the connection failed: {e}"));
                    }
                }
                _ = tokio::time::sleep_until(idle_at) => {
                    let (code, _) = close(&mut ws, 1001, "Going away").await;
                    break (code, "Connection idle timeout".to_string());
                }
                _ = tokio::time::sleep_until(ends_at) => {
                    let (code, _) = close(&mut ws, 1001, "Going away").await;
                    break (code, "Connection max duration reached".to_string());
                }
            }
        };
        self.forget(&connection.id);
        self.disconnect(&connection, code, reason).await;
    }

    /// Invokes the route for one message, on its own task; answers go through the outbox.
    fn on_message(self: Arc<Self>, connection: Arc<Connection>, body: String, base64: bool) {
        tokio::spawn(async move {
            let key = self.select_route(&body, base64);
            let request_id = request_id();
            let Some((key, route)) = key.and_then(|k| Some((k.clone(), self.routes.get(&k)?)))
            else {
                let reply = json!({
                    "message": "Forbidden",
                    "connectionId": connection.id,
                    "requestId": request_id,
                });
                let _ = connection.outbox.send(Outgoing::Text(reply.to_string()));
                return;
            };
            let mut context = self.context(&connection, None, &key, "MESSAGE");
            context["messageId"] = json!(request_id.clone());
            context["requestId"] = json!(request_id.clone());
            let event = json!({
                "requestContext": context,
                "body": body,
                "isBase64Encoded": base64,
            });
            match self.invoke(route, &event).await {
                Ok(answer) => {
                    if route.two_way
                        && let Some(b) = answer.body
                    {
                        let out = if answer.text {
                            Outgoing::Text(String::from_utf8_lossy(&b).into_owned())
                        } else {
                            Outgoing::Binary(b)
                        };
                        let _ = connection.outbox.send(out);
                    }
                }
                Err(why) => {
                    self.log(&format!("{key} {}: {why}", connection.id));
                    let reply = json!({
                        "message": "Internal server error",
                        "connectionId": connection.id,
                        "requestId": request_id,
                    });
                    let _ = connection.outbox.send(Outgoing::Text(reply.to_string()));
                }
            }
        });
    }

    /// The route key for a message: the selection expression's value if it is a string naming
    /// a route (other than `$connect` and `$disconnect`), else `$default` if there is one.
    fn select_route(&self, body: &str, base64: bool) -> Option<String> {
        let selected = (!base64)
            .then(|| serde_json::from_str::<Value>(body).ok())
            .flatten()
            .and_then(|v| {
                let mut at = &v;
                for field in &self.selection {
                    at = at.get(field)?;
                }
                at.as_str().map(str::to_owned)
            })
            .filter(|k| k != "$connect" && k != "$disconnect" && self.routes.contains_key(k));
        selected.or_else(|| {
            self.routes
                .contains_key("$default")
                .then(|| "$default".to_string())
        })
    }

    async fn disconnect(&self, connection: &Connection, code: u16, reason: String) {
        self.log(&format!("$disconnect {}: {code} {reason}", connection.id));
        let Some(route) = self.routes.get("$disconnect") else {
            return;
        };
        let mut context = self.context(connection, None, "$disconnect", "DISCONNECT");
        context["disconnectStatusCode"] = json!(code);
        context["disconnectReason"] = json!(reason);
        let event = json!({
            "headers": {"Host": self.domain(), "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
            "multiValueHeaders": {"Host": [self.domain()], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]},
            "requestContext": context,
            "isBase64Encoded": false,
        });
        if let Err(why) = self.invoke(route, &event).await {
            self.log(&format!("$disconnect {}: {why}", connection.id));
        }
    }

    /// Invokes `route`'s function with `event` (on its own task, so that a client going away
    /// cannot cancel it half way) and reads its answer.
    async fn invoke(&self, route: &Route, event: &Value) -> Result<Answer, String> {
        let payload = Bytes::from(serde_json::to_vec(event).map_err(|e| e.to_string())?);
        let pool = route.pool.clone();
        let outcome = tokio::spawn(async move { pool.invoke(payload).await })
            .await
            .map_err(|e| e.to_string())?;
        let answer = outcome.map_err(|e| e.to_string())?;
        parse_answer(&answer)
    }

    fn domain(&self) -> String {
        format!("{}.execute-api.local", self.api_id)
    }

    /// The `requestContext` of an event on `connection`; its `domainName` is `host` (the
    /// upgrade request's `Host`), else the API's own.
    fn context(
        &self,
        connection: &Connection,
        host: Option<String>,
        route_key: &str,
        event_type: &str,
    ) -> Value {
        let now = Utc::now();
        let request_id = request_id();
        json!({
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": connection.connected_at.timestamp_millis(),
            "requestTimeEpoch": now.timestamp_millis(),
            "identity": {
                "sourceIp": connection.source_ip,
                "userAgent": connection.user_agent,
            },
            "requestId": request_id,
            "domainName": host.unwrap_or_else(|| self.domain()),
            "connectionId": connection.id,
            "apiId": self.api_id,
        })
    }

    /// `@connections/{id}`: POST, GET, DELETE.
    async fn manage(&self, req: Request<Incoming>, id: &str) -> Reply {
        let method = req.method().clone();
        let connection = self.find(id);
        match method.as_str() {
            "POST" => {
                let delay = Duration::from_micros(self.post_delay_us.load(Ordering::Relaxed));
                let body = Limited::new(req.into_body(), MAX_MESSAGE_BYTES)
                    .collect()
                    .await
                    .map(|b| b.to_bytes());
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let Ok(body) = body else {
                    return error(413, "PayloadTooLargeException", "Request entity too large");
                };
                let Some(connection) = connection else {
                    return gone();
                };
                connection.posts.fetch_add(1, Ordering::Relaxed);
                let out = match String::from_utf8(body.to_vec()) {
                    Ok(text) => Outgoing::Text(text),
                    Err(_) => Outgoing::Binary(body),
                };
                if connection.outbox.send(out).is_err() {
                    return gone();
                }
                connection.touch();
                server::reply(200, "application/json", Bytes::new())
            }
            "GET" => {
                let Some(c) = connection else {
                    return gone();
                };
                let last = c.last_active.lock().map(|t| *t).unwrap_or(c.connected_at);
                let body = json!({
                    "connectedAt": c.connected_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "lastActiveAt": last.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "identity": {"sourceIp": c.source_ip, "userAgent": c.user_agent},
                });
                server::reply(200, "application/json", body.to_string())
            }
            "DELETE" => {
                let Some(c) = connection else {
                    return gone();
                };
                if c.outbox
                    .send(Outgoing::Close(1000, "Connection deleted".into()))
                    .is_err()
                {
                    return gone();
                }
                server::reply(204, "application/json", Bytes::new())
            }
            _ => message(405, "Method Not Allowed"),
        }
    }
}

/// Sends a close frame and waits (briefly) for the client's; the code and reason for
/// `$disconnect`.
async fn close<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    let _ = ws.close(Some(frame)).await;
    let _ = tokio::time::timeout(CLOSE_WAIT, async { while ws.next().await.is_some() {} }).await;
    (code, reason.to_owned())
}

/// The path without the `/{stage}` prefix (`/` for the stage itself).
fn strip_stage<'a>(path: &'a str, stage: &str) -> &'a str {
    let rest = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(stage))
        .filter(|r| r.is_empty() || r.starts_with('/'));
    match rest {
        Some("") => "/",
        Some(r) => r,
        None if path.is_empty() => "/",
        None => path,
    }
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name: http::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    req.method() == http::Method::GET
        && has(http::header::UPGRADE, "websocket")
        && has(http::header::CONNECTION, "upgrade")
}

fn header(parts: &http::request::Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `$connect` event: the upgrade request's headers and query, and `context`.
fn connect_event(parts: &http::request::Parts, context: &Value) -> Value {
    let mut headers = serde_json::Map::new();
    let mut multi: serde_json::Map<String, Value> = serde_json::Map::new();
    for (name, values) in super::http_api::header_values(&parts.headers) {
        let title = title_case(name.as_str());
        headers.insert(title.clone(), json!(values.join(",")));
        multi.insert(title, json!(values));
    }
    let mut query = serde_json::Map::new();
    let mut multi_query: serde_json::Map<String, Value> = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        query.insert(k.to_string(), json!(v));
        if let Some(Value::Array(list)) = multi_query.get_mut(k.as_ref()) {
            list.push(json!(v));
        } else {
            multi_query.insert(k.to_string(), json!([v]));
        }
    }
    let mut event = json!({
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
        event["multiValueQueryStringParameters"] = Value::Object(multi_query);
    }
    event
}

/// `sec-websocket-protocol` as API Gateway spells it: `Sec-WebSocket-Protocol`.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| match part {
            "websocket" => "WebSocket".to_string(),
            _ => {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Reads a Lambda proxy answer; an answer without `statusCode` (or `null`) is a 200 with no
/// body.
fn parse_answer(answer: &[u8]) -> Result<Answer, String> {
    let value: Value =
        serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Some(status) = value.get("statusCode") else {
        return Ok(Answer {
            status: 200,
            ..Answer::default()
        });
    };
    let status = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| format!("statusCode {status} is not an HTTP status"))?;
    let mut headers = Vec::new();
    if let Some(Value::Object(h)) = value.get("headers") {
        headers.extend(
            h.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))),
        );
    }
    if let Some(Value::Object(h)) = value.get("multiValueHeaders") {
        for (k, vs) in h {
            if headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(k)) {
                continue;
            }
            for v in vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                headers.push((k.clone(), v.to_owned()));
            }
        }
    }
    let base64 = value
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match value.get("body").and_then(Value::as_str) {
        None => None,
        Some(b) if base64 => Some(Bytes::from(
            STANDARD
                .decode(b)
                .map_err(|e| format!("the body is not base64: {e}"))?,
        )),
        Some(b) => Some(Bytes::copy_from_slice(b.as_bytes())),
    };
    Ok(Answer {
        status,
        headers,
        body,
        text: !base64,
    })
}

/// A new connection id in API Gateway's form (16 characters of base64, e.g. `L0SM9cOFvHcCIhw=`),
/// URL-safe so that it can stand in a path unencoded.
fn connection_id() -> String {
    let bytes = ulid::Ulid::new().to_bytes();
    URL_SAFE.encode(&bytes[5..])
}

fn request_id() -> String {
    let bytes = ulid::Ulid::new().to_bytes();
    URL_SAFE
        .encode(&bytes[4..])
        .trim_end_matches('=')
        .to_string()
}

fn message(status: u16, text: &str) -> Reply {
    server::reply(
        status,
        "application/json",
        json!({ "message": text }).to_string(),
    )
}

/// An error of the Management API, as the SDK reads it (`x-amzn-ErrorType`).
fn error(status: u16, kind: &str, text: &str) -> Reply {
    let mut r = message(status, text);
    if let Ok(v) = http::HeaderValue::from_str(kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

fn gone() -> Reply {
    let mut r = server::reply(410, "application/json", r#"{"message":null}"#);
    r.headers_mut().insert(
        "x-amzn-errortype",
        http::HeaderValue::from_static("GoneException"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    #[test]
    fn the_stage_prefix_is_optional() {
        assert_eq!(strip_stage("/ws", "ws"), "/");
        assert_eq!(strip_stage("/ws/", "ws"), "/");
        assert_eq!(strip_stage("/", "ws"), "/");
        assert_eq!(
            strip_stage("/ws/@connections/a%3D", "ws"),
            "/@connections/a%3D"
        );
        assert_eq!(strip_stage("/@connections/x", "ws"), "/@connections/x");
        assert_eq!(strip_stage("/wsx", "ws"), "/wsx");
    }

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let id = connection_id();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.ends_with('='));
        assert!(!id.contains('/') && !id.contains('+'));
        assert_ne!(id, connection_id());
    }

    #[test]
    fn the_connect_event_is_a_websocket_proxy_request() {
        let (parts, ()) = http::Request::builder()
            .uri("/ws?token=abc&x=1&x=2")
            .header("host", "127.0.0.1:3001")
            .header("sec-websocket-protocol", "a, b")
            .header("user-agent", "test")
            .body(())
            .unwrap()
            .into_parts();
        let context = json!({
            "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "abc=",
            "connectedAt": 1, "requestTimeEpoch": 2, "identity": {"sourceIp": "127.0.0.1"},
        });
        let event = connect_event(&parts, &context);
        assert_eq!(event["headers"]["Sec-WebSocket-Protocol"], "a, b");
        assert_eq!(
            event["multiValueQueryStringParameters"]["x"],
            json!(["1", "2"])
        );
        let parsed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.query_string_parameters.first("token"), Some("abc"));
        assert_eq!(parsed.headers["sec-websocket-protocol"], "a, b");
        assert_eq!(
            parsed.request_context.route_key.as_deref(),
            Some("$connect")
        );
        assert_eq!(
            parsed.request_context.connection_id.as_deref(),
            Some("abc=")
        );
        // No query: the fields are absent, which the event type reads as empty.
        let (bare, ()) = http::Request::builder()
            .uri("/")
            .body(())
            .unwrap()
            .into_parts();
        let parsed: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(connect_event(&bare, &context)).unwrap();
        assert!(parsed.query_string_parameters.first("token").is_none());
    }

    #[test]
    fn answers_are_read_as_api_gateway_reads_them() {
        let a = parse_answer(
            br#"{"statusCode":401,"headers":{"sec-websocket-protocol":"p"},"multiValueHeaders":{},"body":"{\"message\":\"no\"}","isBase64Encoded":false}"#,
        )
        .unwrap();
        assert_eq!(a.status, 401);
        assert_eq!(
            a.headers,
            [("sec-websocket-protocol".to_string(), "p".to_string())]
        );
        assert_eq!(a.body.as_deref(), Some(&br#"{"message":"no"}"#[..]));
        assert_eq!(parse_answer(b"null").unwrap().status, 200);
        let binary =
            parse_answer(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#).unwrap();
        assert_eq!(
            (binary.body.as_deref(), binary.text),
            (Some(&b"hi"[..]), false)
        );
        assert!(parse_answer(b"nope").is_err());
        assert!(parse_answer(br#"{"statusCode":"x"}"#).is_err());
    }

    #[test]
    fn header_names_are_spelled_as_api_gateway_does() {
        assert_eq!(title_case("sec-websocket-key"), "Sec-WebSocket-Key");
        assert_eq!(title_case("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(title_case("host"), "Host");
    }
}
