//! Wiring only: the table's client and the stream handler (counters and audit trail), once
//! per cold start.

use api_analytics::stream::handle;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::dynamo::DynamoStore;
use shared::config::Config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name)
        .with_audit_retention(shared::config::audit_retention()?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let store = &store;
        async move { Ok::<_, Error>(handle(store.into(), event.payload).await) }
    }))
    .await
}
