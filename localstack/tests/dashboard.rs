//! The operations block of `infra/sam-template.yaml` (its `# --- Operations: dashboard, alarms
//! ---` section) against the rest of the template: the dashboard's body is JSON once its `!Sub`
//! variables are filled in, it has every widget group, names every function in the per-function
//! Lambda widgets and only EMF metrics the functions emit, and every dead-letter queue, step
//! queue, stream consumer and HTTP function has its alarm, each notifying the alarm topic.
//!
//! No emulator: this reads the template only.
//!
//! `localstack` cannot depend on `shared` (shared's tests depend on localstack), so the EMF
//! metric names are repeated in [`EMF_METRICS`]; `shared::emf`'s own test checks the same
//! template against `shared::emf::metric::ALL`, so the two lists cannot drift apart unnoticed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use localstack::template::{EventSource, Template};
use serde_json::Value as Json;
use serde_yaml_ng::Value;
use std::collections::{BTreeSet, HashMap};

const NAMESPACE: &str = "DocumentWorkflowChain";

/// `shared::emf::metric::ALL` (see the module docs).
const EMF_METRICS: &[&str] = &[
    "Requests",
    "RequestLatency",
    "ServerErrors",
    "StepsSucceeded",
    "StepRetries",
    "StepsFailed",
    "StepAttemptFailures",
    "Generations",
    "GenerationFailures",
    "GenerationLatency",
    "InputTokens",
    "OutputTokens",
    "FanOutSize",
    "FanOutConnections",
    "FramesSent",
    "ConnectionsGone",
    "PostsThrottled",
    "PostsFailed",
];

/// The widget groups (title prefixes) the dashboard must have.
const GROUPS: &[&str] = &[
    "API:",
    "Runs:",
    "Queues:",
    "WebSockets:",
    "Lambda:",
    "DynamoDB:",
    "Stream:",
];

fn template() -> Template {
    Template::load_default().unwrap()
}

/// `text` with each `${Name}` / `${Name.Attr}` / `${AWS::Region}` replaced by what is inside
/// the braces, as `Fn::Sub` would put a value there.
fn substitute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("a closed ${...}") + at;
        out.push_str(&rest[at + 2..end]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A `!Tag value` node's tag and value (`None` for an untagged node).
fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string(), &t.value)),
        _ => None,
    }
}

/// The dashboard's body, substituted and parsed.
fn dashboard(t: &Template) -> Json {
    let resource = t
        .resource("OperationsDashboard")
        .expect("an OperationsDashboard resource");
    assert_eq!(resource.resource_type, "AWS::CloudWatch::Dashboard");
    let body = &resource.properties["DashboardBody"];
    let (tag, value) = tagged(body).expect("DashboardBody is a !Sub");
    assert_eq!(tag, "!Sub");
    let text = value.as_str().expect("the !Sub of one string");
    serde_json::from_str(&substitute(text))
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON once substituted: {e}"))
}

fn widgets(body: &Json) -> Vec<&Json> {
    body["widgets"].as_array().unwrap().iter().collect()
}

fn title(w: &Json) -> &str {
    w["properties"]["title"].as_str().unwrap_or("")
}

/// The widget titled exactly `name`.
fn widget<'a>(body: &'a Json, name: &str) -> &'a Json {
    widgets(body)
        .into_iter()
        .find(|w| title(w) == name)
        .unwrap_or_else(|| panic!("no widget {name:?}"))
}

/// A widget's metric lines as (namespace, metric name, dimensions); expressions left out.
fn metric_lines(w: &Json) -> Vec<(String, String, HashMap<String, String>)> {
    let mut lines = Vec::new();
    for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
        let parts: Vec<&Json> = m.as_array().unwrap().iter().collect();
        let strings: Vec<&str> = parts.iter().filter_map(|p| p.as_str()).collect();
        if strings.len() < 2 {
            continue; // an expression
        }
        assert!(
            !strings.contains(&"."),
            "write every metric line in full (no \".\"): {m}"
        );
        let dims = strings[2..]
            .chunks(2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect();
        lines.push((strings[0].to_string(), strings[1].to_string(), dims));
    }
    lines
}

