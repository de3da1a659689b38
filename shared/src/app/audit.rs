//! Audit use cases: recording the table's changes as audit events (the stream side), and the
//! routes of `/api/v3/audit` (whose chain a caller may read, listing, verifying a chain).

use super::AppError;
use super::analytics::{Counted, Recorded, scope_of};
use crate::domain::Principal;
use crate::domain::analytics::Scope;
use crate::domain::audit::{
    self, Actor, AuditEvent, Chain, ChainOf, ChangedBy, ComplianceReport, Draft, Outcome, Seal,
    SealCheck, Target, Verification, Verifier,
};
use crate::domain::ids;
use crate::ports::{
    AuditFilter, AuditInbox, AuditLog, AuditReports, Page, PageKey, Sealer, StoreError, Workflows,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// Events read per Query while verifying a chain.
const VERIFY_PAGE: usize = 500;

/// What a batch recorded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Changes whose events were appended now.
    pub recorded: usize,
    /// Changes recorded before (a retried batch): nothing appended.
    pub repeated: usize,
    /// Changes that are no audit event.
    pub ignored: usize,
}

/// An event a request handler saw (a sign-in, a refusal, an admin action) rather than an item
/// change.
pub struct Note {
    pub chain: Chain,
    pub action: &'static str,
    pub target: Target,
    pub outcome: Outcome,
    /// Who acted where the request does not say (a sign-in before there is a session: the
    /// account signing in; a request with no account: `unknown`).
    pub actor: Actor,
    pub detail: Value,
}

impl Note {
    /// `action` about `account` (the system's chain with none), done by the request's caller
    /// or, where the request has none yet (a sign-in), by the account itself.
    pub fn about(
        account: Option<&str>,
        action: &'static str,
        target: Target,
        outcome: Outcome,
        detail: Value,
    ) -> Note {
        Note {
            chain: account.map_or(Chain::System, |a| Chain::User(a.to_string())),
            action,
            target,
            outcome,
            actor: account.map_or_else(Actor::unknown, Actor::user),
            detail,
        }
    }
}

/// Leaves `note` in the inbox as an event of the request being handled (its actor, source IP,
/// user agent and request id, [`crate::context`]): one write. A failure is logged and counted,
/// never answered: the caller's action happened either way.
pub async fn note(inbox: &(impl AuditInbox + ?Sized), note: Note, at: DateTime<Utc>) {
    let by = ChangedBy::or_actor(crate::context::changed_by().as_ref(), note.actor);
    let draft = Draft::new(
        ids::new_id(),
        at,
        by,
        note.action,
        note.target,
        note.outcome,
        note.detail,
    );
    if let Err(e) = inbox.note(&note.chain, &draft).await {
        tracing::error!(error = %e, action = note.action, "audit event not recorded");
        crate::emf::Record::new()
            .count(crate::emf::metric::AUDIT_NOT_RECORDED, 1)
            .emit();
    }
}

/// Appends the audit events of `records`' changes, in order, each change's exactly once.
/// Stops at the first change that cannot be recorded and returns its index with the error, so
/// the caller reports it and what follows as the batch's failures.
pub async fn record(
    log: &(impl AuditLog + ?Sized),
    workflows: &(impl Workflows + ?Sized),
    records: &[Counted],
) -> Result<RecordOutcome, (usize, RecordOutcome, StoreError)> {
    let mut out = RecordOutcome::default();
    for (i, record) in records.iter().enumerate() {
        let (chain, drafts) = match &record.what {
            Recorded::Note { chain, draft } => (ChainOf::Known(chain.clone()), vec![draft.clone()]),
            Recorded::Change { change, by } => {
                match audit::from_change(change, by.as_ref(), ids::new_id) {
                    Some(found) => found,
                    None => {
                        out.ignored += 1;
                        continue;
                    }
                }
            }
        };
        let chain = match chain {
            ChainOf::Known(c) => c,
            ChainOf::OwnerOfWorkflow(id) => match workflows.get_workflow(&id).await {
                Ok(Some(w)) => Chain::User(w.owner_id),
                // A workflow purged since: its node's events go to the system's chain.
                Ok(None) => Chain::System,
                Err(e) => return Err((i, out, e)),
            },
        };
        match log.append(&chain, Some(&record.event_id), &drafts).await {
            Ok(true) => out.recorded += 1,
            Ok(false) => out.repeated += 1,
            Err(e) => return Err((i, out, e)),
        }
    }
    Ok(out)
}

