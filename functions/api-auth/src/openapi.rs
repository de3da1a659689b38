//! The OpenAPI 3.1 document of the identity and admin API, generated from the Rust types and
//! route annotations, served at `/api/v3/auth/openapi.json`.

use crate::{notifications, routes};
use serde_json::Value;
use shared::http::openapi::{BearerAuth, finish};
use std::sync::OnceLock;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Document Workflow Chain identity API", version = "3.0.0", description = "Accounts, sessions, MFA, API keys, the admin API, and notification channels, preferences and the delivery log. Routes that need a caller take `Authorization: Bearer <access token or API key>`. Errors are RFC 9457 problem+json."),
    paths(
        routes::health, routes::openapi, routes::jwks,
        routes::register, routes::verify_email, routes::login, routes::refresh,
        routes::reset_request, routes::reset_password, routes::logout, routes::sessions,
        routes::end_session, routes::change_password, routes::totp_setup, routes::totp_enable,
        routes::totp_disable, routes::create_api_key, routes::list_api_keys, routes::delete_api_key,
        routes::me, routes::list_users, routes::get_user, routes::delete_user, routes::suspend_user,
        routes::reactivate_user, routes::set_role, routes::end_user_sessions, routes::reset_user_mfa,
        routes::rotate_signing_key,
        notifications::list, notifications::get, notifications::list_channels,
        notifications::create_channel, notifications::get_channel, notifications::update_channel,
        notifications::delete_channel, notifications::test_channel, notifications::verify_channel, notifications::preferences,
        notifications::set_preferences, notifications::send_notice, notifications::template,
        notifications::put_template, notifications::delete_template,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The document, built once per instance.
pub fn document_json() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
        finish(&mut doc);
        doc
    })
}
