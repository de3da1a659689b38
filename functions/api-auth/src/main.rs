//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_auth::{Api, Route};
use lambda_http::Error;
use shared::app::auth::{Identity, Signer};
use shared::aws::dynamo::DynamoStore;
use shared::aws::kms::KmsVault;
use shared::aws::ses::SesMailer;
use shared::config::AuthConfig;
use shared::http::wiring::{HttpWiring, serve};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let w = HttpWiring::from_env().await?;
    let auth_config = AuthConfig::from_env()?;
    let vault = Arc::new(KmsVault::new(&w.sdk, auth_config.kms_key_id));
    let signer = Signer::new(
        w.accounts.clone(),
        vault.clone(),
        &w.config.jwt_issuer,
        &w.config.jwt_audience,
    );
    let identity = Identity {
        accounts: w.accounts.clone(),
        signer: Arc::new(signer),
        vault,
        mailer: Arc::new(SesMailer::new(&w.sdk, auth_config.mail_from)),
        audit: w.pipeline.audit.clone(),
        clock: w.pipeline.clock.clone(),
        public_url: auth_config.public_url,
        product_name: "Document Workflow Chain".into(),
    };
    serve::<Route>(Api {
        identity: Arc::new(identity),
        keys: w.accounts,
        answer_floor: api_auth::ANSWER_FLOOR,
        pipeline: w.pipeline,
        notify: Arc::new(DynamoStore::new(w.dynamo, w.config.table_name)),
        notify_vault: Arc::new(KmsVault::new(&w.sdk, shared::config::notify_kms_key_id()?)),
        allow_private_targets: shared::config::notify_allow_private_targets(),
    })
    .await
}
