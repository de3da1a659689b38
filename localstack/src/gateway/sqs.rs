//! The SQS event source: what Lambda's event source mapping does for each `Type: SQS` event of
//! a function in the template.
//!
//! One poller per event long-polls its queue (`WaitTimeSeconds` 20), gathers up to `BatchSize`
//! records (for at most `MaximumBatchingWindowInSeconds` once the first has arrived), and
//! invokes the function with an [`SqsEvent`] through its [`FunctionPool`]; at most
//! `ScalingConfig.MaximumConcurrency` invocations of one source run at once. Afterwards:
//!
//! - the function answered: every record is deleted but those its [`SqsBatchResponse`] lists in
//!   `batchItemFailures` (with `ReportBatchItemFailures`; without it every record is deleted).
//!   An answer that is not a batch response, or that names a record not in the batch, fails
//!   the whole batch, as in Lambda;
//! - the invocation failed (error, crash, timeout): nothing is deleted. The records come back
//!   after the queue's visibility timeout, and the queue's `RedrivePolicy` (emulated by moto)
//!   moves a record to its dead-letter queue after `maxReceiveCount` receives.
//!
//! Each batch is logged under the function's name: queue, records, failures.

use super::FunctionPool;
use super::logs::LogSink;
use crate::Error;
use crate::resolve::Resolver;
use crate::template::{SqsEventSpec, Template};
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Lambda's long poll.
pub const WAIT_TIME_S: i32 = 20;
/// ReceiveMessage and DeleteMessageBatch take at most this many messages.
pub const SQS_MAX_BATCH: usize = 10;
/// Concurrent invocations of a source without `ScalingConfig.MaximumConcurrency`: the
/// function's own instance limit bounds them anyway.
pub const DEFAULT_MAXIMUM_CONCURRENCY: usize = super::DEFAULT_CONCURRENCY;
/// Waits after a failed ReceiveMessage, doubling up to the second.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One `Type: SQS` event of one function, resolved against the local resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    /// The function's logical id.
    pub function: String,
    /// The event's name under the function's `Events`.
    pub event: String,
    pub queue_name: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub maximum_concurrency: usize,
    pub report_batch_item_failures: bool,
}

impl SqsSource {
    /// Every enabled `SQS` event of the template, its queue named as `resolver` names it.
    pub fn from_template(
        template: &Template,
        resolver: &Resolver,
    ) -> Result<Vec<SqsSource>, Error> {
        super::resolve_enabled(
            template,
            resolver,
            template.sqs_events(),
            |s| s.enabled,
            SqsSource::resolve,
        )
    }

    fn resolve(at: super::EventOf<'_>, spec: SqsEventSpec) -> Result<SqsSource, Error> {
        let missing = || {
            at.error(format!(
                "queue `{}` is not a queue of the template",
                spec.queue
            ))
        };
        let resolver = at.resolver;
        Ok(SqsSource {
            queue_name: resolver.name(&spec.queue).ok_or_else(missing)?.to_owned(),
            queue_url: resolver.queue_url(&spec.queue).ok_or_else(missing)?,
            queue_arn: resolver.queue_arn(&spec.queue).ok_or_else(missing)?,
            batch_size: super::batch_size(spec.batch_size),
            batching_window: Duration::from_secs(spec.maximum_batching_window_s),
            maximum_concurrency: spec
                .maximum_concurrency
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_MAXIMUM_CONCURRENCY)
                .max(1),
            report_batch_item_failures: spec.report_batch_item_failures,
            function: at.function,
            event: at.event,
        })
    }
}

/// Starts one poller per source; each runs until its handle is aborted (which also ends the
/// invocations it started). A source whose function is not in `functions` is an error.
pub fn start(
    sources: Vec<SqsSource>,
    functions: &HashMap<String, Arc<FunctionPool>>,
    client: aws_sdk_sqs::Client,
    region: &str,
    logs: &LogSink,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let mut handles = Vec::new();
    for source in sources {
        let pool = super::function_pool(functions, "SQS event", &source.event, &source.function)?;
        let poller = Poller {
            source: Arc::new(source),
            pool: pool.clone(),
            client: client.clone(),
            region: region.to_owned(),
            logs: logs.clone(),
        };
        poller.logs.line(
            &poller.pool.name,
            &format!(
                "SQS event {}: polling {} (batch {}, window {} s, at most {} at once)",
                poller.source.event,
                poller.source.queue_name,
                poller.source.batch_size,
                poller.source.batching_window.as_secs(),
                poller.source.maximum_concurrency
            ),
        );
        handles.push(tokio::spawn(poller.run()));
    }
    Ok(handles)
}

