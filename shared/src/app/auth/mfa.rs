//! TOTP (RFC 6238) second factor: setup, enable with a code, disable, recovery codes.
//!
//! The secrets are sealed (envelope encryption, as for signing keys): setup asks the key
//! service for a data key, seals the TOTP secret under it (AES-256-GCM, bound to the user id)
//! and keeps only the key service's encryption of the data key; recovery codes are kept as
//! HMAC-SHA256 under the same data key. A copy of the table (its stream, a backup) opens
//! neither without the key service. Every code check counts toward the account's lock, like a
//! wrong password.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// An account's MFA data key, in clear for the length of one request.
pub(super) struct MfaKey(Vec<u8>);

impl MfaKey {
    fn seal(&self, user_id: &str, secret: &str) -> Result<String, AppError> {
        crypto::seal_b64(&self.0, secret.as_bytes(), &aad(user_id)).map_err(crypto_error)
    }

    fn open(&self, user_id: &str, sealed: &str) -> Result<String, AppError> {
        let plain = crypto::open_b64(&self.0, sealed, &aad(user_id)).map_err(crypto_error)?;
        String::from_utf8(plain).map_err(|e| AppError::Internal(format!("TOTP secret: {e}")))
    }

    fn recovery_hash(&self, code: &str) -> String {
        crypto::hmac_sha256_hex(&self.0, &format!("recovery:{}", normalize_recovery(code)))
    }
}

fn aad(user_id: &str) -> String {
    format!("totp:{user_id}")
}

fn normalize_recovery(code: &str) -> String {
    code.trim().to_lowercase().replace([' ', '-'], "")
}

/// How recovery codes of accounts from before sealing were kept: SHA-256 salted with the id.
fn legacy_recovery_hash(user_id: &str, code: &str) -> String {
    crypto::sha256_hex(&format!("{user_id}:{}", normalize_recovery(code)))
}

impl Identity {
    /// A new data key: in clear to use now, and as the key service encrypted it, to store.
    async fn new_mfa_key(&self) -> Result<(MfaKey, String), AppError> {
        let key = self.vault.generate_data_key().await?;
        Ok((MfaKey(key.plaintext), B64.encode(key.ciphertext)))
    }

    /// The account's data key, or `None` for an account from before secrets were sealed.
    async fn open_mfa_key(&self, mfa: &Mfa) -> Result<Option<MfaKey>, AppError> {
        let Some(encrypted) = &mfa.data_key else {
            return Ok(None);
        };
        let encrypted = B64
            .decode(encrypted)
            .map_err(|e| AppError::Internal(format!("MFA data key: {e}")))?;
        Ok(Some(MfaKey(self.vault.decrypt_data_key(&encrypted).await?)))
    }

    /// Checks a TOTP or recovery code and uses it up (the account is saved by the caller).
    /// A wrong code is `Unauthorized` (the caller counts it); neither code is `MfaRequired`;
    /// the key service failing is `Unavailable`.
    pub(super) async fn second_factor(
        &self,
        account: &mut Account,
        totp_code: Option<&str>,
        recovery_code: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        if totp_code.is_none() && recovery_code.is_none() {
            return Err(AppError::MfaRequired);
        }
        let key = self.open_mfa_key(&account.mfa).await?;
        match (totp_code, recovery_code) {
            (Some(code), _) => {
                let stored = account.mfa.secret.clone().unwrap_or_default();
                let secret = match &key {
                    Some(k) => k.open(&account.user_id, &stored)?,
                    None => stored,
                };
                match totp::matching_step(&secret, code.trim(), now.timestamp().max(0) as u64) {
                    Some(step) if step > account.mfa.last_step => {
                        account.mfa.last_step = step;
                        Ok(())
                    }
                    Some(_) => Err(AppError::Unauthorized(
                        "this code was used already; wait for the next one",
                    )),
                    None => Err(AppError::Unauthorized("the code is wrong")),
                }
            }
            (None, Some(code)) => {
                let hash = match &key {
                    Some(k) => k.recovery_hash(code),
                    None => legacy_recovery_hash(&account.user_id, code),
                };
                let before = account.mfa.recovery_hashes.len();
                account
                    .mfa
                    .recovery_hashes
                    .retain(|h| !crypto::constant_time_eq(h, &hash));
                if account.mfa.recovery_hashes.len() < before {
                    Ok(())
                } else {
                    Err(AppError::Unauthorized("the recovery code is wrong or used"))
                }
            }
            (None, None) => Err(AppError::MfaRequired),
        }
    }

