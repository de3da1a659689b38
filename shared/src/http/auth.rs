//! Authentication of every HTTP request.
//!
//! [`JwtVerifier`] checks access tokens: ES256 JWTs only, with `exp`, `iss` and `aud` checked
//! and at most 60 s of clock skew, against public keys chosen by the token's `kid`.
//! [`KeyRing`] keeps a verifier over the signing keys in the table: loaded at cold start,
//! reloaded at most once a minute when a token names a `kid` it does not know (a key rotated
//! in since). [`Authenticator`] turns the `Authorization` header (an access token or an API
//! key) into a [`Principal`]; the account rules it applies (status, token cutoff, key secret)
//! are the use case [`crate::app::auth::callers`].

use crate::app::auth::callers::{self, CallerError};
use crate::domain::{Principal, ids};
use crate::ports::{AccountStates, Clock, PublicKey, SigningKeyStore};
use chrono::{DateTime, Utc};
use http::HeaderValue;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

pub const CLOCK_SKEW_SECONDS: u64 = 60;

pub struct JwtVerifier {
    keys: HashMap<String, DecodingKey>,
    /// When rotated-out keys stop verifying.
    expiry: HashMap<String, DateTime<Utc>>,
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
    /// The account could not be read: not the caller's fault (503).
    #[error("accounts unavailable: {0}")]
    Unavailable(String),
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenClaims {
    pub sub: String,
    /// The session the token was issued for.
    #[serde(default)]
    pub sid: Option<String>,
    /// Issued at (epoch seconds; the identity service adds milliseconds as a fraction).
    #[serde(default)]
    pub iat: f64,
    /// Expires at (epoch seconds).
    pub exp: i64,
}

impl TokenClaims {
    /// `iat` in epoch milliseconds.
    pub fn issued_at_ms(&self) -> i64 {
        (self.iat * 1000.0).round() as i64
    }

    /// Refuses a token issued later than `now` plus the clock skew allowed.
    pub fn check_issued_by(&self, now: DateTime<Utc>) -> Result<(), AuthError> {
        if self.issued_at_ms() > now.timestamp_millis() + CLOCK_SKEW_SECONDS as i64 * 1000 {
            return Err(AuthError::Invalid("issued in the future"));
        }
        Ok(())
    }
}

impl JwtVerifier {
    /// Builds a verifier from a JWKS JSON document (`{"keys": [...]}`); every key must be an
    /// EC P-256 key with a `kid`.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| format!("not a JWKS document: {e}"))?;
        Self::from_set(&set, issuer, audience)
    }

    /// A verifier over public keys as the table stores them.
    pub fn from_public_keys(
        keys: &[PublicKey],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_value(jwks(keys))
            .map_err(|e| format!("signing keys do not form a JWKS: {e}"))?;
        let mut verifier = Self::from_set(&set, issuer, audience)?;
        verifier.expiry = keys
            .iter()
            .filter_map(|k| k.expires_at.map(|t| (k.kid.clone(), t)))
            .collect();
        Ok(verifier)
    }