#[derive(Clone)]
struct Poller {
    source: Arc<SqsSource>,
    pool: Arc<FunctionPool>,
    client: aws_sdk_sqs::Client,
    region: String,
    logs: LogSink,
}

impl Poller {
    async fn run(self) {
        let permits = Arc::new(Semaphore::new(self.source.maximum_concurrency));
        // Dropped (so aborted) with this task when the gateway stops.
        let mut running = JoinSet::new();
        let mut retry = RETRY_FIRST;
        loop {
            while running.try_join_next().is_some() {}
            // Receive only when an invocation may start, so that no record waits invisible
            // behind the concurrency limit.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            match self.receive_batch().await {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    retry = RETRY_FIRST;
                    let this = self.clone();
                    running.spawn(async move {
                        this.deliver(messages).await;
                        drop(permit);
                    });
                }
                Err(message) => {
                    self.logs.line(
                        &self.pool.name,
                        &format!(
                            "SQS {}: ReceiveMessage failed ({message}); retrying in {retry:?}",
                            self.source.queue_name
                        ),
                    );
                    drop(permit);
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Up to `batch_size` messages: a long poll for the first, then more until the batch is
    /// full or the batching window (counted from the first) has passed.
    async fn receive_batch(&self) -> Result<Vec<Message>, String> {
        let source = &self.source;
        let mut batch: Vec<Message> = Vec::new();
        let mut window_ends: Option<Instant> = None;
        loop {
            let wait_s = match window_ends {
                None => WAIT_TIME_S,
                Some(end) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(batch);
                    }
                    // Whole seconds, rounded up, never past the long poll.
                    i32::try_from(left.as_millis().div_ceil(1000))
                        .unwrap_or(WAIT_TIME_S)
                        .min(WAIT_TIME_S)
                }
            };
            let want = (source.batch_size - batch.len()).min(SQS_MAX_BATCH);
            let out = self
                .client
                .receive_message()
                .queue_url(&source.queue_url)
                .max_number_of_messages(i32::try_from(want).unwrap_or(10))
                .wait_time_seconds(wait_s)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| crate::provision::sdk_message(&e))?;
            let got = out.messages.unwrap_or_default();
            if got.is_empty() && batch.is_empty() {
                return Ok(batch);
            }
            batch.extend(got);
            if batch.len() >= source.batch_size || source.batching_window.is_zero() {
                return Ok(batch);
            }
            window_ends.get_or_insert_with(|| Instant::now() + source.batching_window);
        }
    }

    /// Invokes the function with `messages` and deletes those that succeeded.
    async fn deliver(&self, messages: Vec<Message>) {
        let source = &self.source;
        let n = messages.len();
        let event = event(&messages, &source.queue_arn, &self.region);
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                self.logs.line(
                    &self.pool.name,
                    &format!("SQS {}: cannot encode the event: {e}", source.queue_name),
                );
                return;
            }
        };
        let ids: Vec<&str> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default())
            .collect();
        let failed: HashSet<String> = match self.pool.invoke(payload).await {
            Ok(answer) => match failures(&answer, &ids, source.report_batch_item_failures) {
                Ok(failed) => failed,
                Err(why) => {
                    self.logs.line(
                        &self.pool.name,
                        &format!(
                            "SQS {}: {why}; the whole batch of {n} counts as failed",
                            source.queue_name
                        ),
                    );
                    ids.iter().map(|id| id.to_string()).collect()
                }
            },
            Err(e) => {
                self.logs.line(
                    &self.pool.name,
                    &format!(
                        "SQS {}: batch of {n} records, invocation failed ({e}); nothing deleted",
                        source.queue_name
                    ),
                );
                return;
            }
        };
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
            .collect();
        let deleted = self.delete(&done).await;
        self.logs.line(
            &self.pool.name,
            &format!(
                "SQS {}: batch of {n} records, {} failed, {deleted} deleted",
                source.queue_name,
                failed.len()
            ),
        );
    }

    /// DeleteMessageBatch for `messages`, ten at a time; returns how many were deleted.
    async fn delete(&self, messages: &[&Message]) -> usize {
        let mut deleted = 0;
        for chunk in messages.chunks(SQS_MAX_BATCH) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .delete_message_batch()
                .queue_url(&self.source.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    deleted += out.successful.len();
                    for failure in &out.failed {
                        self.logs.line(
                            &self.pool.name,
                            &format!(
                                "SQS {}: DeleteMessage {} failed: {} {}",
                                self.source.queue_name,
                                failure.id,
                                failure.code,
                                failure.message.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                }
                Err(e) => self.logs.line(
                    &self.pool.name,
                    &format!(
                        "SQS {}: DeleteMessageBatch failed: {}",
                        self.source.queue_name,
                        crate::provision::sdk_message(&e)
                    ),
                ),
            }
        }
        deleted
    }
}

