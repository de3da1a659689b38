//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: one JSON object per line on
//! stdout, which Lambda sends to CloudWatch Logs, which extracts the metrics. No SDK client,
//! no network call, no IAM permission (DESIGN.md §5: moto cannot take CloudWatch calls).
//!
//! A line looks like this (the specification's shape: `_aws.Timestamp` in epoch milliseconds,
//! one metric directive naming the namespace, the dimension sets and each metric with its unit,
//! and every dimension and metric value as a top-level member; a metric may carry up to 100
//! values as an array):
//!
//! ```json
//! {"_aws":{"Timestamp":1764558000000,"CloudWatchMetrics":[{"Namespace":"DocumentWorkflowChain",
//!   "Dimensions":[["Service"],["Service","StatusClass"],["Service","Route"]],
//!   "Metrics":[{"Name":"Requests","Unit":"Count"},{"Name":"RequestLatency","Unit":"Milliseconds"},
//!   {"Name":"ServerErrors","Unit":"Count"}]}]},
//!  "Service":"api-workflows","Route":"GET /api/v3/workflows","StatusClass":"2xx",
//!  "Requests":1,"RequestLatency":3.2,"ServerErrors":0}
//! ```
//!
//! # What is emitted (the dashboard and alarms of `infra/sam-template.yaml` use these names)
//!
//! Namespace [`NAMESPACE`] (`DocumentWorkflowChain`). Every record has the dimension
//! [`dim::SERVICE`] (`Service`): the function's name (`AWS_LAMBDA_FUNCTION_NAME`, as the
//! `AWS/Lambda` metrics' `FunctionName`), so every metric exists per function; the dimension
//! sets below all start with it. Dimensions are low-cardinality only: route keys come from the
//! template, status classes, error kinds and models from closed lists.
//!
//! | metric | unit | dimension sets (besides `[Service]`) | emitted by, when |
//! | --- | --- | --- | --- |
//! | `Requests` | Count | `[Service, StatusClass]`, `[Service, Route]` | HTTP pipeline, 1 per request |
//! | `RequestLatency` | Milliseconds | same | HTTP pipeline, per request (handler time) |
//! | `ServerErrors` | Count | same | HTTP pipeline, 1 for a 5xx answer, else 0 |
//! | `StepsSucceeded` | Count | — | worker, 1 per committed successful attempt |
//! | `StepRetries` | Count | — | worker, 1 per failed attempt with a retry scheduled |
//! | `StepsFailed` | Count | — | worker, 1 per step that failed for good |
//! | `StepAttemptFailures` | Count | `[Service, ErrorKind]` | worker, 1 per failed attempt (committed) |
//! | `Generations` | Count | `[Service, Model]` | worker, 1 per model call |
//! | `GenerationFailures` | Count | `[Service, Model]` | worker, 1 when the call failed, else 0 |
//! | `GenerationLatency` | Milliseconds | `[Service, Model]` | worker, per model call |
//! | `InputTokens`, `OutputTokens` | Count | `[Service, Model]` | worker, per successful call |
//! | `FanOutSize` | Count | — | fan-out, one value per message: connections it was for |
//! | `FanOutConnections` | Count | — | fan-out, connections posted to |
//! | `FramesSent` | Count | — | fan-out, frames delivered |
//! | `ConnectionsGone` | Count | — | fan-out, connections found gone (410) and forgotten |
//! | `PostsThrottled` | Count | — | fan-out, throttled posts (429), each retry counted |
//! | `PostsFailed` | Count | — | fan-out, frames not delivered (gone or failed) |
//!
//! Dimension values: `StatusClass` is `2xx`, `3xx`, `4xx` or `5xx`; `Route` is the template's
//! route key (`GET /api/v3/workflows/{id}`), or `unmatched` for a request no route took;
//! `ErrorKind` is a [`crate::domain::run::ErrorKind`] in snake case (`throttled`, `timeout`,
//! ...); `Model` is the configured default model when a step used it, otherwise only its
//! provider (`builtin`, `openai:other`, `bedrock:other`, `other`), so user-chosen model names
//! never become dimension values. Fan-out metrics come from `ws-broadcast` (one record per
//! stream batch) and from the worker's live text (one record per model call).
//!
//! # Where lines go
//!
//! [`Record::emit`] writes to the global sink (stdout unless [`set_sink`] chose another), or,
//! while a [`Capture`] is alive on the current thread, into that capture (tests).

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