    fn from_set(set: &JwkSet, issuer: &str, audience: &str) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or(format!("JWKS key {i} has no kid"))?;
            if !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)
            ) {
                return Err(format!("JWKS key {kid} is not an EC key"));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWKS key {kid}: {e}"))?;
            keys.insert(kid, key);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = CLOCK_SKEW_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(JwtVerifier {
            keys,
            expiry: HashMap::new(),
            validation,
        })
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The claims of a valid `Authorization: Bearer <jwt>` header.
    pub fn verify(&self, authorization: Option<&HeaderValue>) -> Result<TokenClaims, AuthError> {
        self.verify_token(bearer(authorization)?)
    }

    /// The claims of a valid access token.
    pub fn verify_token(&self, token: &str) -> Result<TokenClaims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed"))?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::Invalid("algorithm not allowed"));
        }
        check_form(token)?;
        let key = match &header.kid {
            Some(kid) => {
                if self.expiry.get(kid).is_some_and(|t| *t <= Utc::now()) {
                    return Err(AuthError::Invalid("signing key retired"));
                }
                self.keys
                    .get(kid)
                    .ok_or(AuthError::Invalid("unknown key id"))?
            }
            None if self.keys.len() == 1 => self
                .keys
                .values()
                .next()
                .ok_or(AuthError::Invalid("unknown key id"))?,
            None => return Err(AuthError::Invalid("missing key id")),
        };
        let data =
            jsonwebtoken::decode::<TokenClaims>(token, key, &self.validation).map_err(|e| {
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
        let claims = data.claims;
        if !ids::is_valid_user_id(&claims.sub) {
            return Err(AuthError::Invalid("bad subject"));
        }
        if !claims.iat.is_finite() || claims.iat < 0.0 {
            return Err(AuthError::Invalid("bad issue time"));
        }
        let issued_ms = claims.issued_at_ms();
        if claims.exp.saturating_sub(issued_ms.div_euclid(1000)) > ACCESS_TOKEN_SECONDS {
            return Err(AuthError::Invalid("lifetime longer than an access token's"));
        }
        Ok(claims)
    }
}

/// What the JWT library does not check: no `crit` header (this service understands no
/// extension, so any critical one is refused, RFC 7515 §4.1.11) and a low-S signature (its
/// high-S twin verifies too; only one form is accepted).
fn check_form(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let malformed = AuthError::Invalid("malformed");
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    let header: serde_json::Map<String, serde_json::Value> = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(malformed.clone())?;
    if header.contains_key("crit") {
        return Err(AuthError::Invalid("unsupported critical header"));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed)?;
    if !crate::crypto::ecdsa::is_low_s(&signature) {
        return Err(AuthError::Invalid("signature not in low-S form"));
    }
    Ok(())
}

/// The credential of an `Authorization: Bearer <credential>` header.
pub fn bearer(authorization: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let value = authorization
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    Ok(token.trim())
}

/// The key id a JWT names in its header, if it is a JWT at all.
fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Public keys as a JWKS document (`/.well-known/jwks.json`).
pub fn jwks(keys: &[PublicKey]) -> serde_json::Value {
    serde_json::json!({"keys": keys.iter().map(|k| serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": k.x, "y": k.y, "kid": k.kid, "alg": "ES256", "use": "sig"
    })).collect::<Vec<_>>()})
}

/// How long a key ring waits between reloads prompted by unknown key ids.
pub const KEY_RELOAD_INTERVAL_MS: i64 = 60_000;
/// A key ring reloads at least this often anyway, so retired keys stop verifying on warm
/// instances too.
pub const KEY_MAX_AGE_MS: i64 = 600_000;
/// The same while the ring has no key at all: on a fresh deployment the first login makes the
/// first key, and the functions must know it at once (one reload at a time).
pub const EMPTY_RING_RELOAD_INTERVAL_MS: i64 = 0;

/// A [`JwtVerifier`] over the signing keys in the table, reloaded when a token names a key
/// it has not seen (at most once per [`KEY_RELOAD_INTERVAL_MS`]).
pub struct KeyRing {
    store: Option<Arc<dyn SigningKeyStore>>,
    clock: Arc<dyn Clock>,
    issuer: String,
    audience: String,
    verifier: RwLock<Arc<JwtVerifier>>,
    loaded_at_ms: AtomicI64,
}

impl KeyRing {
    /// Loads the public keys from `store` (one Query).
    pub async fn load(
        store: Arc<dyn SigningKeyStore>,
        clock: Arc<dyn Clock>,
        issuer: &str,
        audience: &str,
    ) -> Result<KeyRing, String> {
        let now = clock.now();
        let keys: Vec<PublicKey> = store
            .signing_keys(now)
            .await
            .map_err(|e| format!("loading signing keys: {e}"))?
            .into_iter()
            .map(|k| k.public)
            .collect();
        Self::with_keys(
            store,
            clock,
            issuer,
            audience,
            &keys,
            now.timestamp_millis(),
        )
    }

