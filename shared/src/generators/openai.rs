//! The OpenAI-compatible generator: streamed chat completions (`POST {base}/chat/completions`
//! with `stream: true`, server-sent events) from OpenAI or any server that speaks the same API
//! (Ollama, vLLM, llama.cpp's server), over http or https.
//!
//! Failures are classified for the retry policy ([`classify_status`]): 429 is `throttled`, 5xx
//! and broken connections or streams are `upstream` (all retried), 408 and a call that outlives
//! [`Generation::timeout`] (also a stream that stalls between chunks) are `timeout`, 401/403 are
//! `unauthorized` and other 4xx `invalid_request` (not retried); a `content_filter` finish is
//! `content_filtered`. Messages carry the provider's own error text, cut short, and never the
//! API key.

use crate::domain::run::{ErrorKind, StepError};
use crate::ports::{GenFut, Generated, Generation, KeyVault, OnDelta, TextGenerator};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// How much of a provider's error text goes into a step's error message.
const MAX_PROVIDER_MESSAGE_CHARS: usize = 300;
/// The longest error body read (a provider's error is a small JSON document).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The longest SSE line accepted: a chunk holds a few tokens; a line this long is not a stream.
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// The longest text accepted (a node's content is at most 100,000 characters; UTF-8 may take 4
/// bytes each).
const MAX_TEXT_BYTES: usize = 400_000;
/// A pooled connection idle longer than this is not reused: a Lambda instance frozen between
/// invocations finds the server has closed it long ago.
const POOL_IDLE: Duration = Duration::from_secs(20);

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An API key. Its `Debug` hides it, so a logged configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// `None` for an empty (or blank) key: no key at all.
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let key: String = key.into();
        let key = key.trim();
        (!key.is_empty()).then(|| ApiKey(key.to_string()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Opens an API key sealed with KMS (`GENERATOR_API_KEY_CIPHERTEXT`: a KMS `Decrypt` of the
/// ciphertext, once per cold start). `Ok(None)` when the plaintext is blank. Errors never
/// include the plaintext.
pub async fn open_api_key(
    vault: &dyn KeyVault,
    ciphertext: &[u8],
) -> Result<Option<ApiKey>, String> {
    let plaintext = vault
        .decrypt_data_key(ciphertext)
        .await
        .map_err(|e| format!("the generator's API key could not be decrypted: {e}"))?;
    let text = String::from_utf8(plaintext)
        .map_err(|_| "the generator's API key is not UTF-8 text".to_string())?;
    Ok(ApiKey::new(text))
}

/// A client of one OpenAI-compatible endpoint.
pub struct OpenAi {
    /// Base URL without a trailing `/` (`https://api.openai.com/v1`, `http://127.0.0.1:8088/v1`).
    base_url: String,
    api_key: Option<ApiKey>,
    /// Built on first use: loading the system's root certificates costs a cold start that
    /// never calls a model (DESIGN.md §8, lazy clients).
    client: OnceLock<Result<HttpClient, String>>,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAi")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl OpenAi {
    /// A client of the endpoint at `base_url` (http or https, e.g. `http://127.0.0.1:8088/v1`),
    /// sending `api_key` as a bearer token when there is one.
    pub fn new(base_url: &str, api_key: Option<ApiKey>) -> Result<OpenAi, String> {
        let base_url = crate::config::generator_base_url(base_url)?;
        Ok(OpenAi {
            base_url,
            api_key,
            client: OnceLock::new(),
        })
    }

    fn client(&self) -> Result<&HttpClient, StepError> {
        self.client
            .get_or_init(|| {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let builder = hyper_rustls::HttpsConnectorBuilder::new();
                let builder = if self.base_url.to_ascii_lowercase().starts_with("https://") {
                    builder
                        .with_provider_and_native_roots(provider)
                        .map_err(|e| format!("the system's root certificates: {e}"))?
                } else {
                    // Plain http checks no certificate: load none (a local server, a host
                    // without a certificate store).
                    let tls = rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .map_err(|e| format!("TLS configuration: {e}"))?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth();
                    builder.with_tls_config(tls)
                };
                let https = builder.https_or_http().enable_http1().build();
                Ok(Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE)
                    .build(https))
            })
            .as_ref()
            .map_err(|e| StepError::new(ErrorKind::Internal, e.clone()))
    }

    /// The request body of `request` for `model` (the name without the `openai:` prefix).
    fn body(model: &str, request: &Generation) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": request.prompt}));
        json!({
            "model": model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    }

    async fn call(
        &self,
        request: &Generation,
        on_delta: OnDelta<'_>,
        deadline: Instant,
    ) -> Result<Generated, StepError> {
        let model = request
            .model
            .strip_prefix("openai:")
            .unwrap_or(&request.model);
        let body = serde_json::to_vec(&Self::body(model, request))
            .map_err(|e| StepError::new(ErrorKind::Internal, format!("request body: {e}")))?;
        let mut builder = hyper::Request::post(format!("{}/chat/completions", self.base_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some(key) = &self.api_key {
            builder = builder.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", key.expose()),
            );
        }
        let http_request = builder.body(Full::new(Bytes::from(body))).map_err(|_| {
            StepError::new(
                ErrorKind::InvalidRequest,
                "the generator's URL or API key is not valid in an HTTP request",
            )
        })?;
        let client = self.client()?;
        let response = within(deadline, request.timeout, client.request(http_request))
            .await?
            .map_err(|e| self.connection_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = read_error_body(response.into_body(), deadline, request.timeout).await?;
            return Err(self.redacted(classify_status(
                status.as_u16(),
                retry_after,
                &provider_message(&text),
            )));
        }
        let json_answer = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let mut body = response.into_body();
        let mut answer = Answer::default();
        if json_answer {
            // A server that ignores `stream`: one JSON completion.
            let bytes = read_limited(&mut body, MAX_TEXT_BYTES * 2, deadline, request.timeout)
                .await
                .map_err(|e| self.redacted(e))?;
            answer.completion(&bytes)?;
            if !answer.text.is_empty() {
                on_delta(&answer.text);
            }
        } else {
            self.stream(&mut body, &mut answer, on_delta, deadline, request.timeout)
                .await?;
        }
        answer.finish(request)
    }

    /// Reads the event stream into `answer`, passing each piece of text to `on_delta`.
    async fn stream(
        &self,
        body: &mut Incoming,
        answer: &mut Answer,
        on_delta: OnDelta<'_>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), StepError> {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let Some(frame) = within(deadline, timeout, body.frame()).await? else {
                // The body ended: the last line may lack its newline.
                if !pending.is_empty() {
                    let line = std::mem::take(&mut pending);
                    if answer.line(&line, on_delta).map_err(|e| self.redacted(e))? {
                        return Ok(());
                    }
                }
                return if answer.finish_reason.is_some() {
                    Ok(())
                } else {
                    Err(StepError::new(
                        ErrorKind::Upstream,
                        "the model's stream ended before it finished",
                    ))
                };
            };
            let frame = frame.map_err(|e| {
                StepError::new(
                    ErrorKind::Upstream,
                    format!("the model's stream broke: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if answer.line(&line, on_delta).map_err(|e| self.redacted(e))? {
                    return Ok(());
                }
            }
            if pending.len() > MAX_LINE_BYTES {
                return Err(StepError::new(
                    ErrorKind::Upstream,
                    "the model's stream sent a line longer than 1 MiB",
                ));
            }
        }
    }

    fn connection_error(&self, e: &hyper_util::client::legacy::Error) -> StepError {
        let what = if e.is_connect() {
            "could not connect to the model's endpoint"
        } else {
            "the connection to the model's endpoint failed"
        };
        let cause = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        self.redacted(StepError::new(
            ErrorKind::Upstream,
            format!("{what}{cause}"),
        ))
    }

    /// `error` without the API key, should a provider echo it.
    fn redacted(&self, mut error: StepError) -> StepError {
        if let Some(key) = &self.api_key
            && error.message.contains(key.expose())
        {
            error.message = error.message.replace(key.expose(), "[redacted]");
        }
        error
    }
}

impl TextGenerator for OpenAi {
    /// Streams the completion; the whole call, stalls between chunks included, ends as a
    /// `timeout` once [`Generation::timeout`] has passed.
    fn generate<'a>(&'a self, request: &'a Generation, on_delta: OnDelta<'a>) -> GenFut<'a> {
        Box::pin(async move {
            let deadline = Instant::now() + request.timeout;
            self.call(request, on_delta, deadline).await
        })
    }
}

/// The error of an HTTP status that is not a success. `retry_after` (seconds, from the
/// `Retry-After` header) goes into the message: [`StepError`] has no field for it, and the
/// retry policy's own backoff decides the delay.
pub fn classify_status(status: u16, retry_after: Option<u64>, provider: &str) -> StepError {
    let detail = if provider.is_empty() {
        String::new()
    } else {
        format!(": {provider}")
    };
    match status {
        429 => {
            let wait = retry_after
                .map(|s| format!(" (retry after {s} s)"))
                .unwrap_or_default();
            StepError::new(
                ErrorKind::Throttled,
                format!("the model's endpoint is throttling (HTTP 429){wait}{detail}"),
            )
        }
        408 => StepError::new(
            ErrorKind::Timeout,
            format!("the model's endpoint timed out (HTTP 408){detail}"),
        ),
        401 | 403 => StepError::new(
            ErrorKind::Unauthorized,
            format!("the model's endpoint refused the credentials (HTTP {status}){detail}"),
        ),
        500..=599 => StepError::new(
            ErrorKind::Upstream,
            format!("the model's endpoint failed (HTTP {status}){detail}"),
        ),
        _ => StepError::new(
            ErrorKind::InvalidRequest,
            format!("the model's endpoint refused the request (HTTP {status}){detail}"),
        ),
    }
}

/// The provider's error text from an error body (`{"error": {"message": ...}}`,
/// `{"error": "..."}`, or the body itself), on one line, cut to
/// [`MAX_PROVIDER_MESSAGE_CHARS`].
fn provider_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let e = v.get("error")?;
        e.get("message")
            .and_then(Value::as_str)
            .or_else(|| e.as_str())
            .map(String::from)
    });
    let text = from_json.unwrap_or_else(|| body.to_string());
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_PROVIDER_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

