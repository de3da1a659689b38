//! The DynamoDB stream event source: what Lambda's event source mapping does for each
//! `Type: DynamoDB` event of a function in the template, over the emulator's DynamoDB Streams.
//!
//! [`start`] finds the table's stream (`LatestStreamArn`) and takes an iterator for each of its
//! shards at the event's `StartingPosition` before it returns, so that with `LATEST` every
//! change made after [`super::Gateway::start`] is delivered. Then each shard is read on its own
//! task: `GetRecords` every [`StreamOptions::poll_interval`] while it has nothing, records
//! gathered up to `BatchSize` (for at most `MaximumBatchingWindowInSeconds` once the first has
//! arrived), one batch at a time, so that order is kept. New shards are looked for every
//! [`SHARD_DISCOVERY`].
//!
//! - Records that match none of the event's `FilterCriteria` are dropped (see [`super::filter`]).
//! - The function gets `{"Records": [...]}` in Lambda's shape (with `eventSourceARN`).
//! - With `ReportBatchItemFailures`, an answer `{"batchItemFailures": [{"itemIdentifier":
//!   "<SequenceNumber>"}]}` retries the batch from the lowest sequence number named (the
//!   records before it are done); an empty list, `null` or no answer means all done. An answer
//!   naming a record not in the batch, an answer that is not an object, and a failed
//!   invocation (error, crash, timeout) fail the whole batch.
//! - A failing batch is retried after [`RETRY_FIRST`] (doubling up to [`RETRY_MAX`]), split in
//!   two first with `BisectBatchOnFunctionError` (the halves inherit the attempts made), up to
//!   `MaximumRetryAttempts`; then a record of it goes to the `OnFailure` queue (Lambda's
//!   `DDBStreamBatchInfo` shape) and the shard moves on. Without a limit the shard waits on the
//!   batch for ever, as on AWS.
//!
//! Each batch is logged under the function's name: table, records, outcome.

use super::filter;
use super::logs::LogSink;
use super::{FunctionPool, config_error};
use crate::Error;
use crate::resolve::Resolver;
use crate::template::{DynamoDbEventSpec, StartingPosition, Template};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, Shard, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The first wait before a failed batch is retried; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(200);
pub const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often a stream's shard list is read again for new shards.
pub const SHARD_DISCOVERY: Duration = Duration::from_secs(10);
/// GetRecords returns at most this many records.
const GET_RECORDS_MAX: usize = 1000;

/// How the stream event source polls.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The wait between two GetRecords that found nothing.
    pub poll_interval: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// One `Type: DynamoDB` event of one function, resolved against the local resources.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSource {
    /// The function's logical id.
    pub function: String,
    /// The event's name under the function's `Events`.
    pub event: String,
    /// The table's local name.
    pub table_name: String,
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub batching_window: Duration,
    /// `None`: retried until it succeeds.
    pub maximum_retry_attempts: Option<u64>,
    pub bisect: bool,
    pub report_batch_item_failures: bool,
    /// The on-failure queue's URL.
    pub on_failure: Option<String>,
    pub filters: Vec<Value>,
}

impl StreamSource {
    /// Every enabled `DynamoDB` event of the template, named as `resolver` names things.
    pub fn from_template(
        template: &Template,
        resolver: &Resolver,
    ) -> Result<Vec<StreamSource>, Error> {
        super::resolve_enabled(
            template,
            resolver,
            template.dynamodb_events(),
            |s| s.enabled,
            StreamSource::resolve,
        )
    }

    fn resolve(at: super::EventOf<'_>, spec: DynamoDbEventSpec) -> Result<StreamSource, Error> {
        let missing = |what: &str| at.error(format!("`{what}` is not a resource of the template"));
        let resolver = at.resolver;
        let on_failure = match &spec.on_failure {
            Some(queue) => Some(resolver.queue_url(queue).ok_or_else(|| missing(queue))?),
            None => None,
        };
        Ok(StreamSource {
            table_name: resolver
                .name(&spec.table)
                .ok_or_else(|| missing(&spec.table))?
                .to_owned(),
            starting_position: spec.starting_position,
            batch_size: super::batch_size(spec.batch_size),
            batching_window: Duration::from_secs(spec.maximum_batching_window_s),
            maximum_retry_attempts: spec.maximum_retry_attempts,
            bisect: spec.bisect,
            report_batch_item_failures: spec.report_batch_item_failures,
            on_failure,
            filters: spec.filters,
            function: at.function,
            event: at.event,
        })
    }
}

