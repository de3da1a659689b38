//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_workflows::{Api, handle};
use lambda_http::{Error, service_fn};
use shared::app::ratelimit::MemoryFront;
use shared::aws::dynamo::{DynamoAccounts, DynamoRateLimits, DynamoStore};
use shared::config::Config;
use shared::http::{Authenticator, Gate, GateConfig, KeyRing};
use shared::ports::SystemClock;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let gate_config = GateConfig::from_env()?;
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
    let limits = MemoryFront::new(DynamoRateLimits::new(
        dynamo.clone(),
        config.table_name.clone(),
    ));
    let api = Api {
        store: Arc::new(DynamoStore::new(dynamo, config.table_name)),
        accounts: accounts.clone(),
        auth: Arc::new(Authenticator { keys, accounts }),
        gate: Gate::new(gate_config, Arc::new(limits)),
        clock: Arc::new(SystemClock),
    };
    lambda_http::run(service_fn(|req| {
        let api = &api;
        async move { Ok::<_, std::convert::Infallible>(handle(api, req).await) }
    }))
    .await
}
