//! Test support (feature `testing`): in-memory fakes of every port ([`workflows`],
//! [`accounts`]), and a throw-away ES256 key pair that mints access tokens the way the identity
//! service does, with the JWKS that verifies them.

pub mod accounts;
pub mod audit;
pub mod openai_server;
pub mod realtime;
pub mod receiver;
pub mod runs;
pub mod schedules;
pub mod workflows;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// An HTTP/1 server on a free port of 127.0.0.1 for a fake of the tests: every request goes to
/// `answer` with the fake's `state`. Its address, and the task to abort when the fake is
/// dropped.
pub(crate) async fn serve_local<S, B, E, F, Fut>(
    state: std::sync::Arc<S>,
    answer: F,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    S: Send + Sync + 'static,
    F: Fn(std::sync::Arc<S>, hyper::Request<hyper::body::Incoming>) -> Fut
        + Copy
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = Result<hyper::Response<B>, E>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(state.clone(), req));
                // A client that goes away mid-answer is not the server's failure.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accept)
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    /// A clock at `now` (truncated to milliseconds, as the system clock is).
    pub fn at(now: chrono::DateTime<chrono::Utc>) -> ManualClock {
        ManualClock(std::sync::Mutex::new(
            crate::domain::time::truncate_to_millis(now),
        ))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl crate::ports::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The session id the test tokens of `user_id` name.
pub fn session_of(user_id: &str) -> String {
    format!("test-session-{user_id}")
}

pub const ISSUER: &str = "https://auth.test.local";
pub const AUDIENCE: &str = "document-workflow-chain";

pub struct TestKeys {
    pub kid: String,
    pkcs8: Vec<u8>,
    x: String,
    y: String,
}

impl TestKeys {
    /// A fresh P-256 key pair named `kid`.
    pub fn generate(kid: &str) -> TestKeys {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("read the key back");
        let point = pair.public_key().as_ref();
        TestKeys {
            kid: kid.to_string(),
            pkcs8: pkcs8.as_ref().to_vec(),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
        }
    }

    /// The public key as one JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y, "kid": self.kid, "alg": "ES256", "use": "sig"})
    }

    /// A JWKS document with this key.
    pub fn jwks(&self) -> String {
        json!({"keys": [self.jwk()]}).to_string()
    }

    pub fn verifier(&self) -> crate::http::JwtVerifier {
        crate::http::JwtVerifier::from_jwks(&self.jwks(), ISSUER, AUDIENCE)
            .expect("test JWKS is valid")
    }

    /// The claims of a valid token for `sub` in its session [`session_of`], valid for 15
    /// minutes. (The session must exist for the token to count.)
    pub fn claims(sub: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"sub": sub, "sid": session_of(sub), "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900})
    }

    /// Signs `claims` with this key (ES256, with `kid`, a low-S signature as the identity
    /// service makes).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .expect("sign a token");
        let (signed, signature) = token.rsplit_once('.').expect("a JWS");
        let mut signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
        crate::crypto::ecdsa::normalize_s(&mut signature);
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Signs `claims` under a header of the test's choosing (extensions such as `crit` that the
    /// JWT library does not write), with a low-S signature.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8)
            .expect("read the key back");
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut signature = pair
            .sign(&rng, signed.as_bytes())
            .expect("sign")
            .as_ref()
            .to_vec();
        crate::crypto::ecdsa::normalize_s(&mut signature);
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A valid access token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.sign(&Self::claims(sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn minted_tokens_verify() {
        let keys = TestKeys::generate("k1");
        let auth = HeaderValue::from_str(&format!("Bearer {}", keys.token("alice"))).unwrap();
        let p = keys.verifier().verify(Some(&auth)).unwrap();
        assert_eq!(p.sub, "alice");
    }
}

/// Counts the requests an AWS SDK client sends (retries included), installed on its config
/// with `.interceptor(counter.clone())`: what the request budgets of DESIGN.md §8 are checked
/// with.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (service, operation) = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_default();
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .push((service, operation));
        Ok(())
    }
}

impl RequestCounter {
    /// The operations sent since the last take (`GetItem`), and resets.
    pub fn take(&self) -> Vec<String> {
        self.drain().into_iter().map(|(_, op)| op).collect()
    }

    /// The same, each with its service (`DynamoDB.GetItem`).
    pub fn take_qualified(&self) -> Vec<String> {
        self.drain()
            .into_iter()
            .map(|(service, op)| format!("{service}.{op}"))
            .collect()
    }

    fn drain(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}
