//! The audit trail: who did what to what, when, and how it ended, in chains that show
//! tampering.
//!
//! Events live in chains, one per account (`U#<user>`: what happened to that user's account and
//! data) and one for the system (`SYS`). Each event has a sequence number in its chain and
//! stores the SHA-256 of the event before it (`prev_hash`) and its own (`hash`, of its canonical
//! JSON without `hash`), so an edited event no longer matches its hash, a deleted one leaves a
//! gap in the numbers, and a deleted last one leaves the chain shorter than its head says.
//! [`Verifier`] walks a chain in order and reports the first broken link.
//!
//! Events that are item changes (workflows, shares, nodes, runs) are derived from the table's
//! stream by [`from_change`]: one source of truth, no second write on a request's path.

use crate::domain::Workflow;
use crate::domain::broadcast::Change;
use crate::domain::canonical::canonical;
use crate::domain::node::{Node, NodeStatus};
use crate::domain::run::{Run, RunStatus};
use crate::domain::schedule::Schedule;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// `prev_hash` of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The actions this service records, as `<target kind>.<verb>`.
pub const ACTIONS: &[&str] = &[
    "workflow.created",
    "workflow.updated",
    "workflow.status_changed",
    "workflow.deleted",
    "workflow.purged",
    "share.granted",
    "share.revoked",
    "node.created",
    "node.updated",
    "node.deleted",
    "run.started",
    "run.paused",
    "run.resumed",
    "run.cancelled",
    "run.failed",
    "run.succeeded",
    "run.retried",
    "schedule.created",
    "schedule.changed",
    "schedule.deleted",
    "account.registered",
    "account.email_verified",
    "account.password_changed",
    "account.password_reset",
    "account.role_changed",
    "account.suspended",
    "account.reactivated",
    "account.deleted",
    "auth.login_succeeded",
    "auth.login_failed",
    "auth.login_locked",
    "auth.refresh_reused",
    "auth.session_ended",
    "auth.sessions_ended",
    "mfa.enabled",
    "mfa.disabled",
    "mfa.reset",
    "api_key.created",
    "api_key.revoked",
    "signing_key.rotated",
    "workflow.imported",
    "workflow.exported",
    "dlq.redriven",
    "access.denied",
    "access.ip_denied",
    "access.rate_limited",
];

/// Whose chain an event is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Chain {
    /// A user's account and data.
    User(String),
    /// The system's own events (and those of no account).
    System,
}

impl Chain {
    /// `U#<user>` or `SYS`: the event's `chain` field.
    pub fn key(&self) -> String {
        match self {
            Chain::User(u) => format!("U#{u}"),
            Chain::System => "SYS".into(),
        }
    }

