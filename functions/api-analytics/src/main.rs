//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_analytics::{Api, Route};
use lambda_http::Error;
use shared::aws::dynamo::DynamoStore;
use shared::http::wiring::{HttpWiring, serve};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let w = HttpWiring::from_env().await?;
    let store = Arc::new(DynamoStore::new(w.dynamo, w.config.table_name));
    serve::<Route>(Api {
        analytics: store.clone(),
        workflows: store,
        pipeline: w.pipeline,
    })
    .await
}
