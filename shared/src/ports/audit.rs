//! The audit trail's chains (see [`crate::domain::audit`]).

use super::{Fut, Page, PageKey};
use crate::domain::audit::{AuditEvent, Chain, Draft, Head, Outcome};
use chrono::{DateTime, Utc};

/// Which events of a chain a listing wants (all given conditions hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    /// The acting user's or API key's id.
    pub actor: Option<String>,
    /// The target's id.
    pub target: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

pub trait AuditLog: Send + Sync {
    /// Appends `drafts`, in order, at the end of `chain` (each stores its predecessor's hash),
    /// exactly once per `source` (a stream record's id): `Ok(false)` when that source was
    /// recorded before, and nothing is appended again. Concurrent appends to one chain are
    /// ordered by a conditional write on its head.
    fn append<'a>(
        &'a self,
        chain: &'a Chain,
        source: Option<&'a str>,
        drafts: &'a [Draft],
    ) -> Fut<'a, bool>;
    /// A page of `chain`'s events that pass `filter`, newest first.
    fn events<'a>(
        &'a self,
        chain: &'a Chain,
        filter: &'a AuditFilter,
        limit: usize,
        after: Option<PageKey>,
    ) -> Fut<'a, Page<AuditEvent>>;
    /// At most `limit` events of `chain` after number `after_seq`, in order, as stored.
    fn chain_after<'a>(
        &'a self,
        chain: &'a Chain,
        after_seq: u64,
        limit: usize,
    ) -> Fut<'a, Vec<AuditEvent>>;
    /// The chain's head (`None` before its first event).
    fn head<'a>(&'a self, chain: &'a Chain) -> Fut<'a, Option<Head>>;
}

/// Where request handlers leave the audit events that are no item change (sign-ins and their
/// failures, MFA, passwords, keys, admin actions): one write each on the request's path; the
/// table's stream brings it to the chains, exactly once.
pub trait AuditInbox: Send + Sync {
    fn note<'a>(&'a self, chain: &'a Chain, draft: &'a Draft) -> Fut<'a, ()>;
}
