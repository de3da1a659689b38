//! `api-workflows`: the HTTP API for workflows and their nodes under `/api/v3/workflows`.
//!
//! [`handle`] is the whole Lambda handler: routing, authentication, the use case, and one
//! response (JSON or problem+json). It never panics on input and never answers 500 for bad
//! input. `main.rs` only wires AWS clients into [`Api`].

pub mod openapi;
mod routes;

use lambda_http::{Body, Request, Response};
use shared::domain::Principal;
use shared::http::limits::source_ip;
use shared::http::{Authenticator, Gate, Per, Problem};
use shared::ports::{AccountStore, Clock, WorkflowStore};
use std::sync::Arc;
use std::time::Instant;

/// What the handler needs from the world, built once per cold start.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<dyn WorkflowStore>,
    /// Accounts: who a workflow is shared with.
    pub accounts: Arc<dyn AccountStore>,
    pub auth: Arc<Authenticator>,
    /// IP lists and rate limits, before everything else.
    pub gate: Gate,
    pub clock: Arc<dyn Clock>,
}

/// The routes of this function; path parameters borrowed from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    OpenApi,
    Workflows,
    Bulk,
    Import,
    Workflow(&'a str),
    Status(&'a str),
    Statistics(&'a str),
    Export(&'a str),
    Nodes(&'a str),
    Node(&'a str, &'a str),
    Shares(&'a str),
    Share(&'a str, &'a str),
}

impl<'a> Route<'a> {
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        match path {
            "/health" => return Some(Route::Health),
            "/api/v3/openapi.json" => return Some(Route::OpenApi),
            _ => {}
        }
        let rest = path.strip_prefix("/api/v3/workflows")?;
        let segments: Vec<&str> = if rest.is_empty() {
            vec![]
        } else {
            rest.strip_prefix('/')?.split('/').collect()
        };
        Some(match segments.as_slice() {
            [] => Route::Workflows,
            ["bulk"] => Route::Bulk,
            ["import"] => Route::Import,
            [id] => Route::Workflow(id),
            [id, "status"] => Route::Status(id),
            [id, "statistics"] => Route::Statistics(id),
            [id, "export"] => Route::Export(id),
            [id, "nodes"] => Route::Nodes(id),
            [id, "nodes", node] => Route::Node(id, node),
            [id, "shares"] => Route::Shares(id),
            [id, "shares", user] => Route::Share(id, user),
            _ => return None,
        })
    }

    /// Methods this route answers.
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Route::Health | Route::OpenApi | Route::Statistics(_) | Route::Export(_) => &["GET"],
            Route::Bulk | Route::Import | Route::Status(_) => &["POST"],
            Route::Workflows | Route::Nodes(_) | Route::Shares(_) => &["GET", "POST"],
            Route::Share(..) => &["DELETE"],
            Route::Workflow(_) | Route::Node(..) => &["GET", "PATCH", "DELETE"],
        }
    }

    fn public(self) -> bool {
        matches!(self, Route::Health | Route::OpenApi)
    }
}

/// Handles one API Gateway (HTTP API, payload 2.0) request.
pub async fn handle(api: &Api, req: Request) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let response = match dispatch(api, &req).await {
        Ok(r) => r,
        Err(problem) => problem.into_response(),
    };
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn dispatch(api: &Api, req: &Request) -> Result<Response<Body>, Problem> {
    let ip = source_ip(req);
    api.gate.admit_ip(ip.as_deref())?;
    let route = Route::parse(req.uri().path()).ok_or_else(|| Problem::not_found("route"))?;
    let method = req.method().as_str();
    if !route.methods().contains(&method) {
        return Err(Problem::method_not_allowed(route.methods()));
    }
    if route.public() {
        return routes::public(route);
    }
    let path = req.uri().path();
    let now_ms = api.clock.now().timestamp_millis();
    if let Some(ip) = &ip {
        api.gate.limit(method, path, Per::Ip, ip, now_ms).await?;
    }
    let principal = authenticate(api, req).await?;
    api.gate
        .limit(method, path, Per::Principal, &principal.user_id, now_ms)
        .await?;
    routes::private(api, &principal, route, method, req).await
}

async fn authenticate(api: &Api, req: &Request) -> Result<Principal, Problem> {
    api.auth
        .authenticate(
            req.headers().get(http::header::AUTHORIZATION),
            api.clock.now(),
        )
        .await
        .map_err(Problem::from)
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn routes_parse() {
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert_eq!(Route::parse("/api/v3/workflows"), Some(Route::Workflows));
        assert_eq!(Route::parse("/api/v3/workflows/"), Some(Route::Workflows));
        assert_eq!(Route::parse("/api/v3/workflows/bulk"), Some(Route::Bulk));
        assert_eq!(
            Route::parse(&format!("/api/v3/workflows/{id}/nodes/x")),
            Some(Route::Node(id, "x"))
        );
        assert_eq!(Route::parse("/api/v3/workflowsX"), None);
        assert_eq!(Route::parse("/api/v3/workflows/a/b/c/d"), None);
        assert_eq!(Route::parse("/health"), Some(Route::Health));
    }
}
