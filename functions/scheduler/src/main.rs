//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use scheduler::{Deps, handle};
use serde_json::Value;
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::aws::kms::KmsSealer;
use shared::aws::sqs::{SqsDeadLetters, SqsQueue};
use shared::config::Config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let queue_urls = shared::config::queue_urls()?;
    let dead_letter_urls = shared::config::dead_letter_queue_urls()?;
    let sdk = shared::aws::sdk_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let deps = Deps {
        store: DynamoStore::new(dynamo.clone(), config.table_name.clone()),
        accounts: DynamoAccounts::new(dynamo, config.table_name),
        queue: SqsQueue::new(sqs.clone(), queue_urls.clone().into()),
        dead_letters: SqsDeadLetters::new(sqs, queue_urls.into(), dead_letter_urls.into()),
        sealer: KmsSealer::new(
            &sdk,
            std::env::var("AUDIT_KEY_ID").map_err(|_| "AUDIT_KEY_ID is not set")?,
        ),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
            handle(deps, event.payload, now).await.map_err(Error::from)
        }
    }))
    .await
}
