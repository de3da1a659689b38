//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use api_workflows::{Api, Route};
use lambda_http::Error;
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::SqsQueue;
use shared::http::wiring::{HttpWiring, serve};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let w = HttpWiring::from_env().await?;
    let queue_urls = shared::config::queue_urls()?;
    serve::<Route>(Api {
        store: Arc::new(DynamoStore::new(w.dynamo, w.config.table_name)),
        queue: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&w.sdk),
            queue_urls.into(),
        )),
        accounts: w.accounts,
        pipeline: w.pipeline,
    })
    .await
}
