//! `AWS::Serverless::Function` resources and their events.
//!
//! What the local gateway needs to run a function as Lambda would: its binary, environment,
//! limits and events. Intrinsic functions in environment values stay unresolved here
//! ([`crate::resolve`] resolves them against the local resources).

use super::node::Node;
use crate::Error;
use serde_yaml_ng::Value;

/// SAM's defaults when a function does not say.
pub const DEFAULT_TIMEOUT_S: u64 = 3;
pub const DEFAULT_MEMORY_MB: u64 = 128;

/// One `AWS::Serverless::Function` of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary that is this function: `Metadata.BuildProperties.Binary` (cargo-lambda),
    /// else the logical id.
    pub binary: String,
    /// `Properties.Environment.Variables`, as written (intrinsics unresolved), in order.
    pub environment: Vec<(String, Value)>,
    /// `Properties.Timeout` in seconds.
    pub timeout_s: u64,
    /// `Properties.MemorySize` in MB.
    pub memory_mb: u64,
    /// `Properties.Events`, in template order.
    pub events: Vec<FunctionEvent>,
}

/// One entry of a function's `Events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionEvent {
    /// The event's name (its key under `Events`, e.g. `GetWorkflow`).
    pub name: String,
    pub source: EventSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// `Type: HttpApi`: an API Gateway HTTP API route.
    HttpApi { method: String, path: String },
    /// `Type: SQS`: an event source mapping that polls a queue of the template.
    Sqs(SqsEventSpec),
    /// `Type: DynamoDB`: an event source mapping that reads a table's stream.
    DynamoDb(DynamoDbEventSpec),
    /// An event type the local stack does not handle yet, by its `Type`.
    Other { event_type: String },
}

/// SAM's defaults for an `SQS` event that does not say.
pub const DEFAULT_SQS_BATCH_SIZE: u64 = 10;

/// The properties of a `Type: SQS` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSpec {
    /// The queue's logical id (`Queue: !GetAtt <queue>.Arn`).
    pub queue: String,
    /// `BatchSize`: records per invocation (SAM's default 10; more needs a batching window).
    pub batch_size: u64,
    /// `MaximumBatchingWindowInSeconds` (0 when absent).
    pub maximum_batching_window_s: u64,
    /// `FunctionResponseTypes` has `ReportBatchItemFailures`: the function's answer lists the
    /// records that failed, and only those stay on the queue.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: invocations at once from this source (none: no limit
    /// of its own).
    pub maximum_concurrency: Option<u64>,
    /// `Enabled` (true when absent).
    pub enabled: bool,
}

/// Lambda's defaults for a `DynamoDB` event that does not say.
pub const DEFAULT_STREAM_BATCH_SIZE: u64 = 100;

/// The properties of a `Type: DynamoDB` event (an event source mapping on a table's stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbEventSpec {
    /// The table's logical id (`Stream: !GetAtt <table>.StreamArn`).
    pub table: String,
    pub starting_position: StartingPosition,
    /// `BatchSize`: records per invocation (1 to 10,000; default 100).
    pub batch_size: u64,
    /// `MaximumBatchingWindowInSeconds` (0 when absent): how long to gather records before
    /// invoking with a batch that is not full.
    pub maximum_batching_window_s: u64,
    /// `MaximumRetryAttempts`: retries of a failing batch before it is given up (sent to
    /// `on_failure`); `None` (absent, or -1) retries until the records expire, blocking the
    /// shard, as on AWS.
    pub maximum_retry_attempts: Option<u64>,
    /// `ParallelizationFactor` (1 when absent). The local gateway reads each shard with one
    /// batch at a time whatever it says.
    pub parallelization_factor: u64,
    /// `BisectBatchOnFunctionError`: a failing batch is split in two before it is retried.
    pub bisect: bool,
    /// `FunctionResponseTypes` has `ReportBatchItemFailures`: the answer names the first record
    /// that failed, and the batch is retried from there.
    pub report_batch_item_failures: bool,
    /// `DestinationConfig.OnFailure.Destination`: the logical id of the queue that gets a record
    /// of each batch given up.
    pub on_failure: Option<String>,
    /// `FilterCriteria.Filters[].Pattern`, parsed: a record is delivered if it matches any (all
    /// when there is none).
    pub filters: Vec<serde_json::Value>,
    /// `Enabled` (true when absent).
    pub enabled: bool,
}

/// `StartingPosition` of a stream event (DynamoDB has no `AT_TIMESTAMP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// Only records written after the mapping starts.
    Latest,
    /// Every record the stream still holds.
    TrimHorizon,
}

/// One route of the HTTP API: `method path` invokes `function`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpRoute {
    /// The function's logical id, e.g. `ApiWorkflowsFunction`.
    pub function: String,
    /// The event's name under the function's `Events`, e.g. `GetWorkflow`.
    pub event: String,
    /// Upper case (`GET`), or `ANY` for every method.
    pub method: String,
    /// As in the template, e.g. `/api/v3/workflows/{id}`; `$default` for the catch-all route.
    pub path: String,
}

