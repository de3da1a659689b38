//! Who is calling, and what they may do: established by the HTTP layer from a verified access
//! token or API key and the account's current state.
//!
//! Roles (DESIGN.md §9 and the identity issue):
//! - `admin`: everything, including the admin API;
//! - `editor`: creates workflows, changes its own and the ones shared with it as `editor`;
//! - `viewer`: reads its own and shared workflows, changes nothing.
//!
//! An API key acts with its scopes, never beyond its owner's current role.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The scopes this role can ever exercise.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Viewer => &[Scope::WorkflowsRead],
            Role::Editor => &[Scope::WorkflowsRead, Scope::WorkflowsWrite],
            Role::Admin => &[
                Scope::WorkflowsRead,
                Scope::WorkflowsWrite,
                Scope::Admin,
                Scope::Metrics,
            ],
        }
    }
}

/// What an API key may be used for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    #[serde(rename = "workflows:read")]
    WorkflowsRead,
    #[serde(rename = "workflows:write")]
    WorkflowsWrite,
    #[serde(rename = "admin")]
    Admin,
    /// `GET /metrics` (Prometheus scrapes) and nothing else.
    #[serde(rename = "metrics")]
    Metrics,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::WorkflowsRead,
        Scope::WorkflowsWrite,
        Scope::Admin,
        Scope::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::WorkflowsRead => "workflows:read",
            Scope::WorkflowsWrite => "workflows:write",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a workflow's owner granted another user.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ShareAccess {
    Viewer,
    Editor,
}

impl ShareAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareAccess::Viewer => "viewer",
            ShareAccess::Editor => "editor",
        }
    }
}

/// What a caller may do with one workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// The account's role as stored now (not as it was when the token was issued).
    pub role: Role,
    /// `Some` for an API key: the scopes it was created with.
    pub scopes: Option<Vec<Scope>>,
    /// The session an access token belongs to (`None` for API keys).
    pub session_id: Option<String>,
}

impl Principal {
    /// A signed-in user with the whole of their role.
    pub fn user(user_id: impl Into<String>, role: Role) -> Principal {
        Principal {
            user_id: user_id.into(),
            role,
            scopes: None,
            session_id: None,
        }
    }

    /// Whether the caller may exercise `scope`: the role allows it and, for an API key, the key
    /// was given it.
    pub fn has(&self, scope: Scope) -> bool {
        self.role.scopes().contains(&scope)
            && self.scopes.as_ref().is_none_or(|s| s.contains(&scope))
    }

    pub fn is_admin(&self) -> bool {
        self.has(Scope::Admin)
    }

    pub fn can_write(&self) -> bool {
        self.has(Scope::WorkflowsWrite)
    }

    pub fn owns(&self, owner_id: &str) -> bool {
        self.user_id == owner_id
    }

    /// What the caller may do with a workflow owned by `owner_id` and shared as `shares`;
    /// `None` when they may not even know it exists.
    pub fn access(&self, owner_id: &str, shares: &BTreeMap<String, ShareAccess>) -> Option<Access> {
        if !self.has(Scope::WorkflowsRead) {
            return None;
        }
        let granted = if self.owns(owner_id) || self.is_admin() {
            Access::Write
        } else {
            match shares.get(&self.user_id)? {
                ShareAccess::Editor => Access::Write,
                ShareAccess::Viewer => Access::Read,
            }
        };
        Some(if self.can_write() {
            granted
        } else {
            Access::Read
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(pairs: &[(&str, ShareAccess)]) -> BTreeMap<String, ShareAccess> {
        pairs.iter().map(|(u, a)| (u.to_string(), *a)).collect()
    }

    #[test]
    fn owners_write_sharees_get_what_was_granted_others_nothing() {
        let s = shares(&[("ed", ShareAccess::Editor), ("vi", ShareAccess::Viewer)]);
        let p = |u: &str| Principal::user(u, Role::Editor);
        assert_eq!(p("own").access("own", &s), Some(Access::Write));
        assert_eq!(p("ed").access("own", &s), Some(Access::Write));
        assert_eq!(p("vi").access("own", &s), Some(Access::Read));
        assert_eq!(p("x").access("own", &s), None);
        assert_eq!(
            Principal::user("adm", Role::Admin).access("own", &s),
            Some(Access::Write)
        );
    }

    #[test]
    fn the_viewer_role_caps_everything_at_read() {
        let s = shares(&[("v", ShareAccess::Editor)]);
        let v = Principal::user("v", Role::Viewer);
        assert_eq!(v.access("v", &s), Some(Access::Read));
        assert_eq!(v.access("other", &s), Some(Access::Read));
        assert!(!v.can_write() && !v.is_admin());
    }

    #[test]
    fn api_keys_act_with_their_scopes_within_the_role() {
        let mut k = Principal::user("u", Role::Editor);
        k.scopes = Some(vec![Scope::WorkflowsRead]);
        assert_eq!(k.access("u", &BTreeMap::new()), Some(Access::Read));
        // A key given `admin` by an editor is still not an admin.
        k.scopes = Some(vec![Scope::Admin, Scope::WorkflowsRead]);
        assert!(!k.is_admin());
        k.scopes = Some(vec![Scope::WorkflowsWrite]);
        assert_eq!(k.access("u", &BTreeMap::new()), None, "no read scope");
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_metrics_key_reads_metrics_and_nothing_else_and_only_admins_have_the_scope() {
        let mut key = Principal::user("a", Role::Admin);
        key.scopes = Some(vec![Scope::Metrics]);
        assert!(key.has(Scope::Metrics));
        assert!(!key.is_admin() && !key.has(Scope::WorkflowsRead));
        assert!(Principal::user("a", Role::Admin).has(Scope::Metrics));
        let mut editor_key = Principal::user("e", Role::Editor);
        editor_key.scopes = Some(vec![Scope::Metrics]);
        assert!(!editor_key.has(Scope::Metrics), "beyond the editor's role");
    }
}