    /// A key ring that loads the keys with the first token it verifies: once per cold start,
    /// but outside the function's init, which then makes no network call (DESIGN.md §8).
    pub fn lazy(
        store: Arc<dyn SigningKeyStore>,
        clock: Arc<dyn Clock>,
        issuer: &str,
        audience: &str,
    ) -> Result<KeyRing, String> {
        Self::with_keys(store, clock, issuer, audience, &[], 0)
    }

    fn with_keys(
        store: Arc<dyn SigningKeyStore>,
        clock: Arc<dyn Clock>,
        issuer: &str,
        audience: &str,
        keys: &[PublicKey],
        loaded_at_ms: i64,
    ) -> Result<KeyRing, String> {
        Ok(KeyRing {
            store: Some(store),
            clock,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            verifier: RwLock::new(Arc::new(JwtVerifier::from_public_keys(
                keys, issuer, audience,
            )?)),
            loaded_at_ms: AtomicI64::new(loaded_at_ms),
        })
    }

    /// A fixed key ring that never reloads (tests, benches).
    #[cfg(any(test, feature = "testing"))]
    pub fn fixed(verifier: JwtVerifier) -> KeyRing {
        KeyRing {
            store: None,
            clock: Arc::new(crate::clock::SystemClock),
            issuer: String::new(),
            audience: String::new(),
            verifier: RwLock::new(Arc::new(verifier)),
            loaded_at_ms: AtomicI64::new(0),
        }
    }

