//! The OpenAI-compatible generator over real HTTP against the fake server
//! ([`shared::testing::openai_server`]): streaming, usage, the classification of every failure,
//! timeouts, the API key, and the router that picks a generator by model reference. No emulator
//! needed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use shared::domain::run::ErrorKind;
use shared::generators::Generators;
use shared::generators::openai::{ApiKey, OpenAi, open_api_key};
use shared::ports::{DataKey, Fut, Generation, KeyVault, StoreError, TextGenerator};
use shared::testing::openai_server::{DEFAULT_TEXT, FakeOpenAi, Reply};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-0123456789";

fn request(model: &str, timeout: Duration) -> Generation {
    Generation {
        model: model.into(),
        system: Some("You write tersely.".into()),
        prompt: "Write the first part".into(),
        max_tokens: 64,
        temperature: 0.25,
        timeout,
    }
}

fn generator(server: &FakeOpenAi, key: Option<&str>) -> OpenAi {
    OpenAi::new(&server.url(), key.and_then(ApiKey::new)).unwrap()
}

#[tokio::test]
async fn streamed_text_arrives_in_order_and_the_usage_is_read() {
    let server = FakeOpenAi::start().await;
    server.push(Reply::text("one two three four five six", 3));
    let pieces = Mutex::new(Vec::<String>::new());
    let on_delta = |p: &str| pieces.lock().unwrap().push(p.to_string());

    let g = generator(&server, None)
        .generate(
            &request("openai:tiny-model", Duration::from_secs(5)),
            &on_delta,
        )
        .await
        .unwrap();

    assert_eq!(g.text, "one two three four five six");
    assert_eq!(
        *pieces.lock().unwrap(),
        ["one two ", "three four ", "five six"]
    );
    // The fake counts words as tokens: 3 of the system prompt and 4 of the prompt.
    assert_eq!((g.input_tokens, g.output_tokens), (7, 6));
    assert_eq!(g.finish_reason, "stop");

    let received = server.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(r.body["model"], "tiny-model");
    assert_eq!(r.message("system"), Some("You write tersely."));
    assert_eq!(r.message("user"), Some("Write the first part"));
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["stream_options"]["include_usage"], true);
    assert_eq!(r.body["max_tokens"], 64);
    assert_eq!(r.body["temperature"], 0.25);
    assert_eq!(r.authorization(), None);
}

#[tokio::test]
async fn the_api_key_is_sent_as_a_bearer_token_when_configured() {
    let server = FakeOpenAi::start().await;
    let with_key = generator(&server, Some(KEY));
    with_key
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        server.received()[0].authorization(),
        Some(format!("Bearer {KEY}").as_str())
    );
    // No system prompt: only the user message goes.
    let mut no_system = request("openai:m", Duration::from_secs(5));
    no_system.system = None;
    generator(&server, Some(""))
        .generate(&no_system, &|_| {})
        .await
        .unwrap();
    let r = &server.received()[1];
    assert_eq!(r.authorization(), None);
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn without_usage_the_tokens_are_estimated_from_words() {
    let server = FakeOpenAi::start().await;
    server.push(
        Reply::text("a b c d e f", 2)
            .without_usage()
            .finishing("length"),
    );
    let g = generator(&server, None)
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap();
    // 7 prompt words and 6 text words, x 4/3 rounded.
    assert_eq!((g.input_tokens, g.output_tokens), (9, 8));
    assert_eq!(g.finish_reason, "length");
}

#[tokio::test]
async fn each_error_status_is_classified_with_the_providers_message() {
    let server = FakeOpenAi::start().await;
    server
        .push(Reply::throttled(7))
        .push(Reply::status(500, "The server had an error"))
        .push(Reply::status(503, "overloaded"))
        .push(Reply::status(400, "max_tokens is too large"))
        .push(Reply::status(404, "The model `m` does not exist"))
        .push(Reply::status(422, "unprocessable"))
        .push(Reply::status(408, "request timeout"))
        .push(Reply::status(
            401,
            &format!("Incorrect API key provided: {KEY}"),
        ))
        .push(Reply::status(403, "forbidden"));
    let g = generator(&server, Some(KEY));
    let mut errors = Vec::new();
    for _ in 0..9 {
        let e = g
            .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
            .await
            .unwrap_err();
        assert!(!e.message.contains(KEY), "{e:?}");
        errors.push(e);
    }
    let kinds: Vec<(ErrorKind, bool)> = errors.iter().map(|e| (e.kind, e.retryable)).collect();
    use ErrorKind::*;
    assert_eq!(
        kinds,
        [
            (Throttled, true),
            (Upstream, true),
            (Upstream, true),
            (InvalidRequest, false),
            (InvalidRequest, false),
            (InvalidRequest, false),
            (Timeout, true),
            (Unauthorized, false),
            (Unauthorized, false),
        ]
    );
    assert!(errors[0].message.contains("retry after 7 s"), "{errors:?}");
    assert!(errors[0].message.contains("Rate limit reached"));
    assert!(errors[3].message.contains("max_tokens is too large"));
    assert!(errors[4].message.contains("does not exist"));
    assert!(errors[7].message.contains("[redacted]"), "{:?}", errors[7]);
    assert_eq!(server.calls(), 9);
}

