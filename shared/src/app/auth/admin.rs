//! The admin's use cases over accounts (`/api/v3/admin`), and the first-admin bootstrap.

use super::dto::*;
use super::{Identity, require_session};
use crate::app::AppError;
use crate::domain::account::{Account, AccountStatus};
use crate::domain::audit::{Outcome, Target};
use crate::domain::{Principal, Role};
use crate::ports::{AccountFilter, Accounts, Page, PageKey};

/// An admin may not lock themself out through the admin API.
fn not_self(principal: &Principal, user_id: &str) -> Result<(), AppError> {
    if principal.user_id == user_id {
        Err(AppError::Conflict {
            slug: "own-account",
            detail: "admins cannot suspend, demote or delete their own account",
        })
    } else {
        Ok(())
    }
}

impl Identity {
    pub async fn admin_list_users(
        &self,
        principal: &Principal,
        filter: AccountFilter,
        limit: u32,
        after: Option<PageKey>,
    ) -> Result<Page<Account>, AppError> {
        crate::app::require_admin(principal, crate::app::ADMIN_API)?;
        Ok(self
            .accounts
            .list_accounts(&filter, limit, after.as_ref())
            .await?)
    }

    async fn target(&self, principal: &Principal, user_id: &str) -> Result<Account, AppError> {
        crate::app::require_admin(principal, crate::app::ADMIN_API)?;
        self.accounts
            .get_account(user_id)
            .await?
            .ok_or(AppError::NotFound("user"))
    }

    pub async fn admin_get_user(
        &self,
        principal: &Principal,
        user_id: &str,
    ) -> Result<UserView, AppError> {
        Ok(UserView::from(&self.target(principal, user_id).await?))
    }

    /// Suspending ends every session and every token and key at once (each request checks
    /// the account's status).
    pub async fn admin_set_status(
        &self,
        principal: &Principal,
        user_id: &str,
        suspended: bool,
    ) -> Result<UserView, AppError> {
        let mut account = self.target(principal, user_id).await?;
        not_self(principal, user_id)?;
        match (suspended, account.status) {
            // Suspending and reactivating are for accounts that were active: reactivating a
            // pending one would skip the proof of its address.
            (_, AccountStatus::Pending) => {
                return Err(AppError::Conflict {
                    slug: "account-pending",
                    detail: "the account has not confirmed its email address yet; it activates through the link sent to it (or delete it)",
                });
            }
            (true, AccountStatus::Suspended) | (false, AccountStatus::Active) => {}
            (true, _) => {
                account.status = AccountStatus::Suspended;
                self.end_everything(&mut account).await?;
                self.audit(
                    Some(user_id),
                    "account.suspended",
                    Outcome::Success,
                    None,
                    serde_json::json!({"sessions_ended": true}),
                )
                .await;
            }
            (false, _) => {
                account.status = AccountStatus::Active;
                account.clear_failures();
                self.save(&mut account).await?;
                self.audit(
                    Some(user_id),
                    "account.reactivated",
                    Outcome::Success,
                    None,
                    serde_json::json!({}),
                )
                .await;
            }
        }
        Ok(UserView::from(&account))
    }

    pub async fn admin_set_role(
        &self,
        principal: &Principal,
        user_id: &str,
        body: SetRoleRequest,
    ) -> Result<UserView, AppError> {
        let mut account = self.target(principal, user_id).await?;
        not_self(principal, user_id)?;
        if account.role != body.role {
            let from = account.role;
            account.role = body.role;
            self.save(&mut account).await?;
            self.audit(
                Some(user_id),
                "account.role_changed",
                Outcome::Success,
                None,
                serde_json::json!({"from": from, "to": body.role}),
            )
            .await;
        }
        Ok(UserView::from(&account))
    }

    /// Turns a user's MFA off (the way back in for someone who lost their authenticator and
    /// their recovery codes, once an admin has made sure who they are).
    pub async fn admin_reset_mfa(
        &self,
        principal: &Principal,
        user_id: &str,
    ) -> Result<UserView, AppError> {
        // Turning off someone's second factor needs a signed-in admin, not a script's key.
        require_session(principal)?;
        let mut account = self.target(principal, user_id).await?;
        if account.mfa.enabled || account.mfa.pending_secret.is_some() {
            account.mfa = Default::default();
            self.save(&mut account).await?;
            self.audit(
                Some(user_id),
                "mfa.reset",
                Outcome::Success,
                None,
                serde_json::json!({}),
            )
            .await;
        }
        Ok(UserView::from(&account))
    }

    pub async fn admin_end_sessions(
        &self,
        principal: &Principal,
        user_id: &str,
    ) -> Result<(), AppError> {
        require_session(principal)?;
        let mut account = self.target(principal, user_id).await?;
        self.end_everything(&mut account).await?;
        self.audit(
            Some(user_id),
            "auth.sessions_ended",
            Outcome::Success,
            None,
            serde_json::json!({"by": "admin"}),
        )
        .await;
        Ok(())
    }

    pub async fn admin_delete_user(
        &self,
        principal: &Principal,
        user_id: &str,
    ) -> Result<(), AppError> {
        let account = self.target(principal, user_id).await?;
        not_self(principal, user_id)?;
        self.accounts.delete_account(&account).await?;
        self.audit(
            Some(user_id),
            "account.deleted",
            Outcome::Success,
            None,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }

    pub async fn admin_rotate_signing_key(
        &self,
        principal: &Principal,
    ) -> Result<RotatedKey, AppError> {
        crate::app::require_admin(principal, crate::app::ADMIN_API)?;
        let kid = self.signer.rotate(self.now()).await?;
        self.audit(
            None,
            "signing_key.rotated",
            Outcome::Success,
            Some(Target::new("signing_key", &kid)),
            serde_json::json!({}),
        )
        .await;
        Ok(RotatedKey { kid })
    }
}

/// Makes the account with `email` an admin: how the first admin of a deployment is made
/// (`dwc-admin promote <email>`, README). The account must have verified its email.
pub async fn promote(
    accounts: &(impl Accounts + ?Sized),
    email: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Account, AppError> {
    let email = crate::domain::account::normalize_email(email)?;
    let mut account = accounts
        .find_account_by_email(&email)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    if account.status != AccountStatus::Active {
        return Err(AppError::Conflict {
            slug: "account-not-active",
            detail: "the account must have verified its email and not be suspended",
        });
    }
    if account.role != Role::Admin {
        account.role = Role::Admin;
        account.version += 1;
        account.updated_at = now;
        accounts.update_account(&account).await?;
    }
    Ok(account)
}
