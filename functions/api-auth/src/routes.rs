//! One function per route and method: parse the request, call the use case, shape the
//! response. The `#[utoipa::path]` annotations generate the OpenAPI document from these.

use crate::notifications as n;
use crate::{Api, Route};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::app::AppError;
use shared::app::auth::Client;
use shared::app::auth::dto::*;
use shared::domain::account::AccountStatus;
use shared::domain::{Principal, Role};
use shared::http::pipeline::{Access, Call, Reply, Routes};
use shared::http::request::{self as rq, json_body};
use shared::http::response::{json, no_content, raw_json};
use shared::http::{Per, Problem, cursor};
use shared::ports::AccountFilter;
use std::time::Instant;

impl Routes for Route {
    type Api = Api;

    const TABLE: &'static [(&'static str, Route)] = &[
        ("GET /api/v3/auth/health", Route::Health),
        ("GET /api/v3/auth/openapi.json", Route::OpenApi),
        ("GET /.well-known/jwks.json", Route::WellKnownJwks),
        ("GET /api/v3/auth/.well-known/jwks.json", Route::Jwks),
        ("POST /api/v3/auth/register", Route::Register),
        ("POST /api/v3/auth/verify-email", Route::VerifyEmail),
        ("POST /api/v3/auth/login", Route::Login),
        ("POST /api/v3/auth/refresh", Route::Refresh),
        ("POST /api/v3/auth/logout", Route::Logout),
        ("GET /api/v3/auth/sessions", Route::Sessions),
        ("DELETE /api/v3/auth/sessions/{id}", Route::EndSession),
        ("POST /api/v3/auth/password/change", Route::PasswordChange),
        (
            "POST /api/v3/auth/password/reset-request",
            Route::ResetRequest,
        ),
        ("POST /api/v3/auth/password/reset", Route::Reset),
        ("POST /api/v3/auth/mfa/totp/setup", Route::TotpSetup),
        ("POST /api/v3/auth/mfa/totp/enable", Route::TotpEnable),
        ("POST /api/v3/auth/mfa/totp/disable", Route::TotpDisable),
        ("POST /api/v3/auth/api-keys", Route::CreateApiKey),
        ("GET /api/v3/auth/api-keys", Route::ListApiKeys),
        ("DELETE /api/v3/auth/api-keys/{id}", Route::DeleteApiKey),
        ("GET /api/v3/auth/me", Route::Me),
        ("GET /api/v3/admin/users", Route::Users),
        ("GET /api/v3/admin/users/{id}", Route::GetUser),
        ("DELETE /api/v3/admin/users/{id}", Route::DeleteUser),
        ("POST /api/v3/admin/users/{id}/suspend", Route::Suspend),
        (
            "POST /api/v3/admin/users/{id}/reactivate",
            Route::Reactivate,
        ),
        ("PUT /api/v3/admin/users/{id}/role", Route::UserRole),
        (
            "DELETE /api/v3/admin/users/{id}/sessions",
            Route::UserSessions,
        ),
        ("DELETE /api/v3/admin/users/{id}/mfa", Route::UserMfa),
        (
            "POST /api/v3/admin/signing-keys/rotate",
            Route::RotateSigningKey,
        ),
        ("GET /api/v3/notifications", Route::Notifications),
        ("GET /api/v3/notifications/{id}", Route::GetNotification),
        ("GET /api/v3/notifications/channels", Route::ListChannels),
        ("POST /api/v3/notifications/channels", Route::CreateChannel),
        ("GET /api/v3/notifications/channels/{id}", Route::GetChannel),
        (
            "PATCH /api/v3/notifications/channels/{id}",
            Route::UpdateChannel,
        ),
        (
            "DELETE /api/v3/notifications/channels/{id}",
            Route::DeleteChannel,
        ),
        (
            "POST /api/v3/notifications/channels/{id}/test",
            Route::TestChannel,
        ),
        (
            "POST /api/v3/notifications/channels/{id}/verify",
            Route::VerifyChannel,
        ),
        (
            "GET /api/v3/notifications/preferences",
            Route::GetPreferences,
        ),
        (
            "PUT /api/v3/notifications/preferences",
            Route::PutPreferences,
        ),
        ("POST /api/v3/notifications/notices", Route::SendNotice),
        (
            "GET /api/v3/notifications/templates/{event}/{format}",
            Route::GetTemplate,
        ),
        (
            "PUT /api/v3/notifications/templates/{event}/{format}",
            Route::PutTemplate,
        ),
        (
            "DELETE /api/v3/notifications/templates/{event}/{format}",
            Route::DeleteTemplate,
        ),
    ];

    fn access(self) -> Access {
        use Route::*;
        match self {
            Health | OpenApi | Jwks | WellKnownJwks | Register | VerifyEmail | Login | Refresh
            | ResetRequest | Reset => Access::Public,
            Logout | Sessions | EndSession | PasswordChange | TotpSetup | TotpEnable
            | TotpDisable | CreateApiKey | ListApiKeys | DeleteApiKey | Me | Users | GetUser
            | DeleteUser | Suspend | Reactivate | UserRole | UserSessions | UserMfa
            | RotateSigningKey | Notifications | GetNotification | ListChannels | CreateChannel
            | GetChannel | UpdateChannel | DeleteChannel | TestChannel | VerifyChannel
            | GetPreferences | PutPreferences | SendNotice | GetTemplate | PutTemplate
            | DeleteTemplate => Access::Authenticated,
        }
    }

    /// Everything but the public documents: the identity API answers with tokens, keys,
    /// secrets and account data.
    fn no_store(self) -> bool {
        !matches!(
            self,
            Route::Health | Route::OpenApi | Route::Jwks | Route::WellKnownJwks
        )
    }

    /// Calls the handler of the route: one arm per template route, no catch-all.
    async fn dispatch(self, api: &Api, call: &Call<'_>) -> Reply {
        use Route::*;
        let req = call.req;
        let p = || call.principal();
        match self {
            Health => Ok(health()),
            OpenApi => Ok(openapi()),
            Jwks | WellKnownJwks => jwks(api).await,
            Register => register(api, call).await,
            VerifyEmail => verify_email(api, call).await,
            Login => login(api, call).await,
            Refresh => refresh(api, call).await,
            ResetRequest => reset_request(api, call).await,
            Reset => reset_password(api, call).await,
            Logout => logout(api, p()?).await,
            Sessions => sessions(api, p()?).await,
            EndSession => end_session(api, p()?, &call.id("id")?).await,
            PasswordChange => change_password(api, p()?, req).await,
            TotpSetup => totp_setup(api, p()?, req).await,
            TotpEnable => totp_enable(api, p()?, req).await,
            TotpDisable => totp_disable(api, p()?, req).await,
            CreateApiKey => create_api_key(api, p()?, req).await,
            ListApiKeys => list_api_keys(api, p()?).await,
            DeleteApiKey => delete_api_key(api, p()?, &call.id("id")?).await,
            Me => me(api, p()?).await,
            Users => list_users(api, p()?, req).await,
            GetUser => get_user(api, p()?, &call.id("id")?).await,
            DeleteUser => delete_user(api, p()?, &call.id("id")?).await,
            Suspend => suspend_user(api, p()?, &call.id("id")?).await,
            Reactivate => reactivate_user(api, p()?, &call.id("id")?).await,
            UserRole => set_role(api, p()?, &call.id("id")?, req).await,
            UserSessions => end_user_sessions(api, p()?, &call.id("id")?).await,
            UserMfa => reset_user_mfa(api, p()?, &call.id("id")?).await,
            RotateSigningKey => rotate_signing_key(api, p()?).await,
            Notifications => n::list(api, p()?, req).await,
            GetNotification => n::get(api, p()?, &call.id("id")?).await,
            ListChannels => n::list_channels(api, p()?).await,
            CreateChannel => n::create_channel(api, call).await,
            GetChannel => n::get_channel(api, p()?, &call.id("id")?).await,
            UpdateChannel => n::update_channel(api, call).await,
            DeleteChannel => n::delete_channel(api, p()?, &call.id("id")?).await,
            TestChannel => n::test_channel(api, call).await,
            VerifyChannel => n::verify_channel(api, call).await,
            GetPreferences => n::preferences(api, p()?).await,
            PutPreferences => n::set_preferences(api, p()?, req).await,
            SendNotice => n::send_notice(api, call).await,
            GetTemplate => n::template(api, p()?, req).await,
            PutTemplate => n::put_template(api, call).await,
            DeleteTemplate => n::delete_template(api, p()?, req).await,
        }
    }
}