impl FunctionSpec {
    pub(crate) fn parse(logical_id: &str, resource: &Node<'_>) -> Result<FunctionSpec, Error> {
        let mut events = Vec::new();
        if let Some(props) = resource.field("Properties")?
            && let Some(events_node) = props.field("Events")?
        {
            for (name, event) in events_node.entries()? {
                events.push(FunctionEvent {
                    name: name.to_owned(),
                    source: parse_event_source(&event)?,
                });
            }
        }
        let props = resource.field("Properties")?;
        let number = |key: &str, default: u64| -> Result<u64, Error> {
            match props.as_ref().map(|p| p.field(key)).transpose()?.flatten() {
                Some(node) => node.u64(),
                None => Ok(default),
            }
        };
        let mut environment = Vec::new();
        if let Some(props) = &props
            && let Some(env) = props.field("Environment")?
            && let Some(vars) = env.field("Variables")?
        {
            for (name, value) in vars.entries()? {
                environment.push((name.to_owned(), value.value().clone()));
            }
        }
        let binary = match resource.field("Metadata")? {
            Some(meta) => match meta.field("BuildProperties")? {
                Some(build) => build
                    .field("Binary")?
                    .map(|b| b.str().map(str::to_owned))
                    .transpose()?,
                None => None,
            },
            None => None,
        };
        Ok(FunctionSpec {
            logical_id: logical_id.to_owned(),
            binary: binary.unwrap_or_else(|| logical_id.to_owned()),
            environment,
            timeout_s: number("Timeout", DEFAULT_TIMEOUT_S)?,
            memory_mb: number("MemorySize", DEFAULT_MEMORY_MB)?,
            events,
        })
    }

    pub fn http_routes(&self) -> impl Iterator<Item = HttpRoute> + '_ {
        self.events.iter().filter_map(|event| match &event.source {
            EventSource::HttpApi { method, path } => Some(HttpRoute {
                function: self.logical_id.clone(),
                event: event.name.clone(),
                method: method.clone(),
                path: path.clone(),
            }),
            EventSource::Sqs(_) | EventSource::DynamoDb(_) | EventSource::Other { .. } => None,
        })
    }
}

fn parse_event_source(event: &Node<'_>) -> Result<EventSource, Error> {
    let event_type = event.required("Type")?.str()?;
    if event_type == "SQS" {
        return parse_sqs(event).map(EventSource::Sqs);
    }
    if event_type == "DynamoDB" {
        return parse_dynamodb(event).map(EventSource::DynamoDb);
    }
    if event_type != "HttpApi" {
        return Ok(EventSource::Other {
            event_type: event_type.to_owned(),
        });
    }
    let props = event.field("Properties")?;
    let method = match &props {
        Some(props) => props.field("Method")?,
        None => None,
    };
    let path = match &props {
        Some(props) => props.field("Path")?,
        None => None,
    };
    match (method, path) {
        (Some(method), Some(path)) => {
            let method = method.str()?.to_ascii_uppercase();
            let method = match method.as_str() {
                "X-AMAZON-APIGATEWAY-ANY-METHOD" => "ANY".to_owned(),
                _ => method,
            };
            let path_str = path.str()?;
            if !path_str.starts_with('/') {
                return Err(path.error(format!(
                    "expected a path starting with `/`, found {path_str:?}"
                )));
            }
            Ok(EventSource::HttpApi {
                method,
                path: path_str.to_owned(),
            })
        }
        // SAM: an HttpApi event with neither is the API's catch-all `$default` route.
        (None, None) => Ok(EventSource::HttpApi {
            method: "ANY".to_owned(),
            path: "$default".to_owned(),
        }),
        (Some(_), None) | (None, Some(_)) => Err(props.unwrap_or_else(|| event.clone()).error(
            "an HttpApi event needs both `Method` and `Path`, or neither (the `$default` route)",
        )),
    }
}

fn parse_sqs(event: &Node<'_>) -> Result<SqsEventSpec, Error> {
    let props = event.required("Properties")?;
    reject_unsupported(&props, &["FilterCriteria", "KmsKeyArn", "MetricsConfig"])?;
    let queue = super::queue::arn_of(&props.required("Queue")?)?;
    let number = |key: &str| -> Result<Option<u64>, Error> {
        props.field(key)?.map(|n| n.u64()).transpose()
    };
    let batch_size = number("BatchSize")?.unwrap_or(DEFAULT_SQS_BATCH_SIZE);
    let maximum_batching_window_s = number("MaximumBatchingWindowInSeconds")?.unwrap_or(0);
    if let Some(node) = props.field("BatchSize")? {
        // Lambda's limits: 1..=10 without a batching window, up to 10,000 with one.
        let limit = if maximum_batching_window_s > 0 {
            10_000
        } else {
            10
        };
        if batch_size == 0 || batch_size > limit {
            return Err(node.error(format!(
                "must be 1 to {limit} (more than 10 needs MaximumBatchingWindowInSeconds), found {batch_size}"
            )));
        }
    }
    if maximum_batching_window_s > 300
        && let Some(node) = props.field("MaximumBatchingWindowInSeconds")?
    {
        return Err(node.error(format!(
            "must be 0 to 300 seconds, found {maximum_batching_window_s}"
        )));
    }
    let report_batch_item_failures = report_batch_item_failures(&props)?;
    let maximum_concurrency = match props.field("ScalingConfig")? {
        Some(scaling) => bounded(&scaling, "MaximumConcurrency", 2..=1000)?,
        None => None,
    };
    Ok(SqsEventSpec {
        queue,
        batch_size,
        maximum_batching_window_s,
        report_batch_item_failures,
        maximum_concurrency,
        enabled: flag(&props, "Enabled", true)?,
    })
}