/// The CloudWatch namespace of every metric of this product.
pub const NAMESPACE: &str = "DocumentWorkflowChain";

/// Dimension names.
pub mod dim {
    /// The function (its Lambda name); on every record.
    pub const SERVICE: &str = "Service";
    /// The template's route key of an HTTP request (`unmatched` when none).
    pub const ROUTE: &str = "Route";

    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub const STATUS_CLASS: &str = "StatusClass";
    /// Why a step's attempt failed (`ErrorKind`, snake case).
    pub const ERROR_KIND: &str = "ErrorKind";
    /// The model of a generation (bounded; see the module docs).
    pub const MODEL: &str = "Model";
    /// A step queue (`critical`, `high`, `normal`, `low`).
    pub const QUEUE: &str = "Queue";
}

/// Metric names.
pub mod metric {
    pub const REQUESTS: &str = "Requests";
    pub const REQUEST_LATENCY: &str = "RequestLatency";
    pub const SERVER_ERRORS: &str = "ServerErrors";
    pub const STEPS_SUCCEEDED: &str = "StepsSucceeded";
    pub const STEP_RETRIES: &str = "StepRetries";
    pub const STEPS_FAILED: &str = "StepsFailed";
    pub const STEP_ATTEMPT_FAILURES: &str = "StepAttemptFailures";
    pub const GENERATIONS: &str = "Generations";
    pub const GENERATION_FAILURES: &str = "GenerationFailures";
    pub const GENERATION_LATENCY: &str = "GenerationLatency";
    pub const INPUT_TOKENS: &str = "InputTokens";
    pub const OUTPUT_TOKENS: &str = "OutputTokens";
    pub const FAN_OUT_SIZE: &str = "FanOutSize";
    pub const FAN_OUT_CONNECTIONS: &str = "FanOutConnections";
    pub const FRAMES_SENT: &str = "FramesSent";
    pub const CONNECTIONS_GONE: &str = "ConnectionsGone";
    pub const POSTS_THROTTLED: &str = "PostsThrottled";
    pub const POSTS_FAILED: &str = "PostsFailed";
    /// Messages in a step queue's dead-letter queue, by `[Service, Queue]` (the scheduler's
    /// `queue_depths` job).
    pub const DEAD_LETTER_MESSAGES: &str = "DeadLetterMessages";
    /// An audit event a request handler could not leave in the inbox (logged with its action).
    pub const AUDIT_NOT_RECORDED: &str = "AuditNotRecorded";

    /// Every metric name above: the dashboard and alarms may use these and no other.
    pub const ALL: &[&str] = &[
        REQUESTS,
        REQUEST_LATENCY,
        SERVER_ERRORS,
        STEPS_SUCCEEDED,
        STEP_RETRIES,
        STEPS_FAILED,
        STEP_ATTEMPT_FAILURES,
        GENERATIONS,
        GENERATION_FAILURES,
        GENERATION_LATENCY,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        FAN_OUT_SIZE,
        FAN_OUT_CONNECTIONS,
        FRAMES_SENT,
        CONNECTIONS_GONE,
        POSTS_THROTTLED,
        POSTS_FAILED,
        DEAD_LETTER_MESSAGES,
        AUDIT_NOT_RECORDED,
    ];
}

/// The specification's limits: values per metric, metrics per directive.
const MAX_VALUES: usize = 100;
const MAX_METRICS: usize = 100;

/// A CloudWatch unit (the ones this product uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
    Bytes,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
            Unit::None => "None",
        }
    }
}

/// Where EMF lines go. Each call gets one complete JSON line (without its newline).
pub trait Sink: Send + Sync {
    fn write_line(&self, line: &str);
}

/// Lambda's stdout: each line written with one call, so it is never interleaved with another.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdout;