    /// Counts a wrong code like a wrong password and passes the answer on.
    async fn count_wrong_code<T>(
        &self,
        account: &Account,
        result: Result<T, AppError>,
    ) -> Result<T, AppError> {
        if let Err(AppError::Unauthorized(_) | AppError::Validation(_)) = &result {
            self.accounts
                .record_login_failure(&account.user_id, self.now())
                .await?;
        }
        result
    }

    /// Refuses an account whose failures have locked it.
    fn not_locked(&self, account: &Account) -> Result<(), AppError> {
        let now = self.now();
        match account.locked(now) {
            Some(until) => Err(AppError::Locked {
                retry_after_s: (until - now).num_seconds().max(1),
            }),
            None => Ok(()),
        }
    }

    pub async fn totp_setup(
        &self,
        principal: &Principal,
        body: TotpSetupRequest,
    ) -> Result<TotpSetupResponse, AppError> {
        require_session(principal)?;
        let mut account = self.account_of(principal).await?;
        // A stolen access token alone must not put a second factor in front of the owner.
        self.check_password(&account, &body.password, "password")
            .await?;
        if account.mfa.enabled {
            return Err(AppError::Conflict {
                slug: "mfa-enabled",
                detail: "two-factor authentication is on already; disable it first to change it",
            });
        }
        let secret = totp::new_secret().map_err(crypto_error)?;
        let uri = totp::uri(&secret, &self.product_name, &account.email).map_err(crypto_error)?;
        let (key, encrypted_key) = self.new_mfa_key().await?;
        account.mfa = Mfa {
            data_key: Some(encrypted_key),
            pending_secret: Some(key.seal(&account.user_id, &secret)?),
            ..Mfa::default()
        };
        self.save(&mut account).await?;
        Ok(TotpSetupResponse {
            secret,
            otpauth_uri: uri,
        })
    }

    pub async fn totp_enable(
        &self,
        principal: &Principal,
        body: TotpEnableRequest,
    ) -> Result<RecoveryCodes, AppError> {
        require_session(principal)?;
        let mut account = self.account_of(principal).await?;
        if account.mfa.enabled {
            return Err(AppError::Conflict {
                slug: "mfa-enabled",
                detail: "two-factor authentication is on already",
            });
        }
        let Some(sealed) = account.mfa.pending_secret.clone() else {
            return Err(AppError::Conflict {
                slug: "mfa-not-set-up",
                detail: "call POST /api/v3/auth/mfa/totp/setup first",
            });
        };
        self.not_locked(&account)?;
        let Some(key) = self.open_mfa_key(&account.mfa).await? else {
            return Err(AppError::Conflict {
                slug: "mfa-not-set-up",
                detail: "call POST /api/v3/auth/mfa/totp/setup again",
            });
        };
        let secret = key.open(&account.user_id, &sealed)?;
        let now = self.now().timestamp().max(0) as u64;
        let step = self
            .count_wrong_code(
                &account,
                totp::matching_step(&secret, body.code.trim(), now).ok_or_else(|| {
                    AppError::field("code", "is not the current code of the authenticator app")
                }),
            )
            .await?;
        let codes = (0..account::RECOVERY_CODES)
            .map(|_| new_recovery_code())
            .collect::<Result<Vec<_>, _>>()?;
        account.mfa = Mfa {
            enabled: true,
            data_key: account.mfa.data_key.take(),
            secret: Some(sealed),
            pending_secret: None,
            recovery_hashes: codes.iter().map(|c| key.recovery_hash(c)).collect(),
            last_step: step,
        };
        self.save(&mut account).await?;
        self.audit(
            Some(&account.user_id),
            "mfa.enabled",
            Outcome::Success,
            None,
            serde_json::json!({"method": "totp"}),
        )
        .await;
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    pub async fn totp_disable(
        &self,
        principal: &Principal,
        body: TotpDisableRequest,
    ) -> Result<(), AppError> {
        require_session(principal)?;
        let mut account = self.account_of(principal).await?;
        if !account.mfa.enabled {
            return Err(AppError::Conflict {
                slug: "mfa-disabled",
                detail: "two-factor authentication is off",
            });
        }
        self.check_password(&account, &body.password, "password")
            .await?;
        let now = self.now();
        let checked = self
            .second_factor(
                &mut account,
                body.totp_code.as_deref(),
                body.recovery_code.as_deref(),
                now,
            )
            .await
            .map_err(|e| match e {
                AppError::MfaRequired => {
                    AppError::field("totp_code", "send totp_code or recovery_code")
                }
                other => other,
            });
        self.count_wrong_code(&account, checked).await?;
        account.mfa = Mfa::default();
        self.save(&mut account).await?;
        self.audit(
            Some(&account.user_id),
            "mfa.disabled",
            Outcome::Success,
            None,
            serde_json::json!({"method": "totp"}),
        )
        .await;
        Ok(())
    }
}
