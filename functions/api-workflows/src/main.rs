//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_workflows::{Api, Route};
use lambda_http::Error;
use shared::aws::dynamo::DynamoStore;
use shared::http::wiring::{HttpWiring, serve};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let w = HttpWiring::from_env().await?;
    serve::<Route>(Api {
        store: Arc::new(DynamoStore::new(w.dynamo, w.config.table_name)),
        accounts: w.accounts,
        pipeline: w.pipeline,
    })
    .await
}
