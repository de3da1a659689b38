//! [`TaskQueue`] over Amazon SQS: four queues by priority (`critical` = 5, `high` = 4,
//! `normal` = 3, `low` = 1-2), each message grouped by its owner (`MessageGroupId`: SQS fair
//! queues, so one tenant's burst does not starve the others). [`DeadLetters`] over their
//! dead-letter queues ([`SqsDeadLetters`]: receive, send back, delete, release, in batches of
//! up to 10).

use crate::aws::errors::classify;
use crate::domain::notification::QueueMessage;
use crate::ports::{
    DeadLetter, DeadLetters, Fut, MessageAttribute, NotifyQueue, StepMessage, StepQueue,
    StoreError, TaskQueue,
};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

/// The queue URLs, by priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub critical: String,
    pub high: String,
    pub normal: String,
    pub low: String,
}

impl From<[String; 4]> for QueueUrls {
    /// From the URLs in priority order: critical, high, normal, low.
    fn from([critical, high, normal, low]: [String; 4]) -> Self {
        QueueUrls {
            critical,
            high,
            normal,
            low,
        }
    }
}

impl QueueUrls {
    /// The queue of a priority (1..=5; anything else counts as normal).
    pub fn of(&self, priority: u8) -> &str {
        match priority {
            5 => &self.critical,
            4 => &self.high,
            1 | 2 => &self.low,
            _ => &self.normal,
        }
    }

    /// The URL of `queue`.
    pub fn by_name(&self, queue: StepQueue) -> &str {
        match queue {
            StepQueue::Critical => &self.critical,
            StepQueue::High => &self.high,
            StepQueue::Normal => &self.normal,
            StepQueue::Low => &self.low,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueue {
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        SqsQueue { client, urls }
    }
}

impl TaskQueue for SqsQueue {
    fn enqueue<'a>(
        &'a self,
        priority: u8,
        owner_id: &'a str,
        message: &'a StepMessage,
        delay_s: u32,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let body = serde_json::to_string(message)
                .map_err(|e| StoreError::Internal(format!("step message: {e}")))?;
            self.client
                .send_message()
                .queue_url(self.urls.of(priority))
                .message_body(body)
                .message_group_id(owner_id)
                .delay_seconds(delay_s.min(900) as i32)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }
}

/// [`DeadLetters`] over Amazon SQS: each step queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    /// The step queues, where redriven messages go.
    sources: QueueUrls,
    dead_letters: QueueUrls,
}

impl SqsDeadLetters {
    pub fn new(client: Client, sources: QueueUrls, dead_letters: QueueUrls) -> Self {
        SqsDeadLetters {
            client,
            sources,
            dead_letters,
        }
    }
}

/// A batch entry's id: its index in the request (unique even if SQS delivered a message twice).
fn entry_id(i: usize) -> String {
    i.to_string()
}

/// The entries a batch call reports failed, as one error (`None` when all succeeded).
fn batch_failures(
    operation: &str,
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
) -> Option<StoreError> {
    if failed.is_empty() {
        return None;
    }
    let reasons: Vec<String> = failed
        .iter()
        .map(|f| format!("{}: {} {}", f.id(), f.code(), f.message().unwrap_or("")))
        .collect();
    Some(StoreError::Unavailable(format!(
        "{operation}: {} of the batch failed ({})",
        failed.len(),
        reasons.join("; ")
    )))
}

fn dead_letter(m: Message) -> DeadLetter {
    let system = m.attributes.unwrap_or_default();
    let attributes = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, v)| {
            let value = v.string_value()?.to_string();
            Some((
                name,
                MessageAttribute {
                    data_type: v.data_type().to_string(),
                    value,
                },
            ))
        })
        .collect();
    DeadLetter {
        message_id: m.message_id.unwrap_or_default(),
        receipt_handle: m.receipt_handle.unwrap_or_default(),
        body: m.body.unwrap_or_default(),
        message_group_id: system
            .get(&MessageSystemAttributeName::MessageGroupId)
            .filter(|g| !g.is_empty())
            .cloned(),
        attributes,
        receive_count: system
            .get(&MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        sent_at: system
            .get(&MessageSystemAttributeName::SentTimestamp)
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis),
    }
}

fn entry_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("batch entry: {e}"))
}

impl DeadLetters for SqsDeadLetters {
    fn receive(
        &self,
        queue: StepQueue,
        max: u32,
        visibility_s: u32,
        wait_s: u32,
    ) -> Fut<'_, Vec<DeadLetter>> {
        Box::pin(async move {
            let out = self
                .client
                .receive_message()
                .queue_url(self.dead_letters.by_name(queue))
                .max_number_of_messages(max.clamp(1, 10) as i32)
                .visibility_timeout(visibility_s as i32)
                .wait_time_seconds(wait_s.min(20) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(classify)?;
            Ok(out
                .messages
                .unwrap_or_default()
                .into_iter()
                .map(dead_letter)
                .collect())
        })
    }