/// Whose chain a request reads: `user` (admins: anyone's; others: only their own) or, with
/// `system`, the system's (admins only); the caller's own by default.
pub fn chain_of(
    principal: &Principal,
    user: Option<&str>,
    system: bool,
) -> Result<Chain, AppError> {
    Ok(match scope_of(principal, user, system)? {
        Scope::System => Chain::System,
        Scope::User(u) => Chain::User(u),
        Scope::Workflow(_) => Chain::User(principal.user_id.clone()),
    })
}

/// A page of `chain`'s events that pass `filter`, newest first.
pub async fn list(
    log: &(impl AuditLog + ?Sized),
    chain: &Chain,
    filter: &AuditFilter,
    limit: usize,
    after: Option<PageKey>,
) -> Result<Page<AuditEvent>, AppError> {
    if let Some(a) = &filter.action
        && !audit::ACTIONS.contains(&a.as_str())
    {
        return Err(AppError::Validation(vec![crate::domain::FieldError::new(
            "action",
            format!("unknown action; one of {}", audit::ACTIONS.join(", ")),
        )]));
    }
    Ok(log.events(chain, filter, limit, after).await?)
}

/// Events read per Query while exporting.
const EXPORT_PAGE: usize = 500;
/// Largest export answer: under Lambda's 6 MB response limit, with room for one more row.
pub const EXPORT_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The columns of an audit export, in order.
pub const EXPORT_COLUMNS: [&str; 15] = [
    "seq",
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "action",
    "target_kind",
    "target_id",
    "outcome",
    "source_ip",
    "user_agent",
    "request_id",
    "detail",
    "prev_hash",
    "hash",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 with a header row on the first part.
    Csv,
    /// One event per line (JSON Lines).
    JsonLines,
}

/// One part of an export: text of at most about `max_bytes`, and where the next part starts.
pub struct ExportPart {
    pub text: String,
    pub events: usize,
    pub next: Option<PageKey>,
}

/// Writes the events of `chain` that pass `filter`, oldest first, from `after` on, until
/// `max_bytes` of text or the end: a page of events at a time, each written as soon as it is
/// read, so what is held is one page and the part's text, whatever the range. `next` names
/// the event after the last one written (a client asks again with it).
pub async fn export(
    log: &(impl AuditLog + ?Sized),
    chain: &Chain,
    filter: &AuditFilter,
    format: ExportFormat,
    after: Option<PageKey>,
    max_bytes: usize,
) -> Result<ExportPart, AppError> {
    let filter = AuditFilter {
        oldest_first: true,
        ..filter.clone()
    };
    let mut part = ExportPart {
        text: String::new(),
        events: 0,
        next: None,
    };
    if format == ExportFormat::Csv && after.is_none() {
        part.text.push_str(&EXPORT_COLUMNS.join(","));
        part.text.push_str("\r\n");
    }
    let mut cursor = after;
    loop {
        let page = list(log, chain, &filter, EXPORT_PAGE, cursor).await?;
        for e in &page.items {
            write_event(e, format, &mut part.text);
            part.events += 1;
            if part.text.len() >= max_bytes {
                part.next = Some(PageKey(std::collections::BTreeMap::from([
                    ("PK".to_string(), format!("AUDIT#{}", e.chain)),
                    ("SK".to_string(), format!("E#{:012}", e.seq)),
                ])));
                return Ok(part);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(part),
        }
    }
}

fn write_event(e: &AuditEvent, format: ExportFormat, out: &mut String) {
    match format {
        ExportFormat::JsonLines => {
            out.push_str(&serde_json::to_string(e).unwrap_or_default());
            out.push('\n');
        }
        ExportFormat::Csv => {
            let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::from);
            let cells = [
                Value::from(e.seq),
                Value::from(e.id.as_str()),
                serde_json::to_value(e.at).unwrap_or(Value::Null),
                serde_json::to_value(e.actor.kind).unwrap_or(Value::Null),
                text(&e.actor.id),
                Value::from(e.action.as_str()),
                Value::from(e.target.kind.as_str()),
                Value::from(e.target.id.as_str()),
                Value::from(e.outcome.as_str()),
                text(&e.source_ip),
                text(&e.user_agent),
                text(&e.request_id),
                Value::from(Value::Object(e.detail.clone()).to_string()),
                Value::from(e.prev_hash.as_str()),
                Value::from(e.hash.as_str()),
            ];
            super::analytics::csv_row(&cells, out);
        }
    }
}

