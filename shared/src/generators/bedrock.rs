//! `bedrock:<model id>`: Amazon Bedrock's Converse API, one request per step (the model id may
//! be a foundation model, an inference profile or an ARN).
//!
//! Converse answers with the whole text: `on_delta` gets it once, when it arrives (streaming
//! through ConverseStream is not used yet). The SDK's own retries are off: a step's retries
//! are the run's retry policy, with its backoff and its attempt count, and one layer of them
//! is enough. Errors are classified as the OpenAI-compatible adapter's: throttling is
//! `throttled`, Bedrock's 5xx family `upstream`, a model timeout `timeout`, access denied
//! `unauthorized`, a bad request or unknown model `invalid_request`, a stop for content
//! filters or guardrails `content_filtered`.

use crate::domain::run::{ErrorKind, ModelRef, StepError};
use crate::ports::{GenFut, Generated, Generation, OnDelta, TextGenerator};
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as Output, InferenceConfiguration, Message,
    StopReason, SystemContentBlock,
};

/// The longest provider message kept in a step's error.
const MAX_MESSAGE_CHARS: usize = 300;

/// Bedrock's Converse API.
#[derive(Debug, Clone)]
pub struct Bedrock {
    client: Client,
}

impl Bedrock {
    /// A client of the function's region and credentials, without SDK retries.
    pub fn new(sdk: &aws_config::SdkConfig) -> Bedrock {
        let config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        Bedrock {
            client: Client::from_conf(config),
        }
    }

    /// Over a client built elsewhere (tests replay its answers).
    pub fn with_client(client: Client) -> Bedrock {
        Bedrock { client }
    }

    async fn converse(
        &self,
        request: &Generation,
        on_delta: OnDelta<'_>,
    ) -> Result<Generated, StepError> {
        let model_id = match ModelRef::parse(&request.model) {
            Ok(ModelRef::Bedrock(id)) => id,
            _ => {
                return Err(StepError::new(
                    ErrorKind::InvalidRequest,
                    format!("{:?} is not a bedrock:<model id> reference", request.model),
                ));
            }
        };
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(request.prompt.clone()))
            .build()
            .map_err(|e| StepError::new(ErrorKind::InvalidRequest, e.to_string()))?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
            .temperature(request.temperature)
            .build();
        let mut call = self
            .client
            .converse()
            .model_id(model_id)
            .messages(message)
            .inference_config(inference);
        if let Some(system) = &request.system {
            call = call.system(SystemContentBlock::Text(system.clone()));
        }
        let output = tokio::time::timeout(request.timeout, call.send())
            .await
            .map_err(|_| {
                StepError::new(
                    ErrorKind::Timeout,
                    format!("no answer within {} s", request.timeout.as_secs()),
                )
            })?
            .map_err(classify)?;
        let generated = read(output)?;
        on_delta(&generated.text);
        Ok(generated)
    }
}

impl TextGenerator for Bedrock {
    fn generate<'a>(&'a self, request: &'a Generation, on_delta: OnDelta<'a>) -> GenFut<'a> {
        Box::pin(self.converse(request, on_delta))
    }
}

/// The text, token counts and stop reason of an answer; a content filter's stop is an error.
pub fn read(output: ConverseOutput) -> Result<Generated, StepError> {
    let text: String = match output.output() {
        Some(Output::Message(m)) => m
            .content()
            .iter()
            .filter_map(|block| block.as_text().ok())
            .map(String::as_str)
            .collect(),
        _ => String::new(),
    };
    let stop = output.stop_reason();
    if matches!(
        stop,
        StopReason::ContentFiltered | StopReason::GuardrailIntervened
    ) {
        return Err(StepError::new(
            ErrorKind::ContentFiltered,
            format!("the model stopped: {}", stop.as_str()),
        ));
    }
    let (input_tokens, output_tokens) = output
        .usage()
        .map(|u| {
            (
                u64::try_from(u.input_tokens()).unwrap_or(0),
                u64::try_from(u.output_tokens()).unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    Ok(Generated {
        text,
        input_tokens,
        output_tokens,
        finish_reason: stop.as_str().to_string(),
    })
}

/// A failed call as a step error, classified for retries.
pub fn classify<R>(error: SdkError<ConverseError, R>) -> StepError {
    let kind = match &error {
        SdkError::ServiceError(e) => match e.err() {
            ConverseError::ThrottlingException(_) => ErrorKind::Throttled,
            ConverseError::ModelTimeoutException(_) => ErrorKind::Timeout,
            ConverseError::InternalServerException(_)
            | ConverseError::ServiceUnavailableException(_)
            | ConverseError::ModelNotReadyException(_)
            | ConverseError::ModelErrorException(_) => ErrorKind::Upstream,
            ConverseError::AccessDeniedException(_) => ErrorKind::Unauthorized,
            ConverseError::ValidationException(_) | ConverseError::ResourceNotFoundException(_) => {
                ErrorKind::InvalidRequest
            }
            _ => ErrorKind::Upstream,
        },
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::ConstructionFailure(_) => ErrorKind::InvalidRequest,
        _ => ErrorKind::Upstream,
    };
    let detail = match &error {
        SdkError::ServiceError(e) => format!(
            "{}: {}",
            e.err().code().unwrap_or("error"),
            e.err().message().unwrap_or("")
        ),
        other => other.to_string(),
    };
    let detail: String = detail.chars().take(MAX_MESSAGE_CHARS).collect();
    StepError::new(kind, format!("bedrock: {detail}"))
}
