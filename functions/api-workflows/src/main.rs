//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_workflows::{Api, handle};
use lambda_http::{Error, service_fn};
use shared::aws::dynamo::DynamoStore;
use shared::config::Config;
use shared::http::JwtVerifier;
use shared::ports::SystemClock;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let verifier = JwtVerifier::from_jwks(
        &config.jwt_public_keys,
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    let sdk = shared::aws::sdk_config().await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name);
    let api = Api {
        store: Arc::new(store),
        verifier: Arc::new(verifier),
        clock: Arc::new(SystemClock),
    };
    lambda_http::run(service_fn(|req| {
        let api = &api;
        async move { Ok::<_, std::convert::Infallible>(handle(api, req).await) }
    }))
    .await
}
