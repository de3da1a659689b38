//! Wiring only: configuration, AWS clients and the notifier's handler, once per cold start.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::aws::kms::KmsVault;
use shared::aws::notify::AwsSender;
use shared::aws::sqs::SqsNotifyQueue;
use shared::config::NotifierConfig;
use shared::domain::notify::retry::RetryPolicy;
use worker::notifier::{NotifierDeps, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = NotifierConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(dynamodb.clone(), config.table_name.clone());
    let accounts = DynamoAccounts::new(dynamodb, config.table_name);
    let queue = SqsNotifyQueue::new(aws_sdk_sqs::Client::new(&sdk), config.queue_url);
    let sender = AwsSender::new(&sdk, config.mail_from, config.allow_private_targets);
    let vault = KmsVault::new(&sdk, config.kms_key_id);
    let deps = NotifierDeps {
        store: &store,
        accounts: &accounts,
        queue: &queue,
        sender: &sender,
        vault: &vault,
        policy: RetryPolicy::default(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, Error>(handle(deps, event.payload).await)
        },
    ))
    .await
}
