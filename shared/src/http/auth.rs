//! Verifies access tokens: ES256 JWTs only, with `exp`, `iss` and `aud` checked and at most
//! 60 s of clock skew, against public keys given as a JWKS document. The key is chosen by the
//! token's `kid`; a token without `kid` is accepted only when exactly one key is configured.

use crate::domain::{Principal, ids};
use http::HeaderValue;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;

pub const CLOCK_SKEW_SECONDS: u64 = 60;

pub struct JwtVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a request is not authenticated. The message is safe to show: it never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header; send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("Authorization must use the Bearer scheme")]
    NotBearer,
    #[error("token rejected: {0}")]
    Invalid(&'static str),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
}

impl JwtVerifier {
    /// Builds a verifier from a JWKS JSON document (`{"keys": [...]}`); every key must be an
    /// EC P-256 key with a `kid`.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(jwks)
            .map_err(|e| format!("JWT_PUBLIC_KEYS is not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or(format!("JWT_PUBLIC_KEYS key {i} has no kid"))?;
            if !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)
            ) {
                return Err(format!("JWT_PUBLIC_KEYS key {kid} is not an EC key"));
            }
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| format!("JWT_PUBLIC_KEYS key {kid}: {e}"))?;
            keys.insert(kid, key);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = CLOCK_SKEW_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(JwtVerifier { keys, validation })
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The caller named by a valid `Authorization: Bearer <jwt>` header.
    pub fn verify(&self, authorization: Option<&HeaderValue>) -> Result<Principal, AuthError> {
        let value = authorization
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        let token = token.trim();
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed"))?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::Invalid("algorithm not allowed"));
        }
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .get(kid)
                .ok_or(AuthError::Invalid("unknown key id"))?,
            None if self.keys.len() == 1 => self
                .keys
                .values()
                .next()
                .ok_or(AuthError::Invalid("unknown key id"))?,
            None => return Err(AuthError::Invalid("missing key id")),
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            AuthError::Invalid(match e.kind() {
                K::ExpiredSignature => "expired",
                K::ImmatureSignature => "not yet valid",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidAudience => "wrong audience",
                K::InvalidSignature => "bad signature",
                K::MissingRequiredClaim(_) => "missing a required claim",
                K::InvalidAlgorithm => "algorithm not allowed",
                _ => "invalid",
            })
        })?;
        if !ids::is_valid_user_id(&data.claims.sub) {
            return Err(AuthError::Invalid("bad subject"));
        }
        Ok(Principal {
            user_id: data.claims.sub,
            roles: data.claims.roles,
        })
    }
}
