//! Function instances as Lambda runs them: cold start logged, idle instances reused, a limit
//! on concurrency, a crashed instance replaced, a hung one timed out.

use e2e::{Stack, eventually};
use std::time::Duration;

const FUNCTION: &str = "ApiWorkflowsFunction";

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid the gateway started; no memory is involved.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

#[tokio::test]
async fn cold_start_is_logged_and_an_idle_instance_is_reused() {
    let s = Stack::start().await;
    let pool = s.gateway.function(FUNCTION).unwrap().clone();
    assert!(pool.instances().is_empty(), "instances start on demand");
    for _ in 0..3 {
        assert_eq!(s.get("/api/v3/workflows", "u").await.status, 200);
    }
    let instances = pool.instances();
    assert_eq!(instances.len(), 1, "sequential requests reuse one instance");
    assert_eq!(instances[0].delivered(), 3);
    assert!(instances[0].init_ms().is_some());
    let lines = s.log_lines(FUNCTION);
    assert!(
        lines.iter().any(|l| l.starts_with("cold start: init")),
        "{lines:?}"
    );
    // The function's own log lines reach the gateway's output, under its name.
    assert!(
        lines.iter().any(
            |l| l.contains("path=/api/v3/workflows route=\"GET /api/v3/workflows\" status=200")
        ),
        "{lines:?}"
    );
}

#[tokio::test]
async fn concurrency_is_limited_per_function() {
    let s = Stack::start().await;
    let pool = s.gateway.function(FUNCTION).unwrap().clone();
    let requests: Vec<_> = (0..12)
        .map(|i| {
            s.post(
                "/api/v3/workflows",
                "u",
                serde_json::json!({"name": format!("w{i}")}),
            )
        })
        .collect();
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let n = pool.instances().len();
    assert!((1..=4).contains(&n), "{n} instances for a limit of 4");
    assert_eq!(
        pool.instances().iter().map(|i| i.delivered()).sum::<u64>(),
        12
    );
}

#[tokio::test]
async fn a_process_killed_mid_request_is_a_502_and_the_next_request_gets_a_fresh_instance() {
    let s = Stack::start().await;
    let pool = s.gateway.function(FUNCTION).unwrap().clone();
    assert_eq!(s.get("/api/v3/workflows", "u").await.status, 200);
    let victim = pool.instances()[0].clone();
    // Freeze it while it waits for an event, so the next event is delivered but never
    // answered, then kill it mid-request.
    eventually(
        "the instance to wait for its next event",
        Duration::from_secs(5),
        || victim.awaiting_event(),
    )
    .await;
    signal(victim.pid, libc::SIGSTOP);
    let request = tokio::spawn({
        let base = s.base.clone();
        let token = s.token("u").await;
        async move { raw_get(&base, "/api/v3/workflows", &token).await }
    });
    eventually(
        "the request to reach the instance",
        Duration::from_secs(5),
        || victim.in_flight() == 1,
    )
    .await;
    signal(victim.pid, libc::SIGKILL);
    let status = request.await.unwrap();
    assert_eq!(status, 502);
    let after = s.get("/api/v3/workflows", "u").await;
    assert_eq!(after.status, 200, "{}", after.text);
    let now = pool.instances();
    assert_eq!(now.len(), 1);
    assert_ne!(
        now[0].pid, victim.pid,
        "a fresh instance serves the next request"
    );
}

#[tokio::test]
async fn a_hung_instance_times_out_with_504_and_is_replaced() {
    let s = Stack::start().await;
    let pool = s.gateway.function(FUNCTION).unwrap().clone();
    assert_eq!(s.get("/health", "u").await.status, 200);
    let victim = pool.instances()[0].clone();
    eventually(
        "the instance to wait for its next event",
        Duration::from_secs(5),
        || victim.awaiting_event(),
    )
    .await;
    signal(victim.pid, libc::SIGSTOP);
    let started = std::time::Instant::now();
    let r = s.get("/api/v3/workflows", "u").await;
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        started.elapsed() >= pool.timeout,
        "answered before the function's Timeout"
    );
    eventually(
        "the hung instance to be stopped",
        Duration::from_secs(5),
        || victim.has_exited(),
    )
    .await;
    assert_eq!(s.get("/api/v3/workflows", "u").await.status, 200);
}

/// A GET through a client of its own (the request outlives the caller's borrow of the stack).
async fn raw_get(base: &str, path: &str, token: &str) -> u16 {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    client
        .request(req)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
