//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::clock::SystemClock;
use shared::config::Config;
use shared::http::{Authenticator, KeyRing};
use std::sync::Arc;
use ws_connect::{Deps, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let accounts = Arc::new(DynamoAccounts::new(
        dynamo.clone(),
        config.table_name.clone(),
    ));
    let keys = KeyRing::lazy(
        accounts.clone(),
        Arc::new(SystemClock),
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    let deps = Deps {
        store: DynamoStore::new(dynamo, config.table_name),
        auth: Authenticator { keys, accounts },
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let deps = &deps;
            async move {
                let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
                Ok::<_, Error>(handle(deps, event.payload, now).await)
            }
        },
    ))
    .await
}