    /// The chain of a [`Chain::key`].
    pub fn parse(key: &str) -> Option<Chain> {
        match key {
            "SYS" => Some(Chain::System),
            _ => key
                .strip_prefix("U#")
                .filter(|u| !u.is_empty())
                .map(|u| Chain::User(u.to_string())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiKey,
    System,
    /// The change does not say who made it (see the README's audit section).
    Unknown,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user or API key id; `null` for the system and the unknown.
    pub id: Option<String>,
}

impl Actor {
    pub fn user(id: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: Some(id.into()),
        }
    }
    pub fn api_key(id: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::ApiKey,
            id: Some(id.into()),
        }
    }
    pub fn system() -> Actor {
        Actor {
            kind: ActorKind::System,
            id: None,
        }
    }
    pub fn unknown() -> Actor {
        Actor {
            kind: ActorKind::Unknown,
            id: None,
        }
    }
}

/// Who made a change and from where, as the table adapter stamps it on the workflow, node and
/// run items it writes (`changed_by`; see [`crate::context`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedBy {
    pub actor: Actor,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ChangedBy {
    /// Work of no request: the worker, the scheduler's jobs.
    pub fn system() -> ChangedBy {
        ChangedBy::or_actor(None, Actor::system())
    }

    /// `by` (a request's context or an item's stamp), with `fallback` as the actor where it
    /// names none; with no request, `fallback` alone.
    pub fn or_actor(by: Option<&ChangedBy>, fallback: Actor) -> ChangedBy {
        match by {
            Some(b) if b.actor.kind != ActorKind::Unknown => b.clone(),
            Some(b) => ChangedBy {
                actor: fallback,
                ..b.clone()
            },
            None => ChangedBy {
                actor: fallback,
                source_ip: None,
                user_agent: None,
                request_id: None,
            },
        }
    }
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    /// `workflow`, `node`, `run`, `account`, ...
    pub kind: String,
    pub id: String,
}

impl Target {
    pub fn new(kind: &str, id: &str) -> Target {
        Target {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::Failure, Outcome::Denied]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// An event before it has a place in its chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// A ULID: unique, and in time order within a chain.
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub target: Target,
    pub outcome: Outcome,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: Map<String, Value>,
}

impl Draft {
    /// An event of `action` done by `by`'s actor, from its IP, user agent and request; a
    /// `detail` that is no object is none.
    pub fn new(
        id: String,
        at: DateTime<Utc>,
        by: ChangedBy,
        action: &str,
        target: Target,
        outcome: Outcome,
        detail: Value,
    ) -> Draft {
        Draft {
            id,
            at,
            actor: by.actor,
            action: action.into(),
            target,
            outcome,
            source_ip: by.source_ip,
            user_agent: by.user_agent,
            request_id: by.request_id,
            detail: match detail {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// `U#<user>` or `SYS`.
    pub chain: String,
    /// Its place in the chain, from 1, without gaps.
    pub seq: u64,
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// One of the actions listed in the README, e.g. `workflow.created`.
    pub action: String,
    pub target: Target,
    pub outcome: Outcome,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Map<String, Value>,
    /// The `hash` of the event before it (`GENESIS`, 64 zeros, for the first).
    pub prev_hash: String,
    /// The time of the event before it (`null` for the first): when that one may have expired,
    /// its absence is no break.
    pub prev_at: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of this event's canonical JSON without `hash`.
    pub hash: String,
}

impl AuditEvent {
    /// `draft` as event `seq` of `chain`, after `prev` (the chain's head before it).
    pub fn seal(chain: &Chain, seq: u64, prev: &Head, draft: Draft) -> AuditEvent {
        let mut e = AuditEvent {
            chain: chain.key(),
            seq,
            id: draft.id,
            at: draft.at,
            actor: draft.actor,
            action: draft.action,
            target: draft.target,
            outcome: draft.outcome,
            source_ip: draft.source_ip,
            user_agent: draft.user_agent,
            request_id: draft.request_id,
            detail: draft.detail,
            prev_hash: prev.hash.clone(),
            prev_at: prev.at,
            hash: String::new(),
        };
        e.hash = e.computed_hash();
        e
    }

    /// The hash this event's contents give.
    pub fn computed_hash(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("hash");
        }
        crate::crypto::sha256_hex(&canonical(&v))
    }
}

/// The head of a chain: its last event's number and hash (kept beside the chain, so a deleted
/// last event shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    /// The last event's time.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

impl Head {
    /// The head of a chain with no event yet.
    pub fn empty() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.into(),
            at: None,
        }
    }
}

/// How long events are kept, by class (template parameters `AuditRetentionDaysSecurity` and
/// `AuditRetentionDaysData`): each event expires through the table's TTL that many days after
/// it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub security_days: u32,
    pub data_days: u32,
}

impl Retention {
    /// When an event of `action` at `at` expires (epoch seconds, the TTL attribute).
    pub fn expires_at(&self, action: &str, at: DateTime<Utc>) -> i64 {
        let days = match class_of(action) {
            "security" => self.security_days,
            _ => self.data_days,
        };
        (at + chrono::Duration::days(i64::from(days))).timestamp()
    }