/// Counts a sign-in flow's request against the per-account limits of its route.
async fn limit_account(api: &Api, call: &Call<'_>, email: &str) -> Result<(), Problem> {
    let key = email.trim().to_lowercase();
    api.pipeline
        .gate
        .limit(call.method, call.path, Per::Account, &key, call.now_ms())
        .await
}

/// Waits until `api.answer_floor` has passed since `started`. Register, login and reset-request
/// send email for some addresses and not for others (a link, a notice, a lock warning); each
/// answers no sooner than the floor, so how long an answer takes does not tell whether an
/// address has an account.
async fn at_least(api: &Api, started: Instant) {
    tokio::time::sleep_until((started + api.answer_floor).into()).await;
}

/// Where a sign-in comes from, as recorded on its session.
fn client(call: &Call<'_>) -> Client {
    Client {
        ip: call.ip.clone().unwrap_or_default(),
        device: call.user_agent().to_string(),
    }
}

fn ok<T: serde::Serialize>(value: &T) -> Reply {
    Ok(json(StatusCode::OK, value))
}

/// Liveness: no authentication, no AWS call.
#[utoipa::path(get, path = "/api/v3/auth/health", tag = "operations", security(()),
    responses((status = 200, description = "The function is up", body = Object)))]
pub fn health() -> Response<Body> {
    json(
        StatusCode::OK,
        &serde_json::json!({"status": "ok", "service": "api-auth"}),
    )
}

