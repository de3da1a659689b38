//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_analytics::{Api, Route};
use lambda_http::Error;
use shared::aws::dynamo::DynamoStore;
use shared::aws::health::{GeneratorProbe, KeyProbe, QueueProbe, TableProbe};
use shared::aws::kms::KmsSealer;
use shared::http::wiring::{HttpWiring, serve};
use shared::ports::Probe;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let w = HttpWiring::from_env().await?;
    let store = Arc::new(DynamoStore::new(
        w.dynamo.clone(),
        w.config.table_name.clone(),
    ));
    let sqs = aws_sdk_sqs::Client::new(&w.sdk);
    let probes: Vec<Arc<dyn Probe>> = vec![
        Arc::new(TableProbe {
            client: w.dynamo,
            table: w.config.table_name,
        }),
        Arc::new(QueueProbe {
            client: sqs,
            sources: shared::config::queue_urls()?.into(),
            dead_letters: shared::config::dead_letter_queue_urls()?.into(),
        }),
        Arc::new(KeyProbe {
            client: aws_sdk_kms::Client::new(&w.sdk),
            key_id: std::env::var("KMS_KEY_ID").map_err(|_| "KMS_KEY_ID is not set")?,
        }),
        Arc::new(GeneratorProbe {
            url: std::env::var("GENERATOR_URL").ok(),
        }),
    ];
    serve::<Route>(Api {
        analytics: store.clone(),
        audit: store.clone(),
        reports: store.clone(),
        sealer: Arc::new(KmsSealer::new(
            &w.sdk,
            std::env::var("AUDIT_KEY_ID").map_err(|_| "AUDIT_KEY_ID is not set")?,
        )),
        export_max_bytes: shared::app::audit::EXPORT_MAX_BYTES,
        retention: shared::config::audit_retention()?,
        workflows: store,
        probes,
        pipeline: w.pipeline,
    })
    .await
}