    fn approximate_count(&self, queue: StepQueue) -> Fut<'_, u64> {
        Box::pin(async move {
            let out = self
                .client
                .get_queue_attributes()
                .queue_url(self.dead_letters.by_name(queue))
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .map_err(classify)?;
            Ok(out
                .attributes
                .and_then(|a| {
                    a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(0))
        })
    }

    fn send_to_source<'a>(
        &'a self,
        queue: StepQueue,
        messages: &'a [DeadLetter],
    ) -> Fut<'a, Vec<bool>> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(vec![]);
            }
            let mut entries = Vec::with_capacity(messages.len());
            for (i, m) in messages.iter().enumerate() {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(entry_id(i))
                    .message_body(&m.body)
                    .set_message_group_id(m.message_group_id.clone());
                for (name, a) in &m.attributes {
                    let value = MessageAttributeValue::builder()
                        .data_type(&a.data_type)
                        .string_value(&a.value)
                        .build()
                        .map_err(entry_error)?;
                    entry = entry.message_attributes(name, value);
                }
                entries.push(entry.build().map_err(entry_error)?);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(self.sources.by_name(queue))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(classify)?;
            if let Some(e) = batch_failures("SendMessageBatch", out.failed()) {
                tracing::warn!(queue = queue.as_str(), error = %e, "redrive: some sends failed");
            }
            Ok((0..messages.len())
                .map(|i| out.successful().iter().any(|s| s.id() == entry_id(i)))
                .collect())
        })
    }

    fn delete<'a>(&'a self, queue: StepQueue, messages: &'a [&'a DeadLetter]) -> Fut<'a, ()> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            let entries = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(entry_id(i))
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .map_err(entry_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(self.dead_letters.by_name(queue))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(classify)?;
            match batch_failures("DeleteMessageBatch", out.failed()) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    fn release<'a>(&'a self, queue: StepQueue, messages: &'a [&'a DeadLetter]) -> Fut<'a, ()> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            let entries = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(entry_id(i))
                        .receipt_handle(&m.receipt_handle)
                        .visibility_timeout(0)
                        .build()
                        .map_err(entry_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(self.dead_letters.by_name(queue))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(classify)?;
            match batch_failures("ChangeMessageVisibilityBatch", out.failed()) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_map_to_their_queues() {
        let urls = QueueUrls {
            critical: "c".into(),
            high: "h".into(),
            normal: "n".into(),
            low: "l".into(),
        };
        let got: Vec<&str> = (1..=5).map(|p| urls.of(p)).collect();
        assert_eq!(got, ["l", "l", "n", "h", "c"]);
        assert_eq!(urls.of(0), "n");
    }

    #[test]
    fn queue_names_map_to_their_urls() {
        let urls = QueueUrls::from(["c", "h", "n", "l"].map(String::from));
        let got: Vec<&str> = StepQueue::ALL.iter().map(|q| urls.by_name(*q)).collect();
        assert_eq!(got, ["c", "h", "n", "l"]);
        assert_eq!(StepQueue::parse("normal"), Some(StepQueue::Normal));
        assert_eq!(StepQueue::parse("Normal"), None);
    }
}

/// [`NotifyQueue`] over the notifications queue (standard; a delivery's retries and waits are
/// its messages' delays).
#[derive(Debug, Clone)]
pub struct SqsNotifyQueue {
    client: Client,
    url: String,
}

impl SqsNotifyQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsNotifyQueue {
            client,
            url: url.into(),
        }
    }
}

impl NotifyQueue for SqsNotifyQueue {
    fn send<'a>(&'a self, messages: &'a [(QueueMessage, u32)]) -> Fut<'a, ()> {
        Box::pin(async move {
            for chunk in messages.chunks(10) {
                let mut entries = Vec::with_capacity(chunk.len());
                for (i, (message, delay_s)) in chunk.iter().enumerate() {
                    let body = serde_json::to_string(message)
                        .map_err(|e| StoreError::Internal(format!("notify message: {e}")))?;
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(entry_id(i))
                        .message_body(body)
                        .delay_seconds(i32::try_from((*delay_s).min(900)).unwrap_or(900))
                        .build()
                        .map_err(entry_error)?;
                    entries.push(entry);
                }
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(classify)?;
                // A message not sent is an error: the caller's retry sends the batch again
                // (deliveries are idempotent).
                if let Some(e) = batch_failures("SendMessageBatch", out.failed()) {
                    return Err(e);
                }
            }
            Ok(())
        })
    }
}