/// This document.
#[utoipa::path(get, path = "/api/v3/auth/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub fn openapi() -> Response<Body> {
    raw_json(StatusCode::OK, crate::openapi::document_json().to_string())
}

/// The public keys that verify access tokens (also at `/.well-known/jwks.json`).
#[utoipa::path(get, path = "/api/v3/auth/.well-known/jwks.json", tag = "tokens", security(()),
    responses((status = 200, description = "JWKS", body = Object)))]
pub async fn jwks(api: &Api) -> Reply {
    let keys: Vec<_> = api
        .keys
        .signing_keys(api.identity.clock.now())
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

/// Register: the same answer for every address; an email to it says how to go on (a link that
/// activates the account with this password, or a notice that the address has an account).
#[utoipa::path(post, path = "/api/v3/auth/register", tag = "accounts", security(()), request_body = RegisterRequest,
    responses((status = 202, body = RegisterResponse), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn register(api: &Api, call: &Call<'_>) -> Reply {
    let body: RegisterRequest = json_body(call.req)?;
    limit_account(api, call, &body.email).await?;
    let started = Instant::now();
    let answer = api.identity.register(body).await;
    at_least(api, started).await;
    Ok(json(StatusCode::ACCEPTED, &answer?))
}

/// Activate an account with the token from its verification email and the password chosen
/// at registration.
#[utoipa::path(post, path = "/api/v3/auth/verify-email", tag = "accounts", security(()), request_body = VerifyEmailRequest,
    responses((status = 200, body = UserView), (status = 422, body = Problem)))]
pub async fn verify_email(api: &Api, call: &Call<'_>) -> Reply {
    ok(&api.identity.verify_email(json_body(call.req)?).await?)
}

/// Log in: an access token (ES256 JWT, 15 min) and a refresh token (30 days).
#[utoipa::path(post, path = "/api/v3/auth/login", tag = "tokens", security(()), request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem)))]
pub async fn login(api: &Api, call: &Call<'_>) -> Reply {
    let body: LoginRequest = json_body(call.req)?;
    limit_account(api, call, &body.email).await?;
    let started = Instant::now();
    let answer = api.identity.login(body, &client(call)).await;
    at_least(api, started).await;
    ok(&answer?)
}

/// Exchange a refresh token for a new pair; a reused one ends its session.
#[utoipa::path(post, path = "/api/v3/auth/refresh", tag = "tokens", security(()), request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = Problem)))]
pub async fn refresh(api: &Api, call: &Call<'_>) -> Reply {
    ok(&api.identity.refresh(json_body(call.req)?).await?)
}

/// Ask for a password reset email; the answer is the same whether or not the email exists.
#[utoipa::path(post, path = "/api/v3/auth/password/reset-request", tag = "passwords", security(()), request_body = ResetRequestRequest,
    responses((status = 202, body = Object), (status = 429, body = Problem)))]
