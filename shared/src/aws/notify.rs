//! [`Sender`] over the services that carry notifications: SES (email, HTML and text), SNS
//! (SMS, and mobile push through platform endpoints) and HTTPS POSTs (webhooks, Slack, Teams,
//! Discord). Every outcome is a [`Verdict`]: throttling, 5xx, timeouts and network errors are
//! tried again; other refusals (an unverified address, a disabled endpoint, a 4xx) are not.
//!
//! Webhook URLs are users' input, so the HTTP client reaches public addresses only: names
//! are resolved by [`PublicOnly`], which drops loopback, private, link-local and other
//! non-public addresses (also when a public name resolves to one: DNS rebinding), and IP
//! literals are checked the same way. Redirects are not followed. `allow_private_targets`
//! (the local stack and tests only) lifts both.

use crate::aws::errors::classify;
use crate::domain::notify::is_public_ip;
use crate::domain::notify::retry::{Verdict, classify_status, parse_retry_after};
use crate::ports::{Outgoing, Sender, Sent};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long one HTTP delivery may take, connection included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a receiver's answer kept in the delivery log.
const DETAIL_CHARS: usize = 300;

/// Resolves host names to their public addresses only (all of them, unless
/// `allow_private`).
#[derive(Clone, Debug)]
pub struct PublicOnly {
    allow_private: bool,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public_ip(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{host} has no public address"
                )));
            }
            Ok(found.into_iter())
        })
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector<PublicOnly>>, Full<Bytes>>;

/// The notifier's sender. Clients are built on first use (a batch may need only one kind).
pub struct AwsSender {
    sdk: aws_config::SdkConfig,
    ses: OnceLock<aws_sdk_sesv2::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    http: OnceLock<Result<HttpClient, String>>,
    from: String,
    allow_private_targets: bool,
}

impl AwsSender {
    /// Email goes out from `from` (the template's verified identity).
    pub fn new(
        sdk: &aws_config::SdkConfig,
        from: impl Into<String>,
        allow_private_targets: bool,
    ) -> Self {
        AwsSender {
            sdk: sdk.clone(),
            ses: OnceLock::new(),
            sns: OnceLock::new(),
            http: OnceLock::new(),
            from: from.into(),
            allow_private_targets,
        }
    }

    /// Over ready SES and SNS clients (tests: mocked ones).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_clients(ses: aws_sdk_sesv2::Client, sns: aws_sdk_sns::Client) -> Self {
        AwsSender {
            sdk: aws_config::SdkConfig::builder().build(),
            ses: OnceLock::from(ses),
            sns: OnceLock::from(sns),
            http: OnceLock::new(),
            from: "no-reply@example.com".into(),
            allow_private_targets: false,
        }
    }

    fn http(&self) -> Result<&HttpClient, String> {
        self.http
            .get_or_init(|| {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let mut http = HttpConnector::new_with_resolver(PublicOnly {
                    allow_private: self.allow_private_targets,
                });
                http.enforce_http(false);
                http.set_connect_timeout(Some(HTTP_TIMEOUT));
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(provider)
                    .map_err(|e| format!("the system's root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Ok(Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(20))
                    .build(https))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    async fn email(&self, to: &str, subject: &str, html: &str, text: &str) -> Sent {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content = |t: &str| Content::builder().data(t).charset("UTF-8").build();
        let (subject, html, text) = match (content(subject), content(html), content(text)) {
            (Ok(s), Ok(h), Ok(t)) => (s, h, t),
            _ => return refused(None, "the email could not be built".into()),
        };
        let message = Message::builder()
            .subject(subject)
            .body(Body::builder().html(html).text(text).build())
            .build();
        let result = self
            .ses
            .get_or_init(|| aws_sdk_sesv2::Client::new(&self.sdk))
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match result {
            Ok(out) => delivered(None, out.message_id),
            Err(e) => sdk_failure(e),
        }
    }

    async fn sns(&self, to: Result<&str, &str>, message: &str) -> Sent {
        use aws_sdk_sns::types::MessageAttributeValue;
        let client = self.sns.get_or_init(|| aws_sdk_sns::Client::new(&self.sdk));
        let request = match to {
            Ok(phone) => {
                let transactional = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("Transactional")
                    .build();
                let Ok(transactional) = transactional else {
                    return refused(None, "the SMS could not be built".into());
                };
                client
                    .publish()
                    .phone_number(phone)
                    .message(message)
                    .message_attributes("AWS.SNS.SMS.SMSType", transactional)
            }
            Err(endpoint_arn) => client
                .publish()
                .target_arn(endpoint_arn)
                .message_structure("json")
                .message(message),
        };
        match request.send().await {
            Ok(out) => delivered(None, out.message_id),
            Err(e) => sdk_failure(e),
        }
    }

    async fn post(&self, url: &str, headers: &[(String, String)], body: &str) -> Sent {
        if !self.allow_private_targets
            && let Err(e) = crate::domain::notify::check_target(
                crate::domain::notify::ChannelKind::Webhook,
                url,
                false,
            )
        {
            return refused(None, e.message);
        }
        let client = match self.http() {
            Ok(c) => c,
            Err(e) => return retry(None, None, e),
        };
        let mut request = http::Request::post(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.header(
            "user-agent",
            concat!("DocumentWorkflowChain-Notifier/", env!("CARGO_PKG_VERSION")),
        );
        let request = match request.body(Full::new(Bytes::from(body.to_string()))) {
            Ok(r) => r,
            Err(e) => return refused(None, format!("the request could not be built: {e}")),
        };
        let answer = tokio::time::timeout(HTTP_TIMEOUT, async {
            let response = client.request(request).await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
            // A little of the answer, for the log: at most 4 KiB is read (a body that goes
            // on is cut there, one that never ends by the timeout).
            let limited = http_body_util::Limited::new(response.into_body(), 4096);
            let text = match limited.collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, text))
        })
        .await;
        match answer {
            Err(_) => retry(
                None,
                None,
                format!("no answer within {} s", HTTP_TIMEOUT.as_secs()),
            ),
            Ok(Err(e)) => {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why = format!("{why}: {s}");
                    source = s.source();
                }
                retry(None, None, why)
            }
            Ok(Ok((status, retry_after, text))) => Sent {
                verdict: classify_status(status, retry_after),
                status_code: Some(status),
                detail: Some(short(&text)).filter(|t| !t.is_empty()),
            },
        }
    }
}

impl Sender for AwsSender {
    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> Pin<Box<dyn Future<Output = Sent> + Send + 'a>> {
        Box::pin(async move {
            match message {
                Outgoing::Email {
                    to,
                    subject,
                    html,
                    text,
                } => self.email(to, subject, html, text).await,
                Outgoing::Sms { to, text } => self.sns(Ok(to), text).await,
                Outgoing::Push {
                    endpoint_arn,
                    message,
                } => self.sns(Err(endpoint_arn), message).await,
                Outgoing::Http { url, headers, body } => self.post(url, headers, body).await,
            }
        })
    }
}

fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= DETAIL_CHARS {
        return text.to_string();
    }
    let mut s: String = text.chars().take(DETAIL_CHARS).collect();
    s.push('…');
    s
}

fn delivered(status: Option<u16>, id: Option<String>) -> Sent {
    Sent {
        verdict: Verdict::Delivered,
        status_code: status,
        detail: id.map(|id| format!("message id {id}")),
    }
}

fn refused(status: Option<u16>, why: String) -> Sent {
    Sent {
        verdict: Verdict::Permanent,
        status_code: status,
        detail: Some(short(&why)),
    }
}

fn retry(status: Option<u16>, retry_after: Option<Duration>, why: String) -> Sent {
    Sent {
        verdict: Verdict::Retry { retry_after },
        status_code: status,
        detail: Some(short(&why)),
    }
}

/// Errors that say the recipient refuses or cannot take messages: SES's rejection of the
/// message (in the sandbox, an address that is not verified), SNS's disabled endpoints, invalid
/// or opted-out numbers. Only these mark the channel failed.
const RECIPIENT_REFUSED: &[&str] = &[
    "MessageRejected",
    "EndpointDisabled",
    "PlatformApplicationDisabled",
    "InvalidParameter",
    "InvalidParameterValue",
    "OptedOut",
];

/// An SES or SNS error as a verdict. What is about the recipient is permanent; everything else
/// (throttling, 5xx, the network, but also the service account's own state: sending paused,
/// an identity or permission missing, KMS) is tried again, and never marks the user's channel.
/// The log gets the whole error; the delivery log (which its user reads) the code and message
/// only, never the raw response.
fn sdk_failure<E: ProvideErrorMetadata + std::fmt::Debug>(e: SdkError<E, HttpResponse>) -> Sent {
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let code = e.code().map(str::to_string);
    let message = e.message().unwrap_or_default().to_string();
    let full = classify(e);
    let shown = match &code {
        Some(c) => format!("{c}: {message}"),
        None => "the service did not answer".to_string(),
    };
    match code.as_deref() {
        Some(c) if RECIPIENT_REFUSED.contains(&c) => refused(status, shown),
        _ => {
            tracing::warn!(error = %full, "a notification send failed; it is tried again");
            retry(status, None, shown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn the_resolver_drops_addresses_that_are_not_public() {
        let name: Name = "localhost".parse().expect("a name");
        let refused = PublicOnly {
            allow_private: false,
        }
        .call(name.clone())
        .await;
        assert!(refused.is_err(), "localhost resolved to a public address?");
        let allowed = PublicOnly {
            allow_private: true,
        }
        .call(name)
        .await
        .expect("localhost resolves");
        assert!(allowed.count() >= 1);
    }

    #[tokio::test]
    async fn http_targets_are_refused_outside_the_local_stack() {
        let sdk = aws_config::SdkConfig::builder().build();
        let sender = AwsSender::new(&sdk, "no-reply@example.com", false);
        for url in [
            "http://127.0.0.1:9/hook",
            "https://127.0.0.1:9/hook",
            "https://10.0.0.1/x",
        ] {
            let sent = sender.post(url, &[], "{}").await;
            assert_eq!(sent.verdict, Verdict::Permanent, "{url}: {sent:?}");
        }
    }
}