/// The clients the stream readers use.
#[derive(Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }
}

/// Finds each source's stream and positions an iterator on each of its shards, then starts
/// reading them; each handle runs until aborted (which also ends its shards' readers). A source
/// whose function is not in `functions`, or whose table has no stream, is an error.
pub async fn start(
    sources: Vec<StreamSource>,
    functions: &HashMap<String, Arc<FunctionPool>>,
    clients: &Clients,
    region: &str,
    logs: &LogSink,
    options: &StreamOptions,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let mut handles = Vec::new();
    for source in sources {
        let pool =
            super::function_pool(functions, "DynamoDB event", &source.event, &source.function)?;
        let stream_arn = latest_stream_arn(&clients.dynamodb, &source.table_name).await?;
        let reader = Reader {
            source: Arc::new(source),
            pool: pool.clone(),
            clients: clients.clone(),
            stream_arn,
            region: region.to_owned(),
            logs: logs.clone(),
            poll_interval: options.poll_interval,
        };
        let shards = reader.shards().await.map_err(config_error)?;
        let mut positioned = Vec::new();
        for (shard_id, closed) in &shards {
            let kind = match reader.source.starting_position {
                // A closed shard holds nothing new.
                StartingPosition::Latest if *closed => continue,
                StartingPosition::Latest => ShardIteratorType::Latest,
                StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
            };
            let iterator = reader
                .iterator(shard_id, kind, None)
                .await
                .map_err(config_error)?;
            positioned.push((shard_id.clone(), iterator));
        }
        reader.logs.line(
            &reader.pool.name,
            &format!(
                "DynamoDB event {}: reading the stream of {} ({} shard(s), batch {}, window {} s)",
                reader.source.event,
                reader.source.table_name,
                positioned.len(),
                reader.source.batch_size,
                reader.source.batching_window.as_secs()
            ),
        );
        let known = shards.into_iter().map(|(id, _)| id).collect();
        handles.push(tokio::spawn(reader.run(positioned, known)));
    }
    Ok(handles)
}

/// A shard's id, and whether it is closed (it has an ending sequence number).
fn shard_info(shard: Shard) -> Option<(String, bool)> {
    let closed = shard
        .sequence_number_range
        .as_ref()
        .is_some_and(|r| r.ending_sequence_number.is_some());
    Some((shard.shard_id?, closed))
}

async fn latest_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, Error> {
    let out = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            config_error(format!(
                "DescribeTable {table}: {} (the tables must exist before the gateway starts)",
                crate::provision::sdk_message(&e)
            ))
        })?;
    out.table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| config_error(format!("table {table} has no stream")))
}

/// How a batch's invocation ended, when it did not succeed.
struct Failure {
    /// The index of the first record to retry.
    from: usize,
    why: String,
}

#[derive(Clone)]
struct Reader {
    source: Arc<StreamSource>,
    pool: Arc<FunctionPool>,
    clients: Clients,
    stream_arn: String,
    region: String,
    logs: LogSink,
    poll_interval: Duration,
}

impl Reader {
    fn log(&self, line: &str) {
        self.logs.line(&self.pool.name, line);
    }

    /// Reads the positioned shards, and any shard that appears later (from its start).
    async fn run(self, positioned: Vec<(String, String)>, mut known: HashSet<String>) {
        // Dropped (so aborted) with this task when the gateway stops.
        let mut readers = JoinSet::new();
        for (shard_id, iterator) in positioned {
            readers.spawn(self.clone().read_shard(shard_id, iterator));
        }
        loop {
            tokio::time::sleep(SHARD_DISCOVERY).await;
            while readers.try_join_next().is_some() {}
            let Ok(shards) = self.shards().await else {
                continue;
            };
            for (shard_id, _) in shards {
                if known.contains(&shard_id) {
                    continue;
                }
                match self
                    .iterator(&shard_id, ShardIteratorType::TrimHorizon, None)
                    .await
                {
                    Ok(iterator) => {
                        known.insert(shard_id.clone());
                        readers.spawn(self.clone().read_shard(shard_id, iterator));
                    }
                    Err(e) => self.log(&format!("stream {}: {e}", self.source.table_name)),
                }
            }
        }
    }