pub async fn reset_request(api: &Api, call: &Call<'_>) -> Reply {
    let body: ResetRequestRequest = json_body(call.req)?;
    limit_account(api, call, &body.email).await?;
    let started = Instant::now();
    let answer = api.identity.request_reset(body).await;
    at_least(api, started).await;
    answer?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({"message": "if the email has an account, a reset link is on its way"}),
    ))
}

/// Set a new password with the emailed token; ends every session, token and API key.
#[utoipa::path(post, path = "/api/v3/auth/password/reset", tag = "passwords", security(()), request_body = ResetRequest,
    responses((status = 204), (status = 422, body = Problem)))]
pub async fn reset_password(api: &Api, call: &Call<'_>) -> Reply {
    api.identity.reset_password(json_body(call.req)?).await?;
    Ok(no_content())
}

/// End the caller's session.
#[utoipa::path(post, path = "/api/v3/auth/logout", tag = "sessions", responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(api: &Api, p: &Principal) -> Reply {
    api.identity.logout(p).await?;
    Ok(no_content())
}

/// The caller's sessions.
#[utoipa::path(get, path = "/api/v3/auth/sessions", tag = "sessions", responses((status = 200, body = SessionList)))]
pub async fn sessions(api: &Api, p: &Principal) -> Reply {
    ok(&api.identity.sessions(p).await?)
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v3/auth/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn end_session(api: &Api, p: &Principal, id: &str) -> Reply {
    api.identity.end_session(p, id).await?;
    Ok(no_content())
}

/// Change the password; ends every session, token and API key.
#[utoipa::path(post, path = "/api/v3/auth/password/change", tag = "passwords", request_body = PasswordChangeRequest,
    responses((status = 204), (status = 422, body = Problem)))]
pub async fn change_password(api: &Api, p: &Principal, req: &Request) -> Reply {
    api.identity.change_password(p, json_body(req)?).await?;
    Ok(no_content())
}

/// Start TOTP setup: a secret and its `otpauth://` URI.
#[utoipa::path(post, path = "/api/v3/auth/mfa/totp/setup", tag = "mfa", request_body = TotpSetupRequest,
    responses((status = 200, body = TotpSetupResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn totp_setup(api: &Api, p: &Principal, req: &Request) -> Reply {
    ok(&api.identity.totp_setup(p, json_body(req)?).await?)
}

/// Turn TOTP on with a first code: ten recovery codes, shown once.
#[utoipa::path(post, path = "/api/v3/auth/mfa/totp/enable", tag = "mfa", request_body = TotpEnableRequest,
    responses((status = 200, body = RecoveryCodes), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn totp_enable(api: &Api, p: &Principal, req: &Request) -> Reply {
    ok(&api.identity.totp_enable(p, json_body(req)?).await?)
}

/// Turn TOTP off (password and a code).
#[utoipa::path(post, path = "/api/v3/auth/mfa/totp/disable", tag = "mfa", request_body = TotpDisableRequest,
    responses((status = 204), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn totp_disable(api: &Api, p: &Principal, req: &Request) -> Reply {
    api.identity.totp_disable(p, json_body(req)?).await?;
    Ok(no_content())
}

/// Create an API key; the secret is shown once.
#[utoipa::path(post, path = "/api/v3/auth/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_api_key(api: &Api, p: &Principal, req: &Request) -> Reply {
    Ok(json(
        StatusCode::CREATED,
        &api.identity.create_api_key(p, json_body(req)?).await?,
    ))
}

/// The caller's API keys (never their secrets).
#[utoipa::path(get, path = "/api/v3/auth/api-keys", tag = "api-keys", responses((status = 200, body = ApiKeyList)))]
pub async fn list_api_keys(api: &Api, p: &Principal) -> Reply {
    ok(&api.identity.api_keys(p).await?)
}

/// Delete one of the caller's API keys.
#[utoipa::path(delete, path = "/api/v3/auth/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_api_key(api: &Api, p: &Principal, id: &str) -> Reply {
    api.identity.delete_api_key(p, id).await?;
    Ok(no_content())
}

/// The caller's profile, role and MFA state.
#[utoipa::path(get, path = "/api/v3/auth/me", tag = "accounts", responses((status = 200, body = UserView), (status = 401, body = Problem)))]
pub async fn me(api: &Api, p: &Principal) -> Reply {
    ok(&api.identity.me(p).await?)
}

#[derive(Deserialize)]
struct UserQuery {
    q: Option<String>,
    status: Option<AccountStatus>,
    role: Option<Role>,
}

/// Admins: list and search users.
#[utoipa::path(get, path = "/api/v3/admin/users", tag = "admin",
    params(
        ("q" = Option<String>, Query, description = "Email prefix"),
        ("status" = Option<AccountStatus>, Query),
        ("role" = Option<Role>, Query),
        ("limit" = Option<u32>, Query, description = "1..=100, default 20"),
        ("cursor" = Option<String>, Query),
    ),
    responses((status = 200, body = UserList), (status = 403, body = Problem)))]
