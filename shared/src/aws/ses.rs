//! [`Mailer`] over Amazon SES (v2 SendEmail), from the template's verified identity.

use crate::aws::errors::classify;
use crate::ports::{Email, Fut, Mailer, StoreError};
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

/// The client is built on first use (most requests send no email).
#[derive(Debug)]
pub struct SesMailer {
    sdk: aws_config::SdkConfig,
    client: std::sync::OnceLock<Client>,
    from: String,
}

impl SesMailer {
    pub fn new(sdk: &aws_config::SdkConfig, from: impl Into<String>) -> Self {
        SesMailer {
            sdk: sdk.clone(),
            client: std::sync::OnceLock::new(),
            from: from.into(),
        }
    }

    /// Over a ready client (tests: a mocked one).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_client(client: Client, from: impl Into<String>) -> Self {
        SesMailer {
            sdk: aws_config::SdkConfig::builder().build(),
            client: std::sync::OnceLock::from(client),
            from: from.into(),
        }
    }
}

fn content(text: &str) -> Result<Content, StoreError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| StoreError::Internal(format!("ses: {e}")))
}

impl Mailer for SesMailer {
    fn send<'a>(&'a self, email: &'a Email) -> Fut<'a, ()> {
        Box::pin(async move {
            let message = Message::builder()
                .subject(content(&email.subject)?)
                .body(Body::builder().text(content(&email.text)?).build())
                .build();
            self.client
                .get_or_init(|| Client::new(&self.sdk))
                .send_email()
                .from_email_address(&self.from)
                .destination(Destination::builder().to_addresses(&email.to).build())
                .content(EmailContent::builder().simple(message).build())
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }
}
