//! [`KeyVault`] over AWS KMS: data keys for envelope encryption (GenerateDataKey AES_256,
//! Decrypt); [`KmsSealer`]: the audit chains' seals (GenerateMac, VerifyMac).

use crate::aws::errors::classify;
use crate::ports::{DataKey, Fut, KeyVault, Sealer, StoreError};
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, MacAlgorithmSpec};

/// The client is built on first use: a cold start that signs nothing (or finds its key
/// already open) never pays for it (DESIGN.md §8, lazy clients).
#[derive(Debug)]
pub struct KmsVault {
    sdk: aws_config::SdkConfig,
    client: std::sync::OnceLock<Client>,
    /// Key id, ARN or alias (`alias/...`).
    key_id: String,
}

impl KmsVault {
    pub fn new(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Self {
        KmsVault {
            sdk: sdk.clone(),
            client: std::sync::OnceLock::new(),
            key_id: key_id.into(),
        }
    }

    /// Over a ready client (tests: a mocked one).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_client(client: Client, key_id: impl Into<String>) -> Self {
        KmsVault {
            sdk: aws_config::SdkConfig::builder().build(),
            client: std::sync::OnceLock::from(client),
            key_id: key_id.into(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::new(&self.sdk))
    }
}

impl KeyVault for KmsVault {
    fn generate_data_key(&self) -> Fut<'_, DataKey> {
        Box::pin(async move {
            let out = self
                .client()
                .generate_data_key()
                .key_id(&self.key_id)
                .key_spec(DataKeySpec::Aes256)
                .send()
                .await
                .map_err(classify)?;
            match (out.plaintext, out.ciphertext_blob) {
                (Some(p), Some(c)) => Ok(DataKey {
                    plaintext: p.into_inner(),
                    ciphertext: c.into_inner(),
                }),
                _ => Err(StoreError::Internal(
                    "kms: data key without plaintext or ciphertext".into(),
                )),
            }
        })
    }

    fn decrypt_data_key<'a>(&'a self, ciphertext: &'a [u8]) -> Fut<'a, Vec<u8>> {
        Box::pin(async move {
            let out = self
                .client()
                .decrypt()
                .key_id(&self.key_id)
                .ciphertext_blob(Blob::new(ciphertext))
                .send()
                .await
                .map_err(classify)?;
            out.plaintext
                .map(Blob::into_inner)
                .ok_or_else(|| StoreError::Internal("kms: decrypt without plaintext".into()))
        })
    }
}

/// [`Sealer`] over a KMS HMAC key (`HMAC_256`, `GENERATE_VERIFY_MAC`): the audit chains'
/// seals. Only the scheduler may make MACs; api-analytics may only verify them.
#[derive(Debug)]
pub struct KmsSealer(KmsVault);

impl KmsSealer {
    pub fn new(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Self {
        KmsSealer(KmsVault::new(sdk, key_id))
    }
}

impl Sealer for KmsSealer {
    fn mac<'a>(&'a self, message: &'a [u8]) -> Fut<'a, Vec<u8>> {
        Box::pin(async move {
            let out = self
                .0
                .client()
                .generate_mac()
                .key_id(&self.0.key_id)
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .message(Blob::new(message))
                .send()
                .await
                .map_err(classify)?;
            out.mac
                .map(Blob::into_inner)
                .ok_or_else(|| StoreError::Internal("kms: GenerateMac without a MAC".into()))
        })
    }

    fn verify<'a>(&'a self, message: &'a [u8], mac: &'a [u8]) -> Fut<'a, bool> {
        Box::pin(async move {
            let out = self
                .0
                .client()
                .verify_mac()
                .key_id(&self.0.key_id)
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .message(Blob::new(message))
                .mac(Blob::new(mac))
                .send()
                .await;
            match out {
                Ok(o) => Ok(o.mac_valid),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_kms_invalid_mac_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(classify(e)),
            }
        })
    }
}
