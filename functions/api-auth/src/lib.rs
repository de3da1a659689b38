//! `api-auth`: the identity API under `/api/v3/auth` and the admin API under `/api/v3/admin`.
//!
//! [`handle`] is the whole Lambda handler: the gate (IP lists, rate limits), routing,
//! authentication where a route needs it, the use case, and one response (JSON or
//! problem+json). `main.rs` only wires AWS clients into [`Api`].

pub mod openapi;
mod routes;

use lambda_http::{Body, Request, Response};
use shared::app::auth::{Client, Identity};
use shared::domain::Principal;
use shared::http::limits::source_ip;
use shared::http::request as rq;
use shared::http::{Authenticator, Gate, Per, Problem};
use shared::ports::SigningKeyStore;
use std::sync::Arc;
use std::time::Instant;

/// What the handler needs from the world, built once per cold start.
#[derive(Clone)]
pub struct Api {
    pub identity: Arc<Identity>,
    pub auth: Arc<Authenticator>,
    pub keys: Arc<dyn SigningKeyStore>,
    pub gate: Gate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    OpenApi,
    Jwks,
    Register,
    VerifyEmail,
    Login,
    Refresh,
    Logout,
    Sessions,
    Session(&'a str),
    PasswordChange,
    ResetRequest,
    Reset,
    TotpSetup,
    TotpEnable,
    TotpDisable,
    ApiKeys,
    ApiKey(&'a str),
    Me,
    Users,
    User(&'a str),
    Suspend(&'a str),
    Reactivate(&'a str),
    UserRole(&'a str),
    UserSessions(&'a str),
    UserMfa(&'a str),
    RotateSigningKey,
}

impl<'a> Route<'a> {
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        if path == "/health" || path == "/api/v3/auth/health" {
            return Some(Route::Health);
        }
        if path == "/api/v3/auth/openapi.json" {
            return Some(Route::OpenApi);
        }
        if path == "/.well-known/jwks.json" {
            return Some(Route::Jwks);
        }
        if let Some(rest) = path.strip_prefix("/api/v3/admin/") {
            let segments: Vec<&str> = rest.split('/').collect();
            return Some(match segments.as_slice() {
                ["users"] => Route::Users,
                ["users", id] => Route::User(id),
                ["users", id, "suspend"] => Route::Suspend(id),
                ["users", id, "reactivate"] => Route::Reactivate(id),
                ["users", id, "role"] => Route::UserRole(id),
                ["users", id, "sessions"] => Route::UserSessions(id),
                ["users", id, "mfa"] => Route::UserMfa(id),
                ["signing-keys", "rotate"] => Route::RotateSigningKey,
                _ => return None,
            });
        }
        let rest = path.strip_prefix("/api/v3/auth/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        Some(match segments.as_slice() {
            [".well-known", "jwks.json"] => Route::Jwks,
            ["register"] => Route::Register,
            ["verify-email"] => Route::VerifyEmail,
            ["login"] => Route::Login,
            ["refresh"] => Route::Refresh,
            ["logout"] => Route::Logout,
            ["sessions"] => Route::Sessions,
            ["sessions", id] => Route::Session(id),
            ["password", "change"] => Route::PasswordChange,
            ["password", "reset-request"] => Route::ResetRequest,
            ["password", "reset"] => Route::Reset,
            ["mfa", "totp", "setup"] => Route::TotpSetup,
            ["mfa", "totp", "enable"] => Route::TotpEnable,
            ["mfa", "totp", "disable"] => Route::TotpDisable,
            ["api-keys"] => Route::ApiKeys,
            ["api-keys", id] => Route::ApiKey(id),
            ["me"] => Route::Me,
            _ => return None,
        })
    }

    pub fn methods(self) -> &'static [&'static str] {
        use Route::*;
        match self {
            Health | OpenApi | Jwks | Sessions | Me | Users => &["GET"],
            ApiKeys => &["GET", "POST"],
            Session(_) | ApiKey(_) | UserSessions(_) | UserMfa(_) => &["DELETE"],
            User(_) => &["GET", "DELETE"],
            UserRole(_) => &["PUT"],
            _ => &["POST"],
        }
    }

    /// Routes that need no authentication.
    fn public(self) -> bool {
        use Route::*;
        matches!(
            self,
            Health
                | OpenApi
                | Jwks
                | Register
                | VerifyEmail
                | Login
                | Refresh
                | ResetRequest
                | Reset
        )
    }
}

type Reply = Result<Response<Body>, Problem>;

/// Handles one API Gateway (HTTP API, payload 2.0) request.
pub async fn handle(api: &Api, req: Request) -> Response<Body> {
    let started = Instant::now();
    let response = dispatch(api, &req)
        .await
        .unwrap_or_else(Problem::into_response);
    tracing::info!(
        method = %req.method(),
        path = %req.uri().path(),
        status = response.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn dispatch(api: &Api, req: &Request) -> Reply {
    let ip = source_ip(req);
    api.gate.admit_ip(ip.as_deref())?;
    let route = Route::parse(req.uri().path()).ok_or_else(|| Problem::not_found("route"))?;
    let method = req.method().as_str();
    if !route.methods().contains(&method) {
        return Err(Problem::method_not_allowed(route.methods()));
    }
    let path = req.uri().path();
    let now_ms = api.identity.clock.now().timestamp_millis();
    if let Some(ip) = &ip {
        api.gate.limit(method, path, Per::Ip, ip, now_ms).await?;
    }
    let client = Client {
        ip: ip.unwrap_or_default(),
        device: req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    if route.public() {
        let call = routes::Call {
            req,
            client: &client,
            method,
            path,
            now_ms,
        };
        return public(api, route, &call).await;
    }
    let p = api
        .auth
        .authenticate(
            req.headers().get(http::header::AUTHORIZATION),
            api.identity.clock.now(),
        )
        .await
        .map_err(Problem::from)?;
    api.gate
        .limit(method, path, Per::Principal, &p.user_id, now_ms)
        .await?;
    private(api, &p, route, method, req).await
}

async fn public(api: &Api, route: Route<'_>, call: &routes::Call<'_>) -> Reply {
    use routes as r;
    match route {
        Route::Health => Ok(r::health()),
        Route::OpenApi => Ok(r::openapi()),
        Route::Jwks => r::jwks(api).await,
        Route::Register => r::register(api, call).await,
        Route::VerifyEmail => r::verify_email(api, call).await,
        Route::Login => r::login(api, call).await,
        Route::Refresh => r::refresh(api, call).await,
        Route::ResetRequest => r::reset_request(api, call).await,
        Route::Reset => r::reset_password(api, call).await,
        _ => Err(Problem::not_found("route")),
    }
}

async fn private(api: &Api, p: &Principal, route: Route<'_>, method: &str, req: &Request) -> Reply {
    use routes as r;
    match (route, method) {
        (Route::Logout, _) => r::logout(api, p).await,
        (Route::Sessions, _) => r::sessions(api, p).await,
        (Route::Session(sid), _) => r::end_session(api, p, rq::id("id", sid)?).await,
        (Route::PasswordChange, _) => r::change_password(api, p, req).await,
        (Route::TotpSetup, _) => r::totp_setup(api, p, req).await,
        (Route::TotpEnable, _) => r::totp_enable(api, p, req).await,
        (Route::TotpDisable, _) => r::totp_disable(api, p, req).await,
        (Route::ApiKeys, "POST") => r::create_api_key(api, p, req).await,
        (Route::ApiKeys, _) => r::list_api_keys(api, p).await,
        (Route::ApiKey(key), _) => r::delete_api_key(api, p, rq::id("id", key)?).await,
        (Route::Me, _) => r::me(api, p).await,
        (Route::Users, _) => r::list_users(api, p, req).await,
        (Route::User(uid), "GET") => r::get_user(api, p, rq::id("id", uid)?).await,
        (Route::User(uid), _) => r::delete_user(api, p, rq::id("id", uid)?).await,
        (Route::Suspend(uid), _) => r::suspend_user(api, p, rq::id("id", uid)?).await,
        (Route::Reactivate(uid), _) => r::reactivate_user(api, p, rq::id("id", uid)?).await,
        (Route::UserRole(uid), _) => r::set_role(api, p, rq::id("id", uid)?, req).await,
        (Route::UserSessions(uid), _) => r::end_user_sessions(api, p, rq::id("id", uid)?).await,
        (Route::UserMfa(uid), _) => r::reset_user_mfa(api, p, rq::id("id", uid)?).await,
        (Route::RotateSigningKey, _) => r::rotate_signing_key(api, p).await,
        _ => Err(Problem::not_found("route")),
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn routes_parse() {
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert_eq!(Route::parse("/api/v3/auth/login"), Some(Route::Login));
        assert_eq!(
            Route::parse("/api/v3/auth/mfa/totp/setup/"),
            Some(Route::TotpSetup)
        );
        assert_eq!(
            Route::parse(&format!("/api/v3/auth/sessions/{id}")),
            Some(Route::Session(id))
        );
        assert_eq!(
            Route::parse("/api/v3/auth/.well-known/jwks.json"),
            Some(Route::Jwks)
        );
        assert_eq!(Route::parse("/.well-known/jwks.json"), Some(Route::Jwks));
        assert_eq!(
            Route::parse(&format!("/api/v3/admin/users/{id}/role")),
            Some(Route::UserRole(id))
        );
        assert_eq!(Route::parse("/api/v3/auth/nope"), None);
        assert_eq!(Route::parse("/api/v3/admin/users/a/b/c"), None);
    }
}
