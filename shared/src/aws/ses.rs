//! [`Mailer`] over Amazon SES (v2 SendEmail), from the template's verified identity.

use crate::ports::{Email, Fut, Mailer, StoreError};
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        SesMailer {
            client,
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
                .send_email()
                .from_email_address(&self.from)
                .destination(Destination::builder().to_addresses(&email.to).build())
                .content(EmailContent::builder().simple(message).build())
                .send()
                .await
                .map_err(|e| match &e {
                    aws_sdk_sesv2::error::SdkError::DispatchFailure(_)
                    | aws_sdk_sesv2::error::SdkError::TimeoutError(_) => {
                        StoreError::Unavailable(format!("ses: {e:?}"))
                    }
                    _ => StoreError::Internal(format!("ses: {e:?}")),
                })?;
            Ok(())
        })
    }
}
