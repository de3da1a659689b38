//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_auth::{Api, handle};
use lambda_http::{Error, service_fn};
use shared::app::auth::{Identity, Signer};
use shared::app::ratelimit::MemoryFront;
use shared::aws::dynamo::{DynamoAccounts, DynamoRateLimits};
use shared::aws::kms::KmsVault;
use shared::aws::ses::SesMailer;
use shared::config::{AuthConfig, Config};
use shared::http::{Authenticator, Gate, GateConfig, KeyRing};
use shared::ports::SystemClock;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let auth_config = AuthConfig::from_env()?;
    let gate_config = GateConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let accounts = Arc::new(DynamoAccounts::new(
        dynamo.clone(),
        config.table_name.clone(),
    ));
    let vault = Arc::new(KmsVault::new(&sdk, auth_config.kms_key_id));
    let signer = Signer::new(
        accounts.clone(),
        vault,
        &config.jwt_issuer,
        &config.jwt_audience,
    );
    let keys = KeyRing::lazy(
        accounts.clone(),
        Arc::new(SystemClock),
        &config.jwt_issuer,
        &config.jwt_audience,
    )?;
    let limits = MemoryFront::new(DynamoRateLimits::new(dynamo, config.table_name));
    let identity = Identity {
        accounts: accounts.clone(),
        signer: Arc::new(signer),
        mailer: Arc::new(SesMailer::new(&sdk, auth_config.mail_from)),
        clock: Arc::new(SystemClock),
        public_url: auth_config.public_url,
        product_name: "Document Workflow Chain".into(),
    };
    let api = Api {
        identity: Arc::new(identity),
        auth: Arc::new(Authenticator {
            keys,
            accounts: accounts.clone(),
        }),
        keys: accounts,
        gate: Gate::new(gate_config, Arc::new(limits)),
    };
    lambda_http::run(service_fn(|req| {
        let api = &api;
        async move { Ok::<_, std::convert::Infallible>(handle(api, req).await) }
    }))
    .await
}
