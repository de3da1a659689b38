//! Wiring only: configuration, AWS clients and the handler, once per cold start.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::apigw::ManagementApi;
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::{QueueUrls, SqsQueue};
use shared::config::WorkerConfig;
use std::time::{Duration, Instant, SystemTime};
use worker::{Deps, generators, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = WorkerConfig::from_env()?;
    let sdk = shared::aws::sdk_config().await?;
    let generator = generators(&config, &sdk).await?;
    let [critical, high, normal, low] = config.queue_urls;
    let deps = Deps {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table_name),
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            QueueUrls {
                critical,
                high,
                normal,
                low,
            },
        ),
        generator,
        default_model: config.default_model,
        poster: config.websocket_endpoint.as_deref().map(|endpoint| {
            Box::new(ManagementApi::new(&sdk, endpoint)) as Box<dyn shared::ports::Poster>
        }),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            let deadline = remaining(event.context.deadline);
            Ok::<_, Error>(handle(deps, event.payload, deadline).await)
        },
    ))
    .await
}

/// The invocation's deadline (epoch ms) as an instant of this process.
fn remaining(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.checked_sub(now_ms)?))
}