#[tokio::test]
async fn a_long_provider_message_is_cut() {
    let server = FakeOpenAi::start().await;
    server.push(Reply::status(400, &"x".repeat(5000)));
    let e = generator(&server, None)
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap_err();
    assert!(e.message.len() < 400, "{}", e.message.len());
}

#[tokio::test]
async fn a_server_that_never_answers_ends_as_a_timeout() {
    let server = FakeOpenAi::start().await;
    server.push(Reply::Hang);
    let started = Instant::now();
    let e = generator(&server, None)
        .generate(&request("openai:m", Duration::from_millis(300)), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(e.retryable);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a_stream_that_stalls_ends_as_a_timeout() {
    let server = FakeOpenAi::start().await;
    // Headers at once, then a chunk every 200 ms: more than 300 ms in all.
    server.push(Reply::slow(
        "one two three four five",
        5,
        Duration::from_millis(200),
    ));
    let pieces = Mutex::new(Vec::<String>::new());
    let on_delta = |p: &str| pieces.lock().unwrap().push(p.to_string());
    let started = Instant::now();
    let e = generator(&server, None)
        .generate(&request("openai:m", Duration::from_millis(300)), &on_delta)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(pieces.lock().unwrap().len() < 5);
}

#[tokio::test]
async fn a_broken_stream_or_connection_is_an_upstream_error() {
    let server = FakeOpenAi::start().await;
    server.push(Reply::Broken {
        text: "half a text".into(),
        chunks: 2,
    });
    let e = generator(&server, None)
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Upstream, true), "{e:?}");

    // A port nobody listens on: connection refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused = OpenAi::new(&format!("http://127.0.0.1:{closed}/v1"), None).unwrap();
    let e = refused
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Upstream, true), "{e:?}");
}

#[tokio::test]
async fn a_content_filter_finish_is_not_retried() {
    let server = FakeOpenAi::start().await;
    server.push(Reply::text("partial", 1).finishing("content_filter"));
    let e = generator(&server, None)
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::ContentFiltered, false));
}

