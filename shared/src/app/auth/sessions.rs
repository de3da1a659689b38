//! Sign-in and sessions: login (with the second factor when MFA is on), refresh-token rotation
//! with reuse detection, logout and the session list.

use super::*;
use serde_json::json;

impl Identity {
    pub async fn login(&self, body: LoginRequest, client: &Client) -> Result<TokenPair, AppError> {
        let now = self.now();
        let account = match account::normalize_email(&body.email) {
            Ok(email) => self.accounts.find_account_by_email(&email).await?,
            Err(_) => None,
        };
        let Some(mut account) = account else {
            // As slow as a wrong password, so the answer does not tell which emails exist.
            password_matches(&body.password, crypto::decoy_password_hash());
            let attempted = crypto::sha256_hex(&body.email.trim().to_lowercase());
            self.audit(
                None,
                "auth.login_failed",
                Outcome::Failure,
                None,
                json!({"reason": "unknown_email", "email_sha256": attempted}),
            )
            .await;
            return Err(AppError::Unauthorized(WRONG_CREDENTIALS));
        };
        if let Some(until) = account.locked(now) {
            // Refused like a wrong password, so a lock does not tell that the account exists;
            // its owner was told by email when the lock began.
            password_matches(&body.password, crypto::decoy_password_hash());
            self.audit(
                Some(&account.user_id),
                "auth.login_failed",
                Outcome::Denied,
                None,
                json!({"reason": "locked", "locked_until": until}),
            )
            .await;
            return Err(AppError::Unauthorized(WRONG_CREDENTIALS));
        }
        let password_ok = password_matches(&body.password, &account.password_hash);
        let second = if password_ok && account.mfa.enabled {
            match self
                .second_factor(
                    &mut account,
                    body.totp_code.as_deref(),
                    body.recovery_code.as_deref(),
                    now,
                )
                .await
            {
                // Not the caller's doing: nothing to count.
                Err(
                    e @ (AppError::MfaRequired | AppError::Unavailable(_) | AppError::Internal(_)),
                ) => {
                    return Err(e);
                }
                other => other,
            }
        } else {
            Ok(())
        };
        if !password_ok || second.is_err() {
            self.accounts
                .record_login_failure(&account.user_id, now)
                .await?;
            let reason = if password_ok {
                "second_factor"
            } else {
                "password"
            };
            self.audit(
                Some(&account.user_id),
                "auth.login_failed",
                Outcome::Failure,
                None,
                json!({"reason": reason, "failures_in_a_row": account.failed_logins + 1}),
            )
            .await;
            if let Some(lock) = account::lock_for(account.failed_logins + 1) {
                self.audit(
                    Some(&account.user_id),
                    "auth.login_locked",
                    Outcome::Denied,
                    None,
                    json!({"locked_until": now + lock}),
                )
                .await;
                self.send_lock_notice(&account, now + lock).await;
            }
            return Err(second
                .err()
                .filter(|_| password_ok)
                .unwrap_or(AppError::Unauthorized(WRONG_CREDENTIALS)));
        }
        let refused = match account.status {
            AccountStatus::Active => None,
            AccountStatus::Pending => Some((
                "pending",
                "confirm your email address first (see the email we sent)",
            )),
            AccountStatus::Suspended => Some(("suspended", "this account is suspended")),
        };
        if let Some((reason, answer)) = refused {
            self.audit(
                Some(&account.user_id),
                "auth.login_failed",
                Outcome::Denied,
                None,
                json!({"reason": reason}),
            )
            .await;
            return Err(AppError::Forbidden(answer));
        }
        if account.failed_logins > 0 || account.last_failed_at.is_some() || account.mfa.enabled {
            // Versioned: of two logins with one TOTP code at once, one gets a conflict.
            account.clear_failures();
            self.save(&mut account).await?;
        }
        let pair = self.start_session(&account, client).await?;
        self.audit(
            Some(&account.user_id),
            "auth.login_succeeded",
            Outcome::Success,
            Some(Target::new("session", &pair.session_id)),
            json!({"mfa": account.mfa.enabled}),
        )
        .await;
        Ok(pair)
    }

    /// Tells the owner that sign-in is paused. A failure is logged, not answered: the answer
    /// to a wrong password must not depend on whether the account exists.
    async fn send_lock_notice(&self, account: &Account, until: DateTime<Utc>) {
        let text = format!(
            "Hello,\n\nafter {} failed sign-ins in a row, signing in to your account is paused until {} UTC; until then even the right password is refused. If it was you, wait and try again, or reset your password at {}/reset-password. If it was not you, someone is guessing your password: resetting it is a good idea.\n",
            account.failed_logins + 1,
            until.format("%Y-%m-%d %H:%M:%S"),
            self.public_url
        );
        if let Err(e) = self.send(&account.email, "sign-in paused", text).await {
            tracing::warn!(error = %e, "lock notice not sent");
        }
    }

    pub(super) async fn start_session(
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

    pub(super) async fn pair(
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

    pub(super) async fn revoke_reused(&self, session: &Session) -> Result<(), AppError> {
        tracing::warn!(user_id = %session.user_id, session_id = %session.session_id, "refresh token reuse: session revoked");
        self.accounts
            .delete_session(&session.user_id, &session.session_id)
            .await?;
        self.audit(
            Some(&session.user_id),
            "auth.refresh_reused",
            Outcome::Denied,
            Some(Target::new("session", &session.session_id)),
            json!({"session_ended": true}),
        )
        .await;
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
        self.audit(
            Some(&principal.user_id),
            "auth.session_ended",
            Outcome::Success,
            Some(Target::new("session", sid)),
            json!({"by": "logout"}),
        )
        .await;
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
            self.audit(
                Some(&principal.user_id),
                "auth.session_ended",
                Outcome::Success,
                Some(Target::new("session", session_id)),
                json!({"by": "session_list"}),
            )
            .await;
            Ok(())
        } else {
            Err(AppError::NotFound("session"))
        }
    }
}
