//! Registration and email verification: an account exists once, and only whoever reads the
//! address's inbox activates it.

use super::*;

impl Identity {
    pub(super) async fn send_verification(
        &self,
        account: &Account,
        secret: &str,
    ) -> Result<(), AppError> {
        let text = format!(
            "Hello {},\n\nconfirm your email address by opening\n{}/verify-email?token={secret}\n\nor by sending this token to POST /api/v3/auth/verify-email:\n{secret}\n\nThe link works once, for 24 hours.\n",
            account.display_name, self.public_url
        );
        self.send(&account.email, "confirm your email address", text)
            .await
    }

    pub async fn register(&self, body: RegisterRequest) -> Result<RegisterResponse, AppError> {
        let mut errors = Vec::new();
        let email = account::normalize_email(&body.email);
        let name = account::validate_display_name(&body.display_name);
        let inputs = [body.email.as_str(), body.display_name.as_str()];
        let strength = account::check_password_strength("password", &body.password, &inputs);
        for r in [
            email.as_ref().err(),
            name.as_ref().err(),
            strength.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        {
            if let crate::domain::DomainError::Validation(v) = r {
                errors.extend(v.iter().cloned());
            }
        }
        let (Ok(email), Ok(display_name), true) = (email, name, errors.is_empty()) else {
            return Err(AppError::Validation(errors));
        };
        let now = self.now();
        let account = Account {
            user_id: ids::new_id(),
            email,
            display_name,
            // Self-registered accounts are editors; admins are made on purpose (README).
            role: Role::Editor,
            status: AccountStatus::Pending,
            password_hash: crypto::hash_password(&body.password).map_err(crypto_error)?,
            mfa: Mfa::default(),
            failed_logins: 0,
            last_failed_at: None,
            tokens_valid_after: now,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let (token, secret) =
            self.email_token(&account, TokenPurpose::VerifyEmail, VERIFY_TOKEN_LIFETIME)?;
        let account = match self.accounts.create_account(&account, &token).await {
            Ok(()) => account,
            Err(StoreError::Duplicate) => {
                // Registering again before verifying sends a fresh link that carries this
                // registration's password and name: whoever opens a link gets the password of
                // the registration that asked for it. A verified address is taken.
                match self.accounts.find_account_by_email(&account.email).await? {
                    Some(existing) if existing.status == AccountStatus::Pending => {
                        let again = Account {
                            password_hash: account.password_hash,
                            display_name: account.display_name,
                            ..existing
                        };
                        let (token, secret) = self.email_token(
                            &again,
                            TokenPurpose::VerifyEmail,
                            VERIFY_TOKEN_LIFETIME,
                        )?;
                        self.accounts.put_token(&token).await?;
                        self.send_verification(&again, &secret).await?;
                        return Ok(registered(&again));
                    }
                    _ => {
                        return Err(AppError::Conflict {
                            slug: "email-taken",
                            detail: "an account with this email exists; log in or reset the password",
                        });
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.send_verification(&account, &secret).await?;
        Ok(registered(&account))
    }

    pub async fn verify_email(&self, body: TokenRequest) -> Result<UserView, AppError> {
        let (token, mut account) = self.redeem(TokenPurpose::VerifyEmail, &body.token).await?;
        if account.status == AccountStatus::Pending {
            account.status = AccountStatus::Active;
            if let Some(h) = &token.password_hash {
                account.password_hash = h.clone();
            }
            if let Some(n) = &token.display_name {
                account.display_name = n.clone();
            }
            self.save_or_restore(&mut account, &token).await?;
        }
        Ok(UserView::from(&account))
    }
}