fn parse_dynamodb(event: &Node<'_>) -> Result<DynamoDbEventSpec, Error> {
    let props = event.required("Properties")?;
    reject_unsupported(
        &props,
        &[
            "MaximumRecordAgeInSeconds",
            "TumblingWindowInSeconds",
            "StartingPositionTimestamp",
            "KmsKeyArn",
            "MetricsConfig",
        ],
    )?;
    let table = super::queue::get_att_target(&props.required("Stream")?, "StreamArn", "table")?;
    let starting_position = props.required("StartingPosition")?.one_of(&[
        ("LATEST", StartingPosition::Latest),
        ("TRIM_HORIZON", StartingPosition::TrimHorizon),
    ])?;
    let bounded = |key: &str, default: u64, range: std::ops::RangeInclusive<u64>| {
        bounded(&props, key, range).map(|n| n.unwrap_or(default))
    };
    let batch_size = bounded("BatchSize", DEFAULT_STREAM_BATCH_SIZE, 1..=10_000)?;
    let maximum_batching_window_s = bounded("MaximumBatchingWindowInSeconds", 0, 0..=300)?;
    let parallelization_factor = bounded("ParallelizationFactor", 1, 1..=10)?;
    let maximum_retry_attempts = match props.field("MaximumRetryAttempts")? {
        None => None,
        Some(node) => match node.i64()? {
            -1 => None,
            n @ 0..=10_000 => u64::try_from(n).ok(),
            n => return Err(node.error(format!("must be -1 (no limit) or 0 to 10000, found {n}"))),
        },
    };
    let bisect = flag(&props, "BisectBatchOnFunctionError", false)?;
    let report_batch_item_failures = report_batch_item_failures(&props)?;
    let on_failure = match props.field("DestinationConfig")? {
        Some(config) => match config.field("OnFailure")? {
            Some(on_failure) => {
                if let Some(kind) = on_failure.field("Type")? {
                    kind.one_of(&[("SQS", ())])?;
                }
                Some(super::queue::arn_of(&on_failure.required("Destination")?)?)
            }
            None => None,
        },
        None => None,
    };
    let mut filters = Vec::new();
    if let Some(criteria) = props.field("FilterCriteria")? {
        for filter in criteria.required("Filters")?.list()? {
            let pattern = filter.required("Pattern")?;
            let value: serde_json::Value = serde_json::from_str(pattern.str()?)
                .map_err(|e| pattern.error(format!("not a JSON filter pattern: {e}")))?;
            if !value.is_object() {
                return Err(pattern.error("a filter pattern must be a JSON object"));
            }
            filters.push(value);
        }
    }
    Ok(DynamoDbEventSpec {
        table,
        starting_position,
        batch_size,
        maximum_batching_window_s,
        maximum_retry_attempts,
        parallelization_factor,
        bisect,
        report_batch_item_failures,
        on_failure,
        filters,
        enabled: flag(&props, "Enabled", true)?,
    })
}

// What the `SQS` and `DynamoDB` event parsers share: both are event source mappings, with
// Lambda's common properties.

/// An error at the first of `keys` that `props` has.
fn reject_unsupported(props: &Node<'_>, keys: &[&str]) -> Result<(), Error> {
    for unsupported in keys {
        if let Some(node) = props.field(unsupported)? {
            return Err(node.error("not supported by the local gateway (localstack/)"));
        }
    }
    Ok(())
}

/// `FunctionResponseTypes` lists `ReportBatchItemFailures` (the only type there is).
fn report_batch_item_failures(props: &Node<'_>) -> Result<bool, Error> {
    let mut report = false;
    if let Some(types) = props.field("FunctionResponseTypes")? {
        for item in types.list()? {
            item.one_of(&[("ReportBatchItemFailures", ())])?;
            report = true;
        }
    }
    Ok(report)
}

/// The boolean `key`, or `default` when absent.
fn flag(props: &Node<'_>, key: &str, default: bool) -> Result<bool, Error> {
    match props.field(key)? {
        Some(node) => node.bool(),
        None => Ok(default),
    }
}

/// The whole number `key`, which must be in `range` (`None` when absent).
fn bounded(
    props: &Node<'_>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, Error> {
    let Some(node) = props.field(key)? else {
        return Ok(None);
    };
    let n = node.u64()?;
    if !range.contains(&n) {
        return Err(node.error(format!(
            "must be {} to {}, found {n}",
            range.start(),
            range.end()
        )));
    }
    Ok(Some(n))
}
