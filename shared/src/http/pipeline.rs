//! The one request pipeline every HTTP function runs:
//!
//! gate (IP lists) -> route (the template's `routeKey`) -> IP rate limit -> authenticate (for
//! routes that need it) -> principal rate limit -> dispatch -> one response, problem+json on
//! any error, and one log line.
//!
//! A function is a route enum implementing [`Routes`]: its table (the template's route keys, each
//! naming one variant), who may call each route, and a `dispatch` that matches the enum
//! exhaustively, over the function's dependencies (`Routes::Api`, which holds a [`Pipeline`]). Routing uses what API
//! Gateway already resolved (`requestContext.routeKey` and `pathParameters`; the local gateway
//! sets both from the same template), so the template is the only router: a request whose route
//! key is not in the table (or that has none) is a 404, and there is no path parser here to
//! disagree with API Gateway's.

use super::limits::source_ip;
use super::request as rq;
use super::{Authenticator, Gate, Per, Problem};
use crate::domain::Principal;
use crate::ports::Clock;
use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub type Reply = Result<Response<Body>, Problem>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential needed (health, documents, sign-in flows).
    Public,
    /// An access token or API key of an active account.
    Authenticated,
}

/// A function's routes: one enum variant per template route (method and path).
pub trait Routes: Sized + Copy + Send + Sync + 'static {
    /// What the handlers need from the world, built once per cold start.
    type Api: AsRef<Pipeline> + Sync;

    /// The template's route keys (`"GET /api/v3/workflows/{id}"`) and the route each one is.
    const TABLE: &'static [(&'static str, Self)];

    fn access(self) -> Access;

    /// Whether the route's answers may carry secrets (tokens, keys, TOTP secrets, recovery
    /// codes, account data): they are sent with `Cache-Control: no-store`, errors included.
    fn no_store(self) -> bool {
        false
    }

    /// Answers one routed request; `call.principal()` is set for authenticated routes.
    fn dispatch(self, api: &Self::Api, call: &Call<'_>) -> impl Future<Output = Reply> + Send;

    /// The route API Gateway matched, from its route key.
    fn from_key(route_key: &str) -> Option<Self> {
        Self::TABLE
            .iter()
            .find(|(key, _)| *key == route_key)
            .map(|(_, route)| *route)
    }
}

/// What every HTTP function needs before its own handlers: the gate, the authenticator, a clock.
#[derive(Clone)]
pub struct Pipeline {
    pub gate: Gate,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
}

/// One routed request and what the pipeline learnt about it.
pub struct Call<'a> {
    pub req: &'a Request,
    pub method: &'a str,
    /// The request path as sent (rate-limit rules match on it).
    pub path: &'a str,
    /// The caller's address as API Gateway saw it.
    pub ip: Option<String>,
    pub now: DateTime<Utc>,
    principal: Option<Principal>,
}

impl Call<'_> {
    /// The authenticated caller; only routes with [`Access::Authenticated`] have one.
    pub fn principal(&self) -> Result<&Principal, Problem> {
        self.principal
            .as_ref()
            .ok_or_else(|| Problem::unauthorized("this route needs a credential"))
    }

    /// A path parameter API Gateway extracted (`{id}`), checked to be a well-formed id.
    pub fn id(&self, name: &str) -> Result<String, Problem> {
        let params = self.req.path_parameters_ref();
        let value = params.and_then(|p| p.first(name)).unwrap_or("");
        rq::id(name, value).map(str::to_string)
    }

    pub fn now_ms(&self) -> i64 {
        self.now.timestamp_millis()
    }

    /// The `User-Agent` header, or "".
    pub fn user_agent(&self) -> &str {
        self.req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The route key API Gateway matched (`requestContext.routeKey`).
pub fn route_key(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Handles one API Gateway (HTTP API, payload 2.0) request: never panics on input, never a 500
/// for bad input, and logs one line per request.
pub async fn handle<R: Routes>(api: &R::Api, req: Request) -> Response<Body> {
    let started = Instant::now();
    let mut response = run::<R>(api, &req)
        .await
        .unwrap_or_else(Problem::into_response);
    if route_key(&req)
        .and_then(R::from_key)
        .is_some_and(R::no_store)
    {
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
    }
    tracing::info!(
        method = %req.method(),
        path = %req.uri().path(),
        route = route_key(&req).unwrap_or("-"),
        status = response.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn run<R: Routes>(api: &R::Api, req: &Request) -> Reply {
    let pipeline = api.as_ref();
    let ip = source_ip(req);
    pipeline.gate.admit_ip(ip.as_deref())?;
    let route = route_key(req)
        .and_then(R::from_key)
        .ok_or_else(|| Problem::not_found("route"))?;
    let method = req.method().as_str();
    let path = req.uri().path();
    let now = pipeline.clock.now();
    let now_ms = now.timestamp_millis();
    if let Some(ip) = &ip {
        pipeline
            .gate
            .limit(method, path, Per::Ip, ip, now_ms)
            .await?;
    }
    let principal = match route.access() {
        Access::Public => None,
        Access::Authenticated => {
            let p = pipeline
                .auth
                .authenticate(req.headers().get(http::header::AUTHORIZATION), now)
                .await
                .map_err(Problem::from)?;
            pipeline
                .gate
                .limit(method, path, Per::Principal, &p.user_id, now_ms)
                .await?;
            Some(p)
        }
    };
    let call = Call {
        req,
        method,
        path,
        ip,
        now,
        principal,
    };
    route.dispatch(api, &call).await
}
