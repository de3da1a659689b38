//! The local dashboard (`gateway::metrics`, `gateway::dashboard`): EMF lines in, the template's
//! widgets and alarms out.
//!
//! - Over the real template (`infra/sam-template.yaml`), without a gateway: its widgets show the
//!   collected EMF metrics with the right statistics and metric math, its alarms go to ALARM when
//!   their metric crosses the threshold, non-EMF lines are ignored and `AWS/*` metrics are marked
//!   not available locally.
//! - Through a running gateway (a small template; no AWS emulator needed): a function process
//!   prints an EMF line with its `AWS_LAMBDA_FUNCTION_NAME` as `Service`, and
//!   `/_local/dashboard/data` shows it in the widget of `${ThatFunction}`; `/_local/...` is
//!   answered by the gateway, never by a function, even with a `/{proxy+}` route.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use localstack::gateway::Gateway;
use localstack::gateway::dashboard::Dashboard;
use localstack::gateway::metrics::Metrics;
use localstack::resolve::Resolver;
use localstack::template::Template;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "DocumentWorkflowChain";

fn emf(ts_ms: i64, service: &str, dims: &[(&str, &str)], metrics: &[(&str, f64)]) -> String {
    let mut set = vec!["Service"];
    set.extend(dims.iter().map(|(k, _)| *k));
    let mut record = json!({
        "_aws": {
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [{
                "Namespace": NS,
                "Dimensions": [["Service"], set],
                "Metrics": metrics.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
            }],
        },
        "Service": service,
    });
    for (k, v) in dims {
        record[*k] = json!(v);
    }
    for (n, v) in metrics {
        record[*n] = json!(v);
    }
    record.to_string()
}

/// The real template's dashboard over a fresh collector, names without a suffix (`make dev`).
fn real() -> (Dashboard, std::sync::Arc<Metrics>) {
    let template = Template::load_default().unwrap();
    let resolver = Resolver::new(&template, &HashMap::new(), "", "us-east-1");
    let metrics = Metrics::new();
    (
        Dashboard::new(&template, &resolver, metrics.clone()),
        metrics,
    )
}

fn widget<'a>(data: &'a Value, title: &str) -> &'a Value {
    data["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["title"] == title)
        .unwrap_or_else(|| panic!("no widget {title:?}"))
}

fn series<'a>(w: &'a Value, label: &str) -> &'a Value {
    w["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no series {label:?} in {}", w["title"]))
}

fn points(s: &Value) -> Vec<(i64, f64)> {
    s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

fn alarm<'a>(data: &'a Value, name: &str) -> &'a Value {
    data["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no alarm {name:?}"))
}

/// A whole minute, as `now` of the tests without a gateway.
const NOW_S: i64 = 1_764_558_000 + 30 * 60;

