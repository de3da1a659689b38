//! `api-auth`: the identity API under `/api/v3/auth` and the admin API under `/api/v3/admin`.
//!
//! [`handle`] is the whole Lambda handler: the gate (IP lists, rate limits), routing,
//! authentication where a route needs it, the use case, and one response (JSON or
//! problem+json). `main.rs` only wires AWS clients into [`Api`].

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::app::AppError;
use shared::app::auth::dto::*;
use shared::app::auth::{Client, Identity};
use shared::domain::account::AccountStatus;
use shared::domain::{Principal, Role};
use shared::http::limits::source_ip;
use shared::http::request::{self as rq, json_body};
use shared::http::response::{json, no_content};
use shared::http::{Authenticator, Gate, Per, Problem, cursor};
use shared::ports::{AccountFilter, SigningKeyStore};
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
            Health | Jwks | Sessions | Me | Users => &["GET"],
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
            Health | Jwks | Register | VerifyEmail | Login | Refresh | ResetRequest | Reset
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
        return public(api, route, method, path, req, &client, now_ms).await;
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

/// Counts a request against the per-account limits of its route (login, register, reset).
async fn limit_account(
    api: &Api,
    method: &str,
    path: &str,
    email: &str,
    now_ms: i64,
) -> Result<(), Problem> {
    let key = email.trim().to_lowercase();
    api.gate
        .limit(method, path, Per::Account, &key, now_ms)
        .await
}

fn ok<T: serde::Serialize>(value: &T) -> Reply {
    Ok(json(StatusCode::OK, value))
}

async fn public(
    api: &Api,
    route: Route<'_>,
    method: &str,
    path: &str,
    req: &Request,
    client: &Client,
    now_ms: i64,
) -> Reply {
    let id = api.identity.as_ref();
    match route {
        Route::Health => ok(&serde_json::json!({"status": "ok", "service": "api-auth"})),
        Route::Jwks => {
            let keys: Vec<_> = api
                .keys
                .signing_keys(id.clock.now())
                .await
                .map_err(AppError::from)?
                .into_iter()
                .map(|k| k.public)
                .collect();
            let mut r = json(StatusCode::OK, &shared::http::auth::jwks(&keys));
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, max-age=300"),
            );
            Ok(r)
        }
        Route::Register => {
            let body: RegisterRequest = json_body(req)?;
            limit_account(api, method, path, &body.email, now_ms).await?;
            Ok(json(StatusCode::CREATED, &id.register(body).await?))
        }
        Route::VerifyEmail => ok(&id.verify_email(json_body(req)?).await?),
        Route::Login => {
            let body: LoginRequest = json_body(req)?;
            limit_account(api, method, path, &body.email, now_ms).await?;
            ok(&id.login(body, client).await?)
        }
        Route::Refresh => ok(&id.refresh(json_body(req)?).await?),
        Route::ResetRequest => {
            let body: ResetRequestRequest = json_body(req)?;
            limit_account(api, method, path, &body.email, now_ms).await?;
            id.request_reset(body).await?;
            Ok(json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"message": "if the email has an account, a reset link is on its way"}),
            ))
        }
        Route::Reset => {
            id.reset_password(json_body(req)?).await?;
            Ok(no_content())
        }
        _ => Err(Problem::not_found("route")),
    }
}

#[derive(Deserialize)]
struct UserQuery {
    q: Option<String>,
    status: Option<AccountStatus>,
    role: Option<Role>,
}

async fn private(api: &Api, p: &Principal, route: Route<'_>, method: &str, req: &Request) -> Reply {
    let id = api.identity.as_ref();
    match (route, method) {
        (Route::Logout, _) => {
            id.logout(p).await?;
            Ok(no_content())
        }
        (Route::Sessions, _) => ok(&id.sessions(p).await?),
        (Route::Session(sid), _) => {
            id.end_session(p, rq::id("session_id", sid)?).await?;
            Ok(no_content())
        }
        (Route::PasswordChange, _) => {
            id.change_password(p, json_body(req)?).await?;
            Ok(no_content())
        }
        (Route::TotpSetup, _) => ok(&id.totp_setup(p, json_body(req)?).await?),
        (Route::TotpEnable, _) => ok(&id.totp_enable(p, json_body(req)?).await?),
        (Route::TotpDisable, _) => {
            id.totp_disable(p, json_body(req)?).await?;
            Ok(no_content())
        }
        (Route::ApiKeys, "POST") => Ok(json(
            StatusCode::CREATED,
            &id.create_api_key(p, json_body(req)?).await?,
        )),
        (Route::ApiKeys, _) => ok(&id.api_keys(p).await?),
        (Route::ApiKey(key), _) => {
            id.delete_api_key(p, rq::id("key_id", key)?).await?;
            Ok(no_content())
        }
        (Route::Me, _) => ok(&id.me(p).await?),
        (Route::Users, _) => {
            let q = rq::query(req, &["q", "status", "role", "limit", "cursor"])?;
            let filter: UserQuery = serde_json::from_value(serde_json::json!(q))
                .map_err(|e| Problem::bad_parameter("query", e.to_string()))?;
            let limit = rq::limit(&q, 20, 100)?;
            let after = rq::cursor(&q)?;
            let page = id
                .admin_list_users(
                    p,
                    AccountFilter {
                        email_prefix: filter.q.map(|s| s.trim().to_lowercase()),
                        status: filter.status,
                        role: filter.role,
                    },
                    limit,
                    after,
                )
                .await?;
            ok(&UserList {
                items: page.items.iter().map(UserView::from).collect(),
                next_cursor: page.next.as_ref().map(cursor::encode),
            })
        }
        (Route::User(uid), "GET") => ok(&id.admin_get_user(p, rq::id("user_id", uid)?).await?),
        (Route::User(uid), _) => {
            id.admin_delete_user(p, rq::id("user_id", uid)?).await?;
            Ok(no_content())
        }
        (Route::Suspend(uid), _) => ok(&id
            .admin_set_status(p, rq::id("user_id", uid)?, true)
            .await?),
        (Route::Reactivate(uid), _) => ok(&id
            .admin_set_status(p, rq::id("user_id", uid)?, false)
            .await?),
        (Route::UserRole(uid), _) => ok(&id
            .admin_set_role(p, rq::id("user_id", uid)?, json_body(req)?)
            .await?),
        (Route::UserSessions(uid), _) => {
            id.admin_end_sessions(p, rq::id("user_id", uid)?).await?;
            Ok(no_content())
        }
        (Route::UserMfa(uid), _) => ok(&id.admin_reset_mfa(p, rq::id("user_id", uid)?).await?),
        (Route::RotateSigningKey, _) => ok(&id.admin_rotate_signing_key(p).await?),
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