    /// The stream's shards: (id, closed).
    async fn shards(&self) -> Result<Vec<(String, bool)>, String> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .clients
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "DescribeStream {}: {}",
                        self.stream_arn,
                        crate::provision::sdk_message(&e)
                    )
                })?;
            let Some(description) = out.stream_description else {
                return Ok(shards);
            };
            shards.extend(
                description
                    .shards
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(shard_info),
            );
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    async fn iterator(
        &self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence_number: Option<String>,
    ) -> Result<String, String> {
        let out = self
            .clients
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence_number)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetShardIterator {shard_id}: {}",
                    crate::provision::sdk_message(&e)
                )
            })?;
        out.shard_iterator
            .ok_or_else(|| format!("GetShardIterator {shard_id}: no iterator"))
    }

    /// Reads one shard until it is closed and drained.
    async fn read_shard(self, shard_id: String, iterator: String) {
        let mut shard = ShardState {
            id: shard_id,
            iterator: Some(iterator),
            last_read: None,
            buffer: VecDeque::new(),
            retry: RETRY_FIRST,
        };
        loop {
            let batch = self.next_batch(&mut shard).await;
            if batch.is_empty() {
                if shard.iterator.is_none() {
                    self.log(&format!(
                        "stream {}: shard {} is closed and read",
                        self.source.table_name, shard.id
                    ));
                    return;
                }
                continue;
            }
            self.deliver(&shard.id, batch).await;
        }
    }

    /// The next batch: as soon as there are records (or the batch is full, with a batching
    /// window, or the window has passed). Empty only when the shard has ended.
    async fn next_batch(&self, shard: &mut ShardState) -> Vec<Value> {
        let size = self.source.batch_size;
        let mut window_ends: Option<Instant> = None;
        loop {
            if !shard.buffer.is_empty() {
                let ends = *window_ends
                    .get_or_insert_with(|| Instant::now() + self.source.batching_window);
                if shard.buffer.len() >= size || Instant::now() >= ends {
                    let n = shard.buffer.len().min(size);
                    return shard.buffer.drain(..n).collect();
                }
            }
            let Some(iterator) = shard.iterator.clone() else {
                let n = shard.buffer.len().min(size);
                return shard.buffer.drain(..n).collect();
            };
            let want = (size - shard.buffer.len()).clamp(1, GET_RECORDS_MAX);
            match self.get_records(&iterator, want).await {
                Ok((records, next)) => {
                    shard.retry = RETRY_FIRST;
                    shard.iterator = next;
                    let got = records.len();
                    for record in records {
                        if let Some(seq) = record
                            .dynamodb
                            .as_ref()
                            .and_then(|d| d.sequence_number.clone())
                        {
                            shard.last_read = Some(seq);
                        }
                        let record = lambda_record(&record, &self.stream_arn, &self.region);
                        if filter::matches_any(&self.source.filters, &record) {
                            shard.buffer.push_back(record);
                        }
                    }
                    if got == 0 && shard.iterator.is_some() {
                        let pause = match window_ends {
                            Some(ends) => self
                                .poll_interval
                                .min(ends.saturating_duration_since(Instant::now())),
                            None => self.poll_interval,
                        };
                        tokio::time::sleep(pause).await;
                    }
                }
                Err((message, expired)) => {
                    self.log(&format!(
                        "stream {}: GetRecords failed ({message}); retrying in {:?}",
                        self.source.table_name, shard.retry
                    ));
                    tokio::time::sleep(shard.retry).await;
                    shard.retry = (shard.retry * 2).min(RETRY_MAX);
                    if expired {
                        self.renew(shard).await;
                    }
                }
            }
        }
    }

    /// A new iterator after the last record read (an iterator expires after 15 minutes).
    async fn renew(&self, shard: &mut ShardState) {
        let (kind, after) = match &shard.last_read {
            Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
            None => match self.source.starting_position {
                StartingPosition::Latest => (ShardIteratorType::Latest, None),
                StartingPosition::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            },
        };
        match self.iterator(&shard.id, kind, after).await {
            Ok(iterator) => shard.iterator = Some(iterator),
            Err(e) => self.log(&format!("stream {}: {e}", self.source.table_name)),
        }
    }

    /// Records and the next iterator (`None`: the shard is closed); on failure, why and whether
    /// the iterator expired.
    async fn get_records(
        &self,
        iterator: &str,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<String>), (String, bool)> {
        let out = self
            .clients
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| {
                let expired = e
                    .as_service_error()
                    .is_some_and(|s| s.is_expired_iterator_exception());
                (crate::provision::sdk_message(&e), expired)
            })?;
        Ok((out.records.unwrap_or_default(), out.next_shard_iterator))
    }

    /// Invokes the function with `batch` until every record is done or given up.
    async fn deliver(&self, shard_id: &str, batch: Vec<Value>) {
        let table = &self.source.table_name;
        let mut pending: VecDeque<(Vec<Value>, u64)> = VecDeque::from([(batch, 0)]);
        while let Some((records, failures)) = pending.pop_front() {
            let n = records.len();
            let Err(failure) = self.invoke(&records).await else {
                self.log(&format!("stream {table}: batch of {n} records, done"));
                continue;
            };
            let failures = failures + 1;
            let done = failure.from.min(n);
            let remaining = records
                .get(done..)
                .map(<[Value]>::to_vec)
                .unwrap_or_default();
            if remaining.is_empty() {
                continue;
            }
            let exhausted = self
                .source
                .maximum_retry_attempts
                .is_some_and(|max| failures > max);
            if exhausted {
                let destination = match &self.source.on_failure {
                    Some(queue) => format!("; sent to {queue}"),
                    None => "; dropped".to_string(),
                };
                self.log(&format!(
                    "stream {table}: batch of {n} records, {} failed ({}); retries exhausted after {failures} attempts{destination}",
                    remaining.len(),
                    failure.why
                ));
                self.give_up(shard_id, &remaining, failures).await;
                continue;
            }
            let wait = backoff(failures);
            self.log(&format!(
                "stream {table}: batch of {n} records, {} failed ({}); retry {failures} in {wait:?}",
                remaining.len(),
                failure.why
            ));
            tokio::time::sleep(wait).await;
            if self.source.bisect && remaining.len() > 1 {
                let mut first = remaining;
                let second = first.split_off(first.len() / 2);
                pending.push_front((second, failures));
                pending.push_front((first, failures));
            } else {
                pending.push_front((remaining, failures));
            }
        }
    }

    async fn invoke(&self, records: &[Value]) -> Result<(), Failure> {
        let payload = serde_json::to_vec(&json!({ "Records": records })).map_err(|e| Failure {
            from: 0,
            why: format!("cannot encode the event: {e}"),
        })?;
        let answer = self
            .pool
            .invoke(Bytes::from(payload))
            .await
            .map_err(|e| Failure {
                from: 0,
                why: e.to_string(),
            })?;
        if !self.source.report_batch_item_failures {
            return Ok(());
        }
        match first_failure(&answer, records) {
            Ok(None) => Ok(()),
            Ok(Some(from)) => Err(Failure {
                from,
                why: "reported by the function".into(),
            }),
            Err(why) => Err(Failure { from: 0, why }),
        }
    }

    /// Sends a record of the batch to the on-failure queue, if there is one.
    async fn give_up(&self, shard_id: &str, records: &[Value], attempts: u64) {
        let Some(queue_url) = &self.source.on_failure else {
            return;
        };
        let body = failure_record(FailureRecord {
            function_arn: self.pool.arn(),
            shard_id,
            stream_arn: &self.stream_arn,
            records,
            attempts,
        });
        if let Err(e) = self
            .clients
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body.to_string())
            .send()
            .await
        {
            self.log(&format!(
                "stream {}: cannot send the failed batch to {queue_url}: {}",
                self.source.table_name,
                crate::provision::sdk_message(&e)
            ));
        }
    }
}