    /// Events that happened before this may be gone (the shorter retention).
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::days(i64::from(self.security_days.min(self.data_days)))
    }
}

/// A chain's head as it was at `at`, with a MAC of it made by a KMS key
/// (`GenerateMac`, HMAC-SHA-256) that the table's writers cannot use: rewriting a chain after
/// it was sealed (events, hashes and head alike) no longer matches the seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Seal {
    pub chain: String,
    pub seq: u64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// Base64 of the MAC of [`Seal::message`].
    pub mac: String,
}

impl Seal {
    /// What the MAC is of: the canonical JSON of the chain, number, hash and time.
    pub fn message(chain: &str, seq: u64, hash: &str, at: DateTime<Utc>) -> String {
        canonical(&json!({"chain": chain, "seq": seq, "hash": hash, "at": at}))
    }
}

/// The latest seal of a chain, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SealCheck {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Whether the KMS key confirms the seal's MAC.
    pub mac_valid: bool,
    /// Whether the chain's event `seq` still has the sealed hash.
    pub matches: bool,
}

/// The class of an action, for the compliance report: `security` (sign-ins, credentials, keys,
/// accounts, refusals) or `data` (workflows, nodes, runs, schedules, queues).
pub fn class_of(action: &str) -> &'static str {
    const SECURITY: [&str; 6] = [
        "auth.",
        "mfa.",
        "api_key.",
        "account.",
        "access.",
        "signing_key.",
    ];
    if SECURITY.iter().any(|p| action.starts_with(p)) {
        "security"
    } else {
        "data"
    }
}

/// Actions that change who may do what: listed one by one in the compliance report.
pub const PRIVILEGE_CHANGES: [&str; 6] = [
    "account.role_changed",
    "account.suspended",
    "account.reactivated",
    "account.deleted",
    "mfa.reset",
    "signing_key.rotated",
];

/// One privilege change, as the day's figures list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrivilegeChange {
    pub at: DateTime<Utc>,
    pub chain: String,
    pub action: String,
    pub actor: Actor,
    pub target: Target,
    #[schema(value_type = Object)]
    pub detail: Map<String, Value>,
}

/// A day's figures of the audit trail (UTC), kept as events are appended, exactly once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayFigures {
    pub events: u64,
    /// By class (`security`, `data`).
    pub by_class: std::collections::BTreeMap<String, u64>,
    pub by_action: std::collections::BTreeMap<String, u64>,
    pub by_outcome: std::collections::BTreeMap<String, u64>,
    /// `auth.login_failed` events.
    pub failed_logins: u64,
    pub privilege_changes: Vec<PrivilegeChange>,
}

impl DayFigures {
    /// Adds another part of the same day (the figures are kept in shards).
    pub fn merge(&mut self, other: DayFigures) {
        self.events += other.events;
        for (into, from) in [
            (&mut self.by_class, other.by_class),
            (&mut self.by_action, other.by_action),
            (&mut self.by_outcome, other.by_outcome),
        ] {
            for (k, n) in from {
                *into.entry(k).or_default() += n;
            }
        }
        self.failed_logins += other.failed_logins;
        self.privilege_changes.extend(other.privilege_changes);
        self.privilege_changes.sort_by_key(|c| c.at);
    }
}

/// The compliance report of one day, made by the scheduler after the day ended and sealed with
/// the audit key like the chains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceReport {
    #[schema(value_type = String, format = Date)]
    pub date: chrono::NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub figures: DayFigures,
    /// Base64 of the KMS MAC of [`ComplianceReport::message`].
    pub mac: String,
}

