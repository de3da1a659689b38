//! `api-auth`: the identity API under `/api/v3/auth`, the admin API under `/api/v3/admin`, and
//! users' notification settings and delivery log under `/api/v3/notifications`.
//!
//! The function is its routes ([`Route`]: the template's route keys, and a handler each, in
//! `routes`); the request pipeline
//! (gate, routing on the template's route key, limits, authentication where a route needs it,
//! problem+json) is [`shared::http::pipeline`]. `main.rs` only wires AWS clients into [`Api`].

mod notifications;
pub mod openapi;
mod routes;

use lambda_http::{Body, Request, Response};
use shared::app::auth::Identity;
use shared::http::pipeline::{self, Pipeline};
use shared::ports::{KeyVault, NotifyStore, SigningKeyStore};
use std::sync::Arc;

/// What the handler needs from the world, built once per cold start.
/// How long register, login and reset-request take at least (see `routes::at_least`): above
/// what sending an email takes, so the answers' timing does not tell which addresses have
/// accounts.
pub const ANSWER_FLOOR: std::time::Duration = std::time::Duration::from_millis(300);

#[derive(Clone)]
pub struct Api {
    pub identity: Arc<Identity>,
    pub keys: Arc<dyn SigningKeyStore>,
    /// [`ANSWER_FLOOR`] in a deployment.
    pub answer_floor: std::time::Duration,
    /// Gate, authenticator and clock.
    pub pipeline: Pipeline,
    /// Notification channels, preferences, the delivery log, templates and notices.
    pub notify: Arc<dyn NotifyStore>,
    /// Seals webhook signing secrets (its own KMS key, which only the notifier may open).
    pub notify_vault: Arc<dyn KeyVault>,
    /// Webhook URLs may be http or private (the local stack only).
    pub allow_private_targets: bool,
}

/// One variant per route of this function in `infra/sam-template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    OpenApi,
    Jwks,
    WellKnownJwks,
    Register,
    VerifyEmail,
    Login,
    Refresh,
    Logout,
    Sessions,
    EndSession,
    PasswordChange,
    ResetRequest,
    Reset,
    TotpSetup,
    TotpEnable,
    TotpDisable,
    CreateApiKey,
    ListApiKeys,
    DeleteApiKey,
    Me,
    Users,
    GetUser,
    DeleteUser,
    Suspend,
    Reactivate,
    UserRole,
    UserSessions,
    UserMfa,
    RotateSigningKey,
    Notifications,
    GetNotification,
    ListChannels,
    CreateChannel,
    GetChannel,
    UpdateChannel,
    DeleteChannel,
    TestChannel,
    VerifyChannel,
    GetPreferences,
    PutPreferences,
    SendNotice,
    GetTemplate,
    PutTemplate,
    DeleteTemplate,
}

impl AsRef<Pipeline> for Api {
    fn as_ref(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Handles one API Gateway (HTTP API, payload 2.0) request.
pub async fn handle(api: &Api, req: Request) -> Response<Body> {
    pipeline::handle::<Route>(api, req).await
}
