//! Passwords: change (with the current one), reset by an emailed single-use link.

use super::*;
use serde_json::json;

impl Identity {
    pub async fn change_password(
        &self,
        principal: &Principal,
        body: PasswordChangeRequest,
    ) -> Result<(), AppError> {
        require_session(principal)?;
        let mut account = self.account_of(principal).await?;
        self.check_password(&account, &body.current_password, "current_password")
            .await?;
        account::check_password_strength(
            "new_password",
            &body.new_password,
            &[account.email.as_str(), account.display_name.as_str()],
        )?;
        account.password_hash = crypto::hash_password(&body.new_password).map_err(crypto_error)?;
        self.end_everything(&mut account).await?;
        self.audit(
            Some(&account.user_id),
            "account.password_changed",
            Outcome::Success,
            None,
            json!({"sessions_ended": true}),
        )
        .await;
        Ok(())
    }

    /// Always the same answer, whether or not the email has an account.
    pub async fn request_reset(&self, body: ResetRequestRequest) -> Result<(), AppError> {
        let Ok(email) = account::normalize_email(&body.email) else {
            return Ok(());
        };
        let Some(account) = self.accounts.find_account_by_email(&email).await? else {
            return Ok(());
        };
        if account.status == AccountStatus::Suspended {
            return Ok(());
        }
        let (token, secret) =
            self.email_token(&account, TokenPurpose::ResetPassword, RESET_TOKEN_LIFETIME)?;
        self.accounts.put_token(&token).await?;
        // No text of the user's choosing in a security email (the name included).
        let text = format!(
            "Hello,\n\nsomeone asked to reset the password of this account. If it was you, open\n{}/reset-password?token={secret}\n\nor send this token with your new password to POST /api/v3/auth/password/reset:\n{secret}\n\nThe token works once, for one hour. If it was not you, ignore this email.\n",
            self.public_url
        );
        self.send(&account.email, "reset your password", text).await
    }

    pub async fn reset_password(&self, body: ResetRequest) -> Result<(), AppError> {
        // Checked before the token is used up, so a weak password does not waste it.
        account::check_password_strength("new_password", &body.new_password, &[])?;
        let (token, mut account) = self
            .redeem(TokenPurpose::ResetPassword, &body.token)
            .await?;
        if let Err(e) = account::check_password_strength(
            "new_password",
            &body.new_password,
            &[account.email.as_str(), account.display_name.as_str()],
        ) {
            self.accounts.put_token(&token).await?;
            return Err(e.into());
        }
        account.password_hash = crypto::hash_password(&body.new_password).map_err(crypto_error)?;
        account.clear_failures();
        // Following the emailed link proves the address.
        if account.status == AccountStatus::Pending {
            account.status = AccountStatus::Active;
        }
        account.tokens_valid_after = self.now();
        self.save_or_restore(&mut account, &token).await?;
        self.end_sessions(&account).await?;
        self.audit(
            Some(&account.user_id),
            "account.password_reset",
            Outcome::Success,
            None,
            json!({"sessions_ended": true}),
        )
        .await;
        Ok(())
    }
}