impl ComplianceReport {
    /// What the MAC is of: the canonical JSON of the date, time and figures.
    pub fn message(
        date: chrono::NaiveDate,
        generated_at: DateTime<Utc>,
        figures: &DayFigures,
    ) -> String {
        canonical(&json!({"date": date, "generated_at": generated_at, "figures": figures}))
    }
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Broken {
    /// The event where the chain breaks.
    pub seq: u64,
    pub reason: String,
}

/// A chain checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Verification {
    pub chain: String,
    /// Events read and found sound before the first broken link (or all of them).
    pub checked: u64,
    pub ok: bool,
    pub first_broken: Option<Broken>,
    /// Events missing because they expired (older than the shorter retention).
    pub expired: u64,
    pub head: Option<Head>,
    /// The latest seal, checked (`null` before the chain's first seal).
    pub seal: Option<SealCheck>,
}

impl Verification {
    /// Adds the check of the chain's latest seal: a seal whose MAC the key refuses, or whose
    /// event no longer has the sealed hash, breaks the chain there (unless it broke earlier).
    pub fn with_seal(mut self, check: SealCheck) -> Verification {
        if !(check.mac_valid && check.matches) {
            let reason = if check.mac_valid {
                format!(
                    "its hash is not the one sealed at {}: the chain was rewritten after it was sealed",
                    check.at
                )
            } else {
                "the seal's MAC is not the KMS key's: the seal was forged or altered".into()
            };
            let earlier = self
                .first_broken
                .as_ref()
                .is_some_and(|b| b.seq <= check.seq);
            if !earlier {
                self.first_broken = Some(Broken {
                    seq: check.seq,
                    reason,
                });
            }
            self.ok = false;
        }
        self.seal = Some(check);
        self
    }
}

/// Walks a chain in order, one event at a time (so a long chain is checked in pages), and
/// stops at the first broken link.
#[derive(Debug)]
pub struct Verifier {
    chain: String,
    last_seq: u64,
    last_hash: String,
    checked: u64,
    expired: u64,
    /// Events before this may have expired; `None`: events are kept.
    horizon: Option<DateTime<Utc>>,
    broken: Option<Broken>,
}

impl Verifier {
    pub fn new(chain: &Chain) -> Verifier {
        Verifier {
            chain: chain.key(),
            last_seq: 0,
            last_hash: GENESIS.into(),
            checked: 0,
            expired: 0,
            horizon: None,
            broken: None,
        }
    }

    /// Accepts as expired the events missing before one whose predecessor happened before
    /// `horizon` ([`Retention::horizon`]): all of them are older than that.
    pub fn expiring_before(mut self, horizon: Option<DateTime<Utc>>) -> Verifier {
        self.horizon = horizon;
        self
    }

    /// Whether events up to one that happened at `at` may have expired.
    fn may_have_expired(&self, at: Option<DateTime<Utc>>) -> bool {
        matches!((self.horizon, at), (Some(h), Some(at)) if at <= h)
    }

