//! [`Poster`] over API Gateway's Management API (`PostToConnection`).
//!
//! The Management API of a WebSocket API is reached at `https://{api-id}.execute-api.{region}.
//! amazonaws.com/{stage}` (the template gives it to a function as `WEBSOCKET_ENDPOINT`). The
//! SDK's service-specific endpoint variable `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI` wins when
//! set: the local gateway sets it to the Management API it hosts itself.

use crate::ports::{PostError, Poster};
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_smithy_runtime_api::client::result::SdkError;
use std::future::Future;
use std::pin::Pin;

/// The variable that overrides the endpoint (the SDK's own name for it).
pub const ENDPOINT_OVERRIDE: &str = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI";

#[derive(Clone)]
pub struct ManagementApi {
    client: Client,
}

impl ManagementApi {
    /// A client of the API at `endpoint` (the stage's URL), unless the environment overrides it.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> ManagementApi {
        let overridden = std::env::var(ENDPOINT_OVERRIDE).is_ok_and(|v| !v.trim().is_empty());
        let mut config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk);
        if !overridden {
            config = config.endpoint_url(endpoint);
        }
        ManagementApi {
            client: Client::from_conf(config.build()),
        }
    }

    pub fn from_client(client: Client) -> ManagementApi {
        ManagementApi { client }
    }
}

impl Poster for ManagementApi {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), PostError>> + Send + 'a>> {
        Box::pin(async move {
            let sent = self
                .client
                .post_to_connection()
                .connection_id(connection_id)
                .data(Blob::new(frame.as_bytes()))
                .send()
                .await;
            sent.map(|_| ()).map_err(post_error)
        })
    }
}

fn post_error(
    e: SdkError<PostToConnectionError, aws_smithy_runtime_api::http::Response>,
) -> PostError {
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (e.as_service_error(), status) {
        (Some(PostToConnectionError::GoneException(_)), _) | (_, Some(410)) => PostError::Gone,
        (Some(PostToConnectionError::LimitExceededException(_)), _) | (_, Some(429)) => {
            PostError::Throttled
        }
        _ => {
            PostError::Failed(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
        }
    }
}