impl Sink for Stdout {
    fn write_line(&self, line: &str) {
        let mut buffer = String::with_capacity(line.len() + 1);
        buffer.push_str(line);
        buffer.push('\n');
        // A metric that cannot be written is lost, never an error for the request.
        let _ = std::io::stdout().lock().write_all(buffer.as_bytes());
    }
}

/// Lines kept in memory (for a test, or a bench that counts them).
#[derive(Debug, Default)]
pub struct Buffer(std::sync::Mutex<Vec<String>>);

impl Buffer {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Sink for Buffer {
    fn write_line(&self, line: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_string());
    }
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();
static SERVICE: OnceLock<String> = OnceLock::new();

/// Sends every later record to `sink` instead of stdout; only the first call counts (at init).
pub fn set_sink(sink: Box<dyn Sink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Names the `Service` dimension when `AWS_LAMBDA_FUNCTION_NAME` should not (call at init,
/// before any record); only the first call counts.
pub fn set_service(name: impl Into<String>) -> bool {
    SERVICE.set(name.into()).is_ok()
}

/// The `Service` dimension's value: [`set_service`]'s, else `AWS_LAMBDA_FUNCTION_NAME`, else
/// `local`.
pub fn service() -> &'static str {
    SERVICE.get_or_init(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "local".to_string())
    })
}

thread_local! {
    static CAPTURE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Captures the records emitted on this thread while it lives (nested captures: the innermost
/// one takes them). A `#[tokio::test]` runs its futures on its own thread, so a capture made
/// at its start sees everything the code under test emits.
pub struct Capture {
    previous: Option<Vec<String>>,
    // Not Send: it belongs to the thread it captures.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Capture {
    pub fn start() -> Capture {
        let previous = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
        Capture {
            previous,
            _thread: std::marker::PhantomData,
        }
    }

    /// The lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        CAPTURE.with(|c| c.borrow().clone().unwrap_or_default())
    }

    /// The lines captured so far, parsed.
    pub fn records(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| parse_line(l).unwrap_or_else(|e| panic!("not an EMF line ({e}): {l}")))
            .collect()
    }

    /// The records that carry metric `name`.
    pub fn with_metric(&self, name: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| metric_names(r).iter().any(|n| n == name))
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURE.with(|c| *c.borrow_mut() = previous);
    }
}

