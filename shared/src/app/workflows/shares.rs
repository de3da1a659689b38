//! Sharing a workflow with other users as `viewer` or `editor`. Only the owner (or an admin)
//! shares and unshares; everyone who can see the workflow can see who it is shared with.

use super::visible;
use crate::app::AppError;
use crate::domain::account::{self, AccountStatus};
use crate::domain::{Principal, ShareAccess, Workflow, ids};
use crate::ports::{Accounts, Shares, Workflows};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A workflow is shared with at most this many users (the map lives on the workflow's item).
pub const MAX_SHARES: usize = 100;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The user to share with, by email ...
    #[serde(default)]
    pub email: Option<String>,
    /// ... or by id (exactly one of the two).
    #[serde(default)]
    pub user_id: Option<String>,
    pub access: ShareAccess,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Share {
    pub user_id: String,
    pub access: ShareAccess,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ShareList {
    pub workflow_id: String,
    pub items: Vec<Share>,
}

fn list_of(w: &Workflow) -> ShareList {
    ShareList {
        workflow_id: w.id.clone(),
        items: w
            .shares
            .iter()
            .map(|(user_id, access)| Share {
                user_id: user_id.clone(),
                access: *access,
            })
            .collect(),
    }
}

fn owner_or_admin(principal: &Principal, w: &Workflow) -> Result<(), AppError> {
    if principal.owns(&w.owner_id) || principal.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the workflow's owner can share it",
        ))
    }
}

pub async fn list(
    store: &(impl Workflows + ?Sized),
    principal: &Principal,
    workflow_id: &str,
) -> Result<ShareList, AppError> {
    let w = visible(store.get_workflow(workflow_id).await?, principal)?;
    Ok(list_of(&w))
}

pub async fn share(
    store: &(impl Workflows + Shares + ?Sized),
    accounts: &(impl Accounts + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    body: ShareRequest,
) -> Result<ShareList, AppError> {
    super::require_write(principal)?;
    // The request's own shape first; then the workflow: only its owner (or an admin) learns
    // anything about the user named, and only after the workflow is found theirs.
    enum Target {
        Email(String),
        Id(String),
        Malformed,
    }
    let target = match (&body.email, &body.user_id) {
        (Some(email), None) => Target::Email(account::normalize_email(email)?),
        (None, Some(id)) if ids::is_valid_id(id) => Target::Id(id.clone()),
        (None, Some(_)) => Target::Malformed,
        _ => {
            return Err(AppError::field(
                "email",
                "send exactly one of email and user_id",
            ));
        }
    };
    let w = visible(store.get_workflow(workflow_id).await?, principal)?;
    owner_or_admin(principal, &w)?;
    let account = match &target {
        Target::Email(email) => accounts.find_account_by_email(email).await?,
        Target::Id(id) => accounts.get_account(id).await?,
        Target::Malformed => None,
    };
    let field = if body.email.is_some() {
        "email"
    } else {
        "user_id"
    };
    let account = account
        .filter(|a| a.status == AccountStatus::Active)
        .ok_or_else(|| AppError::field(field, "names no active user"))?;
    if account.user_id == w.owner_id {
        return Err(AppError::field(
            field,
            "is the owner: owners have every right already",
        ));
    }
    if !w.shares.contains_key(&account.user_id) && w.shares.len() >= MAX_SHARES {
        return Err(AppError::Conflict {
            slug: "too-many-shares",
            detail: "a workflow is shared with at most 100 users",
        });
    }
    let w = store
        .put_share(principal, &w, &account.user_id, body.access)
        .await
        .map_err(|e| {
            super::workflow_rejection(e, principal, |_| {
                AppError::Forbidden("only the workflow's owner can share it")
            })
        })?;
    Ok(list_of(&w))
}

pub async fn unshare(
    store: &(impl Shares + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    user_id: &str,
) -> Result<(), AppError> {
    super::require_write(principal)?;
    store
        .delete_share(principal, workflow_id, user_id)
        .await
        .map_err(|e| {
            super::workflow_rejection(e, principal, |w| match owner_or_admin(principal, &w) {
                Err(e) => e,
                Ok(()) => AppError::NotFound("share"),
            })
        })
}
