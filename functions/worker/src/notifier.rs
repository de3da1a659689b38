//! `notifier`: delivers notifications from the notifications queue (a second Lambda function
//! of this crate, like the worker a consumer of SQS). Each record is one delivery to one
//! channel, or one page of a system notice's fan-out ([`shared::app::notify::deliver`]). A
//! record whose store or queue call failed is reported in `batchItemFailures`, so SQS delivers
//! it again (and moves it to the dead-letter queue after its receives); retries of a failed
//! send are new messages with their backoff as delay, never redeliveries.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::app::notify::deliver::{self, Notifier};
use shared::domain::notification::QueueMessage;
use shared::domain::notify::retry::RetryPolicy;
use shared::ports::{Accounts, KeyVault, NotifyQueue, NotifyStore, Sender};

/// What the handler needs from the world, built once per cold start.
pub struct NotifierDeps<'a> {
    pub store: &'a dyn NotifyStore,
    pub accounts: &'a dyn Accounts,
    pub queue: &'a dyn NotifyQueue,
    pub sender: &'a dyn Sender,
    pub vault: &'a dyn KeyVault,
    pub policy: RetryPolicy,
}

/// Records of a batch sent at once (a batch is at most 10): one slow receiver does not hold
/// up the others, and the batch fits the function's timeout (10 s per send, 60 s in all).
const AT_ONCE: usize = 10;

/// Handles one batch of the notifications queue.
pub async fn handle(deps: &NotifierDeps<'_>, event: SqsEvent) -> SqsBatchResponse {
    use futures_util::StreamExt;
    // The admins' templates, once per batch (a handful of items); without them every record
    // is retried rather than sent with the wrong template.
    let overrides = match deps.store.template_overrides().await {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::error!(error = %e, "template overrides unreadable: the batch is retried");
            None
        }
    };
    let overrides = overrides.as_deref();
    let failures: Vec<BatchItemFailure> = futures_util::stream::iter(event.records)
        .map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            let Some(overrides) = overrides else {
                return Some(failure(id));
            };
            let Some(message) = record
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<QueueMessage>(b).ok())
            else {
                tracing::error!(message_id = %id, "not a notification message; dropped");
                return None;
            };
            let notifier = Notifier {
                store: deps.store,
                queue: deps.queue,
                sender: deps.sender,
                vault: deps.vault,
                accounts: deps.accounts,
                policy: deps.policy,
                overrides,
            };
            let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
            match deliver::handle(&notifier, &message, now, crate::jitter(&id)).await {
                Ok(done) => {
                    tracing::info!(message_id = %id, outcome = ?done, "notification");
                    None
                }
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "notification: store or queue failed; retried");
                    Some(failure(id))
                }
            }
        })
        .buffer_unordered(AT_ONCE)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

fn failure(id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = id;
    f
}