/// Every alarm of the template: (logical id, properties).
fn alarms(t: &Template) -> Vec<(String, &Value)> {
    t.resources()
        .iter()
        .filter(|r| r.resource_type == "AWS::CloudWatch::Alarm")
        .map(|r| (r.logical_id.clone(), &r.properties))
        .collect()
}

/// The (namespace, metric, dimensions) an alarm watches: its own metric, or each `MetricStat`
/// of its metric math. Dimension values are written as the resource they name (`!Ref X` and
/// `!GetAtt X.QueueName` -> `X`, `X.QueueName`).
fn alarm_metrics(props: &Value) -> Vec<(String, String, HashMap<String, String>)> {
    let dims = |d: &Value| -> HashMap<String, String> {
        d.as_sequence()
            .into_iter()
            .flatten()
            .map(|kv| {
                let value = &kv["Value"];
                let value = match tagged(value) {
                    Some((_, v)) => v.as_str().unwrap().to_string(),
                    None => value.as_str().unwrap().to_string(),
                };
                (kv["Name"].as_str().unwrap().to_string(), value)
            })
            .collect()
    };
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if props.get("MetricName").is_some() {
        return vec![(
            s(&props["Namespace"]),
            s(&props["MetricName"]),
            dims(&props["Dimensions"]),
        )];
    }
    props["Metrics"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("MetricStat"))
        .map(|stat| {
            let m = &stat["Metric"];
            (
                s(&m["Namespace"]),
                s(&m["MetricName"]),
                dims(&m["Dimensions"]),
            )
        })
        .collect()
}

fn function_ids(t: &Template) -> Vec<String> {
    t.functions().into_iter().map(|f| f.logical_id).collect()
}

fn http_functions(t: &Template) -> Vec<String> {
    t.functions()
        .into_iter()
        .filter(|f| {
            f.events
                .iter()
                .any(|e| matches!(e.source, EventSource::HttpApi { .. }))
        })
        .map(|f| f.logical_id)
        .collect()
}

