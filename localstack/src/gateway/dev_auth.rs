//! Access tokens for local use. Until the identity service issues them, the gateway makes a
//! throw-away ES256 key pair at start, gives its public key to the functions through the
//! template's `JwtPublicKeys` parameter, and mints tokens with the template's issuer and
//! audience. Nothing of it outlives the gateway.

use crate::template::Template;
use serde_json::json;
use shared::testing::TestKeys;
use std::collections::HashMap;

pub const PUBLIC_KEYS_PARAMETER: &str = "JwtPublicKeys";
pub const ISSUER_PARAMETER: &str = "JwtIssuer";
pub const AUDIENCE_PARAMETER: &str = "JwtAudience";

pub struct DevAuth {
    keys: TestKeys,
    issuer: String,
    audience: String,
}

impl DevAuth {
    /// `None` when the template has no JWT parameters (nothing to authenticate).
    pub fn generate(template: &Template) -> Option<DevAuth> {
        let default = |name: &str| {
            template
                .parameters()
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.default.clone())
        };
        template
            .parameters()
            .iter()
            .find(|p| p.name == PUBLIC_KEYS_PARAMETER)?;
        Some(DevAuth {
            keys: TestKeys::generate("local-dev"),
            issuer: default(ISSUER_PARAMETER)?,
            audience: default(AUDIENCE_PARAMETER)?,
        })
    }

    /// Parameter values that make the functions trust this key.
    pub fn parameters(&self) -> HashMap<String, String> {
        HashMap::from([(PUBLIC_KEYS_PARAMETER.to_string(), self.keys.jwks())])
    }

    /// An access token for `user`, valid for `hours`.
    pub fn token(&self, user: &str, hours: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        self.keys.sign(&json!({
            "sub": user, "iss": self.issuer, "aud": self.audience,
            "iat": now, "exp": now + hours * 3600, "roles": ["editor"]
        }))
    }
}
