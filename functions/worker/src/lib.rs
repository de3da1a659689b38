//! `worker`: runs chain steps from the SQS priority queues. Each record is one attempt of one
//! step ([`shared::app::runs::worker`]); a record that should come again (the step is held by a
//! live attempt, not yet due, or the store failed) is reported in `batchItemFailures`, so SQS
//! delivers it again after its visibility timeout; the others are deleted by the event source.
//! `main.rs` only wires AWS clients into [`Deps`].

pub mod notifier;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::app::broadcast::LiveText;
use shared::app::runs::worker::{Outcome, Worker};
use shared::aws::kms::KmsVault;
use shared::config::WorkerConfig;
use shared::generators::Generators;
use shared::generators::bedrock::Bedrock;
use shared::generators::openai::{OpenAi, open_api_key};
use shared::ports::{
    Connections, Nodes, Poster, Runs, StepMessage, TaskQueue, TextGenerator, Workflows,
};
use std::time::Instant;

/// What the handler needs from the world, built once per cold start.
pub struct Deps<S, Q, G> {
    pub store: S,
    pub queue: Q,
    pub generator: G,
    pub default_model: String,
    /// Posts live text (`node_delta`) to the followers of a workflow whose node is being
    /// written (the WebSocket API's Management API); `None`: no live text.
    pub poster: Option<Box<dyn Poster>>,
}

/// The generators of `config`: `builtin` and Bedrock (the function's region and role) always,
/// the OpenAI-compatible endpoint when `GENERATOR_URL` is set, with its API key opened from KMS
/// (one `Decrypt` per cold start; the key is never logged).
pub async fn generators(
    config: &WorkerConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<Generators, String> {
    let bedrock = Bedrock::new(sdk);
    let Some(url) = &config.generator_url else {
        return Ok(Generators::new(None).with_bedrock(bedrock));
    };
    let api_key = match (&config.generator_api_key_ciphertext, &config.kms_key_id) {
        (Some(ciphertext), Some(key_id)) => {
            open_api_key(&KmsVault::new(sdk, key_id.clone()), ciphertext).await?
        }
        _ => None,
    };
    tracing::info!(
        generator_url = %url,
        api_key = api_key.is_some(),
        "OpenAI-compatible generator configured"
    );
    Ok(Generators::new(Some(OpenAi::new(url, api_key)?)).with_bedrock(bedrock))
}

/// Handles one batch of step messages; `deadline` is the invocation's.
pub async fn handle<S, Q, G>(
    deps: &Deps<S, Q, G>,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse
where
    S: Runs + Nodes + Workflows + Connections,
    Q: TaskQueue,
    G: TextGenerator,
{
    let worker = Worker {
        store: &deps.store,
        queue: &deps.queue,
        generator: &deps.generator,
        default_model: &deps.default_model,
        live: deps
            .poster
            .as_deref()
            .map(|poster| LiveText::new(&deps.store, poster)),
    };
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(message) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<StepMessage>(b).ok())
        else {
            // A message that is not a step can never succeed: drop it (logged), not loop on it.
            tracing::error!(message_id = %id, "not a step message; dropped");
            continue;
        };
        let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
        let outcome = worker.execute(&message, now, deadline, jitter(&id)).await;
        tracing::info!(
            message_id = %id,
            run_id = %message.run_id,
            step_id = %message.step_id,
            outcome = ?outcome,
            "step"
        );
        match outcome {
            Ok(Outcome::Later) | Err(_) => {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
            Ok(_) => {}
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// A number in 0..1 for the retry jitter, from the message id and the clock (no RNG needed:
/// it only spreads retries).
pub(crate) fn jitter(message_id: &str) -> f64 {
    let digest = shared::crypto::sha256_hex(&format!(
        "{message_id}{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let n = u32::from_str_radix(&digest[..8], 16).unwrap_or(0);
    f64::from(n) / f64::from(u32::MAX)
}
