//! A fake OpenAI-compatible server for tests: real HTTP on `127.0.0.1`, chat completions
//! streamed as server-sent events the way OpenAI sends them. Each request takes the next
//! scripted [`Reply`] (a streamed text once the script is empty), and every request is
//! recorded ([`Received`]) so tests can count calls and read what was sent.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The text of a request the script did not plan for.
pub const DEFAULT_TEXT: &str = "The fake model writes this text.";

/// What the server answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `text` streamed in `chunks` pieces (whole words), each after `delay`, then a finish
    /// chunk with `finish_reason`, the usage chunk (when `usage` and the request asked for it)
    /// and `data: [DONE]`.
    Stream {
        text: String,
        chunks: usize,
        delay: Duration,
        finish_reason: String,
        usage: bool,
    },
    /// `text` in `chunks` pieces, then the connection breaks (no finish, no `[DONE]`).
    Broken { text: String, chunks: usize },
    /// An error status with an OpenAI-style error body and, when given, `Retry-After`.
    Status {
        status: u16,
        message: String,
        retry_after_s: Option<u64>,
    },
    /// Never answers (the connection stays open).
    Hang,
}

impl Reply {
    /// `text` in `chunks` pieces, at once, with usage.
    pub fn text(text: &str, chunks: usize) -> Reply {
        Reply::Stream {
            text: text.into(),
            chunks,
            delay: Duration::ZERO,
            finish_reason: "stop".into(),
            usage: true,
        }
    }

    /// `text` in `chunks` pieces, `delay` before each.
    pub fn slow(text: &str, chunks: usize, delay: Duration) -> Reply {
        match Reply::text(text, chunks) {
            Reply::Stream {
                text,
                chunks,
                finish_reason,
                usage,
                ..
            } => Reply::Stream {
                text,
                chunks,
                delay,
                finish_reason,
                usage,
            },
            other => other,
        }
    }

    /// A 429 with `Retry-After: retry_after_s`.
    pub fn throttled(retry_after_s: u64) -> Reply {
        Reply::Status {
            status: 429,
            message: "Rate limit reached for requests".into(),
            retry_after_s: Some(retry_after_s),
        }
    }

    /// An error `status` with `message` in the body.
    pub fn status(status: u16, message: &str) -> Reply {
        Reply::Status {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The same stream with another finish reason (`length`, `content_filter`).
    pub fn finishing(self, reason: &str) -> Reply {
        match self {
            Reply::Stream {
                text,
                chunks,
                delay,
                usage,
                ..
            } => Reply::Stream {
                text,
                chunks,
                delay,
                finish_reason: reason.into(),
                usage,
            },
            other => other,
        }
    }

    /// The same stream without a usage chunk (as servers that ignore `stream_options`).
    pub fn without_usage(self) -> Reply {
        match self {
            Reply::Stream {
                text,
                chunks,
                delay,
                finish_reason,
                ..
            } => Reply::Stream {
                text,
                chunks,
                delay,
                finish_reason,
                usage: false,
            },
            other => other,
        }
    }
}

/// A request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
}

impl Received {
    /// The `Authorization` header, if any.
    pub fn authorization(&self) -> Option<&str> {
        self.headers.get("authorization").map(String::as_str)
    }

    /// The content of the message with `role` (`system`, `user`).
    pub fn message(&self, role: &str) -> Option<&str> {
        self.body["messages"]
            .as_array()?
            .iter()
            .find(|m| m["role"] == role)?["content"]
            .as_str()
    }
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub struct FakeOpenAi {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeOpenAi {
    /// A server on a free port of 127.0.0.1.
    pub async fn start() -> FakeOpenAi {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr, accept) = super::serve_local(state.clone(), answer).await;
        FakeOpenAi {
            addr,
            state,
            accept,
        }
    }

    /// The base URL to configure (`http://127.0.0.1:<port>/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next request gets `reply`.
    pub fn push(&self, reply: Reply) -> &Self {
        lock(&self.state).script.push_back(reply);
        self
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// How many requests arrived (hanging ones included).
    pub fn calls(&self) -> usize {
        lock(&self.state).received.len()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = {
        let mut state = lock(&state);
        state.received.push(Received {
            method,
            path: path.clone(),
            headers,
            body: body.clone(),
        });
        state
            .script
            .pop_front()
            .unwrap_or_else(|| Reply::text(DEFAULT_TEXT, 3))
    };
    if path != "/v1/chat/completions" {
        return Ok(error(404, "Unknown path", None));
    }
    let model = body["model"].as_str().unwrap_or("fake").to_string();
    let include_usage = body["stream_options"]["include_usage"] == true;
    Ok(match reply {
        Reply::Hang => std::future::pending().await,
        Reply::Status {
            status,
            message,
            retry_after_s,
        } => error(status, &message, retry_after_s),
        Reply::Stream {
            text,
            chunks,
            delay,
            finish_reason,
            usage,
        } => {
            let mut events: Vec<Value> = pieces(&text, chunks)
                .into_iter()
                .map(|p| chunk(&model, json!({"content": p}), Value::Null))
                .collect();
            events.push(chunk(&model, json!({}), json!(finish_reason)));
            if usage && include_usage {
                let prompt_words = body["messages"]
                    .as_array()
                    .map(|ms| {
                        ms.iter()
                            .filter_map(|m| m["content"].as_str())
                            .map(|c| c.split_whitespace().count())
                            .sum::<usize>()
                    })
                    .unwrap_or(0);
                let completion = text.split_whitespace().count();
                events.push(json!({
                    "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": model, "choices": [],
                    "usage": {"prompt_tokens": prompt_words, "completion_tokens": completion,
                              "total_tokens": prompt_words + completion},
                }));
            }
            sse(events, delay, true)
        }
        Reply::Broken { text, chunks } => {
            let events = pieces(&text, chunks)
                .into_iter()
                .map(|p| chunk(&model, json!({"content": p}), Value::Null))
                .collect();
            sse(events, Duration::ZERO, false)
        }
    })
}

/// `text` in at most `n` pieces of whole words (spaces kept).
fn pieces(text: &str, n: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let size = words.len().div_ceil(n.max(1)).max(1);
    words.chunks(size).map(|c| c.concat()).collect()
}

fn chunk(model: &str, delta: Value, finish_reason: Value) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
}

/// A `text/event-stream` response of `events`, `delay` before each; ends with `[DONE]` when
/// `complete`, with a broken connection otherwise.
fn sse(events: Vec<Value>, delay: Duration, complete: bool) -> Response<Body> {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    tokio::spawn(async move {
        for event in events {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let frame = Frame::data(Bytes::from(format!("data: {event}\n\n")));
            if tx.send(frame).await.is_err() {
                return; // the client went away
            }
        }
        if complete {
            let _ = tx.send(Frame::data(Bytes::from("data: [DONE]\n\n"))).await;
        } else {
            tx.abort(std::io::Error::other("the fake server breaks the stream"));
        }
    });
    let mut response = Response::new(body.boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn error(status: u16, message: &str, retry_after_s: Option<u64>) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": "fake_error", "code": status}});
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(s) = retry_after_s {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, s.into());
    }
    response
}