/// The audit key's MAC of `message`, as base64 (how seals and reports carry it).
async fn sign(sealer: &(impl Sealer + ?Sized), message: &str) -> Result<String, AppError> {
    Ok(URL_SAFE_NO_PAD.encode(sealer.mac(message.as_bytes()).await?))
}

/// Whether `mac` (base64) is the audit key's MAC of `message`.
async fn signed(
    sealer: &(impl Sealer + ?Sized),
    message: &str,
    mac: &str,
) -> Result<bool, AppError> {
    match URL_SAFE_NO_PAD.decode(mac) {
        Ok(mac) => Ok(sealer.verify(message.as_bytes(), &mac).await?),
        Err(_) => Ok(false),
    }
}

/// Makes the compliance report of `date` from its figures, seals it with the audit key and
/// keeps it (made again, it replaces the one before: a late event is then counted).
pub async fn make_report(
    store: &(impl AuditReports + ?Sized),
    sealer: &(impl Sealer + ?Sized),
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<ComplianceReport, AppError> {
    let figures = store.day_figures(date).await?;
    let message = ComplianceReport::message(date, now, &figures);
    let report = ComplianceReport {
        date,
        generated_at: now,
        figures,
        mac: sign(sealer, &message).await?,
    };
    store.put_report(&report).await?;
    Ok(report)
}

/// A report as it is read: checked with the audit key.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CheckedReport {
    #[serde(flatten)]
    pub report: ComplianceReport,
    /// Whether the audit key confirms the report's MAC (it was not changed since it was made).
    pub mac_valid: bool,
}

/// Admins: the report of `date`, checked.
pub async fn report(
    store: &(impl AuditReports + ?Sized),
    sealer: &(impl Sealer + ?Sized),
    principal: &Principal,
    date: NaiveDate,
) -> Result<CheckedReport, AppError> {
    crate::app::require_admin(principal, "only admins may read the compliance reports")?;
    let report = store
        .report(date)
        .await?
        .ok_or(AppError::NotFound("compliance report"))?;
    let message = ComplianceReport::message(report.date, report.generated_at, &report.figures);
    let mac_valid = signed(sealer, &message, &report.mac).await?;
    Ok(CheckedReport { report, mac_valid })
}

/// Admins: the latest reports (up to `limit`), newest first.
pub async fn reports(
    store: &(impl AuditReports + ?Sized),
    principal: &Principal,
    limit: usize,
) -> Result<Vec<ComplianceReport>, AppError> {
    crate::app::require_admin(principal, "only admins may read the compliance reports")?;
    Ok(store.reports(limit).await?)
}