    /// Whether a link is already broken (nothing more needs reading).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The event after those pushed so far, in sequence order.
    pub fn push(&mut self, e: &AuditEvent) {
        if self.broken.is_some() {
            return;
        }
        let expected = self.last_seq + 1;
        if e.seq > expected && self.may_have_expired(e.prev_at) {
            // The events between expired: this one starts the chain again, if it is sound.
            if e.chain == self.chain && e.hash == e.computed_hash() {
                self.expired += e.seq - expected;
                self.last_seq = e.seq;
                self.last_hash = e.hash.clone();
                self.checked += 1;
                return;
            }
        }
        let reason = if e.seq > expected {
            Some(format!(
                "event {expected} is missing: the chain goes from {} to {}",
                self.last_seq, e.seq
            ))
        } else if e.seq < expected {
            Some(format!("event {} comes out of order", e.seq))
        } else if e.chain != self.chain {
            Some(format!("the event names chain {} instead", e.chain))
        } else if e.prev_hash != self.last_hash {
            Some(format!(
                "its prev_hash is not the hash of event {}",
                self.last_seq
            ))
        } else if e.hash != e.computed_hash() {
            Some("its contents do not match its hash: it was changed after it was written".into())
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.broken = Some(Broken {
                    seq: e.seq.min(expected),
                    reason,
                })
            }
            None => {
                self.last_seq = e.seq;
                self.last_hash = e.hash.clone();
                self.checked += 1;
            }
        }
    }

    /// The verdict, given the chain's head as stored.
    pub fn finish(mut self, head: Option<Head>) -> Verification {
        if self.broken.is_none() {
            let (head_seq, head_hash) = head
                .as_ref()
                .map_or((0, GENESIS), |h| (h.seq, h.hash.as_str()));
            let head_at = head.as_ref().and_then(|h| h.at);
            if head_seq > self.last_seq && self.may_have_expired(head_at) {
                // The last events (the newest of them included) expired.
                self.expired += head_seq - self.last_seq;
            } else if head_seq != self.last_seq {
                self.broken = Some(Broken {
                    seq: self.last_seq + 1,
                    reason: format!(
                        "the chain's head counts {head_seq} events but the chain ends at {}: \
                         events after it were deleted",
                        self.last_seq
                    ),
                });
            } else if head_hash != self.last_hash {
                self.broken = Some(Broken {
                    seq: self.last_seq,
                    reason: "the chain's head holds another hash for its last event".into(),
                });
            }
        }
        Verification {
            chain: self.chain,
            checked: self.checked,
            ok: self.broken.is_none(),
            first_broken: self.broken,
            expired: self.expired,
            head,
            seal: None,
        }
    }
}

/// The chain a change's events go to, once known: a workflow's node changes belong to the
/// workflow's owner, whom the change itself does not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOf {
    Known(Chain),
    OwnerOfWorkflow(String),
}

/// The audit events a table change stands for (none for changes nobody asked to hear of: a
/// node's child count, a step's progress, a run starting to run), and whose chain they go to.
/// `by` is the `changed_by` stamp of the item as written: who made the change, from where.
/// Where there is none (a deleted item, an item written before stamps), the actor is the user
/// the item names (a workflow's creator is its owner, a run's starter its owner), the system
/// for what the worker does (a run ending, a document generated), and `unknown` otherwise.
/// `id` makes the events' ids (one per event, in order).
pub fn from_change(
    change: &Change,
    by: Option<&ChangedBy>,
    mut id: impl FnMut() -> String,
) -> Option<(ChainOf, Vec<Draft>)> {
    let mut drafts = Vec::new();
    let mut add = |at, actor, action: &str, target, detail: Value| {
        let by = ChangedBy::or_actor(by, actor);
        drafts.push(Draft::new(
            id(),
            at,
            by,
            action,
            target,
            Outcome::Success,
            detail,
        ))
    };
    let chain = match change {
        Change::Workflow { old, new } => {
            let w = new.as_ref().or(old.as_ref())?;
            workflow_events(old.as_ref(), new.as_ref(), &mut add);
            ChainOf::Known(Chain::User(w.owner_id.clone()))
        }
        Change::Node { old, new } => {
            let n = new.as_ref().or(old.as_ref())?;
            node_events(old.as_ref(), new.as_ref(), &mut add);
            ChainOf::OwnerOfWorkflow(n.workflow_id.clone())
        }
        Change::Schedule { old, new } => {
            let s = new.as_ref().or(old.as_ref())?;
            schedule_events(old.as_deref(), new.as_deref(), &mut add);
            ChainOf::Known(Chain::User(s.owner_id.clone()))
        }
        Change::Run { old, new } => {
            let r = new.as_ref().or(old.as_ref()).map(|(r, _)| r)?;
            run_events(
                old.as_ref().map(|(r, _)| r),
                new.as_ref().map(|(r, _)| r),
                &mut add,
            );
            ChainOf::Known(Chain::User(r.owner_id.clone()))
        }
    };
    (!drafts.is_empty()).then_some((chain, drafts))
}

