//! The `main.rs` prelude every HTTP function shares: configuration, the SDK config, the table's
//! client, the accounts adapter and the [`Pipeline`] (gate with DynamoDB rate-limit counters,
//! authenticator with lazily loaded signing keys, system clock); and [`serve`], which hands a
//! function's routes to the Lambda runtime. Built once per cold start.

use super::pipeline::{self, Pipeline, Routes};
use super::{Authenticator, Gate, GateConfig, KeyRing};
use crate::app::ratelimit::MemoryFront;
use crate::aws::dynamo::{DynamoAccounts, DynamoRateLimits};
use crate::clock::SystemClock;
use crate::config::{Config, GateSettings};
use crate::ports::Clock;
use aws_config::SdkConfig;
use lambda_http::{Error, service_fn};
use std::sync::Arc;

/// What every HTTP function builds before its own adapters.
pub struct HttpWiring {
    pub config: Config,
    pub sdk: SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub accounts: Arc<DynamoAccounts>,
    pub pipeline: Pipeline,
}

impl HttpWiring {
    /// Reads the environment and builds the shared pieces; a bad setting fails the init.
    pub async fn from_env() -> Result<HttpWiring, Error> {
        lambda_http::tracing::init_default_subscriber();
        let config = Config::from_env()?;
        let gate_config = GateConfig::from_settings(&GateSettings::from_env())?;
        let sdk = crate::aws::sdk_config().await?;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let accounts = Arc::new(DynamoAccounts::new(
            dynamo.clone(),
            config.table_name.clone(),
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let keys = KeyRing::lazy(
            accounts.clone(),
            clock.clone(),
            &config.jwt_issuer,
            &config.jwt_audience,
        )?;
        let limits = MemoryFront::new(DynamoRateLimits::new(
            dynamo.clone(),
            config.table_name.clone(),
        ));
        let pipeline = Pipeline {
            gate: Gate::new(gate_config, Arc::new(limits)),
            auth: Arc::new(Authenticator {
                keys,
                accounts: accounts.clone(),
            }),
            clock,
            audit: Arc::new(crate::aws::dynamo::DynamoStore::new(
                dynamo.clone(),
                config.table_name.clone(),
            )),
        };
        Ok(HttpWiring {
            config,
            sdk,
            dynamo,
            accounts,
            pipeline,
        })
    }
}

/// Runs the function whose routes are `R` over `api` on the Lambda runtime until the instance
/// is shut down.
pub async fn serve<R: Routes>(api: R::Api) -> Result<(), Error> {
    lambda_http::run(service_fn(|req| {
        let api = &api;
        async move { Ok::<_, std::convert::Infallible>(pipeline::handle::<R>(api, req).await) }
    }))
    .await
}