/// The metric names a parsed record declares (its first directive's).
pub fn metric_names(record: &Value) -> Vec<String> {
    record
        .pointer("/_aws/CloudWatchMetrics/0/Metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("Name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The dimension sets a parsed record declares (its first directive's).
pub fn dimension_sets(record: &Value) -> Vec<Vec<String>> {
    record
        .pointer("/_aws/CloudWatchMetrics/0/Dimensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|set| {
            set.as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

/// One EMF record: dimensions, dimension sets (each starts with `Service`) and metrics, sent
/// as one line (more when a metric has over 100 values).
#[derive(Debug, Clone)]
pub struct Record {
    timestamp_ms: i64,
    dimensions: Vec<(&'static str, String)>,
    sets: Vec<Vec<&'static str>>,
    metrics: Vec<(&'static str, Unit, Vec<f64>)>,
}

impl Default for Record {
    fn default() -> Self {
        Record::new()
    }
}

impl Record {
    /// A record stamped now, with the `Service` dimension and the `[Service]` set.
    pub fn new() -> Record {
        Record::with_service(service())
    }

    /// The same with another `Service` value.
    pub fn with_service(service: &str) -> Record {
        Record {
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            dimensions: vec![(dim::SERVICE, service.to_string())],
            sets: vec![vec![dim::SERVICE]],
            metrics: Vec::new(),
        }
    }

    pub fn at(mut self, timestamp_ms: i64) -> Record {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Sets a dimension's value (used by the sets that name it).
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Record {
        let value = value.into();
        match self.dimensions.iter_mut().find(|(n, _)| *n == name) {
            Some(d) => d.1 = value,
            None => self.dimensions.push((name, value)),
        }
        self
    }

    /// Adds the dimension set `[Service, names...]`: each metric of the record is published
    /// per combination of these dimensions' values too.
    pub fn dimension_set(mut self, names: &[&'static str]) -> Record {
        let mut set = vec![dim::SERVICE];
        set.extend(names.iter().copied().filter(|n| *n != dim::SERVICE));
        if !self.sets.contains(&set) {
            self.sets.push(set);
        }
        self
    }

    /// Adds a value to metric `name` (a second value makes it an array). Values that are not
    /// finite are dropped: JSON cannot carry them.
    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Record {
        self.push(name, unit, value);
        self
    }

    pub fn count(self, name: &'static str, value: u64) -> Record {
        self.metric(name, Unit::Count, value as f64)
    }

    pub fn millis(self, name: &'static str, value: f64) -> Record {
        self.metric(name, Unit::Milliseconds, value)
    }

    /// Adds several values to metric `name` at once.
    pub fn values(mut self, name: &'static str, unit: Unit, values: &[f64]) -> Record {
        for v in values {
            self.push(name, unit, *v);
        }
        self
    }

    fn push(&mut self, name: &'static str, unit: Unit, value: f64) {
        if !value.is_finite() {
            return;
        }
        match self.metrics.iter_mut().find(|(n, _, _)| *n == name) {
            Some(m) => m.2.push(value),
            None => self.metrics.push((name, unit, vec![value])),
        }
    }

    /// The record's lines: none without a metric value; more than one when a metric has over
    /// 100 values (the specification's limit per member).
    pub fn lines(&self) -> Vec<String> {
        let metrics: Vec<_> = self
            .metrics
            .iter()
            .filter(|(_, _, v)| !v.is_empty())
            .take(MAX_METRICS)
            .collect();
        let Some(rounds) = metrics
            .iter()
            .map(|(_, _, v)| v.len().div_ceil(MAX_VALUES))
            .max()
        else {
            return Vec::new();
        };
        let sets: Vec<Value> = self
            .sets
            .iter()
            .filter(|set| {
                set.iter()
                    .all(|d| self.dimensions.iter().any(|(n, _)| n == d))
            })
            .map(|set| Value::from(set.clone()))
            .collect();
        (0..rounds)
            .map(|round| {
                let chunk = |v: &[f64]| -> Vec<f64> {
                    v.iter()
                        .skip(round * MAX_VALUES)
                        .take(MAX_VALUES)
                        .copied()
                        .collect()
                };
                let mut declared = Vec::new();
                let mut root = Map::new();
                for (name, value) in &self.dimensions {
                    root.insert((*name).to_string(), Value::from(value.as_str()));
                }
                for (name, unit, values) in &metrics {
                    let values = chunk(values);
                    let value = match values.as_slice() {
                        [] => continue,
                        [one] => number(*one),
                        many => Value::Array(many.iter().map(|v| number(*v)).collect()),
                    };
                    declared.push(serde_json::json!({"Name": name, "Unit": unit.as_str()}));
                    root.insert((*name).to_string(), value);
                }
                root.insert(
                    "_aws".into(),
                    serde_json::json!({
                        "Timestamp": self.timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": sets,
                            "Metrics": declared,
                        }],
                    }),
                );
                Value::Object(root).to_string()
            })
            .collect()
    }

    /// Writes the record to `sink`.
    pub fn write_to(&self, sink: &dyn Sink) {
        for line in self.lines() {
            sink.write_line(&line);
        }
    }

    /// Writes the record to this thread's [`Capture`] if one is alive, else to the global sink
    /// (stdout by default).
    pub fn emit(self) {
        let lines = self.lines();
        if lines.is_empty() {
            return;
        }
        let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(buffer) => {
                buffer.extend(lines.iter().cloned());
                true
            }
            None => false,
        });
        if captured {
            return;
        }
        match SINK.get() {
            Some(sink) => lines.iter().for_each(|l| sink.write_line(l)),
            None => lines.iter().for_each(|l| Stdout.write_line(l)),
        }
    }
}

/// A whole number as an integer (`1`, not `1.0`), anything else as a float.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// Parses one EMF line, checking the specification's shape: one JSON object on one line;
/// `_aws.Timestamp` an integer (ms); one directive in `_aws.CloudWatchMetrics` with
/// `Namespace` [`NAMESPACE`], non-empty `Dimensions` (sets of 1..=30 names, each a top-level
/// string member) and 1..=100 `Metrics` `{Name, Unit}`, each a top-level number or array of
/// at most 100 numbers.
pub fn parse_line(line: &str) -> Result<Value, String> {
    if line.contains('\n') {
        return Err("more than one line".into());
    }
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let aws = &v["_aws"];
    if !aws["Timestamp"].is_i64() {
        return Err("_aws.Timestamp is not an integer".into());
    }
    let [d] = aws["CloudWatchMetrics"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    else {
        return Err("_aws.CloudWatchMetrics is not one directive".into());
    };
    if d["Namespace"] != NAMESPACE {
        return Err(format!("namespace {}", d["Namespace"]));
    }
    let sets = d["Dimensions"].as_array().cloned().unwrap_or_default();
    if sets.is_empty() {
        return Err("no dimension set".into());
    }
    for set in &sets {
        let names = set.as_array().cloned().unwrap_or_default();
        if names.is_empty() || names.len() > 30 {
            return Err(format!("dimension set {set}"));
        }
        for name in names {
            let name = name.as_str().ok_or("a dimension name is not a string")?;
            if !v[name].is_string() {
                return Err(format!("dimension {name} is not a top-level string"));
            }
        }
    }
    let metrics = d["Metrics"].as_array().cloned().unwrap_or_default();
    if metrics.is_empty() || metrics.len() > MAX_METRICS {
        return Err(format!("{} metrics", metrics.len()));
    }
    for m in &metrics {
        let name = m["Name"].as_str().ok_or("a metric without a Name")?;
        if !m["Unit"].is_string() {
            return Err(format!("metric {name} without a Unit"));
        }
        match &v[name] {
            Value::Number(_) => {}
            Value::Array(values)
                if values.len() <= MAX_VALUES && values.iter().all(Value::is_number) => {}
            other => return Err(format!("metric {name} is {other}")),
        }
    }
    Ok(v)
}

/// `2xx`, `3xx`, `4xx` or `5xx` (1xx counts as 2xx: the request was answered).
pub fn status_class(status: u16) -> &'static str {
    match status {
        0..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_emf(line: &str) -> Value {
        parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    #[test]
    fn a_record_has_the_specifications_shape() {
        let buffer = Buffer::default();
        Record::with_service("api-workflows")
            .at(1_764_558_000_000)
            .dimension(dim::ROUTE, "GET /api/v3/workflows")
            .dimension(dim::STATUS_CLASS, "2xx")
            .dimension_set(&[dim::STATUS_CLASS])
            .dimension_set(&[dim::ROUTE])
            .count(metric::REQUESTS, 1)
            .millis(metric::REQUEST_LATENCY, 3.5)
            .count(metric::SERVER_ERRORS, 0)
            .write_to(&buffer);
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1);
        let v = parse_emf(&lines[0]);
        assert_eq!(v["_aws"]["Timestamp"], 1_764_558_000_000_i64);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([
                ["Service"],
                ["Service", "StatusClass"],
                ["Service", "Route"]
            ])
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            serde_json::json!([
                {"Name": "Requests", "Unit": "Count"},
                {"Name": "RequestLatency", "Unit": "Milliseconds"},
                {"Name": "ServerErrors", "Unit": "Count"},
            ])
        );
        assert_eq!(v["Service"], "api-workflows");
        assert_eq!(v["Route"], "GET /api/v3/workflows");
        assert_eq!(v["StatusClass"], "2xx");
        assert_eq!(v["Requests"], 1);
        assert_eq!(v["RequestLatency"], 3.5);
        assert_eq!(v["ServerErrors"], 0);
    }

    #[test]
    fn several_values_make_an_array_and_over_a_hundred_make_more_lines() {
        let few = Record::with_service("s")
            .values(metric::FAN_OUT_SIZE, Unit::Count, &[3.0, 0.0, 7.0])
            .lines();
        assert_eq!(few.len(), 1);
        assert_eq!(
            parse_emf(&few[0])["FanOutSize"],
            serde_json::json!([3, 0, 7])
        );

        let many: Vec<f64> = (0..250).map(f64::from).collect();
        let lines = Record::with_service("s")
            .values(metric::FAN_OUT_SIZE, Unit::Count, &many)
            .count(metric::FRAMES_SENT, 9)
            .lines();
        assert_eq!(lines.len(), 3);
        let parsed: Vec<Value> = lines.iter().map(|l| parse_emf(l)).collect();
        let sizes: Vec<usize> = parsed
            .iter()
            .map(|v| v["FanOutSize"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        // A single-valued metric goes out once, not once per line.
        assert_eq!(parsed[0]["FramesSent"], 9);
        assert!(parsed[1].get("FramesSent").is_none());
        assert_eq!(metric_names(&parsed[1]), ["FanOutSize"]);
    }

    #[test]
    fn nothing_to_say_writes_nothing_and_non_finite_values_are_dropped() {
        assert!(Record::with_service("s").lines().is_empty());
        assert!(
            Record::with_service("s")
                .millis(metric::REQUEST_LATENCY, f64::NAN)
                .lines()
                .is_empty()
        );
    }

    #[test]
    fn a_set_naming_a_dimension_without_a_value_is_left_out() {
        let line = Record::with_service("s")
            .dimension_set(&[dim::MODEL])
            .count(metric::GENERATIONS, 1)
            .lines()
            .remove(0);
        assert_eq!(dimension_sets(&parse_emf(&line)), [vec!["Service"]]);
    }

    #[test]
    fn a_capture_takes_this_threads_records_and_only_while_it_lives() {
        let outer = Capture::start();
        {
            let inner = Capture::start();
            Record::with_service("s").count(metric::REQUESTS, 1).emit();
            assert_eq!(inner.with_metric(metric::REQUESTS).len(), 1);
        }
        assert!(outer.lines().is_empty(), "the inner capture took it");
        Record::with_service("s")
            .count(metric::STEPS_FAILED, 1)
            .emit();
        let elsewhere = std::thread::spawn(|| {
            let own = Capture::start();
            Record::with_service("s")
                .count(metric::STEPS_FAILED, 1)
                .emit();
            own.lines().len()
        });
        assert_eq!(elsewhere.join().unwrap(), 1, "another thread's capture");
        assert_eq!(outer.with_metric(metric::STEPS_FAILED).len(), 1);
    }

    /// The template's dashboard (metric lines `["DocumentWorkflowChain", "<name>", ...]`) and
    /// alarms (`Namespace: DocumentWorkflowChain` then `MetricName: <name>`) name only metrics
    /// of [`metric::ALL`], and only the dimensions of [`dim`].
    #[test]
    fn the_templates_dashboard_and_alarms_use_only_these_names() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/sam-template.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let in_dashboard =
            regex::Regex::new(r#""DocumentWorkflowChain",\s*"(\w+)"((?:,\s*"[^"]*")*)"#).unwrap();
        let in_alarms =
            regex::Regex::new(r"Namespace: DocumentWorkflowChain\s*\n\s*MetricName: (\w+)")
                .unwrap();
        let dims = [
            dim::SERVICE,
            dim::ROUTE,
            dim::STATUS_CLASS,
            dim::ERROR_KIND,
            dim::MODEL,
        ];
        let mut used = Vec::new();
        for c in in_dashboard.captures_iter(&text) {
            used.push(c[1].to_string());
            let rest: Vec<&str> = c[2]
                .split(',')
                .map(|p| p.trim().trim_matches('"'))
                .filter(|p| !p.is_empty())
                .collect();
            for pair in rest.chunks(2) {
                assert!(
                    dims.contains(&pair[0]),
                    "dimension {} in {}",
                    pair[0],
                    &c[0]
                );
            }
        }
        let dashboard = used.len();
        used.extend(in_alarms.captures_iter(&text).map(|c| c[1].to_string()));
        assert!(dashboard > 10 && used.len() > dashboard, "{used:?}");
        for name in &used {
            assert!(
                metric::ALL.contains(&name.as_str()),
                "{name} is not emitted"
            );
        }
    }

    #[test]
    fn names_are_unique_and_status_classes_are_four() {
        let mut names = metric::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), metric::ALL.len());
        assert_eq!(
            [200, 201, 304, 404, 429, 500, 503].map(status_class),
            ["2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx"]
        );
    }
}
