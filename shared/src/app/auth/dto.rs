//! Request and response bodies of the identity API. Requests refuse unknown fields.

use crate::domain::account::{Account, AccountStatus, ApiKey, Session};
use crate::domain::{Role, Scope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// An address like name@example.com (at most 254 characters; the domain has a dot; no `#`
    /// or white space inside), stored trimmed and lower-cased.
    #[schema(max_length = 254)]
    pub email: String,
    /// At least 10 characters, at most 256 bytes, and hard to guess (zxcvbn score 3 of 4).
    #[schema(min_length = 10)]
    pub password: String,
    /// Letters, combining marks, digits, spaces and `.` `-` `'` `’` only, with at least one
    /// letter or digit (Unicode classes L, M and N; the pattern here is the wider shape that
    /// JSON Schema tools without Unicode classes can read).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: String,
}

/// The same for every address (new, pending or taken): what happened is told to the inbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisterResponse {
    pub email: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the email.
    pub token: String,
    /// The password chosen at registration: the link activates the account only with it.
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The 6-digit code of the authenticator app, when MFA is on.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// One of the recovery codes, instead of `totp_code`.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    /// ES256 JWT, valid for `expires_in` seconds.
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    /// Opaque; exchange it at `/refresh` for a new pair. Each one works once.
    pub refresh_token: String,
    pub session_id: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: String,
    pub device: String,
    pub ip: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whether the request came with this session's access token.
    pub current: bool,
}

impl SessionView {
    pub fn of(s: Session, current: Option<&str>) -> Self {
        SessionView {
            current: current == Some(s.session_id.as_str()),
            session_id: s.session_id,
            device: s.device,
            ip: s.ip,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionView>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    /// At least 10 characters, at most 256 bytes, and hard to guess (zxcvbn score 3 of 4).
    #[schema(min_length = 10)]
    pub new_password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestRequest {
    pub email: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    /// At least 10 characters, at most 256 bytes, and hard to guess (zxcvbn score 3 of 4).
    #[schema(min_length = 10)]
    pub new_password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpSetupRequest {
    /// The account's password.
    pub password: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32 secret, for apps that cannot read the URI.
    pub secret: String,
    /// `otpauth://totp/...`: show it as a QR code.
    pub otpauth_uri: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnableRequest {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, shown this once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableRequest {
    pub password: String,
    #[serde(default)]
    pub totp_code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// Subset of what the owner's role allows: `workflows:read`, `workflows:write`, `admin`.
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            key_id: k.key_id,
            name: k.name,
            scopes: k.scopes,
            created_at: k.created_at,
            expires_at: k.expires_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The secret, shown this once: send it as `Authorization: Bearer <api_key>`.
    pub api_key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: AccountStatus,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Account> for UserView {
    fn from(a: &Account) -> Self {
        UserView {
            user_id: a.user_id.clone(),
            email: a.email.clone(),
            display_name: a.display_name.clone(),
            role: a.role,
            status: a.status,
            mfa_enabled: a.mfa.enabled,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedKey {
    pub kid: String,
}
