//! Use cases of the identity service: accounts, sessions, passwords, MFA, API keys and the
//! admin's view of accounts. Secrets are random 256-bit values stored only as SHA-256 hashes;
//! passwords as argon2id; every comparison of secrets is constant-time.

pub mod admin;
mod api_keys;
pub mod callers;
pub mod dto;
mod mfa;
mod passwords;
mod registration;
mod sessions;
pub mod signer;

use crate::app::AppError;
use crate::app::audit::Note;
use crate::crypto::{self, totp};
use crate::domain::account::{self, Account, AccountStatus, ApiKey, Mfa, Session};
use crate::domain::audit::{Outcome, Target};
use crate::domain::{Principal, Role, credentials, ids};
use crate::ports::{
    AccountStore, Clock, Email, KeyVault, Mailer, OneTimeToken, StoreError, TokenPurpose,
};
use chrono::{DateTime, Duration, Utc};
use dto::*;
pub use signer::Signer;
use std::sync::Arc;

pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::days(30);
pub const VERIFY_TOKEN_LIFETIME: Duration = Duration::hours(24);
pub const RESET_TOKEN_LIFETIME: Duration = Duration::hours(1);
const MAX_DEVICE_CHARS: usize = 200;

/// What the identity use cases need, built once per cold start.
pub struct Identity {
    pub accounts: Arc<dyn AccountStore>,
    pub signer: Arc<Signer>,
    /// The key service that seals MFA secrets (the signer's too).
    pub vault: Arc<dyn KeyVault>,
    pub mailer: Arc<dyn Mailer>,
    /// Where sign-ins, credential changes and admin actions are recorded (the audit trail).
    pub audit: Arc<dyn crate::ports::AuditInbox>,
    pub clock: Arc<dyn Clock>,
    /// Base URL of the links in emails (the web app or the API).
    pub public_url: String,
    /// Shown in authenticator apps and email subjects.
    pub product_name: String,
}

/// Where a request came from, as sessions record it.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: String,
    pub device: String,
}

fn crypto_error(e: crypto::CryptoError) -> AppError {
    AppError::Internal(e.to_string())
}

fn new_secret() -> Result<String, AppError> {
    crypto::random_secret().map_err(crypto_error)
}

/// Emailed tokens are stored by a hash that binds their purpose: a reset token can never
/// verify an email or the other way round.
fn token_hash(purpose: TokenPurpose, secret: &str) -> String {
    crypto::sha256_hex(&format!("{}:{secret}", purpose.as_str()))
}

fn bad_token() -> AppError {
    AppError::field(
        "token",
        "is not valid: it is unknown, used already or expired",
    )
}

const WRONG_CREDENTIALS: &str = "email or password is wrong";