struct ShardState {
    id: String,
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
    /// The sequence number of the last record read (to renew an expired iterator).
    last_read: Option<String>,
    /// Records read (and past the filters) but not yet delivered.
    buffer: VecDeque<Value>,
    retry: Duration,
}

/// The wait before retry `n` (1 for the first).
fn backoff(n: u64) -> Duration {
    let doublings = u32::try_from(n.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(8);
    (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_MAX)
}

/// The index of the first record to retry from a `ReportBatchItemFailures` answer (`None`: all
/// done); `Err` when the answer fails the whole batch.
fn first_failure(answer: &[u8], records: &[Value]) -> Result<Option<usize>, String> {
    if answer.is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let failures = match &value {
        Value::Null => return Ok(None),
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(list)) => list,
            Some(_) => return Err("batchItemFailures is not a list".into()),
        },
        _ => return Err("the answer is not a batch response".into()),
    };
    let mut first: Option<usize> = None;
    for failure in failures {
        let id = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or("a batchItemFailures entry has no itemIdentifier")?;
        let index = records
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(id))
            .ok_or_else(|| format!("itemIdentifier {id} is not a record of the batch"))?;
        first = Some(first.map_or(index, |f| f.min(index)));
    }
    Ok(first)
}

/// What [`failure_record`] describes.
struct FailureRecord<'a> {
    function_arn: &'a str,
    shard_id: &'a str,
    stream_arn: &'a str,
    records: &'a [Value],
    attempts: u64,
}