/// `future`, unless `deadline` passes first (a `timeout` error).
async fn within<F: std::future::Future>(
    deadline: Instant,
    timeout: Duration,
    future: F,
) -> Result<F::Output, StepError> {
    tokio::time::timeout_at(deadline, future)
        .await
        .map_err(|_| {
            StepError::new(
                ErrorKind::Timeout,
                format!("the model did not finish within {} ms", timeout.as_millis()),
            )
        })
}

/// At most `limit` bytes of `body` (an error once it is longer).
async fn read_limited(
    body: &mut Incoming,
    limit: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, StepError> {
    let mut out = Vec::new();
    while let Some(frame) = within(deadline, timeout, body.frame()).await? {
        let frame = frame.map_err(|e| {
            StepError::new(
                ErrorKind::Upstream,
                format!("the model's answer broke: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                return Err(StepError::new(
                    ErrorKind::Upstream,
                    "the model's answer is too long",
                ));
            }
        }
    }
    Ok(out)
}

/// The text of an error body (the first [`MAX_ERROR_BODY_BYTES`]; a broken body counts as
/// empty: the status alone classifies the error).
async fn read_error_body(
    mut body: Incoming,
    deadline: Instant,
    timeout: Duration,
) -> Result<String, StepError> {
    let mut out = Vec::new();
    while let Some(frame) = within(deadline, timeout, body.frame()).await? {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if out.len() >= MAX_ERROR_BODY_BYTES {
                out.truncate(MAX_ERROR_BODY_BYTES);
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// What the stream has said so far.
#[derive(Debug, Default)]
struct Answer {
    text: String,
    finish_reason: Option<String>,
    /// `(prompt_tokens, completion_tokens)` from the usage chunk.
    usage: Option<(u64, u64)>,
}

impl Answer {
    /// Takes one SSE line; `Ok(true)` at `data: [DONE]`. Comments, `event:`/`id:` lines and
    /// blank lines are skipped.
    fn line(&mut self, line: &[u8], on_delta: OnDelta<'_>) -> Result<bool, StepError> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(data) = line.strip_prefix("data:") else {
            return Ok(false);
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|_| {
            StepError::new(
                ErrorKind::Upstream,
                "the model's stream sent a chunk that is not JSON",
            )
        })?;
        if let Some(error) = chunk.get("error") {
            // Servers report a failure mid-stream as an error chunk (the status was 200).
            return Err(StepError::new(
                ErrorKind::Upstream,
                format!(
                    "the model failed mid-stream: {}",
                    provider_message(&json!({ "error": error }).to_string())
                ),
            ));
        }
        self.usage_of(&chunk);
        if let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        {
            if let Some(piece) = choice
                .pointer("/delta/content")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
            {
                if self.text.len() + piece.len() > MAX_TEXT_BYTES {
                    return Err(StepError::new(
                        ErrorKind::Upstream,
                        "the model's text is longer than a document may be",
                    ));
                }
                self.text.push_str(piece);
                on_delta(piece);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_string());
            }
        }
        Ok(false)
    }

    /// Takes a whole (non-streamed) completion.
    fn completion(&mut self, body: &[u8]) -> Result<(), StepError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| StepError::new(ErrorKind::Upstream, "the model's answer is not JSON"))?;
        self.usage_of(&v);
        let choice = v.pointer("/choices/0");
        self.text = choice
            .and_then(|c| c.pointer("/message/content"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.finish_reason = choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(String::from);
        Ok(())
    }

    fn usage_of(&mut self, chunk: &Value) {
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.usage = Some((n("prompt_tokens"), n("completion_tokens")));
        }
    }

    /// The result. Token counts are the server's usage when it sent one; otherwise (servers
    /// that ignore `stream_options`) they are estimated as words x 4/3, rounded, of the prompt
    /// (system included) and of the text.
    fn finish(self, request: &Generation) -> Result<Generated, StepError> {
        let finish_reason = self.finish_reason.unwrap_or_else(|| "stop".into());
        if finish_reason == "content_filter" {
            return Err(StepError::new(
                ErrorKind::ContentFiltered,
                "the model's content filter stopped the text",
            ));
        }
        let (input_tokens, output_tokens) = self.usage.unwrap_or_else(|| {
            let prompt_words = request
                .system
                .as_deref()
                .map_or(0, |s| s.split_whitespace().count())
                + request.prompt.split_whitespace().count();
            (
                estimate_tokens(prompt_words),
                estimate_tokens(self.text.split_whitespace().count()),
            )
        });
        Ok(Generated {
            text: self.text,
            input_tokens,
            output_tokens,
            finish_reason,
        })
    }
}

/// `words * 4 / 3`, rounded to the nearest whole token (about 0.75 words a token in English).
pub fn estimate_tokens(words: usize) -> u64 {
    (words as u64 * 4 + 1) / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let e = classify_status(429, Some(7), "slow down");
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert!(
            e.retryable && e.message.contains("retry after 7 s"),
            "{e:?}"
        );
        assert!(e.message.contains("slow down"));
        assert_eq!(classify_status(503, None, "").kind, ErrorKind::Upstream);
        assert_eq!(classify_status(408, None, "").kind, ErrorKind::Timeout);
        for s in [400, 404, 422] {
            let e = classify_status(s, None, "");
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
            assert!(!e.retryable);
        }
        for s in [401, 403] {
            let e = classify_status(s, None, "");
            assert_eq!(e.kind, ErrorKind::Unauthorized);
            assert!(!e.retryable);
        }
    }

    #[test]
    fn provider_messages_are_extracted_and_cut() {
        assert_eq!(
            provider_message(r#"{"error":{"message":"model not found","type":"x"}}"#),
            "model not found"
        );
        assert_eq!(provider_message(r#"{"error":"bad"}"#), "bad");
        assert_eq!(provider_message("plain\n text"), "plain text");
        let long = provider_message(&"é".repeat(1000));
        assert_eq!(long.chars().count(), MAX_PROVIDER_MESSAGE_CHARS + 3);
    }

    #[test]
    fn tokens_are_estimated_from_words() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1); // 1.33
        assert_eq!(estimate_tokens(2), 3); // 2.67
        assert_eq!(estimate_tokens(3), 4);
        assert_eq!(estimate_tokens(75), 100);
    }

    #[test]
    fn the_key_is_hidden_from_debug() {
        let key = ApiKey::new("sk-secret").unwrap();
        assert!(!format!("{key:?}").contains("sk-secret"));
        let g = OpenAi::new("http://127.0.0.1:1/v1", Some(key)).unwrap();
        assert!(!format!("{g:?}").contains("sk-secret"));
        assert!(ApiKey::new("  ").is_none());
    }
}
