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

/// Handles one batch of the notifications queue.
pub async fn handle(deps: &NotifierDeps<'_>, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    // The admins' templates, once per batch (a handful of items); without them every record
    // is retried rather than sent with the wrong template.
    let overrides = match deps.store.template_overrides().await {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::error!(error = %e, "template overrides unreadable: the batch is retried");
            None
        }
    };
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(overrides) = &overrides else {
            failures.push(failure(id));
            continue;
        };
        let Some(message) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<QueueMessage>(b).ok())
        else {
            tracing::error!(message_id = %id, "not a notification message; dropped");
            continue;
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
        let outcome = {
            let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
            deliver::handle(&notifier, &message, now, crate::jitter(&id)).await
        };
        match outcome {
            Ok(done) => tracing::info!(message_id = %id, outcome = ?done, "notification"),
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "notification: store or queue failed; retried");
                failures.push(failure(id));
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

fn failure(id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = id;
    f
}