impl Identity {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Records `action` about `account` in its audit chain (the system's with none), done by
    /// the request's caller, or by the account itself where the request has no caller yet (a
    /// sign-in). `target` is the account unless given.
    async fn audit(
        &self,
        account: Option<&str>,
        action: &'static str,
        outcome: Outcome,
        target: Option<Target>,
        detail: serde_json::Value,
    ) {
        let target = target.unwrap_or_else(|| Target::new("account", account.unwrap_or("unknown")));
        let note = Note::about(account, action, target, outcome, detail);
        super::audit::note(self.audit.as_ref(), note, self.now()).await;
    }

    fn email_token(
        &self,
        account: &Account,
        purpose: TokenPurpose,
        lifetime: Duration,
    ) -> Result<(OneTimeToken, String), AppError> {
        let secret = new_secret()?;
        let registration = purpose == TokenPurpose::VerifyEmail;
        Ok((
            OneTimeToken {
                hash: token_hash(purpose, &secret),
                purpose,
                user_id: account.user_id.clone(),
                created_at: self.now(),
                expires_at: self.now() + lifetime,
                password_hash: registration.then(|| account.password_hash.clone()),
                display_name: registration.then(|| account.display_name.clone()),
            },
            secret,
        ))
    }

    async fn send(&self, to: &str, subject: &str, text: String) -> Result<(), AppError> {
        self.mailer
            .send(&Email {
                to: to.to_string(),
                subject: format!("{}: {subject}", self.product_name),
                text,
            })
            .await
            .map_err(AppError::from)
    }

    /// Uses an emailed token of `purpose`: it exists, is unexpired, and is gone afterwards.
    async fn take_token(
        &self,
        purpose: TokenPurpose,
        secret: &str,
    ) -> Result<OneTimeToken, AppError> {
        if secret.is_empty() || secret.len() > 128 {
            return Err(bad_token());
        }
        match self
            .accounts
            .take_token(&token_hash(purpose, secret))
            .await?
        {
            Some(t) if t.purpose == purpose && t.expires_at > self.now() => Ok(t),
            _ => Err(bad_token()),
        }
    }

    /// Uses up the emailed token and reads the account it names. A reset link sent before the
    /// account's credentials last changed (a reset or a password change) is over.
    async fn redeem(
        &self,
        purpose: TokenPurpose,
        secret: &str,
    ) -> Result<(OneTimeToken, Account), AppError> {
        let token = self.take_token(purpose, secret).await?;
        let account = self
            .accounts
            .get_account(&token.user_id)
            .await?
            .ok_or_else(bad_token)?;
        if purpose == TokenPurpose::ResetPassword && token.created_at < account.tokens_valid_after {
            return Err(bad_token());
        }
        Ok((token, account))
    }

    /// Saves `account`; if that fails, puts the used `token` back so it can be tried again.
    async fn save_or_restore(
        &self,
        account: &mut Account,
        token: &OneTimeToken,
    ) -> Result<(), AppError> {
        if let Err(e) = self.save(account).await {
            self.accounts.put_token(token).await?;
            return Err(e);
        }
        Ok(())
    }

    /// Refuses a locked account, then checks `password`; a wrong one counts as a failed login.
    async fn check_password(
        &self,
        account: &Account,
        password: &str,
        field: &str,
    ) -> Result<(), AppError> {
        let now = self.now();
        if let Some(until) = account.locked(now) {
            return Err(AppError::Locked {
                retry_after_s: (until - now).num_seconds().max(1),
            });
        }
        if password_matches(password, &account.password_hash) {
            return Ok(());
        }
        self.accounts
            .record_login_failure(&account.user_id, now)
            .await?;
        Err(AppError::field(field.to_string(), "is wrong"))
    }

    /// Writes `account` one version on.
    async fn save(&self, account: &mut Account) -> Result<(), AppError> {
        account.version += 1;
        account.updated_at = self.now();
        self.accounts.update_account(account).await?;
        Ok(())
    }

    async fn account_of(&self, principal: &Principal) -> Result<Account, AppError> {
        self.accounts
            .get_account(&principal.user_id)
            .await?
            .ok_or(AppError::NotFound("account"))
    }

    /// Ends every session and makes every access token and API key issued so far invalid.
    async fn end_everything(&self, account: &mut Account) -> Result<(), AppError> {
        account.tokens_valid_after = self.now();
        self.save(account).await?;
        self.end_sessions(account).await
    }

    /// Deletes the account's sessions (refresh also refuses any older than the cutoff, so one
    /// this misses is over all the same).
    async fn end_sessions(&self, account: &Account) -> Result<(), AppError> {
        for s in self.accounts.list_sessions(&account.user_id).await? {
            self.accounts
                .delete_session(&account.user_id, &s.session_id)
                .await?;
        }
        Ok(())
    }

    pub async fn me(&self, principal: &Principal) -> Result<UserView, AppError> {
        Ok(UserView::from(&self.account_of(principal).await?))
    }
}

/// Checks `password` against `hash`; one too long to be a password is checked against the decoy
/// instead, so the answer costs the same whether or not there is an account.
fn password_matches(password: &str, hash: &str) -> bool {
    if password.len() > account::MAX_PASSWORD_BYTES {
        crypto::verify_password(password, crypto::decoy_password_hash());
        return false;
    }
    crypto::verify_password(password, hash)
}

use crate::app::require_session;

/// `xxxxx-xxxxx` from 50 random bits in base32 (no ambiguous case).
fn new_recovery_code() -> Result<String, AppError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes = crypto::random_bytes(10).map_err(crypto_error)?;
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
}
