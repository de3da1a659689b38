//! Adapters: implementations of [`crate::ports`] over AWS services, and the one SDK
//! configuration every function builds its clients from.

#[cfg(feature = "apigw")]
pub mod apigw;
pub mod dynamo;
pub mod errors;
#[cfg(feature = "health")]
pub mod health;
pub mod kms;
#[cfg(feature = "notify")]
pub mod notify;
#[cfg(feature = "scheduler")]
pub mod scheduler;
pub mod ses;
#[cfg(feature = "sqs")]
pub mod sqs;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};

/// The roots that AWS service endpoints chain to: Amazon Trust Services Root CA 1-4 and the
/// Starfield Services root that cross-signs them. Public certificates, compiled in.
const AWS_TRUST_ROOTS: &[u8] = include_bytes!("aws-trust-roots.pem");

/// The SDK configuration shared by every client of a function (one HTTP/TLS stack for all
/// services), from the environment as `aws_config` reads it.
///
/// AWS endpoints are trusted through [`AWS_TRUST_ROOTS`] only, instead of the system's root
/// store: reading and parsing ~150 system certificates one file at a time was most of a
/// function's init time (README "Performance"). When an HTTPS endpoint is configured through
/// `AWS_ENDPOINT_URL` (a proxy, LocalStack with TLS), the system store is used as before.
pub async fn sdk_config() -> Result<SdkConfig, String> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !crate::config::custom_https_endpoint() {
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_TRUST_ROOTS);
        let tls = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls)
            .build_https();
        loader = loader.http_client(http);
    }
    Ok(loader.load().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_parse() {
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_TRUST_ROOTS);
        assert!(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .is_ok()
        );
        assert_eq!(
            String::from_utf8_lossy(AWS_TRUST_ROOTS)
                .matches("BEGIN CERTIFICATE")
                .count(),
            5
        );
    }
}