/// The message Lambda sends to an on-failure destination for a stream batch given up.
fn failure_record(f: FailureRecord<'_>) -> Value {
    let seq = |r: Option<&Value>| r.map(|r| r["dynamodb"]["SequenceNumber"].clone());
    let arrival = |r: Option<&Value>| {
        r.and_then(|r| r["dynamodb"]["ApproximateCreationDateTime"].as_i64())
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "requestContext": {
            "requestId": ulid::Ulid::new().to_string().to_lowercase(),
            "functionArn": f.function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": f.attempts,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": f.shard_id,
            "startSequenceNumber": seq(f.records.first()),
            "endSequenceNumber": seq(f.records.last()),
            "approximateArrivalOfFirstRecord": arrival(f.records.first()),
            "approximateArrivalOfLastRecord": arrival(f.records.last()),
            "batchSize": f.records.len(),
            "streamArn": f.stream_arn,
        },
    })
}

/// A stream record as Lambda hands it to a function.
pub fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> Value {
    let mut out = json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    });
    if let Some(d) = &record.dynamodb {
        let mut change = serde_json::Map::new();
        if let Some(t) = d.approximate_creation_date_time {
            change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        for (name, image) in [
            ("Keys", &d.keys),
            ("NewImage", &d.new_image),
            ("OldImage", &d.old_image),
        ] {
            if let Some(item) = image {
                change.insert(name.into(), item_json(item));
            }
        }
        change.insert("SequenceNumber".into(), json!(d.sequence_number));
        change.insert("SizeBytes".into(), json!(d.size_bytes.unwrap_or(0)));
        if let Some(view) = &d.stream_view_type {
            change.insert("StreamViewType".into(), json!(view.as_str()));
        }
        out["dynamodb"] = Value::Object(change);
    }
    if let Some(identity) = &record.user_identity {
        out["userIdentity"] = json!({
            "principalId": identity.principal_id,
            "type": identity.r#type,
        });
    }
    out
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

/// An attribute value in DynamoDB's JSON (`{"S": "x"}`, `{"N": "1"}`, binary as base64).
fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| STANDARD.encode(b.as_ref());
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
    use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord, StreamViewType};

    fn sdk_record(seq: &str, pk: &str) -> Record {
        let keys = HashMap::from([("PK".to_string(), AttributeValue::S(pk.into()))]);
        let image = HashMap::from([
            ("PK".to_string(), AttributeValue::S(pk.into())),
            ("n".to_string(), AttributeValue::N("3".into())),
            (
                "b".to_string(),
                AttributeValue::B(Blob::new(b"hi".to_vec())),
            ),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "l".to_string(),
                    AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
                )])),
            ),
            ("ss".to_string(), AttributeValue::Ss(vec!["a".into()])),
        ]);
        Record::builder()
            .event_id("e1")
            .event_name(OperationType::Insert)
            .event_version("1.0")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                    .set_keys(Some(keys))
                    .set_new_image(Some(image))
                    .sequence_number(seq)
                    .size_bytes(42)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build()
    }

    #[test]
    fn records_take_lambdas_shape_and_read_as_its_event_type() {
        let arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/T/stream/2026";
        let record = lambda_record(&sdk_record("100", "WF#1"), arn, "eu-west-1");
        assert_eq!(record["eventSourceARN"], arn);
        assert_eq!(record["awsRegion"], "eu-west-1");
        assert_eq!(record["eventName"], "INSERT");
        assert_eq!(record["dynamodb"]["Keys"], json!({"PK": {"S": "WF#1"}}));
        assert_eq!(record["dynamodb"]["NewImage"]["b"], json!({"B": "aGk="}));
        assert_eq!(
            record["dynamodb"]["NewImage"]["m"],
            json!({"M": {"l": {"L": [{"BOOL": true}, {"NULL": true}]}}})
        );
        assert_eq!(
            record["dynamodb"]["ApproximateCreationDateTime"],
            1_700_000_000
        );
        assert!(record["dynamodb"].get("OldImage").is_none());
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(json!({ "Records": [record] })).unwrap();
        assert_eq!(event.records[0].event_source_arn.as_deref(), Some(arn));
        assert_eq!(
            event.records[0].change.sequence_number.as_deref(),
            Some("100")
        );
    }

    fn batch(seqs: &[&str]) -> Vec<Value> {
        seqs.iter()
            .map(|s| json!({"dynamodb": {"SequenceNumber": s}}))
            .collect()
    }

    #[test]
    fn batch_item_failures_name_where_to_retry_from() {
        let records = batch(&["1", "2", "3"]);
        assert_eq!(first_failure(b"", &records), Ok(None));
        assert_eq!(first_failure(b"null", &records), Ok(None));
        assert_eq!(first_failure(b"{}", &records), Ok(None));
        assert_eq!(
            first_failure(br#"{"batchItemFailures": []}"#, &records),
            Ok(None)
        );
        assert_eq!(
            first_failure(br#"{"batchItemFailures": null}"#, &records),
            Ok(None)
        );
        assert_eq!(
            first_failure(
                br#"{"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}"#,
                &records
            ),
            Ok(Some(1))
        );
        assert!(
            first_failure(
                br#"{"batchItemFailures": [{"itemIdentifier": "9"}]}"#,
                &records
            )
            .is_err()
        );
        assert!(
            first_failure(
                br#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
                &records
            )
            .is_err()
        );
        assert!(first_failure(br#"{"batchItemFailures": [{}]}"#, &records).is_err());
        assert!(first_failure(br#""ok""#, &records).is_err());
        assert!(first_failure(b"not json", &records).is_err());
    }

    #[test]
    fn retries_back_off_from_200_ms_to_2_s() {
        let waits: Vec<u128> = (1..=6).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(10_000), RETRY_MAX);
    }

    #[test]
    fn the_failure_record_has_lambdas_shape() {
        let mut records = batch(&["7", "8"]);
        records[0]["dynamodb"]["ApproximateCreationDateTime"] = json!(1_700_000_000);
        let r = failure_record(FailureRecord {
            function_arn: "arn:aws:lambda:us-east-1:1:function:F",
            shard_id: "shardId-1",
            stream_arn: "arn:s",
            records: &records,
            attempts: 6,
        });
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 6);
        assert_eq!(
            r["DDBStreamBatchInfo"],
            json!({
                "shardId": "shardId-1",
                "startSequenceNumber": "7",
                "endSequenceNumber": "8",
                "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.000Z",
                "approximateArrivalOfLastRecord": null,
                "batchSize": 2,
                "streamArn": "arn:s",
            })
        );
    }
}