type Add<'a> = dyn FnMut(DateTime<Utc>, Actor, &str, Target, Value) + 'a;

fn workflow_events(old: Option<&Workflow>, new: Option<&Workflow>, add: &mut Add<'_>) {
    let wf = |w: &Workflow| Target::new("workflow", &w.id);
    match (old, new) {
        (None, Some(n)) => add(
            n.created_at,
            Actor::user(&n.owner_id),
            "workflow.created",
            wf(n),
            json!({"name": n.name, "status": n.status}),
        ),
        (Some(o), None) => add(
            Utc::now(),
            Actor::unknown(),
            "workflow.purged",
            wf(o),
            json!({"name": o.name}),
        ),
        (Some(o), Some(n)) => {
            let at = n.updated_at;
            if o.status != n.status {
                if n.status == crate::domain::WorkflowStatus::Deleted {
                    add(
                        at,
                        Actor::unknown(),
                        "workflow.deleted",
                        wf(n),
                        json!({"name": n.name}),
                    );
                } else {
                    add(
                        at,
                        Actor::unknown(),
                        "workflow.status_changed",
                        wf(n),
                        json!({"from": o.status, "to": n.status}),
                    );
                }
            }
            let mut fields = Vec::new();
            if o.name != n.name {
                fields.push("name");
            }
            if o.description != n.description {
                fields.push("description");
            }
            if o.settings != n.settings {
                fields.push("settings");
            }
            if o.tags != n.tags {
                fields.push("tags");
            }
            if !fields.is_empty() {
                add(
                    at,
                    Actor::unknown(),
                    "workflow.updated",
                    wf(n),
                    json!({"fields": fields}),
                );
            }
            for (user, access) in &n.shares {
                if o.shares.get(user) != Some(access) {
                    add(
                        at,
                        Actor::unknown(),
                        "share.granted",
                        wf(n),
                        json!({"user_id": user, "access": access}),
                    );
                }
            }
            for user in o.shares.keys() {
                if !n.shares.contains_key(user) {
                    add(
                        at,
                        Actor::unknown(),
                        "share.revoked",
                        wf(n),
                        json!({"user_id": user}),
                    );
                }
            }
        }
        (None, None) => {}
    }
}

fn node_events(old: Option<&Node>, new: Option<&Node>, add: &mut Add<'_>) {
    let target = |n: &Node| Target::new("node", &n.id);
    match (old, new) {
        (None, Some(n)) => add(
            n.created_at,
            Actor::unknown(),
            "node.created",
            target(n),
            json!({"workflow_id": n.workflow_id, "parent_id": n.parent_id, "status": n.status}),
        ),
        (Some(o), None) => add(
            Utc::now(),
            Actor::unknown(),
            "node.deleted",
            target(o),
            json!({"workflow_id": o.workflow_id}),
        ),
        (Some(o), Some(n)) => {
            let mut fields = Vec::new();
            for (name, differs) in [
                ("title", o.title != n.title),
                ("content", o.content != n.content),
                ("prompt", o.prompt != n.prompt),
                ("priority", o.priority != n.priority),
                ("tags", o.tags != n.tags),
                ("metadata", o.metadata != n.metadata),
            ] {
                if differs {
                    fields.push(name);
                }
            }
            // A document written or failed by the worker; a step merely starting
            // (pending -> generating) is progress, not an event.
            let generated = o.status != n.status
                && matches!(n.status, NodeStatus::Completed | NodeStatus::Failed);
            if o.status != n.status && !generated && fields.is_empty() {
                return;
            }
            if fields.is_empty() && o.status == n.status {
                return;
            }
            let actor = if generated {
                Actor::system()
            } else {
                Actor::unknown()
            };
            add(
                n.updated_at,
                actor,
                "node.updated",
                target(n),
                json!({"workflow_id": n.workflow_id, "fields": fields, "status": n.status}),
            );
        }
        (None, None) => {}
    }
}

