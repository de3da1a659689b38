//! Registration and email verification: an account exists once, and only whoever reads the
//! address's inbox and knows the password chosen at registration activates it.
//!
//! Registering answers the same whatever the address: new, pending or taken (so the answer
//! tells nobody whether an account exists); the inbox learns which it was. A new address gets
//! a pending account and a link. A pending address gets a new link for this registration: a
//! link activates the account only with the password of the registration that asked for it,
//! so opening someone else's link (or being sent one) sets no password chosen by someone else,
//! and squatting an address is impossible: its owner registers again. A taken address gets a
//! notice instead, and nothing changes.

use super::*;
use serde_json::json;

impl Identity {
    pub(super) async fn send_verification(&self, to: &str, secret: &str) -> Result<(), AppError> {
        let text = format!(
            "Hello,\n\nto confirm this address for a new account, open\n{}/verify-email?token={secret}\n\nand enter the password you chose when you registered (or send both to POST /api/v3/auth/verify-email):\n{secret}\n\nThe link works once, for 24 hours. If you did not register, ignore this email: without the password, the link activates nothing.\n",
            self.public_url
        );
        self.send(to, "confirm your email address", text).await
    }

    async fn send_already_registered(&self, to: &str) -> Result<(), AppError> {
        let text = format!(
            "Hello,\n\nsomeone tried to register a new account with this address, which has an account already. If it was you, log in at {url}, or if you forgot the password, reset it at {url}/reset-password. If it was not you, ignore this email: nothing was changed.\n",
            url = self.public_url
        );
        self.send(to, "someone tried to register with your address", text)
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
        // Hashed whatever the address, so every answer costs the same.
        let password_hash = crypto::hash_password(&body.password).map_err(crypto_error)?;
        let account = Account {
            user_id: ids::new_id(),
            email,
            display_name,
            // Self-registered accounts are editors; admins are made on purpose (README).
            role: Role::Editor,
            status: AccountStatus::Pending,
            password_hash,
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
        match self.accounts.create_account(&account, &token).await {
            Ok(()) => {
                self.audit(
                    Some(&account.user_id),
                    "account.registered",
                    Outcome::Success,
                    None,
                    json!({"role": account.role, "status": account.status}),
                )
                .await;
                self.send_verification(&account.email, &secret).await?
            }
            Err(StoreError::Duplicate) => {
                match self.accounts.find_account_by_email(&account.email).await? {
                    Some(existing) if existing.status == AccountStatus::Pending => {
                        // A link of this registration: it carries this password's hash, and
                        // activates only with this password.
                        let again = Account {
                            password_hash: account.password_hash.clone(),
                            display_name: account.display_name.clone(),
                            ..existing
                        };
                        let (token, secret) = self.email_token(
                            &again,
                            TokenPurpose::VerifyEmail,
                            VERIFY_TOKEN_LIFETIME,
                        )?;
                        self.accounts.put_token(&token).await?;
                        self.send_verification(&again.email, &secret).await?;
                    }
                    // Taken (or deleted meanwhile): the owner hears of it, nothing changes.
                    _ => self.send_already_registered(&account.email).await?,
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(RegisterResponse {
            email: account.email,
            message: "check your inbox: the email we sent says how to go on".into(),
        })
    }

    pub async fn verify_email(&self, body: VerifyEmailRequest) -> Result<UserView, AppError> {
        let (token, mut account) = self.redeem(TokenPurpose::VerifyEmail, &body.token).await?;
        if account.status != AccountStatus::Pending {
            return Ok(UserView::from(&account));
        }
        // The registration's own password: whoever opens the link must also have chosen it.
        let chosen = token
            .password_hash
            .clone()
            .unwrap_or_else(|| account.password_hash.clone());
        if !password_matches(&body.password, &chosen) {
            self.accounts.put_token(&token).await?;
            return Err(AppError::field(
                "password",
                "is not the password of the registration this link was sent for",
            ));
        }
        account.status = AccountStatus::Active;
        account.password_hash = chosen;
        if let Some(n) = &token.display_name {
            account.display_name = n.clone();
        }
        self.save_or_restore(&mut account, &token).await?;
        self.audit(
            Some(&account.user_id),
            "account.email_verified",
            Outcome::Success,
            None,
            json!({}),
        )
        .await;
        Ok(UserView::from(&account))
    }
}
