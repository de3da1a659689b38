//! Use cases of the identity service: accounts, sessions, passwords, MFA, API keys and the
//! admin's view of accounts. Secrets are random 256-bit values stored only as SHA-256 hashes;
//! passwords as argon2id; every comparison of secrets is constant-time.

pub mod admin;
pub mod dto;
pub mod signer;

use crate::app::AppError;
use crate::crypto::{self, totp};
use crate::domain::account::{self, Account, AccountStatus, ApiKey, Mfa, Session};
use crate::domain::{Principal, Role, credentials, ids};
use crate::ports::{AccountStore, Clock, Email, Mailer, OneTimeToken, StoreError, TokenPurpose};
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
    pub mailer: Arc<dyn Mailer>,
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

    async fn send_verification(&self, account: &Account, secret: &str) -> Result<(), AppError> {
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

    pub async fn verify_email(&self, body: TokenRequest) -> Result<UserView, AppError> {
        let token = self
            .take_token(TokenPurpose::VerifyEmail, &body.token)
            .await?;
        let mut account = self
            .accounts
            .get_account(&token.user_id)
            .await?
            .ok_or_else(bad_token)?;
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
        if password.len() <= account::MAX_PASSWORD_BYTES
            && crypto::verify_password(password, &account.password_hash)
        {
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

    pub async fn login(&self, body: LoginRequest, client: &Client) -> Result<TokenPair, AppError> {
        let now = self.now();
        let account = match account::normalize_email(&body.email) {
            Ok(email) => self.accounts.find_account_by_email(&email).await?,
            Err(_) => None,
        };
        let Some(mut account) = account else {
            // As slow as a wrong password, so the answer does not tell which emails exist.
            crypto::verify_password(&body.password, crypto::decoy_password_hash());
            return Err(AppError::Unauthorized(WRONG_CREDENTIALS));
        };
        if let Some(until) = account.locked(now) {
            return Err(AppError::Locked {
                retry_after_s: (until - now).num_seconds().max(1),
            });
        }
        let password_ok = body.password.len() <= account::MAX_PASSWORD_BYTES
            && crypto::verify_password(&body.password, &account.password_hash);
        let second = if password_ok && account.mfa.enabled {
            match self.second_factor(
                &mut account,
                body.totp_code.as_deref(),
                body.recovery_code.as_deref(),
                now,
            ) {
                Err(AppError::MfaRequired) => return Err(AppError::MfaRequired),
                other => other,
            }
        } else {
            Ok(())
        };
        if !password_ok || second.is_err() {
            self.accounts
                .record_login_failure(&account.user_id, now)
                .await?;
            return Err(second
                .err()
                .filter(|_| password_ok)
                .unwrap_or(AppError::Unauthorized(WRONG_CREDENTIALS)));
        }
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::Pending => {
                return Err(AppError::Forbidden(
                    "confirm your email address first (see the email we sent)",
                ));
            }
            AccountStatus::Suspended => {
                return Err(AppError::Forbidden("this account is suspended"));
            }
        }
        if account.failed_logins > 0 || account.last_failed_at.is_some() || account.mfa.enabled {
            // Versioned: of two logins with one TOTP code at once, one gets a conflict.
            account.clear_failures();
            self.save(&mut account).await?;
        }
        self.start_session(&account, client).await
    }

    /// Checks a TOTP or recovery code and uses it up (the account is saved by the caller).
    fn second_factor(
        &self,
        account: &mut Account,
        totp_code: Option<&str>,
        recovery_code: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        match (totp_code, recovery_code) {
            (Some(code), _) => {
                let secret = account.mfa.secret.as_deref().unwrap_or_default();
                match totp::matching_step(secret, code.trim(), now.timestamp().max(0) as u64) {
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
                let hash = recovery_hash(&account.user_id, code);
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

    async fn start_session(
        &self,
        account: &Account,
        client: &Client,
    ) -> Result<TokenPair, AppError> {
        let now = self.now();
        let secret = new_secret()?;
        let session = Session {
            session_id: ids::new_id(),
            user_id: account.user_id.clone(),
            device: client.device.chars().take(MAX_DEVICE_CHARS).collect(),
            ip: client.ip.clone(),
            created_at: now,
            last_used_at: now,
            expires_at: now + REFRESH_TOKEN_LIFETIME,
            refresh_hash: crypto::sha256_hex(&secret),
            used_hashes: vec![],
        };
        self.accounts.put_session(&session).await?;
        self.pair(account.role, &session, &secret).await
    }

    async fn pair(
        &self,
        role: Role,
        session: &Session,
        secret: &str,
    ) -> Result<TokenPair, AppError> {
        let access = self
            .signer
            .access_token(&session.user_id, &session.session_id, role, self.now())
            .await?;
        Ok(TokenPair {
            access_token: access,
            token_type: "Bearer".into(),
            expires_in: signer::ACCESS_TOKEN_SECONDS,
            refresh_token: credentials::refresh_token(
                &session.user_id,
                &session.session_id,
                secret,
            ),
            session_id: session.session_id.clone(),
        })
    }

    /// Exchanges a refresh token for a new pair. A token shown a second time means it was
    /// copied: the whole session ends, for the thief and the owner alike.
    pub async fn refresh(&self, body: RefreshRequest) -> Result<TokenPair, AppError> {
        const INVALID: &str = "refresh token is not valid; log in again";
        let Some((user_id, session_id, secret)) =
            credentials::parse_refresh_token(&body.refresh_token)
        else {
            return Err(AppError::Unauthorized(INVALID));
        };
        let now = self.now();
        let mut session = match self.accounts.get_session(user_id, session_id).await? {
            Some(s) if s.expires_at > now => s,
            _ => return Err(AppError::Unauthorized(INVALID)),
        };
        let hash = crypto::sha256_hex(secret);
        if !crypto::constant_time_eq(&hash, &session.refresh_hash) {
            if session
                .used_hashes
                .iter()
                .any(|h| crypto::constant_time_eq(h, &hash))
            {
                self.revoke_reused(&session).await?;
                return Err(AppError::Unauthorized(
                    "refresh token reused: the session is revoked; log in again",
                ));
            }
            return Err(AppError::Unauthorized(INVALID));
        }
        let account = self.accounts.get_account(user_id).await?;
        let account = match account {
            // A session from before a password change, reset or "end everything" is over, even if
            // deleting it did not finish.
            Some(a)
                if a.status == AccountStatus::Active
                    && session.created_at >= a.tokens_valid_after =>
            {
                a
            }
            _ => return Err(AppError::Unauthorized(INVALID)),
        };
        let next = new_secret()?;
        session.used_hashes.push(hash.clone());
        let excess = session
            .used_hashes
            .len()
            .saturating_sub(account::REMEMBERED_REFRESH_TOKENS);
        session.used_hashes.drain(..excess);
        session.refresh_hash = crypto::sha256_hex(&next);
        session.last_used_at = now;
        session.expires_at = now + REFRESH_TOKEN_LIFETIME;
        match self.accounts.rotate_session(&session, &hash).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // Another request exchanged the same token first: the token was used twice.
                self.revoke_reused(&session).await?;
                return Err(AppError::Unauthorized(
                    "refresh token reused: the session is revoked; log in again",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.pair(account.role, &session, &next).await
    }

    async fn revoke_reused(&self, session: &Session) -> Result<(), AppError> {
        tracing::warn!(user_id = %session.user_id, session_id = %session.session_id, "refresh token reuse: session revoked");
        self.accounts
            .delete_session(&session.user_id, &session.session_id)
            .await?;
        Ok(())
    }

    pub async fn logout(&self, principal: &Principal) -> Result<(), AppError> {
        let sid = principal
            .session_id
            .as_deref()
            .ok_or(AppError::Forbidden("API keys have no session to end"))?;
        self.accounts
            .delete_session(&principal.user_id, sid)
            .await?;
        Ok(())
    }

    pub async fn sessions(&self, principal: &Principal) -> Result<SessionList, AppError> {
        require_session(principal)?;
        let now = self.now();
        let mut items: Vec<SessionView> = self
            .accounts
            .list_sessions(&principal.user_id)
            .await?
            .into_iter()
            .filter(|s| s.expires_at > now)
            .map(|s| SessionView::of(s, principal.session_id.as_deref()))
            .collect();
        items.sort_by_key(|s| std::cmp::Reverse(s.last_used_at));
        Ok(SessionList { items })
    }

    pub async fn end_session(
        &self,
        principal: &Principal,
        session_id: &str,
    ) -> Result<(), AppError> {
        require_session(principal)?;
        if self
            .accounts
            .delete_session(&principal.user_id, session_id)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::NotFound("session"))
        }
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
        self.end_everything(&mut account).await
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
        let text = format!(
            "Hello {},\n\nsomeone asked to reset the password of this account. If it was you, open\n{}/reset-password?token={secret}\n\nor send this token with your new password to POST /api/v3/auth/password/reset:\n{secret}\n\nThe token works once, for one hour. If it was not you, ignore this email.\n",
            account.display_name, self.public_url
        );
        self.send(&account.email, "reset your password", text).await
    }

    pub async fn reset_password(&self, body: ResetRequest) -> Result<(), AppError> {
        // Checked before the token is used up, so a weak password does not waste it.
        account::check_password_strength("new_password", &body.new_password, &[])?;
        let token = self
            .take_token(TokenPurpose::ResetPassword, &body.token)
            .await?;
        let mut account = self
            .accounts
            .get_account(&token.user_id)
            .await?
            .ok_or_else(bad_token)?;
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
        self.end_sessions(&account).await
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

    pub async fn create_api_key(
        &self,
        principal: &Principal,
        body: CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, AppError> {
        require_session(principal)?;
        let name = account::validate_api_key_name(&body.name)?;
        let mut scopes = body.scopes.clone();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(AppError::field("scopes", "name at least one scope"));
        }
        if let Some(s) = scopes.iter().find(|s| !principal.role.scopes().contains(s)) {
            return Err(AppError::field(
                "scopes",
                format!(
                    "{} is beyond your role ({})",
                    s.as_str(),
                    principal.role.as_str()
                ),
            ));
        }
        let now = self.now();
        if body.expires_at.is_some_and(|t| t <= now) {
            return Err(AppError::field("expires_at", "must be in the future"));
        }
        if self.accounts.list_api_keys(&principal.user_id).await?.len() >= account::MAX_API_KEYS {
            return Err(AppError::Conflict {
                slug: "too-many-api-keys",
                detail: "an account holds at most 50 API keys; delete one first",
            });
        }
        let secret = new_secret()?;
        let key = ApiKey {
            key_id: ids::new_id(),
            user_id: principal.user_id.clone(),
            name,
            scopes,
            created_at: now,
            expires_at: body.expires_at,
            secret_hash: crypto::sha256_hex(&secret),
        };
        self.accounts.put_api_key(&key).await?;
        let api_key = credentials::api_key(&key.user_id, &key.key_id, &secret);
        Ok(CreatedApiKey {
            key: key.into(),
            api_key,
        })
    }

    pub async fn api_keys(&self, principal: &Principal) -> Result<ApiKeyList, AppError> {
        require_session(principal)?;
        let mut items: Vec<ApiKeyView> = self
            .accounts
            .list_api_keys(&principal.user_id)
            .await?
            .into_iter()
            .map(ApiKeyView::from)
            .collect();
        items.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(ApiKeyList { items })
    }

    pub async fn delete_api_key(
        &self,
        principal: &Principal,
        key_id: &str,
    ) -> Result<(), AppError> {
        require_session(principal)?;
        if self
            .accounts
            .delete_api_key(&principal.user_id, key_id)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::NotFound("API key"))
        }
    }

    pub async fn me(&self, principal: &Principal) -> Result<UserView, AppError> {
        Ok(UserView::from(&self.account_of(principal).await?))
    }
}

fn registered(account: &Account) -> RegisterResponse {
    RegisterResponse {
        user_id: account.user_id.clone(),
        email: account.email.clone(),
        status: account.status,
        message: "check your inbox: the email we sent has a link that activates the account".into(),
    }
}

/// Password, MFA and key management need a signed-in person, not an API key.
fn require_session(principal: &Principal) -> Result<(), AppError> {
    if principal.scopes.is_some() {
        Err(AppError::Forbidden("sign in to do this; API keys cannot"))
    } else {
        Ok(())
    }
}

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

/// Recovery codes are stored salted with the user id, so one brute-force pass over the code
/// space does not open every account's codes at once.
fn recovery_hash(user_id: &str, code: &str) -> String {
    let code = code.trim().to_lowercase().replace([' ', '-'], "");
    crypto::sha256_hex(&format!("{user_id}:{code}"))
}
