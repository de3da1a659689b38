//! TOTP (RFC 6238) second factor: setup, enable with a code, disable, recovery codes.

use super::*;

impl Identity {
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
        account.mfa.pending_secret = Some(secret.clone());
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
        let Some(secret) = account.mfa.pending_secret.clone() else {
            return Err(AppError::Conflict {
                slug: "mfa-not-set-up",
                detail: "call POST /api/v3/auth/mfa/totp/setup first",
            });
        };
        let now = self.now().timestamp().max(0) as u64;
        let Some(step) = totp::matching_step(&secret, body.code.trim(), now) else {
            return Err(AppError::field(
                "code",
                "is not the current code of the authenticator app",
            ));
        };
        let codes = (0..account::RECOVERY_CODES)
            .map(|_| new_recovery_code())
            .collect::<Result<Vec<_>, _>>()?;
        account.mfa = Mfa {
            enabled: true,
            secret: Some(secret),
            pending_secret: None,
            recovery_hashes: codes
                .iter()
                .map(|c| recovery_hash(&account.user_id, c))
                .collect(),
            last_step: step,
        };
        self.save(&mut account).await?;
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
        self.second_factor(
            &mut account,
            body.totp_code.as_deref(),
            body.recovery_code.as_deref(),
            now,
        )
        .map_err(|e| match e {
            AppError::MfaRequired => {
                AppError::field("totp_code", "send totp_code or recovery_code")
            }
            other => other,
        })?;
        account.mfa = Mfa::default();
        self.save(&mut account).await
    }
}