/// A report as CSV: `metric,key,value` rows (events; by class, action and outcome; failed
/// logins; one row per privilege change with its time, action, target and actor).
pub fn report_csv(r: &CheckedReport) -> String {
    let mut out = String::from("metric,key,value\r\n");
    let mut row = |m: &str, k: String, v: Value| {
        super::analytics::csv_row(&[Value::from(m), Value::from(k), v], &mut out)
    };
    let f = &r.report.figures;
    row(
        "date",
        String::new(),
        Value::from(r.report.date.to_string()),
    );
    row("mac_valid", String::new(), Value::from(r.mac_valid));
    row("events", String::new(), Value::from(f.events));
    for (metric, map) in [
        ("class", &f.by_class),
        ("action", &f.by_action),
        ("outcome", &f.by_outcome),
    ] {
        for (k, n) in map {
            row(metric, k.clone(), Value::from(*n));
        }
    }
    row("failed_logins", String::new(), Value::from(f.failed_logins));
    for c in &f.privilege_changes {
        let who = c
            .actor
            .id
            .clone()
            .unwrap_or_else(|| format!("{:?}", c.actor.kind));
        let key = format!(
            "{} {} {}:{} by {who}",
            c.at.to_rfc3339(),
            c.action,
            c.target.kind,
            c.target.id
        );
        row(
            "privilege_change",
            key,
            Value::from(Value::Object(c.detail.clone()).to_string()),
        );
    }
    out
}

/// Chains sealed per run of the scheduler's `seal_audit` job (the rest wait for the next run).
pub const SEALS_PER_RUN: usize = 1000;

/// Seals every chain with events appended since its last seal: a KMS MAC of its head as it is
/// now ([`Seal`]). Returns how many were sealed.
pub async fn seal_chains(
    log: &(impl AuditLog + ?Sized),
    sealer: &(impl Sealer + ?Sized),
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    let mut sealed = 0;
    for (chain, head) in log.unsealed(SEALS_PER_RUN).await? {
        let key = chain.key();
        let message = Seal::message(&key, head.seq, &head.hash, now);
        let seal = Seal {
            chain: key,
            seq: head.seq,
            hash: head.hash,
            at: now,
            mac: sign(sealer, &message).await?,
        };
        log.put_seal(&chain, &seal).await?;
        sealed += 1;
    }
    Ok(sealed)
}

/// Walks `chain` from its first event, a page at a time, and reports its first broken link
/// (an edited event, a deleted one, a head that does not match the chain's end), then checks
/// its latest seal with the KMS key (a chain rewritten after it was sealed, or a forged seal).
/// `horizon`: events that happened before it may have expired ([`crate::domain::audit::Retention::horizon`]); their
/// absence is counted as `expired`, not reported.
pub async fn verify(
    log: &(impl AuditLog + ?Sized),
    sealer: &(impl Sealer + ?Sized),
    chain: &Chain,
    horizon: Option<DateTime<Utc>>,
) -> Result<Verification, AppError> {
    let mut verifier = Verifier::new(chain).expiring_before(horizon);
    let mut after = 0;
    loop {
        let page = log.chain_after(chain, after, VERIFY_PAGE).await?;
        for e in &page {
            verifier.push(e);
            after = e.seq;
        }
        if page.len() < VERIFY_PAGE || verifier.is_broken() {
            break;
        }
    }
    let head = log.head(chain).await?;
    let verification = verifier.finish(head);
    let Some(seal) = log.latest_seal(chain).await? else {
        return Ok(verification);
    };
    let message = Seal::message(&seal.chain, seal.seq, &seal.hash, seal.at);
    let mac_valid = seal.chain == chain.key() && signed(sealer, &message, &seal.mac).await?;
    let matches = match log.event(chain, seal.seq).await? {
        Some(e) => e.hash == seal.hash,
        // Sealed before the horizon, the event may have expired.
        None => horizon.is_some_and(|h| seal.at <= h),
    };
    Ok(verification.with_seal(SealCheck {
        seq: seal.seq,
        at: seal.at,
        mac_valid,
        matches,
    }))
}
