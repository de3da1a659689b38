//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_workflows::{Api, Route};
use lambda_http::Error;
use shared::aws::dynamo::DynamoStore;
use shared::aws::scheduler::{EventBridgeTriggers, TriggerTarget};
use shared::aws::sqs::{SqsDeadLetters, SqsQueue};
use shared::http::wiring::{HttpWiring, serve};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let w = HttpWiring::from_env().await?;
    let queue_urls = shared::config::queue_urls()?;
    let dead_letter_urls = shared::config::dead_letter_queue_urls()?;
    let sqs = aws_sdk_sqs::Client::new(&w.sdk);
    let store = Arc::new(DynamoStore::new(w.dynamo, w.config.table_name));
    let triggers = EventBridgeTriggers::new(&w.sdk, TriggerTarget::from_env()?);
    serve::<Route>(Api {
        store: store.clone(),
        schedules: store,
        triggers: Arc::new(triggers),
        queue: Arc::new(SqsQueue::new(sqs.clone(), queue_urls.clone().into())),
        dead_letters: Arc::new(SqsDeadLetters::new(
            sqs,
            queue_urls.into(),
            dead_letter_urls.into(),
        )),
        accounts: w.accounts,
        pipeline: w.pipeline,
    })
    .await
}