#[test]
fn the_dashboard_has_every_widget_group_and_only_emitted_emf_metrics() {
    let t = template();
    let body = dashboard(&t);
    let titles: Vec<&str> = widgets(&body).into_iter().map(title).collect();
    for group in GROUPS {
        assert!(
            titles.iter().any(|t| t.starts_with(group)),
            "no {group} widget in {titles:?}"
        );
    }
    for w in widgets(&body) {
        match w["type"].as_str() {
            Some("metric") => {
                let p = &w["properties"];
                assert!(p["region"].is_string() && p["title"].is_string(), "{w}");
                assert!(
                    !metric_lines(w).is_empty() || p["metrics"].is_array(),
                    "{w}"
                );
            }
            Some("text") => assert!(w["properties"]["markdown"].is_string()),
            other => panic!("unexpected widget type {other:?}"),
        }
    }
    let mut used = BTreeSet::new();
    for w in widgets(&body) {
        for (ns, name, _) in metric_lines(w) {
            if ns == NAMESPACE {
                used.insert(name);
            }
        }
    }
    for (_, props) in alarms(&t) {
        for (ns, name, _) in alarm_metrics(props) {
            if ns == NAMESPACE {
                used.insert(name);
            }
        }
    }
    let unknown: Vec<_> = used
        .iter()
        .filter(|n| !EMF_METRICS.contains(&n.as_str()))
        .collect();
    assert!(unknown.is_empty(), "metrics no function emits: {unknown:?}");
    // The groups the issue names, by their metrics.
    for needed in [
        "Requests",
        "RequestLatency",
        "StepsSucceeded",
        "GenerationLatency",
        "InputTokens",
        "StepAttemptFailures",
        "FanOutSize",
        "ConnectionsGone",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn every_function_of_the_template_is_in_each_per_function_lambda_widget() {
    let t = template();
    let body = dashboard(&t);
    let functions = function_ids(&t);
    assert!(functions.len() >= 5, "{functions:?}");
    for (name, metric) in [
        ("Lambda: errors", "Errors"),
        ("Lambda: throttles", "Throttles"),
        ("Lambda: duration p99 (ms)", "Duration"),
    ] {
        let shown: BTreeSet<String> = metric_lines(widget(&body, name))
            .into_iter()
            .filter(|(ns, m, _)| ns == "AWS/Lambda" && m == metric)
            .filter_map(|(_, _, d)| d.get("FunctionName").cloned())
            .collect();
        for f in &functions {
            assert!(shown.contains(f), "{name} does not show {f}");
        }
    }
    // The stream's consumers' iterator age.
    let stream_consumers: BTreeSet<String> = t
        .dynamodb_events()
        .into_iter()
        .map(|(function, _, _)| function)
        .collect();
    assert!(!stream_consumers.is_empty());
    let shown: BTreeSet<String> =
        metric_lines(widget(&body, "Stream: iterator age of its consumers (ms)"))
            .into_iter()
            .filter(|(_, m, _)| m == "IteratorAge")
            .filter_map(|(_, _, d)| d.get("FunctionName").cloned())
            .collect();
    assert!(stream_consumers.is_subset(&shown), "{shown:?}");
    // Every HTTP function's requests and latency.
    for f in http_functions(&t) {
        for name in [
            "API: requests by status class",
            "API: latency p50 / p95 / p99 (ms)",
        ] {
            assert!(
                metric_lines(widget(&body, name))
                    .iter()
                    .any(|(_, _, d)| d.get("Service") == Some(&f)),
                "{name} does not show {f}"
            );
        }
    }
}

#[test]
fn the_queue_widgets_show_every_queue_and_every_dead_letter_queue() {
    let t = template();
    let body = dashboard(&t);
    let queues = t.queues();
    let dead_letter: BTreeSet<String> = queues
        .iter()
        .filter_map(|q| q.redrive.as_ref().map(|r| r.dead_letter_queue.clone()))
        .collect();
    let sources: BTreeSet<String> = queues
        .iter()
        .filter(|q| q.redrive.is_some())
        .map(|q| q.logical_id.clone())
        .collect();
    assert!(!dead_letter.is_empty());
    let shown = |name: &str| -> BTreeSet<String> {
        metric_lines(widget(&body, name))
            .into_iter()
            .filter_map(|(_, _, d)| d.get("QueueName").cloned())
            .map(|q| q.trim_end_matches(".QueueName").to_string())
            .collect()
    };
    for name in [
        "Queues: step messages visible",
        "Queues: oldest step message age (s)",
    ] {
        assert!(sources.is_subset(&shown(name)), "{name}");
    }
    for name in [
        "Queues: dead-letter messages visible",
        "Queues: oldest dead-letter message age (s)",
    ] {
        assert!(dead_letter.is_subset(&shown(name)), "{name}");
    }
}

/// The alarms watching (namespace, metric) with dimension `dim` = `value`.
fn alarms_on<'a>(
    all: &'a [(String, &'a Value)],
    namespace: &str,
    metric: &str,
    dim: &str,
    value: &str,
) -> Vec<&'a str> {
    all.iter()
        .filter(|(_, p)| {
            alarm_metrics(p).iter().any(|(ns, m, d)| {
                ns == namespace && m == metric && d.get(dim).map(String::as_str) == Some(value)
            })
        })
        .map(|(id, _)| id.as_str())
        .collect()
}

#[test]
fn every_dead_letter_queue_step_queue_and_stream_consumer_has_its_alarm() {
    let t = template();
    let all = alarms(&t);
    let queues = t.queues();
    // Dead-letter queues, and the on-failure destinations of stream event sources: not empty.
    let mut failure_queues: BTreeSet<String> = queues
        .iter()
        .filter_map(|q| q.redrive.as_ref().map(|r| r.dead_letter_queue.clone()))
        .collect();
    failure_queues.extend(
        t.dynamodb_events()
            .into_iter()
            .filter_map(|(_, _, spec)| spec.on_failure),
    );
    for q in &failure_queues {
        let found = alarms_on(
            &all,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            &format!("{q}.QueueName"),
        );
        assert_eq!(found.len(), 1, "{q}: {found:?}");
        let (_, p) = all.iter().find(|(id, _)| id == found[0]).unwrap();
        assert_eq!(p["Threshold"].as_u64(), Some(0));
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold");
    }
    // Step queues (those with a dead-letter queue): the oldest message's age.
    for q in queues.iter().filter(|q| q.redrive.is_some()) {
        let found = alarms_on(
            &all,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            &format!("{}.QueueName", q.logical_id),
        );
        assert_eq!(found.len(), 1, "{}: {found:?}", q.logical_id);
    }
    // Stream consumers: iterator age.
    for (function, _, _) in t.dynamodb_events() {
        let found = alarms_on(&all, "AWS/Lambda", "IteratorAge", "FunctionName", &function);
        assert_eq!(found.len(), 1, "{function}: {found:?}");
    }
    // Lambda throttles of every function, in one alarm.
    for f in function_ids(&t) {
        let found = alarms_on(&all, "AWS/Lambda", "Throttles", "FunctionName", &f);
        assert_eq!(found, ["LambdaThrottlesAlarm"], "{f}");
    }
}

