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
use crate::app::audit::Note;
use crate::domain::Principal;
use crate::domain::audit::{Actor, ChangedBy, Outcome, Target};
use crate::ports::AuditInbox;
use crate::ports::Clock;
use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Where refusals are noted for the audit trail (403s; IP list and rate limit refusals,
    /// sampled).
    pub audit: Arc<dyn AuditInbox>,
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
    let elapsed = started.elapsed();
    tracing::info!(
        method = %req.method(),
        path = %req.uri().path(),
        route = route_key(&req).unwrap_or("-"),
        status = response.status().as_u16(),
        duration_us = elapsed.as_micros() as u64,
        "request"
    );
    request_metrics::<R>(&req, response.status().as_u16(), elapsed);
    response
}

/// One EMF record per request (`crate::emf`): `Requests`, `RequestLatency` and `ServerErrors`
/// by `[Service]`, `[Service, StatusClass]` and `[Service, Route]`. The route is one of the
/// table's keys (`unmatched` otherwise), so a client cannot make up dimension values.
fn request_metrics<R: Routes>(req: &Request, status: u16, elapsed: std::time::Duration) {
    use crate::emf::{Record, dim, metric, status_class};
    let route = route_key(req)
        .filter(|key| R::from_key(key).is_some())
        .unwrap_or("unmatched");
    Record::new()
        .dimension(dim::ROUTE, route)
        .dimension(dim::STATUS_CLASS, status_class(status))
        .dimension_set(&[dim::STATUS_CLASS])
        .dimension_set(&[dim::ROUTE])
        .count(metric::REQUESTS, 1)
        .millis(metric::REQUEST_LATENCY, elapsed.as_secs_f64() * 1000.0)
        .count(metric::SERVER_ERRORS, u64::from(status >= 500))
        .emit();
}

/// Refusals of the IP lists and rate limits noted in the audit trail: the first of each kind
/// per instance, then one in this many.
const REFUSALS_SAMPLED: u64 = 100;
static IP_REFUSALS: AtomicU64 = AtomicU64::new(0);
static RATE_REFUSALS: AtomicU64 = AtomicU64::new(0);

/// Runs the request in its context (who, from where: [`crate::context`]), so its writes and
/// its audit notes carry them: anonymous until authenticated, then the caller's.
async fn run<R: Routes>(api: &R::Api, req: &Request) -> Reply {
    let ip = source_ip(req);
    let anonymous = changed_by(req, None, ip.clone());
    crate::context::with_changed_by(anonymous, guarded::<R>(api, req, ip)).await
}

/// Notes a refusal in the audit trail, in the caller's chain when known; `sampled` counts the
/// refusals of its kind, of which one in [`REFUSALS_SAMPLED`] is noted.
async fn note_refusal(
    pipeline: &Pipeline,
    action: &'static str,
    problem: &Problem,
    user: Option<&str>,
    route: &str,
    sampled: Option<&AtomicU64>,
) {
    if let Some(counter) = sampled
        && counter.fetch_add(1, Ordering::Relaxed) % REFUSALS_SAMPLED != 0
    {
        return;
    }
    let mut detail =
        serde_json::json!({"route": route, "status": problem.status, "detail": problem.detail});
    if sampled.is_some() {
        detail["sampled_one_in"] = REFUSALS_SAMPLED.into();
    }
    let note = Note::about(
        user,
        action,
        Target::new("route", route),
        Outcome::Denied,
        detail,
    );
    crate::app::audit::note(pipeline.audit.as_ref(), note, pipeline.clock.now()).await;
}

/// The gate, routing, authentication and the handler. Refusals of the IP lists and rate
/// limits (sampled) and every 403 a handler gives a known caller are noted for the audit trail.
async fn guarded<R: Routes>(api: &R::Api, req: &Request, ip: Option<String>) -> Reply {
    let pipeline = api.as_ref();
    let route_name = route_key(req).unwrap_or("-");
    if let Err(p) = pipeline.gate.admit_ip(ip.as_deref()) {
        let ips = Some(&IP_REFUSALS);
        note_refusal(pipeline, "access.ip_denied", &p, None, route_name, ips).await;
        return Err(p);
    }
    let route = route_key(req)
        .and_then(R::from_key)
        .ok_or_else(|| Problem::not_found("route"))?;
    let method = req.method().as_str();
    let path = req.uri().path();
    let now = pipeline.clock.now();
    let now_ms = now.timestamp_millis();
    let rates = Some(&RATE_REFUSALS);
    if let Some(ip) = &ip
        && let Err(p) = pipeline.gate.limit(method, path, Per::Ip, ip, now_ms).await
    {
        note_refusal(pipeline, "access.rate_limited", &p, None, route_name, rates).await;
        return Err(p);
    }
    let principal = match route.access() {
        Access::Public => None,
        Access::Authenticated => {
            let p = pipeline
                .auth
                .authenticate(req.headers().get(http::header::AUTHORIZATION), now)
                .await
                .map_err(Problem::from)?;
            let limited = pipeline
                .gate
                .limit(method, path, Per::Principal, &p.user_id, now_ms)
                .await;
            if let Err(e) = limited {
                let user = Some(p.user_id.as_str());
                note_refusal(pipeline, "access.rate_limited", &e, user, route_name, rates).await;
                return Err(e);
            }
            Some(p)
        }
    };
    // The caller's own context for the handler's writes and notes.
    let caller = principal
        .as_ref()
        .map(|p| (changed_by(req, Some(p), ip.clone()), p.user_id.clone()));
    let call = Call {
        req,
        method,
        path,
        ip,
        now,
        principal,
    };
    let Some((by, user)) = caller else {
        return route.dispatch(api, &call).await;
    };
    crate::context::with_changed_by(by, async {
        let reply = route.dispatch(api, &call).await;
        if let Err(p) = &reply
            && p.status == 403
        {
            note_refusal(pipeline, "access.denied", p, Some(&user), route_name, None).await;
        }
        reply
    })
    .await
}

