//! Wiring only: the table's and the notifications queue's clients and the stream handler
//! (counters, audit trail, notifications), once per cold start.

use api_analytics::stream::{NotifySink, Sinks, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::SqsNotifyQueue;
use shared::config::Config;
use shared::ports::NotifyQueue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name)
        .with_audit_retention(shared::config::audit_retention()?);
    // Notifications are raised only where the notifications queue is configured.
    let queue = shared::config::notify_queue_url()
        .map(|url| SqsNotifyQueue::new(aws_sdk_sqs::Client::new(&sdk), url));
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (store, queue) = (&store, &queue);
        async move {
            let mut sinks = Sinks::from(store);
            sinks.notify = queue.as_ref().map(|queue| NotifySink {
                store,
                queue: queue as &dyn NotifyQueue,
            });
            Ok::<_, Error>(handle(sinks, event.payload).await)
        }
    }))
    .await
}