pub async fn list_users(api: &Api, p: &Principal, req: &Request) -> Reply {
    let q = rq::query(req, &["q", "status", "role", "limit", "cursor"])?;
    let filter: UserQuery = serde_json::from_value(serde_json::json!(q))
        .map_err(|e| Problem::bad_parameter("query", e.to_string()))?;
    let limit = rq::limit(&q, 20, 100)?;
    let after = rq::cursor(&q)?;
    let filter = AccountFilter {
        email_prefix: filter.q.map(|s| s.trim().to_lowercase()),
        status: filter.status,
        role: filter.role,
    };
    let page = api
        .identity
        .admin_list_users(p, filter, limit, after)
        .await?;
    ok(&UserList {
        items: page.items.iter().map(UserView::from).collect(),
        next_cursor: page.next.as_ref().map(cursor::encode),
    })
}

/// Admins: one user.
#[utoipa::path(get, path = "/api/v3/admin/users/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = Problem)))]
pub async fn get_user(api: &Api, p: &Principal, id: &str) -> Reply {
    ok(&api.identity.admin_get_user(p, id).await?)
}

/// Admins: delete a user with their sessions and keys.
#[utoipa::path(delete, path = "/api/v3/admin/users/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_user(api: &Api, p: &Principal, id: &str) -> Reply {
    api.identity.admin_delete_user(p, id).await?;
    Ok(no_content())
}

/// Admins: suspend a user; their tokens and keys stop working at once.
#[utoipa::path(post, path = "/api/v3/admin/users/{id}/suspend", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 409, body = Problem)))]
pub async fn suspend_user(api: &Api, p: &Principal, id: &str) -> Reply {
    ok(&api.identity.admin_set_status(p, id, true).await?)
}

/// Admins: reactivate a suspended user.
#[utoipa::path(post, path = "/api/v3/admin/users/{id}/reactivate", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 409, body = Problem)))]
pub async fn reactivate_user(api: &Api, p: &Principal, id: &str) -> Reply {
    ok(&api.identity.admin_set_status(p, id, false).await?)
}

/// Admins: change a user's role.
#[utoipa::path(put, path = "/api/v3/admin/users/{id}/role", tag = "admin", params(("id" = String, Path)), request_body = SetRoleRequest,
    responses((status = 200, body = UserView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_role(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    ok(&api.identity.admin_set_role(p, id, json_body(req)?).await?)
}

/// Admins: end all of a user's sessions, tokens and API keys.
#[utoipa::path(delete, path = "/api/v3/admin/users/{id}/sessions", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn end_user_sessions(api: &Api, p: &Principal, id: &str) -> Reply {
    api.identity.admin_end_sessions(p, id).await?;
    Ok(no_content())
}

/// Admins: turn a user's MFA off.
#[utoipa::path(delete, path = "/api/v3/admin/users/{id}/mfa", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = Problem)))]
pub async fn reset_user_mfa(api: &Api, p: &Principal, id: &str) -> Reply {
    ok(&api.identity.admin_reset_mfa(p, id).await?)
}

/// Admins: rotate the signing key.
#[utoipa::path(post, path = "/api/v3/admin/signing-keys/rotate", tag = "admin", responses((status = 200, body = RotatedKey), (status = 403, body = Problem)))]
pub async fn rotate_signing_key(api: &Api, p: &Principal) -> Reply {
    ok(&api.identity.admin_rotate_signing_key(p).await?)
}
