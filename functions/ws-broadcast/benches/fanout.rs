//! Fan-out of one change to 1,000 subscribed connections: `shared::app::broadcast::deliver` with
//! its bounded concurrency, beside the same posts made one after another, in the same run.
//!
//! The followers are read from the emulator's table (one Query); the posts go through the real
//! Management API client (`ManagementApi`, the AWS SDK) to a local stand-in of API Gateway's
//! `PostToConnection` that answers each post after a fixed delay (`POST_DELAY`, 5 ms), as a
//! distant service would. Needs the emulator at `AWS_ENDPOINT_URL` (`make bench-fanout`).

#![allow(clippy::unwrap_used)] // benchmark code: a failed unwrap is a failed run

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shared::app::broadcast::{FanOut, deliver};
use shared::aws::apigw::ManagementApi;
use shared::aws::dynamo::DynamoStore;
use shared::domain::broadcast::{Audience, Message};
use shared::domain::realtime::Connection;
use shared::domain::{Principal, Role};
use shared::ports::Connections;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 1000;
const POST_DELAY: Duration = Duration::from_millis(5);
const ROUNDS: usize = 5;

/// A stand-in of `POST /{stage}/@connections/{id}`: 200 after `POST_DELAY`; counts the posts.
/// It runs on a thread and runtime of its own, as a distant service would, so its work does not
/// count as the fan-out's.
fn management_api(posts: Arc<AtomicU64>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            serve(tokio::net::TcpListener::from_std(listener).unwrap(), posts).await
        });
    });
    format!("http://{addr}/ws")
}

async fn serve(listener: tokio::net::TcpListener, posts: Arc<AtomicU64>) {
    {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let posts = posts.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let posts = posts.clone();
                    async move {
                        tokio::time::sleep(POST_DELAY).await;
                        posts.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (client, table) = localstack::testing::fresh_table("bench-fanout").await;
    let store = DynamoStore::new(client, table);
    let workflow_id = "01BENCHFANOUTWORKFLOW00000";
    let owner = Principal::user("bench", Role::Editor);
    let started = Instant::now();
    for i in 0..CONNECTIONS {
        let c = Connection::open(&format!("conn-{i:04}"), &owner, chrono::Utc::now());
        store.add_connection(&c).await.unwrap();
        assert!(store.subscribe(&c, workflow_id, 100).await.unwrap());
    }
    eprintln!(
        "{CONNECTIONS} connections subscribed in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let posts = Arc::new(AtomicU64::new(0));
    let endpoint = management_api(posts.clone());
    let sdk = localstack::testing::emulator_config().await;
    let api = aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build(),
    );
    let poster = ManagementApi::from_client(api);
    let message = Message {
        audience: Audience::Workflow(workflow_id.to_string()),
        frame: serde_json::json!({
            "type": "workflow_update",
            "update_type": "status_changed",
            "workflow_id": workflow_id,
            "workflow": {"id": workflow_id, "name": "Bench", "status": "active"},
        })
        .to_string(),
    };

    let run = |how: FanOut| {
        let (store, poster, message) = (&store, &poster, &message);
        async move {
            let start = Instant::now();
            let d = deliver(
                store,
                poster,
                std::slice::from_ref(message),
                chrono::Utc::now(),
                how,
            )
            .await
            .unwrap();
            assert_eq!(d.sent, CONNECTIONS as u64, "{d:?}");
            start.elapsed()
        }
    };
    let bounded = FanOut::default();
    // Warm-up: connections to the stand-in, the SDK's first request.
    run(bounded).await;
    let mut concurrent: Vec<Duration> = Vec::new();
    for _ in 0..ROUNDS {
        concurrent.push(run(bounded).await);
    }
    let sequential = run(FanOut {
        concurrency: 1,
        ..bounded
    })
    .await;
    concurrent.sort();
    let median = concurrent[ROUNDS / 2];
    println!(
        "fan-out of 1 message to {CONNECTIONS} connections, {} ms per post (Management API stand-in):",
        POST_DELAY.as_millis()
    );
    println!(
        "  bounded ({} at once): median {:.0} ms (min {:.0}, max {:.0}) over {ROUNDS} rounds",
        bounded.concurrency,
        median.as_secs_f64() * 1e3,
        concurrent[0].as_secs_f64() * 1e3,
        concurrent[ROUNDS - 1].as_secs_f64() * 1e3,
    );
    println!(
        "  sequential: {:.0} ms; bounded / sequential = 1/{:.1}",
        sequential.as_secs_f64() * 1e3,
        sequential.as_secs_f64() / median.as_secs_f64()
    );
    println!(
        "  posts received: {} (each round {CONNECTIONS})",
        posts.load(Ordering::Relaxed)
    );
}
