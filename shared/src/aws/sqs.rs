//! [`TaskQueue`] over Amazon SQS: four queues by priority (`critical` = 5, `high` = 4,
//! `normal` = 3, `low` = 1-2), each message grouped by its owner (`MessageGroupId`: SQS fair
//! queues, so one tenant's burst does not starve the others).

use crate::aws::errors::classify;
use crate::ports::{Fut, StepMessage, StoreError, TaskQueue};
use aws_sdk_sqs::Client;

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
}