/// Longest user agent kept with a change.
const MAX_USER_AGENT: usize = 256;

/// Who a request acts for, and from where: what its writes are stamped with (and so what the
/// audit trail records). An API key is named by its key id; a public route's caller is
/// `unknown` until a use case knows better (a sign-in knows its account).
fn changed_by(req: &Request, p: Option<&Principal>, ip: Option<String>) -> ChangedBy {
    let key_id = p.and_then(|p| p.scopes.as_ref()).and_then(|_| {
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let credential = header.strip_prefix("Bearer ")?;
        crate::domain::credentials::parse_api_key(credential).map(|(_, key, _)| key.to_string())
    });
    let actor = match (p, key_id) {
        (_, Some(k)) => Actor::api_key(k),
        (Some(p), None) => Actor::user(p.user_id.as_str()),
        (None, None) => Actor::unknown(),
    };
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
    let request_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    ChangedBy {
        actor,
        source_ip: ip,
        user_agent,
        request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emf::{Capture, dimension_sets, metric};
    use crate::http::KeyRing;
    use crate::testing::TestKeys;
    use crate::testing::accounts::MemoryAccounts;

    #[derive(Debug, Clone, Copy)]
    enum Route {
        Health,
        Boom,
    }

    struct Api(Pipeline);

    impl AsRef<Pipeline> for Api {
        fn as_ref(&self) -> &Pipeline {
            &self.0
        }
    }

    impl Routes for Route {
        type Api = Api;
        const TABLE: &'static [(&'static str, Self)] = &[
            ("GET /api/v3/health", Route::Health),
            ("GET /api/v3/boom", Route::Boom),
        ];

        fn access(self) -> Access {
            Access::Public
        }

        async fn dispatch(self, _api: &Api, _call: &Call<'_>) -> Reply {
            match self {
                Route::Health => Ok(Response::new(Body::from("ok"))),
                Route::Boom => Err(Problem::internal()),
            }
        }
    }

    fn api() -> Api {
        Api(Pipeline {
            gate: crate::http::Gate::open(),
            auth: Arc::new(crate::http::Authenticator {
                keys: KeyRing::fixed(TestKeys::generate("k1").verifier()),
                accounts: Arc::new(MemoryAccounts::new()),
            }),
            clock: Arc::new(crate::clock::SystemClock),
            audit: Arc::new(crate::testing::audit::RecordingInbox::default()),
        })
    }

    fn request(route_key: &str, path: &str) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"host": "api.example.com"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {
                    "method": "GET",
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "test"
                },
                "requestId": "id",
                "routeKey": route_key,
                "stage": "$default",
                "time": "01/Dec/2026:03:00:00 +0000",
                "timeEpoch": 1_764_558_000_000_i64
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[tokio::test]
    async fn every_request_emits_one_record_by_route_and_status_class() {
        let api = api();
        let capture = Capture::start();
        let ok = handle::<Route>(&api, request("GET /api/v3/health", "/api/v3/health")).await;
        let boom = handle::<Route>(&api, request("GET /api/v3/boom", "/api/v3/boom")).await;
        let lost =
            handle::<Route>(&api, request("GET /api/v3/other/{id}", "/api/v3/other/1")).await;
        assert_eq!(
            [ok.status(), boom.status(), lost.status()].map(|s| s.as_u16()),
            [200, 500, 404]
        );
        let records = capture.with_metric(metric::REQUESTS);
        assert_eq!(records.len(), 3);
        let seen: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r["Route"].as_str().unwrap(),
                    r["StatusClass"].as_str().unwrap(),
                    r["Requests"].as_i64().unwrap(),
                    r["ServerErrors"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("GET /api/v3/health", "2xx", 1, 0),
                ("GET /api/v3/boom", "5xx", 1, 1),
                // A route key outside the table is not a dimension value.
                ("unmatched", "4xx", 1, 0),
            ]
        );
        for r in &records {
            assert!(r["RequestLatency"].as_f64().unwrap() >= 0.0);
            assert!(r["Service"].is_string());
            assert_eq!(
                dimension_sets(r),
                [
                    vec!["Service"],
                    vec!["Service", "StatusClass"],
                    vec!["Service", "Route"]
                ]
            );
            assert_eq!(
                crate::emf::metric_names(r),
                [
                    metric::REQUESTS,
                    metric::REQUEST_LATENCY,
                    metric::SERVER_ERRORS
                ]
            );
        }
    }
}
