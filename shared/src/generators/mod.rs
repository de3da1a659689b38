//! [`crate::ports::TextGenerator`] adapters: `builtin` (deterministic and offline, for tests and
//! a first run without any model), `openai` (any OpenAI-compatible server; feature `openai`),
//! `bedrock` (Amazon Bedrock's Converse API; feature `bedrock`), and [`Generators`], which
//! routes each request to one of them by its model reference.

#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod builtin;
#[cfg(feature = "openai")]
pub mod openai;

pub use builtin::Builtin;

use crate::domain::run::{ErrorKind, ModelRef, StepError};
use crate::ports::{GenFut, Generation, OnDelta, TextGenerator};

/// The generators of one build, chosen per request by [`Generation::model`]: `builtin` ->
/// [`Builtin`], `openai:<model>` -> the OpenAI-compatible endpoint when one is configured,
/// `bedrock:<model id>` -> Bedrock when the build has it.
/// Anything else fails the step without a retry: another attempt cannot configure a provider.
#[derive(Debug, Default)]
pub struct Generators {
    #[cfg(feature = "openai")]
    openai: Option<openai::OpenAi>,
    #[cfg(feature = "bedrock")]
    bedrock: Option<bedrock::Bedrock>,
}

impl Generators {
    /// The built-in generator only.
    pub fn builtin_only() -> Generators {
        Generators::default()
    }

    /// The built-in generator and, when given, an OpenAI-compatible endpoint.
    #[cfg(feature = "openai")]
    pub fn new(openai: Option<openai::OpenAi>) -> Generators {
        Generators {
            openai,
            ..Default::default()
        }
    }

    /// The same, with Bedrock for `bedrock:` models.
    #[cfg(feature = "bedrock")]
    pub fn with_bedrock(self, bedrock: bedrock::Bedrock) -> Generators {
        Generators {
            bedrock: Some(bedrock),
            ..self
        }
    }

    fn route<'a>(
        &'a self,
        model: &ModelRef,
        request: &'a Generation,
        on_delta: OnDelta<'a>,
    ) -> Result<GenFut<'a>, StepError> {
        match model {
            ModelRef::Builtin => Ok(Builtin.generate(request, on_delta)),
            ModelRef::OpenAi(_) => {
                #[cfg(feature = "openai")]
                if let Some(openai) = &self.openai {
                    return Ok(openai.generate(request, on_delta));
                }
                Err(not_configured(
                    "no OpenAI-compatible endpoint is configured (GENERATOR_URL)",
                ))
            }
            ModelRef::Bedrock(_) => {
                #[cfg(feature = "bedrock")]
                if let Some(bedrock) = &self.bedrock {
                    return Ok(bedrock.generate(request, on_delta));
                }
                Err(not_configured("bedrock is not configured in this build"))
            }
        }
    }
}

/// A provider this deployment cannot reach: not retryable.
fn not_configured(message: &str) -> StepError {
    let mut error = StepError::new(ErrorKind::InvalidRequest, message);
    error.retryable = false;
    error
}

impl TextGenerator for Generators {
    fn generate<'a>(&'a self, request: &'a Generation, on_delta: OnDelta<'a>) -> GenFut<'a> {
        match ModelRef::parse(&request.model) {
            Ok(model) => match self.route(&model, request, on_delta) {
                Ok(future) => future,
                Err(error) => Box::pin(async move { Err(error) }),
            },
            Err(shape) => {
                let error = StepError::new(
                    ErrorKind::InvalidRequest,
                    format!("model {:?}: {shape}", request.model),
                );
                Box::pin(async move { Err(error) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(model: &str) -> Generation {
        Generation {
            model: model.into(),
            system: None,
            prompt: "Write".into(),
            max_tokens: 10,
            temperature: 0.7,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn models_are_routed_by_provider() {
        let g = Generators::builtin_only();
        let ok = g.generate(&request("builtin"), &|_| {}).await.unwrap();
        assert_eq!(ok.output_tokens, 10);
        let e = g
            .generate(&request("openai:gpt-4o"), &|_| {})
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(
            !e.retryable && e.message.contains("OpenAI-compatible"),
            "{e:?}"
        );
        let e = g
            .generate(&request("bedrock:anthropic.claude"), &|_| {})
            .await
            .unwrap_err();
        assert!(
            !e.retryable && e.message.contains("bedrock is not configured"),
            "{e:?}"
        );
        let e = g.generate(&request("gpt-4o"), &|_| {}).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }
}