fn schedule_events(old: Option<&Schedule>, new: Option<&Schedule>, add: &mut Add<'_>) {
    let target = |s: &Schedule| Target::new("schedule", &s.id);
    let view = |s: &Schedule| json!({"workflow_id": s.workflow_id, "expression": s.expression, "timezone": s.timezone, "enabled": s.enabled});
    match (old, new) {
        (None, Some(n)) => add(
            n.created_at,
            Actor::user(&n.owner_id),
            "schedule.created",
            target(n),
            view(n),
        ),
        (Some(o), None) => add(
            Utc::now(),
            Actor::unknown(),
            "schedule.deleted",
            target(o),
            view(o),
        ),
        (Some(o), Some(n)) => {
            // A fire records itself on the schedule (`last_fire`): not a change of it.
            let changed = o.expression != n.expression
                || o.timezone != n.timezone
                || o.run != n.run
                || o.enabled != n.enabled;
            if changed {
                add(
                    n.updated_at,
                    Actor::unknown(),
                    "schedule.changed",
                    target(n),
                    view(n),
                );
            }
        }
        (None, None) => {}
    }
}

fn run_events(old: Option<&Run>, new: Option<&Run>, add: &mut Add<'_>) {
    let target = |r: &Run| Target::new("run", &r.id);
    let Some(n) = new else {
        return;
    };
    let Some(o) = old else {
        add(
            n.created_at,
            Actor::user(&n.owner_id),
            "run.started",
            target(n),
            json!({"workflow_id": n.workflow_id, "steps": n.steps_total, "model": n.model}),
        );
        return;
    };
    if o.status == n.status {
        return;
    }
    use RunStatus::*;
    let (action, actor) = match (o.status, n.status) {
        (_, Paused) => ("run.paused", Actor::unknown()),
        (Paused, Queued | Running) => ("run.resumed", Actor::unknown()),
        (_, Cancelled) => ("run.cancelled", Actor::unknown()),
        (_, Failed) => ("run.failed", Actor::system()),
        (_, Succeeded) => ("run.succeeded", Actor::system()),
        (Failed | Cancelled, Queued | Running) => ("run.retried", Actor::unknown()),
        _ => return,
    };
    add(
        n.updated_at,
        actor,
        action,
        target(n),
        json!({
            "workflow_id": n.workflow_id,
            "from": o.status,
            "to": n.status,
            "error": n.last_error.as_ref().map(|e| &e.message),
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(i: u32) -> Draft {
        Draft {
            id: format!("01J{i:023}"),
            at: DateTime::from_timestamp(1_800_000_000 + i64::from(i), 0).unwrap_or_default(),
            actor: Actor::user("u1"),
            action: "workflow.created".into(),
            target: Target::new("workflow", "w1"),
            outcome: Outcome::Success,
            source_ip: Some("203.0.113.9".into()),
            user_agent: None,
            request_id: None,
            detail: Map::from_iter([("name".to_string(), json!(format!("n{i}")))]),
        }
    }

    fn chain(n: u32) -> (Vec<AuditEvent>, Head) {
        let c = Chain::User("u1".into());
        let mut head = Head::empty();
        let mut out = Vec::new();
        for i in 1..=n {
            let e = AuditEvent::seal(&c, u64::from(i), &head, draft(i));
            head = Head {
                seq: e.seq,
                hash: e.hash.clone(),
                at: Some(e.at),
            };
            out.push(e);
        }
        (out, head)
    }

    fn verify(events: &[AuditEvent], head: Option<Head>) -> Verification {
        let mut v = Verifier::new(&Chain::User("u1".into()));
        for e in events {
            v.push(e);
        }
        v.finish(head)
    }

    #[test]
    fn a_sound_chain_verifies() {
        let (events, head) = chain(5);
        let v = verify(&events, Some(head));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.checked, 5);
        assert_eq!(verify(&[], None).checked, 0);
        assert!(verify(&[], None).ok);
    }

    #[test]
    fn an_edited_event_is_the_first_broken_link() {
        let (mut events, head) = chain(5);
        events[2].detail.insert("name".into(), json!("changed"));
        let v = verify(&events, Some(head.clone()));
        assert!(!v.ok);
        assert_eq!(v.checked, 2);
        let b = v.first_broken.expect("broken");
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("do not match its hash"), "{}", b.reason);

        // Rewriting the hash too moves the break to the next link.
        let (mut events, _) = chain(5);
        events[2].outcome = Outcome::Failure;
        events[2].hash = events[2].computed_hash();
        let b = verify(&events, Some(head)).first_broken.expect("broken");
        assert_eq!(b.seq, 4);
        assert!(b.reason.contains("prev_hash"), "{}", b.reason);
    }

    #[test]
    fn deleted_events_are_reported_in_the_middle_and_at_the_end() {
        let (mut events, head) = chain(5);
        events.remove(1);
        let b = verify(&events, Some(head.clone()))
            .first_broken
            .expect("broken");
        assert_eq!(b.seq, 2);
        assert!(b.reason.contains("missing"), "{}", b.reason);

        let (mut events, _) = chain(5);
        events.pop();
        let b = verify(&events, Some(head)).first_broken.expect("broken");
        assert_eq!(b.seq, 5);
        assert!(b.reason.contains("deleted"), "{}", b.reason);
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order() {
        let (events, _) = chain(1);
        let mut e = events[0].clone();
        let mut reversed = Map::new();
        e.detail.insert("zeta".into(), json!(1));
        for (k, v) in e.detail.iter().rev() {
            reversed.insert(k.clone(), v.clone());
        }
        let before = e.computed_hash();
        e.detail = reversed;
        assert_eq!(e.computed_hash(), before);
    }

    #[test]
    fn events_older_than_the_retention_may_be_missing_newer_ones_may_not() {
        // Events 1..=5 happened at 1_800_000_001.. (draft's times).
        let (events, head) = chain(5);
        let verify_at = |events: &[AuditEvent], horizon: i64, head: Option<Head>| {
            let mut v = Verifier::new(&Chain::User("u1".into()))
                .expiring_before(DateTime::from_timestamp(horizon, 0));
            for e in events {
                v.push(e);
            }
            v.finish(head)
        };
        // 1 and 2 gone; 3's predecessor (2) happened before the horizon: expired, not broken.
        let v = verify_at(&events[2..], 1_800_000_002, Some(head.clone()));
        assert!(v.ok, "{v:?}");
        assert_eq!((v.checked, v.expired), (3, 2));
        // The same with the horizon before event 2: a deletion.
        let v = verify_at(&events[2..], 1_800_000_001, Some(head.clone()));
        assert!(!v.ok);
        assert_eq!(v.first_broken.expect("broken").seq, 1);
        // A gap in the middle of recent events is a deletion whatever the retention.
        let mut middle = events.clone();
        middle.remove(3);
        let v = verify_at(&middle, 1_800_000_002, Some(head.clone()));
        assert_eq!(v.first_broken.expect("broken").seq, 4);
        // All gone, the newest too: expired when the head's last event is past the horizon.
        let v = verify_at(&[], 1_800_000_005, Some(head.clone()));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.expired, 5);
        assert!(!verify_at(&[], 1_800_000_004, Some(head)).ok);
    }

    #[test]
    fn retention_is_by_class() {
        let r = Retention {
            security_days: 400,
            data_days: 90,
        };
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(
            r.expires_at("auth.login_failed", at),
            1_800_000_000 + 400 * 86_400
        );
        assert_eq!(r.expires_at("run.started", at), 1_800_000_000 + 90 * 86_400);
        assert_eq!(r.horizon(at).timestamp(), 1_800_000_000 - 90 * 86_400);
    }
}