#[test]
fn the_api_and_generation_alarms_use_the_emf_metrics_of_every_http_function() {
    let t = template();
    let all = alarms(&t);
    for f in http_functions(&t) {
        for metric in ["Requests", "ServerErrors"] {
            assert_eq!(
                alarms_on(&all, NAMESPACE, metric, "Service", &f),
                ["ApiServerErrorRateAlarm"],
                "{f} {metric}"
            );
        }
        let p99 = alarms_on(&all, NAMESPACE, "RequestLatency", "Service", &f);
        assert_eq!(p99.len(), 1, "{f}: {p99:?}");
        let (_, p) = all.iter().find(|(id, _)| id == p99[0]).unwrap();
        assert_eq!(p["ExtendedStatistic"], "p99");
    }
    let rate = all
        .iter()
        .find(|(id, _)| id == "ApiServerErrorRateAlarm")
        .unwrap()
        .1;
    let expressions: Vec<&str> = rate["Metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("Expression").and_then(Value::as_str))
        .collect();
    assert_eq!(expressions.len(), 1, "one metric math expression");
    for worker_metric in ["Generations", "GenerationFailures"] {
        assert_eq!(
            alarms_on(&all, NAMESPACE, worker_metric, "Service", "WorkerFunction"),
            ["GenerationFailureRateAlarm"]
        );
    }
}

#[test]
fn every_alarm_notifies_the_topic_which_mails_alarm_email_when_it_is_set() {
    let t = template();
    let all = alarms(&t);
    assert!(all.len() >= 10, "{} alarms", all.len());
    for (id, p) in &all {
        let actions = p["AlarmActions"].as_sequence().unwrap();
        let targets: Vec<_> = actions
            .iter()
            .map(|a| tagged(a).map(|(tag, v)| (tag, v.as_str().unwrap_or_default().to_string())))
            .collect();
        assert_eq!(
            targets,
            [Some(("!Ref".to_string(), "AlarmTopic".to_string()))],
            "{id}"
        );
    }
    // CloudWatch's hard limit: a metric math alarm reads at most 10 metrics (split it, or
    // one alarm per function, past that).
    for (id, p) in &all {
        assert!(
            alarm_metrics(p).len() <= 10,
            "{id} reads more than 10 metrics"
        );
    }
    let topic = t.resource("AlarmTopic").unwrap();
    assert_eq!(topic.resource_type, "AWS::SNS::Topic");
    let parameter = t
        .parameters()
        .iter()
        .find(|p| p.name == "AlarmEmail")
        .expect("an AlarmEmail parameter");
    assert_eq!(parameter.default.as_deref(), Some(""));
    let subscription = t.resource("AlarmEmailSubscription").unwrap();
    assert_eq!(subscription.resource_type, "AWS::SNS::Subscription");
    assert_eq!(subscription.properties["Protocol"], "email");

    // The subscription exists only with an address (the Conditions entry).
    let text = std::fs::read_to_string(t.source()).unwrap();
    let document: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(
        document["Resources"]["AlarmEmailSubscription"]["Condition"],
        "HasAlarmEmail"
    );
    assert!(document["Conditions"].get("HasAlarmEmail").is_some());
}

#[test]
fn substitution_fills_in_every_variable() {
    assert_eq!(
        substitute(r#"{"a": "${X}", "b": "${Q.QueueName}", "r": "${AWS::Region}"}"#),
        r#"{"a": "X", "b": "Q.QueueName", "r": "AWS::Region"}"#
    );
}
