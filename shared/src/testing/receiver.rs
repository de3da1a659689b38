//! A webhook receiver for tests: real HTTP on `127.0.0.1` that records every POST and answers
//! each path from a script (`fail(path, [503, 429, ...])`: those statuses first, in order,
//! then 200), so a test can make a receiver fail on demand — twice then succeed, or refuse
//! for good — and read what was delivered.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
    pub at: Instant,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct State {
    script: BTreeMap<String, VecDeque<(u16, Option<u64>)>>,
    received: Vec<Delivery>,
}

pub struct Receiver {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr, accept) = super::serve_local(state.clone(), answer).await;
        Receiver {
            addr,
            state,
            accept,
        }
    }

    /// The URL of `path` (e.g. `/hooks/a`) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` answers `statuses` first, one per request, then 200.
    pub fn fail(&self, path: &str, statuses: &[u16]) {
        self.fail_with_retry_after(
            path,
            &statuses.iter().map(|s| (*s, None)).collect::<Vec<_>>(),
        );
    }

    /// The same, each status with an optional `Retry-After` (seconds).
    pub fn fail_with_retry_after(&self, path: &str, statuses: &[(u16, Option<u64>)]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .script
            .entry(path.to_string())
            .or_default()
            .extend(statuses.iter().copied());
    }

    /// Every request to `path` so far, oldest first.
    pub fn received(&self, path: &str) -> Vec<Delivery> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .received
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = req.into_body().collect().await?.to_bytes();
    let (status, retry_after) = {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        let next = s
            .script
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or((200, None));
        s.received.push(Delivery {
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: next.0,
            at: Instant::now(),
        });
        next
    };
    let mut response = Response::builder().status(status);
    if let Some(s) = retry_after {
        response = response.header("retry-after", s.to_string());
    }
    Ok(response
        .body(Full::new(Bytes::from(if status < 300 {
            "ok"
        } else {
            "no"
        })))
        .unwrap_or_default())
}
