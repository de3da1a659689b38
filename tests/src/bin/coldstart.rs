//! Cold-start benchmark (`make bench-coldstart`): for each function of the template, beside a
//! hello-world `lambda_runtime` binary built with the same profile in the same run, measures
//! through the gateway's Runtime API
//! - init: process start to its first `GET /runtime/invocation/next` (median and p90 of RUNS
//!   cold starts, default 20);
//! - the stripped binary's size;
//! - peak RSS (VmHWM) after serving 60 requests.
//!
//! Needs the emulator (AWS_ENDPOINT_URL) and release binaries in GATEWAY_BIN_DIR.

use e2e::Stack;
use localstack::gateway::{FunctionPool, GatewayConfig};
use localstack::resolve::Resolver;
use localstack::template::{FunctionSpec, Template};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

struct Row {
    name: String,
    init_ms: Vec<f64>,
    size_bytes: u64,
    peak_rss_kb: u64,
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let stack = Stack::start().await;
    let template = Template::load_default().expect("template");
    let config = GatewayConfig::from_env(template.clone()).expect("config");
    let mut rows = Vec::new();

    // The baseline, run by the same pool code as the functions.
    let hello = FunctionSpec {
        logical_id: "HelloWorld".into(),
        binary: "hello-lambda".into(),
        environment: vec![],
        timeout_s: 3,
        memory_mb: 128,
        events: vec![],
    };
    let resolver = Resolver::new(&template, &Default::default(), "", &config.region);
    let pool = Arc::new(FunctionPool::new(&hello, &resolver, &config).expect("hello pool"));
    let mut init = Vec::new();
    for _ in 0..runs {
        pool.stop_all();
        pool.invoke(bytes::Bytes::from_static(b"{}"))
            .await
            .expect("hello answers");
        init.push(pool.instances()[0].init_ms().expect("init measured"));
    }
    for _ in 0..60 {
        pool.invoke(bytes::Bytes::from_static(b"{\"n\":1}"))
            .await
            .expect("hello answers");
    }
    rows.push(Row {
        name: "hello-lambda (baseline)".into(),
        init_ms: init,
        size_bytes: size(&config.bin_dir.join("hello-lambda")),
        peak_rss_kb: peak_rss(pool.instances()[0].pid),
    });
    pool.stop_all();

    for spec in template.functions() {
        let pool = stack
            .gateway
            .function(&spec.logical_id)
            .expect("pool")
            .clone();
        // Each HTTP function answers a health route without AWS calls: its first request is
        // the cold start alone. A function fed by SQS (the worker, the notifier) gets an empty
        // batch instead (the notifier reads the template overrides: one Query). Stream
        // consumers and the scheduler are not measured here.
        let health = template
            .http_routes()
            .into_iter()
            .find(|r| r.function == spec.logical_id && r.path.ends_with("/health"))
            .map(|r| r.path);
        let sqs_fed = template
            .sqs_events()
            .iter()
            .any(|(function, _, _)| *function == spec.logical_id);
        if health.is_none() && !sqs_fed {
            continue;
        }
        let empty_batch = || async {
            pool.invoke(bytes::Bytes::from_static(br#"{"Records": []}"#))
                .await
                .expect("an empty batch is handled");
        };
        let mut init = Vec::new();
        for _ in 0..runs {
            pool.stop_all();
            match &health {
                Some(health) => {
                    let r = stack.send("GET", health, None, None, &[]).await;
                    assert_eq!(r.status, 200, "{}", r.text);
                }
                None => empty_batch().await,
            }
            init.push(pool.instances()[0].init_ms().expect("init measured"));
        }
        // Serve a mix of requests that reach DynamoDB (and, for api-auth, argon2id and KMS).
        if health.is_none() {
            for _ in 0..20 {
                empty_batch().await;
            }
        } else if spec.binary == "api-auth" {
            for i in 0..5 {
                let u = stack.sign_up(&format!("bench{i}")).await;
                for _ in 0..4 {
                    let me = stack
                        .send_as("GET", "/api/v3/auth/me", Some(&u.access_token), None, &[])
                        .await;
                    assert_eq!(me.status, 200, "{}", me.text);
                }
            }
        } else {
            for i in 0..20 {
                let created = stack.post("/api/v3/workflows", "bench", json!({"name": format!("w{i}"), "nodes": [{"title": "n", "content": "Some words. More words."}]})).await;
                assert_eq!(created.status, 201, "{}", created.text);
                let id = created.body["id"].as_str().expect("id").to_string();
                assert_eq!(
                    stack
                        .get(&format!("/api/v3/workflows/{id}"), "bench")
                        .await
                        .status,
                    200
                );
                assert_eq!(
                    stack
                        .get("/api/v3/workflows?limit=20", "bench")
                        .await
                        .status,
                    200
                );
            }
        }
        let instance = pool
            .instances()
            .into_iter()
            .max_by_key(|i| i.delivered())
            .expect("an instance");
        rows.push(Row {
            name: spec.binary.clone(),
            init_ms: init,
            size_bytes: size(&config.bin_dir.join(&spec.binary)),
            peak_rss_kb: peak_rss(instance.pid),
        });
    }

    let base = median(&rows[0].init_ms);
    println!(
        "Cold start, {runs} runs each, binaries from {}:\n",
        config.bin_dir.display()
    );
    println!(
        "| binary | init median (ms) | init p90 (ms) | x hello-world | stripped size (MB) | peak RSS (MB) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for row in &rows {
        let m = median(&row.init_ms);
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} |",
            row.name,
            m,
            p90(&row.init_ms),
            m / base,
            row.size_bytes as f64 / 1_048_576.0,
            row.peak_rss_kb as f64 / 1024.0
        );
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn median(v: &[f64]) -> f64 {
    let v = sorted(v);
    v[v.len() / 2]
}

fn p90(v: &[f64]) -> f64 {
    let v = sorted(v);
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|m| m.len())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// VmHWM of a process, in kB.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
