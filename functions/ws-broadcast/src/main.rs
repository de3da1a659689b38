//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::app::broadcast::FanOut;
use shared::aws::apigw::ManagementApi;
use shared::aws::dynamo::DynamoStore;
use shared::config::Config;
use ws_broadcast::{Deps, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let endpoint = std::env::var("WEBSOCKET_ENDPOINT")
        .map_err(|_| "WEBSOCKET_ENDPOINT is not set (the WebSocket API's stage URL)")?;
    let sdk = shared::aws::sdk_config().await?;
    let deps = Deps {
        connections: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        poster: ManagementApi::new(&sdk, &endpoint),
        fan_out: FanOut::default(),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
            Ok::<_, Error>(handle(deps, event.payload, now).await)
        }
    }))
    .await
}
