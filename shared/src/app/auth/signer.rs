//! The ES256 signing key of access tokens: stored encrypted under a KMS data key (envelope
//! encryption), decrypted once per cold start, and re-checked every ten minutes so an instance
//! picks up a rotation.

use crate::crypto;
use crate::ports::{KeyVault, PublicKey, SigningKeyStore, StoreError, StoredSigningKey};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Mutex;

pub use crate::domain::credentials::ACCESS_TOKEN_SECONDS;
/// How often a signing instance looks for a newer key.
pub const KEY_CHECK_INTERVAL: Duration = Duration::minutes(10);
/// How long a new key is published before it signs: every verifier that meets its `kid`
/// has been allowed to reload its keys by then (they reload at most once a minute).
pub const ACTIVATION_DELAY: Duration = Duration::minutes(2);
/// How long a rotated-out key still verifies: every token it signed has expired by then, and
/// every instance has moved to the new key.
pub const RETIRED_KEY_LIFETIME: Duration = Duration::hours(24);

struct Loaded {
    kid: String,
    key: EncodingKey,
    checked_at: DateTime<Utc>,
}

pub struct Signer {
    keys: Arc<dyn SigningKeyStore>,
    vault: Arc<dyn KeyVault>,
    issuer: String,
    audience: String,
    activation_delay: Duration,
    loaded: Mutex<Option<Loaded>>,
}

#[derive(Serialize)]
struct AccessClaims<'a> {
    sub: &'a str,
    sid: &'a str,
    role: &'a str,
    iss: &'a str,
    aud: &'a str,
    /// Epoch seconds with milliseconds, so a token issued before a password change in the same
    /// second is told apart from one issued after it.
    iat: f64,
    nbf: i64,
    exp: i64,
}

/// The token with its signature's low-S twin (verifiers refuse high-S signatures).
fn low_s(token: String) -> Result<String, StoreError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| StoreError::Internal("signing: no signature".into()))?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| StoreError::Internal(format!("signing: {e}")))?;
    if crypto::ecdsa::is_low_s(&bytes) {
        return Ok(token);
    }
    crypto::ecdsa::normalize_s(&mut bytes);
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn crypto_error(e: crypto::CryptoError) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl Signer {
    pub fn new(
        keys: Arc<dyn SigningKeyStore>,
        vault: Arc<dyn KeyVault>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Signer {
            keys,
            vault,
            issuer: issuer.into(),
            audience: audience.into(),
            activation_delay: ACTIVATION_DELAY,
            loaded: Mutex::new(None),
        }
    }

    /// Another [`ACTIVATION_DELAY`] (tests).
    pub fn with_activation_delay(mut self, delay: Duration) -> Self {
        self.activation_delay = delay;
        self
    }

    /// A signed access token for `user_id` in session `sid`.
    pub async fn access_token(
        &self,
        user_id: &str,
        sid: &str,
        role: crate::domain::Role,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let (kid, key) = self.current(now).await?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid);
        let seconds = now.timestamp();
        let claims = AccessClaims {
            sub: user_id,
            sid,
            role: role.as_str(),
            iss: &self.issuer,
            aud: &self.audience,
            iat: now.timestamp_millis() as f64 / 1000.0,
            nbf: seconds,
            exp: seconds + ACCESS_TOKEN_SECONDS,
        };
        let token = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| StoreError::Internal(format!("signing: {e}")))?;
        low_s(token)
    }

    /// The key to sign with: the newest one stored (made on first use of a fresh deployment).
    async fn current(&self, now: DateTime<Utc>) -> Result<(String, EncodingKey), StoreError> {
        let mut loaded = self.loaded.lock().await;
        if let Some(l) = loaded.as_ref()
            && now - l.checked_at < KEY_CHECK_INTERVAL
        {
            return Ok((l.kid.clone(), l.key.clone()));
        }
        // The newest key published long enough to be known everywhere (keys come newest
        // first); on a fresh deployment, the only one there is.
        let keys = self.keys.signing_keys(now).await?;
        let newest = keys
            .iter()
            .find(|k| now - k.public.created_at >= self.activation_delay)
            .or_else(|| keys.first())
            .cloned();
        let next = match (newest, loaded.take()) {
            (Some(k), Some(l)) if k.public.kid == l.kid => Loaded {
                checked_at: now,
                ..l
            },
            (Some(k), _) => self.open(&k, now).await?,
            (None, _) => {
                let k = self.create(now).await?;
                self.open(&k, now).await?
            }
        };
        let out = (next.kid.clone(), next.key.clone());
        *loaded = Some(next);
        Ok(out)
    }

    async fn open(&self, k: &StoredSigningKey, now: DateTime<Utc>) -> Result<Loaded, StoreError> {
        let data_key = self.vault.decrypt_data_key(&k.encrypted_data_key).await?;
        let pkcs8 = crypto::open(&data_key, &k.encrypted_private_key, &k.nonce, &k.public.kid)
            .map_err(crypto_error)?;
        tracing::info!(kid = %k.public.kid, "signing key decrypted");
        Ok(Loaded {
            kid: k.public.kid.clone(),
            key: EncodingKey::from_ec_der(&pkcs8),
            checked_at: now,
        })
    }

    /// Makes and stores a new key; the private half leaves this function only encrypted.
    async fn create(&self, now: DateTime<Utc>) -> Result<StoredSigningKey, StoreError> {
        let (pkcs8, x, y) = crypto::generate_p256().map_err(crypto_error)?;
        let kid = crate::domain::ids::new_id();
        let data_key = self.vault.generate_data_key().await?;
        let (encrypted_private_key, nonce) =
            crypto::seal(&data_key.plaintext, &pkcs8, &kid).map_err(crypto_error)?;
        let key = StoredSigningKey {
            public: PublicKey {
                kid,
                x,
                y,
                created_at: now,
                expires_at: None,
            },
            encrypted_private_key,
            nonce,
            encrypted_data_key: data_key.ciphertext,
            retired: false,
            expires_at: None,
        };
        self.keys.put_signing_key(&key).await?;
        tracing::info!(kid = %key.public.kid, "signing key created");
        Ok(key)
    }

    /// Rotation: a new key is published now and signs from [`ACTIVATION_DELAY`] on (picked up
    /// by every signing instance within [`KEY_CHECK_INTERVAL`] after that); the others keep
    /// verifying for [`RETIRED_KEY_LIFETIME`] after that.
    pub async fn rotate(&self, now: DateTime<Utc>) -> Result<String, StoreError> {
        let mut loaded = self.loaded.lock().await;
        let old: Vec<String> = self
            .keys
            .signing_keys(now)
            .await?
            .into_iter()
            .filter(|k| !k.retired)
            .map(|k| k.public.kid)
            .collect();
        let key = self.create(now).await?;
        for kid in &old {
            self.keys
                .retire_signing_key(kid, now + self.activation_delay + RETIRED_KEY_LIFETIME)
                .await?;
        }
        // Look again at the next signing, so the switch happens as soon as it may.
        *loaded = None;
        Ok(key.public.kid)
    }
}