    fn current(&self) -> Arc<JwtVerifier> {
        self.verifier
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Verifies `token`, reloading the keys first when it names an unknown one and the last
    /// load is over a minute old.
    pub async fn verify_token(&self, token: &str) -> Result<TokenClaims, AuthError> {
        let verifier = self.current();
        let now = self.clock.now();
        let last = self.loaded_at_ms.load(Ordering::Acquire);
        let unknown = kid_of(token).is_some_and(|kid| !verifier.knows(&kid));
        let interval = if !unknown {
            KEY_MAX_AGE_MS
        } else if verifier.key_count() == 0 {
            EMPTY_RING_RELOAD_INTERVAL_MS
        } else {
            KEY_RELOAD_INTERVAL_MS
        };
        if let Some(store) = &self.store
            && now.timestamp_millis() - last >= interval
            && self
                .loaded_at_ms
                .compare_exchange(
                    last,
                    now.timestamp_millis(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            match store.signing_keys(now).await {
                Ok(keys) => {
                    let keys: Vec<PublicKey> = keys.into_iter().map(|k| k.public).collect();
                    if let Ok(v) =
                        JwtVerifier::from_public_keys(&keys, &self.issuer, &self.audience)
                    {
                        tracing::info!(
                            keys = keys.len(),
                            unknown_kid = unknown,
                            "signing keys reloaded"
                        );
                        *self
                            .verifier
                            .write()
                            .unwrap_or_else(PoisonError::into_inner) = Arc::new(v);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "signing keys could not be reloaded"),
            }
            return self.current().verify_token(token);
        }
        verifier.verify_token(token)
    }
}

pub use crate::domain::credentials::{ACCESS_TOKEN_SECONDS, API_KEY_PREFIX, parse_api_key};

/// Establishes the caller of every authenticated request: the `Authorization` header read
/// and, for an access token, its signature checked here; the account rules applied by
/// [`crate::app::auth::callers`] (one read of the account, two items in one BatchGetItem for an
/// API key).
pub struct Authenticator {
    pub keys: KeyRing,
    pub accounts: Arc<dyn AccountStates>,
}

impl Authenticator {
    pub async fn authenticate(
        &self,
        authorization: Option<&HeaderValue>,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        self.authenticate_credential(bearer(authorization)?, now)
            .await
    }

    /// The caller of a credential given otherwise than in `Authorization` (a WebSocket's
    /// `token` query parameter or `Sec-WebSocket-Protocol` entry): an access token or API key.
    pub async fn authenticate_credential(
        &self,
        credential: &str,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let caller = if credential.starts_with(API_KEY_PREFIX) {
            let (user_id, key_id, secret) =
                parse_api_key(credential).ok_or(AuthError::Invalid("malformed API key"))?;
            callers::from_api_key(self.accounts.as_ref(), user_id, key_id, secret, now).await
        } else {
            let claims = self.keys.verify_token(credential).await?;
            claims.check_issued_by(now)?;
            let issued_at_ms = claims.issued_at_ms();
            callers::from_access_token(self.accounts.as_ref(), claims.sub, claims.sid, issued_at_ms)
                .await
        };
        caller.map_err(|e| match e {
            CallerError::Refused(why) => AuthError::Invalid(why),
            CallerError::Unavailable(cause) => AuthError::Unavailable(cause),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestKeys;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn claims_at(iat: f64, exp: i64) -> serde_json::Value {
        let mut c = TestKeys::claims("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        c["iat"] = json!(iat);
        c["exp"] = json!(exp);
        c
    }

    #[test]
    fn a_token_issued_now_for_its_lifetime_verifies_with_millisecond_iat() {
        let keys = TestKeys::generate("k1");
        let now = Utc::now();
        let iat = now.timestamp_millis() as f64 / 1000.0;
        let token = keys.sign(&claims_at(iat, now.timestamp() + ACCESS_TOKEN_SECONDS));
        let claims = keys.verifier().verify_token(&token).unwrap();
        assert_eq!(claims.issued_at_ms(), now.timestamp_millis());
    }

    #[test]
    fn a_lifetime_longer_than_an_access_tokens_is_refused() {
        let keys = TestKeys::generate("k1");
        let now = Utc::now().timestamp();
        let token = keys.sign(&claims_at(now as f64, now + ACCESS_TOKEN_SECONDS + 1));
        assert_eq!(
            keys.verifier().verify_token(&token),
            Err(AuthError::Invalid("lifetime longer than an access token's"))
        );
    }

    #[test]
    fn an_issue_time_in_the_future_beyond_the_leeway_is_refused() {
        let keys = TestKeys::generate("k1");
        let later = Utc::now().timestamp() + CLOCK_SKEW_SECONDS as i64 + 30;
        let token = keys.sign(&claims_at(later as f64, later + 60));
        let claims = keys.verifier().verify_token(&token).unwrap();
        assert_eq!(
            claims.check_issued_by(Utc::now()),
            Err(AuthError::Invalid("issued in the future"))
        );
        // Within the leeway is a clock a little ahead, not a forgery.
        let soon = Utc::now().timestamp() + 5;
        let token = keys.sign(&claims_at(soon as f64, soon + 60));
        let claims = keys.verifier().verify_token(&token).unwrap();
        assert_eq!(claims.check_issued_by(Utc::now()), Ok(()));
    }

    #[test]
    fn a_critical_header_is_refused() {
        let keys = TestKeys::generate("k1");
        let claims = TestKeys::claims("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let plain = json!({"alg": "ES256", "kid": "k1", "typ": "JWT"});
        assert!(
            keys.verifier()
                .verify_token(&keys.sign_with_header(&plain, &claims))
                .is_ok()
        );
        let critical = json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]});
        assert_eq!(
            keys.verifier()
                .verify_token(&keys.sign_with_header(&critical, &claims)),
            Err(AuthError::Invalid("unsupported critical header"))
        );
    }

    #[test]
    fn the_high_s_twin_of_a_valid_signature_is_refused() {
        let keys = TestKeys::generate("k1");
        let token = keys.token("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert!(keys.verifier().verify_token(&token).is_ok());
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut twin = URL_SAFE_NO_PAD.decode(signature).unwrap();
        crate::crypto::ecdsa::twin(&mut twin);
        let twin = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin));
        assert_eq!(
            keys.verifier().verify_token(&twin),
            Err(AuthError::Invalid("signature not in low-S form"))
        );
    }
}