#[test]
fn widgets_show_the_emf_metrics_of_the_template_services() {
    let (dashboard, metrics) = real();
    let minute = (NOW_S - 120) * 1000;
    for status in ["2xx", "2xx", "2xx", "4xx"] {
        let line = emf(
            minute + 5_000,
            "ApiWorkflowsFunction",
            &[("StatusClass", status)],
            &[("Requests", 1.0), ("ServerErrors", 0.0)],
        );
        assert!(metrics.ingest(&line));
    }
    for latency in [10.0, 20.0, 30.0, 400.0] {
        metrics.ingest(&emf(
            minute + 10_000,
            "ApiWorkflowsFunction",
            &[("Route", "GET /api/v3/workflows")],
            &[("RequestLatency", latency)],
        ));
    }
    // One 5xx of ApiAuth in the next minute.
    metrics.ingest(&emf(
        minute + 60_000,
        "ApiAuthFunction",
        &[("StatusClass", "5xx")],
        &[("Requests", 1.0), ("ServerErrors", 1.0)],
    ));
    let data = dashboard.data(NOW_S, 60);
    assert_eq!(data["dashboard"], "OperationsDashboard");
    assert!(data["problem"].is_null(), "{}", data["problem"]);

    let requests = widget(&data, "API: requests by status class");
    assert_eq!(requests["available"], true);
    assert_eq!(
        points(series(requests, "ApiWorkflows 2xx")),
        vec![(minute, 3.0)]
    );
    assert_eq!(
        points(series(requests, "ApiWorkflows 4xx")),
        vec![(minute, 1.0)]
    );
    assert_eq!(points(series(requests, "ApiWorkflows 5xx")), vec![]);
    assert_eq!(
        points(series(requests, "ApiAuth 5xx")),
        vec![(minute + 60_000, 1.0)]
    );

    let latency = widget(&data, "API: latency p50 / p95 / p99 (ms)");
    assert_eq!(
        points(series(latency, "ApiWorkflows p50")),
        vec![(minute, 20.0)]
    );
    assert_eq!(
        points(series(latency, "ApiWorkflows p99")),
        vec![(minute, 400.0)]
    );

    // Metric math: 0 of 4 in the first minute, 1 of 1 in the second.
    let rate = widget(&data, "API: 5xx rate (%)");
    let rate_series = series(rate, "5xx rate (%)");
    assert_eq!(rate_series["visible"], true);
    assert_eq!(
        points(rate_series),
        vec![(minute, 0.0), (minute + 60_000, 100.0)]
    );
    assert_eq!(rate["series"][1]["visible"], false, "the ids are hidden");

    // A widget of EMF metrics nobody emitted yet: available, empty.
    let steps = widget(&data, "Runs: steps");
    assert_eq!(steps["available"], true);
    assert!(
        steps["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| points(s).is_empty())
    );
}

#[test]
fn aws_metrics_are_marked_not_available_locally() {
    let (dashboard, _) = real();
    let data = dashboard.data(NOW_S, 60);
    for title in [
        "Lambda: errors",
        "Queues: dead-letter messages visible",
        "DynamoDB: throttled requests and user errors",
    ] {
        let w = widget(&data, title);
        assert_eq!(w["available"], false, "{title}");
        assert!(
            w["note"]
                .as_str()
                .unwrap()
                .contains("not available locally"),
            "{title}"
        );
        for s in w["series"].as_array().unwrap() {
            assert_eq!(s["available"], false);
            assert!(s["namespace"].as_str().unwrap().starts_with("AWS/"));
        }
    }
    let dlq = alarm(&data, "CriticalStepDeadLetterQueueNotEmptyAlarm");
    assert_eq!(dlq["state"], "INSUFFICIENT_DATA");
    assert!(
        dlq["reason"]
            .as_str()
            .unwrap()
            .contains("not available locally")
    );
    assert_eq!(dlq["available"], false);
    // Every alarm of the template is listed.
    let template = Template::load_default().unwrap();
    let alarms = template
        .resources()
        .iter()
        .filter(|r| r.resource_type == "AWS::CloudWatch::Alarm")
        .count();
    assert_eq!(data["alarms"].as_array().unwrap().len(), alarms);
}

#[test]
fn non_emf_lines_are_ignored() {
    let (dashboard, metrics) = real();
    for line in [
        "",
        "cold start: init 12.3 ms",
        r#"{"level":"INFO","fields":{"message":"request"},"target":"api_workflows"}"#,
        r#"{"_aws": {"Timestamp": 1}}"#,
        r#"{"_aws": not json"#,
    ] {
        assert!(!metrics.ingest(line), "{line:?}");
    }
    assert_eq!(metrics.lines(), 0);
    let data = dashboard.data(NOW_S, 60);
    assert_eq!(data["emfLines"], 0);
    let requests = widget(&data, "API: requests by status class");
    assert!(
        requests["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| points(s).is_empty())
    );
}

#[test]
fn an_alarm_goes_to_alarm_when_its_emf_metric_crosses_the_threshold() {
    let (dashboard, metrics) = real();
    let now_ms = NOW_S * 1000;
    let data = dashboard.data(NOW_S, 60);
    // notBreaching: no data is OK.
    assert_eq!(alarm(&data, "ApiWorkflowsLatencyP99Alarm")["state"], "OK");
    assert_eq!(alarm(&data, "ApiServerErrorRateAlarm")["state"], "OK");

    // p99 over 1000 ms in 2 of the last 5 minutes: not yet (3 needed).
    for m in [1, 2] {
        metrics.ingest(&emf(
            now_ms - m * 60_000,
            "ApiWorkflowsFunction",
            &[],
            &[("RequestLatency", 1500.0)],
        ));
    }
    let a = dashboard.data(NOW_S, 60);
    let latency = alarm(&a, "ApiWorkflowsLatencyP99Alarm");
    assert_eq!(latency["state"], "OK", "{}", latency["reason"]);
    // The third minute: ALARM; another service's alarm stays OK.
    metrics.ingest(&emf(
        now_ms,
        "ApiWorkflowsFunction",
        &[],
        &[("RequestLatency", 2500.0)],
    ));
    let a = dashboard.data(NOW_S, 60);
    let latency = alarm(&a, "ApiWorkflowsLatencyP99Alarm");
    assert_eq!(latency["state"], "ALARM", "{}", latency["reason"]);
    assert_eq!(
        latency["values"],
        json!([null, null, 1500.0, 1500.0, 2500.0])
    );
    assert_eq!(alarm(&a, "ApiAuthLatencyP99Alarm")["state"], "OK");

    // Metric math: 5xx rate over 5 % with at least 10 requests a minute, 3 of 5 minutes.
    for m in 0..3 {
        let ts = now_ms - m * 60_000;
        for i in 0..12 {
            let error = if i < 2 { 1.0 } else { 0.0 };
            metrics.ingest(&emf(
                ts,
                "ApiAuthFunction",
                &[],
                &[("Requests", 1.0), ("ServerErrors", error)],
            ));
        }
    }
    let a = dashboard.data(NOW_S, 60);
    let rate = alarm(&a, "ApiServerErrorRateAlarm");
    assert_eq!(rate["state"], "ALARM", "{}", rate["reason"]);
    // 2 errors in 12 requests each minute (ApiWorkflows' latency lines count no requests).
    let expected = 100.0 * 2.0 / 12.0;
    let values: Vec<f64> = rate["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(values.len(), 3);
    assert!(
        values.iter().all(|v| (v - expected).abs() < 1e-9),
        "{values:?}"
    );
}

// --- Through a running gateway -----------------------------------------------------------------

const TEMPLATE: &str = r#"
Resources:
  Hello:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: hello } }
    Properties:
      Timeout: 5
      Events:
        Any:
          Type: HttpApi
          Properties: { Path: "/{proxy+}", Method: ANY }
  Board:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub |
        {"widgets": [{"type": "metric", "x": 0, "y": 0, "width": 8, "height": 6, "properties": {"title": "Hello: requests", "stat": "Sum", "period": 60, "region": "${AWS::Region}", "metrics": [["DocumentWorkflowChain", "Requests", "Service", "${Hello}", {"label": "Hello"}]]}}]}
  HelloRequestsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: DocumentWorkflowChain
      MetricName: Requests
      Dimensions: [{Name: Service, Value: !Ref Hello}]
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
"#;

/// `GET path` over a fresh connection: status, headers (lower-case names) and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[tokio::test]
async fn the_gateway_collects_function_output_and_serves_the_dashboard() {
    // A function that prints an EMF line at start-up, named by its AWS_LAMBDA_FUNCTION_NAME as
    // the functions' `shared::emf` does, then serves as hello-lambda (echoes its event).
    let dir = std::env::temp_dir().join(format!("dashboard-local-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("hello-emf");
    let line = r#"{"_aws":{"Timestamp":TS,"CloudWatchMetrics":[{"Namespace":"DocumentWorkflowChain","Dimensions":[["Service"]],"Metrics":[{"Name":"Requests","Unit":"Count"}]}]},"Service":"NAME","Requests":1}"#;
    let line = line
        .replace("TS", "$(date +%s)000")
        .replace("NAME", "$AWS_LAMBDA_FUNCTION_NAME")
        .replace('"', "\\\"");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"{line}\"\necho \"not an EMF line\"\nexec {}\n",
            env!("CARGO_BIN_EXE_hello-lambda")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let template = Template::from_yaml("dashboard-test.yaml", TEMPLATE).unwrap();
    let (local, config) = common::setup(
        "dash",
        template,
        &[("hello", script.clone())],
        Duration::from_secs(15),
    );
    let gateway = Gateway::start(config).await.unwrap();
    let addr = gateway.addr();

    // The page, and nothing under /_local/ reaches the function (its `/{proxy+}` route would
    // echo the event with 200).
    let (status, headers, page) = get(addr, "/_local/dashboard").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/html"));
    assert!(headers["content-security-policy"].contains("default-src 'none'"));
    // Only the page's own script runs: pinned by its hash, no 'unsafe-inline' for scripts.
    let policy = &headers["content-security-policy"];
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    assert!(!policy.contains("script-src 'unsafe-inline'"), "{policy}");
    assert!(page.contains("/_local/dashboard/data"));
    // Nothing fetched from elsewhere: no script or style sources, no links to other origins.
    for asset in ["src=", "<link", "@import", "https://"] {
        assert!(!page.contains(asset), "the page has {asset}");
    }
    for path in ["/_local/nothing", "/_local", "/_local/dashboard/data/x"] {
        let (status, _, body) = get(addr, path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert!(
        gateway.function("Hello").unwrap().instances().is_empty(),
        "no instance started for /_local/"
    );

    // Before traffic: the alarm is OK (notBreaching), the widget empty.
    let (_, _, body) = get(addr, "/_local/dashboard/data").await;
    let data: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alarm(&data, "HelloRequestsAlarm")["state"], "OK");
    assert!(points(series(widget(&data, "Hello: requests"), "Hello")).is_empty());

    // Traffic starts an instance, which prints its EMF line.
    let (status, _, _) = get(addr, "/anything").await;
    assert_eq!(status, 200);
    common::wait_for(
        Duration::from_secs(15),
        || (gateway.metrics().lines() > 0).then_some(()),
        || "no EMF line collected from the function".into(),
    )
    .await;
    let (_, _, body) = get(addr, "/_local/dashboard/data?minutes=15").await;
    let data: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["emfLines"], 1, "the other line is not EMF");
    let hello = series(widget(&data, "Hello: requests"), "Hello");
    assert_eq!(
        hello["dimensions"]["Service"],
        format!("Hello{}", local.suffix),
        "the widget's ${{Hello}} is the function's local name"
    );
    let total: f64 = points(hello).iter().map(|p| p.1).sum();
    assert_eq!(total, 1.0, "{hello}");
    assert_eq!(alarm(&data, "HelloRequestsAlarm")["state"], "ALARM");
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
}
