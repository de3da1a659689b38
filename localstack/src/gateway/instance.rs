//! One function instance: the function's binary in its own process, with its own Lambda
//! Runtime API endpoint (`AWS_LAMBDA_RUNTIME_API`) served here:
//!
//! - `GET  /2018-06-01/runtime/invocation/next` hands over the next event (long poll);
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` answer it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed initialisation.
//!
//! The first `next` ends the cold start, logged with its init time. When the process exits,
//! everything it was given fails as a crash.

use super::logs::LogSink;
use super::server::{self, Reply};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended, from the function's side.
#[derive(Debug)]
pub enum Outcome {
    Response(Bytes),
    /// The function reported an error (`/error`): its JSON body.
    Error(Bytes),
}

/// An event waiting for the instance to take it.
pub struct Invocation {
    pub request_id: String,
    /// X-Ray trace header value, as Lambda passes it.
    pub trace_id: String,
    pub payload: Bytes,
    pub deadline: SystemTime,
    pub reply: oneshot::Sender<Outcome>,
}

struct Shared {
    name: String,
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Invocations handed to the process and not yet answered (for tests and logs).
    delivered: AtomicU64,
    spawned: Instant,
    ready: AtomicBool,
    /// The process is waiting in `next` for an event.
    polling: AtomicBool,
    init_ms: Mutex<Option<f64>>,
    exited: watch::Receiver<Option<String>>,
    logs: LogSink,
}

pub struct Instance {
    pub id: u64,
    pub pid: u32,
    queue: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    exited: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    runtime_api: tokio::task::JoinHandle<()>,
}

/// How to start one process.
pub struct Launch<'a> {
    pub name: &'a str,
    pub id: u64,
    pub binary: &'a Path,
    pub env: &'a [(String, String)],
    pub function_arn: &'a str,
    pub logs: &'a LogSink,
}

impl Instance {
    /// Starts the process with exactly `env` plus its Runtime API address.
    pub async fn spawn(launch: Launch<'_>) -> Result<Arc<Instance>, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot open a Runtime API port: {e}"))?;
        let api = listener.local_addr().map_err(|e| e.to_string())?;
        let (queue_tx, queue_rx) = mpsc::channel(1);
        let (exit_tx, exit_rx) = watch::channel(None);
        let spawned = Instant::now();
        let mut child = tokio::process::Command::new(launch.binary)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (build it first: cargo build --bins)",
                    launch.binary.display()
                )
            })?;
        let pid = child.id().unwrap_or(0);
        let name = launch.name.to_string();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let logs = launch.logs.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.line(&name, &line);
                }
            });
        }
        let shared = Arc::new(Shared {
            name: name.clone(),
            function_arn: launch.function_arn.to_string(),
            queue: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::new(HashMap::new()),
            delivered: AtomicU64::new(0),
            spawned,
            ready: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            init_ms: Mutex::new(None),
            exited: exit_rx.clone(),
            logs: launch.logs.clone(),
        });
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let monitor = shared.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                _ = kill_rx => {
                    let _ = child.kill().await;
                    "killed by the gateway".to_string()
                }
            };
            monitor
                .logs
                .line(&monitor.name, &format!("instance exited ({status})"));
            // Everything handed to the process is lost with it.
            if let Ok(mut in_flight) = monitor.in_flight.lock() {
                in_flight.clear();
            }
            let _ = exit_tx.send(Some(status));
        });
        let api_shared = shared.clone();
        let runtime_api = tokio::spawn(server::serve(listener, move |req| {
            let shared = api_shared.clone();
            async move { runtime_api(&shared, req).await }
        }));
        launch.logs.line(
            launch.name,
            &format!(
                "instance {} started (pid {pid}, Runtime API {api})",
                launch.id
            ),
        );
        Ok(Arc::new(Instance {
            id: launch.id,
            pid,
            queue: queue_tx,
            shared,
            exited: exit_rx,
            kill: Mutex::new(Some(kill_tx)),
            runtime_api,
        }))
    }

    /// Hands `invocation` to the process; fails if it has exited.
    pub async fn submit(&self, invocation: Invocation) -> Result<(), String> {
        self.queue
            .send(invocation)
            .await
            .map_err(|_| "instance is gone".to_string())
    }

    /// Resolves when the process has exited, with how it ended.
    pub async fn exited(&self) -> String {
        let mut rx = self.exited.clone();
        loop {
            if let Some(status) = rx.borrow().clone() {
                return status;
            }
            if rx.changed().await.is_err() {
                return "gone".to_string();
            }
        }
    }

    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Process start to its first `next`, once it has asked.
    pub fn init_ms(&self) -> Option<f64> {
        self.shared.init_ms.lock().ok().and_then(|v| *v)
    }

    /// Invocations the process has taken (through `next`) and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the process is waiting in `next` for its next event (idle and ready).
    pub fn awaiting_event(&self) -> bool {
        self.shared.polling.load(Ordering::SeqCst)
    }

    /// Invocations the process has taken in all.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// Ends the process (a timed-out or stopped instance).
    pub fn kill(&self) {
        if let Some(tx) = self.kill.lock().ok().and_then(|mut k| k.take()) {
            let _ = tx.send(());
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        self.runtime_api.abort();
    }
}

async fn runtime_api(shared: &Shared, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return server::reply(
            404,
            "application/json",
            r#"{"errorMessage":"unknown path"}"#,
        );
    };
    match (method.as_str(), rest) {
        ("GET", "/invocation/next") => next(shared).await,
        ("POST", "/init/error") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            shared.logs.line(
                &shared.name,
                &format!("init error: {}", String::from_utf8_lossy(&body)),
            );
            server::reply(202, "application/json", r#"{"status":"OK"}"#)
        }
        ("POST", rest) => {
            let Some((id, kind)) = rest
                .strip_prefix("/invocation/")
                .and_then(|r| r.rsplit_once('/'))
            else {
                return server::reply(
                    404,
                    "application/json",
                    r#"{"errorMessage":"unknown path"}"#,
                );
            };
            if kind != "response" && kind != "error" {
                return server::reply(
                    404,
                    "application/json",
                    r#"{"errorMessage":"unknown path"}"#,
                );
            }
            let id = id.to_string();
            let kind = kind.to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let reply = shared.in_flight.lock().ok().and_then(|mut m| m.remove(&id));
            let Some(reply) = reply else {
                return server::reply(
                    400,
                    "application/json",
                    r#"{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}"#,
                );
            };
            let outcome = match kind.as_str() {
                "response" => Outcome::Response(body),
                "error" => Outcome::Error(body),
                _ => {
                    return server::reply(
                        404,
                        "application/json",
                        r#"{"errorMessage":"unknown path"}"#,
                    );
                }
            };
            let _ = reply.send(outcome);
            server::reply(202, "application/json", r#"{"status":"OK"}"#)
        }
        _ => server::reply(
            404,
            "application/json",
            r#"{"errorMessage":"unknown path"}"#,
        ),
    }
}

/// Long poll: waits for the next event for this instance.
async fn next(shared: &Shared) -> Reply {
    if !shared.ready.swap(true, Ordering::SeqCst) {
        let ms = shared.spawned.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut v) = shared.init_ms.lock() {
            *v = Some(ms);
        }
        shared.logs.line(
            &shared.name,
            &format!("cold start: init {ms:.1} ms (process start to first Runtime API next)"),
        );
    }
    let mut exited = shared.exited.clone();
    let invocation = {
        let mut queue = shared.queue.lock().await;
        shared.polling.store(true, Ordering::SeqCst);
        let inv = tokio::select! {
            inv = queue.recv() => inv,
            _ = exited.changed() => None,
        };
        shared.polling.store(false, Ordering::SeqCst);
        inv
    };
    let Some(inv) = invocation else {
        return server::reply(
            500,
            "application/json",
            r#"{"errorMessage":"instance stopping"}"#,
        );
    };
    let deadline_ms = inv
        .deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    if let Ok(mut m) = shared.in_flight.lock() {
        m.insert(inv.request_id.clone(), inv.reply);
    }
    shared.delivered.fetch_add(1, Ordering::Relaxed);
    let mut r = server::reply(200, "application/json", inv.payload);
    let headers = r.headers_mut();
    for (k, v) in [
        ("lambda-runtime-aws-request-id", inv.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", inv.trace_id.clone()),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    r
}