#[tokio::test]
async fn the_router_sends_openai_models_to_the_endpoint_and_builtin_to_builtin() {
    let server = FakeOpenAi::start().await;
    let router = Generators::new(Some(generator(&server, None)));
    let g = router
        .generate(&request("openai:tiny", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap();
    assert_eq!(g.text, DEFAULT_TEXT);
    let b = router
        .generate(&request("builtin", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap();
    assert_ne!(b.text, DEFAULT_TEXT);
    let e = router
        .generate(
            &request("bedrock:anthropic.x", Duration::from_secs(5)),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(!e.retryable);
    assert_eq!(server.calls(), 1);
}

/// A vault whose every ciphertext opens to `plaintext`.
struct FixedVault(&'static [u8]);

impl KeyVault for FixedVault {
    fn generate_data_key(&self) -> Fut<'_, DataKey> {
        Box::pin(async { Err(StoreError::Internal("not used".into())) })
    }
    fn decrypt_data_key<'a>(&'a self, _: &'a [u8]) -> Fut<'a, Vec<u8>> {
        Box::pin(async { Ok(self.0.to_vec()) })
    }
}

#[tokio::test]
async fn the_sealed_api_key_opens_through_the_vault() {
    let key = open_api_key(&FixedVault(b"sk-sealed\n"), b"ciphertext")
        .await
        .unwrap()
        .unwrap();
    let server = FakeOpenAi::start().await;
    OpenAi::new(&server.url(), Some(key))
        .unwrap()
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        server.received()[0].authorization(),
        Some("Bearer sk-sealed")
    );
    assert_eq!(open_api_key(&FixedVault(b" "), b"c").await.unwrap(), None);
    let e = open_api_key(&FixedVault(&[0xff, 0xfe]), b"c")
        .await
        .unwrap_err();
    assert!(e.contains("UTF-8"));
}

#[tokio::test]
async fn an_https_url_goes_through_tls() {
    // The fake speaks plain HTTP: the TLS handshake fails, as with a broken endpoint.
    let server = FakeOpenAi::start().await;
    let url = server.url().replace("http://", "https://");
    let e = OpenAi::new(&url, None)
        .unwrap()
        .generate(&request("openai:m", Duration::from_secs(5)), &|_| {})
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Upstream, true), "{e:?}");
}

// ----- Bedrock (Converse), its answers replayed: the emulator has no Converse -----

mod bedrock {
    use super::request;
    use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
    use aws_sdk_bedrockruntime::types::error::{
        AccessDeniedException, ModelTimeoutException, ServiceUnavailableException,
        ThrottlingException, ValidationException,
    };
    use aws_sdk_bedrockruntime::types::{
        ContentBlock, ConversationRole, ConverseOutput as Output, Message, StopReason, TokenUsage,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use shared::domain::run::ErrorKind;
    use shared::generators::Generators;
    use shared::generators::bedrock::Bedrock;
    use shared::ports::TextGenerator;
    use std::sync::Mutex;
    use std::time::Duration;

    const MODEL: &str = "bedrock:anthropic.claude-3-haiku-20240307-v1:0";

    fn answer(text: &str, stop: StopReason) -> ConverseOutput {
        let message = Message::builder()
            .role(ConversationRole::Assistant)
            .content(ContentBlock::Text(text.into()))
            .build()
            .unwrap();
        ConverseOutput::builder()
            .output(Output::Message(message))
            .stop_reason(stop)
            .usage(
                TokenUsage::builder()
                    .input_tokens(12)
                    .output_tokens(7)
                    .total_tokens(19)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_text_usage_and_stop_reason_come_back_and_the_request_carries_the_prompt() {
        let rule = mock!(aws_sdk_bedrockruntime::Client::converse)
            .match_requests(|r| {
                r.model_id() == Some("anthropic.claude-3-haiku-20240307-v1:0")
                    && r.system().len() == 1
                    && r.messages().len() == 1
                    && r.messages()[0].content()[0]
                        .as_text()
                        .ok()
                        .map(String::as_str)
                        == Some("Write the first part")
                    && r.inference_config().and_then(|c| c.max_tokens()) == Some(64)
            })
            .then_output(|| answer("It began at dawn.", StopReason::EndTurn));
        let client = mock_client!(aws_sdk_bedrockruntime, RuleMode::Sequential, [&rule]);
        let generators = Generators::new(None).with_bedrock(Bedrock::with_client(client));
        let deltas = Mutex::new(Vec::new());
        let g = generators
            .generate(&request(MODEL, Duration::from_secs(5)), &|d| {
                deltas.lock().unwrap().push(d.to_string())
            })
            .await
            .unwrap();
        assert_eq!(g.text, "It began at dawn.");
        assert_eq!((g.input_tokens, g.output_tokens), (12, 7));
        assert_eq!(g.finish_reason, "end_turn");
        assert_eq!(
            *deltas.lock().unwrap(),
            vec!["It began at dawn.".to_string()]
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn errors_are_classified_for_retries() {
        type Make = fn() -> ConverseError;
        let cases: [(Make, ErrorKind, bool); 5] = [
            (
                || {
                    ConverseError::ThrottlingException(
                        ThrottlingException::builder().message("slow down").build(),
                    )
                },
                ErrorKind::Throttled,
                true,
            ),
            (
                || {
                    ConverseError::ServiceUnavailableException(
                        ServiceUnavailableException::builder()
                            .message("busy")
                            .build(),
                    )
                },
                ErrorKind::Upstream,
                true,
            ),
            (
                || {
                    ConverseError::ModelTimeoutException(
                        ModelTimeoutException::builder().message("too long").build(),
                    )
                },
                ErrorKind::Timeout,
                true,
            ),
            (
                || {
                    ConverseError::ValidationException(
                        ValidationException::builder().message("bad model").build(),
                    )
                },
                ErrorKind::InvalidRequest,
                false,
            ),
            (
                || {
                    ConverseError::AccessDeniedException(
                        AccessDeniedException::builder()
                            .message("no access")
                            .build(),
                    )
                },
                ErrorKind::Unauthorized,
                false,
            ),
        ];
        for (make, kind, retryable) in cases {
            let rule = mock!(aws_sdk_bedrockruntime::Client::converse).then_error(make);
            let client = mock_client!(aws_sdk_bedrockruntime, RuleMode::MatchAny, [&rule]);
            let e = Bedrock::with_client(client)
                .generate(&request(MODEL, Duration::from_secs(5)), &|_| {})
                .await
                .unwrap_err();
            assert_eq!((e.kind, e.retryable), (kind, retryable), "{e:?}");
            assert!(e.message.starts_with("bedrock: "), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn a_guardrail_stop_is_content_filtered_and_not_retried() {
        let rule = mock!(aws_sdk_bedrockruntime::Client::converse)
            .then_output(|| answer("", StopReason::GuardrailIntervened));
        let client = mock_client!(aws_sdk_bedrockruntime, RuleMode::MatchAny, [&rule]);
        let e = Bedrock::with_client(client)
            .generate(&request(MODEL, Duration::from_secs(5)), &|_| {})
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::ContentFiltered, false));
    }
}