/// The event Lambda sends for `messages` of the queue `queue_arn`.
pub fn event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.md5_of_body = m.md5_of_body.clone();
            record.md5_of_message_attributes = m.md5_of_message_attributes.clone();
            record.attributes = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            record.message_attributes = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(k, v)| {
                    let mut a = SqsMessageAttribute::default();
                    a.string_value = v.string_value.clone();
                    a.binary_value = v.binary_value.as_ref().map(|b| base64_data(b.as_ref()));
                    a.string_list_values = v.string_list_values.clone().unwrap_or_default();
                    a.binary_list_values = v
                        .binary_list_values
                        .iter()
                        .flatten()
                        .map(|b| base64_data(b.as_ref()))
                        .collect();
                    a.data_type = Some(v.data_type.clone());
                    (k.clone(), a)
                })
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.to_owned());
            record.aws_region = Some(region.to_owned());
            record
        })
        .collect();
    event
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

/// The records of a batch (by message id) that failed, from the function's answer. Without
/// `ReportBatchItemFailures` an answer means every record succeeded. With it, an empty answer
/// (`null`, `{}`, an empty list) means the same; `Err` (the whole batch failed) for an answer
/// that is not a batch response or names a record that is not in the batch.
pub fn failures(answer: &[u8], ids: &[&str], report: bool) -> Result<HashSet<String>, String> {
    if !report {
        return Ok(HashSet::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let empty = match &value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(o) => o.get("batchItemFailures").is_none_or(|f| f.is_null()),
        _ => false,
    };
    if empty {
        return Ok(HashSet::new());
    }
    let response: SqsBatchResponse = serde_json::from_value(value)
        .map_err(|e| format!("the answer is not a batch response ({e})"))?;
    response
        .batch_item_failures
        .into_iter()
        .map(|f| {
            if ids.contains(&f.item_identifier.as_str()) {
                Ok(f.item_identifier)
            } else {
                Err(format!(
                    "batchItemFailures names {:?}, which is not in the batch",
                    f.item_identifier
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;

    #[test]
    fn batch_responses_are_read_as_lambda_reads_them() {
        let ids = ["a", "b", "c"];
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        for none_failed in [
            &b"null"[..],
            b"{}",
            br#"{"batchItemFailures": []}"#,
            br#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(failures(none_failed, &ids, true).unwrap(), set(&[]));
        }
        assert_eq!(
            failures(
                br#"{"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}"#,
                &ids,
                true
            )
            .unwrap(),
            set(&["b", "c"])
        );
        for whole_batch in [
            &br#"{"batchItemFailures": [{"itemIdentifier": "zz"}]}"#[..],
            br#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            br#"{"batchItemFailures": "b"}"#,
            b"not json",
            b"[1]",
        ] {
            assert!(failures(whole_batch, &ids, true).is_err());
        }
        // Without ReportBatchItemFailures, any answer is success.
        assert_eq!(
            failures(
                br#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#,
                &ids,
                false
            )
            .unwrap(),
            set(&[])
        );
    }

    #[test]
    fn the_event_has_lambdas_record_shape() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body(r#"{"x":1}"#)
            .md5_of_body("md5")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("step")
                    .build()
                    .unwrap(),
            )
            .build();
        let event = event(
            &[message],
            "arn:aws:sqs:us-east-1:123456789012:Q",
            "us-east-1",
        );
        let json = serde_json::to_value(&event).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["receiptHandle"], "rh");
        assert_eq!(record["body"], r#"{"x":1}"#);
        assert_eq!(record["md5OfBody"], "md5");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["messageAttributes"]["kind"]["stringValue"], "step");
        assert_eq!(record["messageAttributes"]["kind"]["dataType"], "String");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:Q"
        );
        assert_eq!(record["awsRegion"], "us-east-1");
        // What a function deserialises.
        let back: SqsEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back.records[0].message_id.as_deref(), Some("m-1"));
    }
}
