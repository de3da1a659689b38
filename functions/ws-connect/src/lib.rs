//! `ws-connect`: the WebSocket API's three routes, one function.
//!
//! - `$connect`: authenticates the caller with an access token or API key, given as the `token`
//!   query parameter or as an entry of `Sec-WebSocket-Protocol` (browsers cannot set
//!   `Authorization` on a WebSocket; the entry is echoed back as the chosen subprotocol, as they
//!   require), then records the connection. No credential, or a bad one, is 401 before
//!   anything is written; an API key without `workflows:read` is 403.
//! - `$default`: a client command (`shared::domain::realtime`), answered on the same
//!   connection through the route's response (the template gives `$default` a route response);
//!   a bad message gets an error reply, never a closed connection.
//! - `$disconnect`: forgets the connection and its subscriptions (best effort on API Gateway:
//!   items also expire with the connection's 2 hours).
//!
//! `main.rs` only wires AWS clients into [`Deps`].

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};
use shared::app::AppError;
use shared::app::realtime;
use shared::domain::credentials::API_KEY_PREFIX;
use shared::http::{AuthError, Authenticator};
use shared::ports::{Connections, Workflows};

/// What the handler needs, built once per cold start.
pub struct Deps<S> {
    pub store: S,
    pub auth: Authenticator,
}

/// The subprotocol header a browser offers its credential in.
const SUBPROTOCOL: &str = "sec-websocket-protocol";

/// Handles one event of any of the three routes.
pub async fn handle<S>(
    deps: &Deps<S>,
    event: ApiGatewayWebsocketProxyRequest,
    now: DateTime<Utc>,
) -> ApiGatewayProxyResponse
where
    S: Connections + Workflows,
{
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else {
        return response(400, "no connection id", HeaderMap::new());
    };
    match context.route_key.as_deref().unwrap_or("$default") {
        "$connect" => connect(deps, &event, connection_id, now).await,
        "$disconnect" => match realtime::disconnect(&deps.store, connection_id).await {
            Ok(()) => response(200, "disconnected", HeaderMap::new()),
            Err(e) => {
                // API Gateway ignores it; the items expire with the connection.
                tracing::warn!(error = %e, connection_id, "disconnect not recorded");
                response(503, "unavailable", HeaderMap::new())
            }
        },
        _ => {
            let body = event.body.as_deref().unwrap_or("");
            let reply = realtime::command(&deps.store, connection_id, body, now).await;
            let json = serde_json::to_string(&reply).unwrap_or_else(|_| "{}".into());
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = 200;
            r.body = Some(Body::Text(json));
            r
        }
    }
}

async fn connect<S: Connections>(
    deps: &Deps<S>,
    event: &ApiGatewayWebsocketProxyRequest,
    connection_id: &str,
    now: DateTime<Utc>,
) -> ApiGatewayProxyResponse {
    let Some((credential, echoed)) = credential(event) else {
        return response(
            401,
            "send an access token or API key as the `token` query parameter or a Sec-WebSocket-Protocol entry",
            HeaderMap::new(),
        );
    };
    let principal = match deps.auth.authenticate_credential(&credential, now).await {
        Ok(p) => p,
        Err(AuthError::Unavailable(cause)) => {
            tracing::warn!(cause, "accounts unavailable at $connect");
            return response(503, "unavailable", HeaderMap::new());
        }
        Err(e) => return response(401, &e.to_string(), HeaderMap::new()),
    };
    let mut headers = HeaderMap::new();
    if echoed && let Ok(v) = HeaderValue::from_str(&credential) {
        headers.insert(SUBPROTOCOL, v);
    }
    match realtime::connect(&deps.store, &principal, connection_id, now).await {
        Ok(_) => response(200, "connected", headers),
        Err(AppError::Forbidden(why)) => response(403, why, HeaderMap::new()),
        Err(e) => {
            tracing::warn!(error = %e, "connection not recorded");
            response(503, "unavailable", HeaderMap::new())
        }
    }
}

/// The credential of a `$connect`: the `token` query parameter, else the first
/// `Sec-WebSocket-Protocol` entry that is one (a JWT's three parts, or an API key); whether it
/// came as a subprotocol (to echo it back).
fn credential(event: &ApiGatewayWebsocketProxyRequest) -> Option<(String, bool)> {
    if let Some(token) = event
        .query_string_parameters
        .first("token")
        .filter(|t| !t.is_empty())
    {
        return Some((token.to_string(), false));
    }
    event
        .headers
        .get_all(SUBPROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.starts_with(API_KEY_PREFIX) || p.split('.').count() == 3)
        .map(|p| (p.to_string(), true))
}

fn response(status: i64, message: &str, headers: HeaderMap) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.headers = headers;
    r.body = Some(Body::Text(
        serde_json::json!({ "message": message }).to_string(),
    ));
    r
}
