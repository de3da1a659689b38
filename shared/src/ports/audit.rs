//! The audit trail's chains (see [`crate::domain::audit`]).

use super::{Fut, Page, PageKey};
use crate::domain::audit::{
    AuditEvent, Chain, ComplianceReport, DayFigures, Draft, Head, Outcome, Seal,
};
use chrono::{DateTime, Utc};

/// Which events of a chain a listing wants (all given conditions hold), and in which order.
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
    /// In chain order (an export); newest first otherwise.
    pub oldest_first: bool,
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
    /// A page of `chain`'s events that pass `filter`, newest first (or oldest first).
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
    /// Event `seq` of `chain`, as stored.
    fn event<'a>(&'a self, chain: &'a Chain, seq: u64) -> Fut<'a, Option<AuditEvent>>;
    /// Up to `limit` chains with events appended since their last seal, with their heads.
    fn unsealed<'a>(&'a self, limit: usize) -> Fut<'a, Vec<(Chain, Head)>>;
    /// Stores `seal` as the chain's latest; the chain stays among the unsealed if events were
    /// appended after the head that was sealed.
    fn put_seal<'a>(&'a self, chain: &'a Chain, seal: &'a Seal) -> Fut<'a, ()>;
    /// The chain's latest seal.
    fn latest_seal<'a>(&'a self, chain: &'a Chain) -> Fut<'a, Option<Seal>>;
}

/// The key that seals chain heads (KMS `GenerateMac`/`VerifyMac`, HMAC-SHA-256).
pub trait Sealer: Send + Sync {
    fn mac<'a>(&'a self, message: &'a [u8]) -> Fut<'a, Vec<u8>>;
    /// Whether `mac` is the key's MAC of `message`.
    fn verify<'a>(&'a self, message: &'a [u8], mac: &'a [u8]) -> Fut<'a, bool>;
}

/// Where request handlers leave the audit events that are no item change (sign-ins and their
/// failures, MFA, passwords, keys, admin actions): one write each on the request's path; the
/// table's stream brings it to the chains, exactly once.
pub trait AuditInbox: Send + Sync {
    fn note<'a>(&'a self, chain: &'a Chain, draft: &'a Draft) -> Fut<'a, ()>;
}

/// The trail's daily figures (kept as events are appended) and the compliance reports made of
/// them.
pub trait AuditReports: Send + Sync {
    /// The figures of `date` (UTC) so far.
    fn day_figures<'a>(&'a self, date: chrono::NaiveDate) -> Fut<'a, DayFigures>;
    fn put_report<'a>(&'a self, report: &'a ComplianceReport) -> Fut<'a, ()>;
    fn report<'a>(&'a self, date: chrono::NaiveDate) -> Fut<'a, Option<ComplianceReport>>;
    /// The latest `limit` reports, newest first.
    fn reports<'a>(&'a self, limit: usize) -> Fut<'a, Vec<ComplianceReport>>;
}
