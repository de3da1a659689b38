//! [`AuditLog`] over the table: one partition per chain.
//!
//! | item | `PK` | `SK` | attributes |
//! | --- | --- | --- | --- |
//! | chain head | `AUDIT#<chain>` | `#HEAD` | `seq`, `hash` of the last event |
//! | seal | `AUDIT#<chain>` | `SEAL#<seq, 12 digits>` | the head as sealed: `seq`, `hash`, `at`, `mac` (KMS HMAC, base64) |
//! | event | `AUDIT#<chain>` | `E#<seq, 12 digits>` | the event's fields (`detail` as JSON text, so it reads back exactly as it was hashed), `at_key` (its time, fixed width, for time filters), `expires_at` |
//! | source recorded | `AUDITSEEN#<stream event id>` | `#SEEN` | `expires_at` 2 days on (the stream keeps records 24 h) |
//! | a day's figures | `AUDITSTAT#<yyyy-mm-dd>#<0..7>` | `#DAY` | `events`, `c#<class>`, `a#<action>`, `o#<outcome>`, `failed_logins` (ADD), `privilege_changes` (list) |
//! | compliance report | `AUDITREPORT` | `D#<yyyy-mm-dd>` | `report` (JSON text) |
//! | inbox note | `AUDITQ#<event id>` | `#NOTE` | `chain`, `draft` (JSON text), `expires_at` 2 days on |
//!
//! `<chain>` is `U#<user>` or `SYS`. A head with events appended since its chain's last seal is
//! in the sparse index `GSI2` (`AUDIT_UNSEALED#<0..3>`, sort key the chain), which the
//! scheduler's `seal_audit` job reads; sealing takes it out unless the head moved meanwhile.
//! Access patterns:
//! - append: GetItem of the head (consistent), then one TransactWriteItems: the "recorded"
//!   marker (`attribute_not_exists`), the head moved on (conditional on the `seq` read, or on
//!   its absence) and the events put (`attribute_not_exists`). A concurrent append makes the
//!   head's condition fail and the append starts again from the new head; a retried stream
//!   batch finds its marker and appends nothing;
//! - list, newest first: Query `PK = AUDIT#<chain> AND begins_with(SK, E#)` backwards, the
//!   filter as a FilterExpression (so a page may hold fewer than asked, with a cursor on);
//! - verify: Query forwards from `E#<after>` in pages, then GetItem of the head;
//! - note (an event a request handler saw): one PutItem in the inbox; its stream record brings
//!   it to `analytics-stream`, which appends it like a change ([`note_of`]).

use super::super::table::reason_code;
use super::*;
use crate::domain::audit::{
    self, AuditEvent, Chain, ComplianceReport, DayFigures, Draft, Head, PrivilegeChange, Retention,
    Seal,
};
use crate::ports::{AuditFilter, AuditInbox, AuditLog, AuditReports};
use serde_json::{Map, Value};

const HEAD_SK: &str = "#HEAD";
/// Events one append takes: with the marker, the head and two days' figures, a transaction's
/// 100 writes.
pub const MAX_APPEND: usize = 96;
const DAY_SK: &str = "#DAY";
/// Each day's figures are kept in this many items (by chain), so appends to many chains at
/// once do not all write one item.
const DAY_SHARDS: usize = 8;
const REPORT_PK: &str = "AUDITREPORT";
const SEAL_SK_PREFIX: &str = "SEAL#";
/// Chains with events appended since their last seal, in the sparse index `GSI2`.
const UNSEALED: &str = "AUDIT_UNSEALED";
const NOTE_SK: &str = "#NOTE";
pub(crate) const NOTE_PK_PREFIX: &str = "AUDITQ#";
/// How long an inbox note is kept: past the stream's 24 h retention.
const NOTE_TTL_HOURS: i64 = 48;
const SEEN_SK: &str = "#SEEN";
const EVENT_SK_PREFIX: &str = "E#";
/// How long a source's "recorded" marker is kept: past the stream's 24 h retention.
const SEEN_TTL_HOURS: i64 = 48;
/// Appends tried against a head that keeps moving.
const APPEND_ATTEMPTS: u32 = 8;

fn chain_pk(chain: &Chain) -> String {
    format!("AUDIT#{}", chain.key())
}

fn event_sk(seq: u64) -> String {
    format!("{EVENT_SK_PREFIX}{seq:012}")
}

fn head_key(chain: &Chain) -> Item {
    HashMap::from([(PK.into(), s(chain_pk(chain))), (SK.into(), s(HEAD_SK))])
}

/// An event's attribute holding its time in fixed width ([`sort_time`]): what time filters
/// compare (serde's form of `at` varies in width, so its text order is not time order).
const AT_KEY: &str = "at_key";

/// The item of an event: its fields as serde writes them, but `detail` as JSON text (numbers
/// in a map would come back from DynamoDB in another form than they were hashed in).
fn event_item(e: &AuditEvent, retention: Option<&Retention>) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(e).map_err(|e| StoreError::Internal(e.to_string()))?;
    item.insert(
        "detail".into(),
        s(Value::Object(e.detail.clone()).to_string()),
    );
    item.insert(AT_KEY.into(), s(sort_time(e.at)));
    item.insert(PK.into(), s(format!("AUDIT#{}", e.chain)));
    item.insert(SK.into(), s(event_sk(e.seq)));
    if let Some(r) = retention {
        let expires = r.expires_at(&e.action, e.at);
        item.insert(EXPIRES_AT.into(), AttributeValue::N(expires.to_string()));
    }
    Ok(item)
}

fn event_from(mut item: Item) -> Result<AuditEvent, StoreError> {
    let detail = match item.insert("detail".into(), AttributeValue::M(HashMap::new())) {
        Some(AttributeValue::S(text)) => text,
        _ => String::new(),
    };
    let mut e: AuditEvent =
        serde_dynamo::from_item(item).map_err(|e| StoreError::Internal(e.to_string()))?;
    e.detail = match serde_json::from_str(&detail) {
        Ok(Value::Object(m)) => m,
        // An edited event whose detail no longer parses still shows (and fails its hash).
        _ => Map::from_iter([("unreadable".to_string(), detail.into())]),
    };
    Ok(e)
}

impl DynamoStore {
    async fn read_head(&self, chain: &Chain) -> Result<Option<Head>, StoreError> {
        let Some(item) = self.table.get(head_key(chain), None).await? else {
            return Ok(None);
        };
        head_of(&item, chain).map(Some)
    }

    /// A page of `chain`'s events: forwards from sort key `from_sk`, or newest first.
    async fn query_chain(
        &self,
        chain: &Chain,
        from_sk: String,
        forward: bool,
        limit: usize,
        filter: Option<(String, Expr)>,
        after: Option<PageKey>,
    ) -> Result<(Vec<AuditEvent>, Option<PageKey>), StoreError> {
        let pk = chain_pk(chain);
        if let Some(k) = &after {
            let ok = k.0.len() == 2
                && k.0.get(PK) == Some(&pk)
                && k.0.get(SK).is_some_and(|s| s.starts_with(EVENT_SK_PREFIX));
            if !ok {
                return Err(StoreError::BadPageKey);
            }
        }
        let range = if forward {
            (from_sk, format!("{EVENT_SK_PREFIX}~"))
        } else {
            (EVENT_SK_PREFIX.to_string(), format!("{EVENT_SK_PREFIX}~"))
        };
        let (items, next) = self
            .query_between_keys(&pk, range, forward, limit, filter, after)
            .await?;
        let events = items
            .into_iter()
            .map(event_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((events, next))
    }

    /// One Query of partition `pk` between two sort keys, in either direction, filtered.
    pub(crate) async fn query_between_keys(
        &self,
        pk: &str,
        (from, to): (String, String),
        forward: bool,
        limit: usize,
        filter: Option<(String, Expr)>,
        after: Option<PageKey>,
    ) -> Result<(Vec<Item>, Option<PageKey>), StoreError> {
        let (filter, mut e) = match filter {
            Some((f, e)) => (Some(f), e),
            None => (None, Expr::default()),
        };
        let condition = format!(
            "{} = {} AND {} BETWEEN {} AND {}",
            e.name(PK),
            e.s(pk),
            e.name(SK),
            e.s(from),
            e.s(to)
        );
        let out = self
            .table
            .client
            .query()
            .table_name(self.table.name())
            .key_condition_expression(condition)
            .set_filter_expression(filter)
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .scan_index_forward(forward)
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(after.as_ref().map(start_key))
            .send()
            .await
            .map_err(classify)?;
        Ok((
            out.items.unwrap_or_default(),
            page_key(out.last_evaluated_key.as_ref()),
        ))
    }
}

/// The head a head item holds.
fn head_of(item: &Item, chain: &Chain) -> Result<Head, StoreError> {
    let seq = item
        .get("seq")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok());
    let hash = item.get("hash").and_then(|v| v.as_s().ok());
    let at = item
        .get("at")
        .and_then(|v| v.as_s().ok())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match (seq, hash) {
        (Some(seq), Some(hash)) => Ok(Head {
            seq,
            hash: hash.clone(),
            at,
        }),
        _ => Err(StoreError::Internal(format!(
            "the audit chain {} has an unreadable head",
            chain.key()
        ))),
    }
}

/// The FilterExpression of `filter`, if it has any condition.
fn filter_expression(filter: &AuditFilter) -> Option<(String, Expr)> {
    let mut e = Expr::default();
    let mut parts = Vec::new();
    if let Some(a) = &filter.action {
        parts.push(format!("{} = {}", e.name("action"), e.s(a.as_str())));
    }
    if let Some(o) = filter.outcome {
        parts.push(format!("{} = {}", e.name("outcome"), e.s(o.as_str())));
    }
    if let Some(a) = &filter.actor {
        parts.push(format!(
            "{} = {}",
            e.path(&["actor", "id"]),
            e.s(a.as_str())
        ));
    }
    if let Some(t) = &filter.target {
        parts.push(format!(
            "{} = {}",
            e.path(&["target", "id"]),
            e.s(t.as_str())
        ));
    }
    if let Some(from) = filter.from {
        parts.push(format!("{} >= {}", e.name(AT_KEY), e.s(sort_time(from))));
    }
    if let Some(to) = filter.to {
        parts.push(format!("{} < {}", e.name(AT_KEY), e.s(sort_time(to))));
    }
    (!parts.is_empty()).then(|| (parts.join(" AND "), e))
}

/// `t` as serde writes a `DateTime<Utc>` (what a head's `at` holds, read back exactly).
fn at_text(t: DateTime<Utc>) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl AuditLog for DynamoStore {
    fn append<'a>(
        &'a self,
        chain: &'a Chain,
        source: Option<&'a str>,
        drafts: &'a [Draft],
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            if drafts.is_empty() {
                return Ok(true);
            }
            if drafts.len() > MAX_APPEND {
                return Err(StoreError::Internal(format!(
                    "at most {MAX_APPEND} audit events an append, not {}",
                    drafts.len()
                )));
            }
            for _ in 0..APPEND_ATTEMPTS {
                let head = self.read_head(chain).await?;
                let mut prev = head.clone().unwrap_or_else(Head::empty);
                let mut actions = Vec::new();
                if let Some(source) = source {
                    let mut e = Expr::default();
                    let condition = format!("attribute_not_exists({})", e.name(PK));
                    let expires = (Utc::now() + chrono::Duration::hours(SEEN_TTL_HOURS))
                        .timestamp()
                        .to_string();
                    let marker = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(self.table.name())
                        .item(PK, s(format!("AUDITSEEN#{source}")))
                        .item(SK, s(SEEN_SK))
                        .item(EXPIRES_AT, AttributeValue::N(expires))
                        .condition_expression(condition)
                        .set_expression_attribute_names(e.names_opt())
                        .build()
                        .map_err(build)?;
                    actions.push(TransactWriteItem::builder().put(marker).build());
                }
                let head_seq = prev.seq;
                let mut events = Vec::with_capacity(drafts.len());
                for d in drafts {
                    let event = AuditEvent::seal(chain, prev.seq + 1, &prev, d.clone());
                    prev = Head {
                        seq: event.seq,
                        hash: event.hash.clone(),
                        at: Some(event.at),
                    };
                    events.push(event);
                }
                let mut e = Expr::default();
                // The chain joins the unsealed list until the next seal.
                let update = format!(
                    "SET {} = {}, {} = {}, {} = {}, {} = {}, {} = {}",
                    e.name("seq"),
                    e.n(prev.seq),
                    e.name("hash"),
                    e.s(prev.hash.as_str()),
                    e.name("at"),
                    e.s(prev.at.map(at_text).unwrap_or_default()),
                    e.name(GSI2PK),
                    e.s(sparse_pk(UNSEALED, &chain.key())),
                    e.name(GSI2SK),
                    e.s(chain.key())
                );
                let condition = if head.is_some() {
                    format!("{} = {}", e.name("seq"), e.n(head_seq))
                } else {
                    format!("attribute_not_exists({})", e.name(PK))
                };
                let head_index = actions.len();
                actions.push(
                    UpdateParts {
                        key: head_key(chain),
                        update,
                        condition,
                        expr: e,
                    }
                    .action(self.table.name())?,
                );
                for event in &events {
                    let retention = self.audit_retention.as_ref();
                    actions.push(self.put_new(event_item(event, retention)?)?);
                }
                for update in day_figures_updates(self.table.name(), chain, &events)? {
                    actions.push(update);
                }
                match self.table.transact(actions).await {
                    Ok(()) => return Ok(true),
                    Err(TxError::Cancelled(reasons))
                        if source.is_some()
                            && reason_code(&reasons, 0) == Some("ConditionalCheckFailed") =>
                    {
                        return Ok(false);
                    }
                    Err(TxError::Cancelled(reasons))
                        if reason_code(&reasons, head_index) == Some("ConditionalCheckFailed")
                            || reasons
                                .iter()
                                .skip(head_index + 1)
                                .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                    {
                        // Another append moved the head first: start again from it.
                        continue;
                    }
                    Err(TxError::Cancelled(reasons)) => {
                        return Err(StoreError::Internal(format!(
                            "an audit append was cancelled: {:?}",
                            reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                        )));
                    }
                    Err(TxError::Other(e)) => return Err(e),
                }
            }
            Err(StoreError::Unavailable(format!(
                "the audit chain {} kept moving",
                chain.key()
            )))
        })
    }

    fn events<'a>(
        &'a self,
        chain: &'a Chain,
        filter: &'a AuditFilter,
        limit: usize,
        after: Option<PageKey>,
    ) -> Fut<'a, Page<AuditEvent>> {
        Box::pin(async move {
            let (items, next) = self
                .query_chain(
                    chain,
                    EVENT_SK_PREFIX.to_string(),
                    filter.oldest_first,
                    limit,
                    filter_expression(filter),
                    after,
                )
                .await?;
            Ok(Page { items, next })
        })
    }

    fn chain_after<'a>(
        &'a self,
        chain: &'a Chain,
        after_seq: u64,
        limit: usize,
    ) -> Fut<'a, Vec<AuditEvent>> {
        Box::pin(async move {
            let (items, _) = self
                .query_chain(chain, event_sk(after_seq + 1), true, limit, None, None)
                .await?;
            Ok(items)
        })
    }

    fn head<'a>(&'a self, chain: &'a Chain) -> Fut<'a, Option<Head>> {
        Box::pin(self.read_head(chain))
    }

    fn event<'a>(&'a self, chain: &'a Chain, seq: u64) -> Fut<'a, Option<AuditEvent>> {
        Box::pin(async move {
            let key = HashMap::from([
                (PK.into(), s(chain_pk(chain))),
                (SK.into(), s(event_sk(seq))),
            ]);
            self.table.get(key, None).await?.map(event_from).transpose()
        })
    }

    fn unsealed<'a>(&'a self, limit: usize) -> Fut<'a, Vec<(Chain, Head)>> {
        Box::pin(async move {
            let chains: Vec<Chain> = self
                .sparse_index(UNSEALED, limit)
                .await?
                .iter()
                .filter_map(|item| Chain::parse(item.get(GSI2SK)?.as_s().ok()?))
                .collect();
            // The index holds keys only: the heads themselves, consistently, 100 at a time.
            let mut out = Vec::with_capacity(chains.len());
            for batch in chains.chunks(100) {
                for item in self
                    .table
                    .batch_get(batch.iter().map(head_key).collect())
                    .await?
                {
                    let chain = item
                        .get(PK)
                        .and_then(|v| v.as_s().ok())
                        .and_then(|pk| Chain::parse(pk.strip_prefix("AUDIT#")?));
                    if let Some(chain) = chain {
                        let head = head_of(&item, &chain)?;
                        out.push((chain, head));
                    }
                }
            }
            Ok(out)
        })
    }

    fn put_seal<'a>(&'a self, chain: &'a Chain, seal: &'a Seal) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut item: Item =
                serde_dynamo::to_item(seal).map_err(|e| StoreError::Internal(e.to_string()))?;
            item.insert(PK.into(), s(chain_pk(chain)));
            item.insert(SK.into(), s(format!("{SEAL_SK_PREFIX}{:012}", seal.seq)));
            let mut e = Expr::default();
            let head_left = UpdateParts {
                key: head_key(chain),
                update: format!("REMOVE {}, {}", e.name(GSI2PK), e.name(GSI2SK)),
                condition: format!("{} = {}", e.name("seq"), e.n(seal.seq)),
                expr: e,
            };
            let actions = vec![
                TransactWriteItem::builder()
                    .put(
                        aws_sdk_dynamodb::types::Put::builder()
                            .table_name(self.table.name())
                            .set_item(Some(item.clone()))
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
                head_left.action(self.table.name())?,
            ];
            match self.table.transact(actions).await {
                Ok(()) => Ok(()),
                // Events were appended after the sealed head: the seal stands, and the chain
                // stays on the list for the next one.
                Err(TxError::Cancelled(reasons))
                    if reason_code(&reasons, 1) == Some("ConditionalCheckFailed") =>
                {
                    self.table.put_if(item, None, Expr::default()).await?;
                    Ok(())
                }
                Err(TxError::Cancelled(reasons)) => Err(StoreError::Internal(format!(
                    "sealing was cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                ))),
                Err(TxError::Other(e)) => Err(e),
            }
        })
    }

    fn latest_seal<'a>(&'a self, chain: &'a Chain) -> Fut<'a, Option<Seal>> {
        Box::pin(async move {
            let range = (SEAL_SK_PREFIX.to_string(), format!("{SEAL_SK_PREFIX}~"));
            let (items, _) = self
                .query_between_keys(&chain_pk(chain), range, false, 1, None, None)
                .await?;
            items
                .into_iter()
                .next()
                .map(|i| {
                    serde_dynamo::from_item(i).map_err(|e| StoreError::Internal(e.to_string()))
                })
                .transpose()
        })
    }
}

fn day_pk(date: chrono::NaiveDate, shard: usize) -> String {
    format!("AUDITSTAT#{date}#{shard}")
}

/// The updates adding `events` (appended to `chain`) to their days' figures: counters by
/// class, action and outcome, and the privilege changes listed.
fn day_figures_updates(
    table: &str,
    chain: &Chain,
    events: &[AuditEvent],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let shard = chain
        .key()
        .bytes()
        .last()
        .map_or(0, |b| b as usize % DAY_SHARDS);
    let mut days: std::collections::BTreeMap<chrono::NaiveDate, Vec<&AuditEvent>> =
        Default::default();
    for e in events {
        days.entry(e.at.date_naive()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (date, events) in days {
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        let mut changes = Vec::new();
        for e in &events {
            for k in [
                "events".to_string(),
                format!("c#{}", audit::class_of(&e.action)),
                format!("a#{}", e.action),
                format!("o#{}", e.outcome.as_str()),
            ] {
                *counts.entry(k).or_default() += 1;
            }
            if e.action == "auth.login_failed" {
                *counts.entry("failed_logins".into()).or_default() += 1;
            }
            if audit::PRIVILEGE_CHANGES.contains(&e.action.as_str()) {
                let change = PrivilegeChange {
                    at: e.at,
                    chain: e.chain.clone(),
                    action: e.action.clone(),
                    actor: e.actor.clone(),
                    target: e.target.clone(),
                    detail: e.detail.clone(),
                };
                let text = serde_json::to_string(&change)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                changes.push(s(text));
            }
        }
        let mut e = Expr::default();
        let adds: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{} {}", e.name(k), e.n(n)))
            .collect();
        let mut update = format!("ADD {}", adds.join(", "));
        if !changes.is_empty() {
            let list = e.name("privilege_changes");
            update = format!(
                "SET {list} = list_append(if_not_exists({list}, {}), {}) {update}",
                e.value(AttributeValue::L(Vec::new())),
                e.value(AttributeValue::L(changes))
            );
        }
        let key = HashMap::from([(PK.into(), s(day_pk(date, shard))), (SK.into(), s(DAY_SK))]);
        let u = aws_sdk_dynamodb::types::Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update)
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .build()
            .map_err(build)?;
        out.push(TransactWriteItem::builder().update(u).build());
    }
    Ok(out)
}

/// The figures one day's item holds.
fn day_figures_of(item: &Item) -> DayFigures {
    let mut f = DayFigures::default();
    for (k, v) in item {
        let n = || {
            v.as_n()
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if k == "events" {
            f.events = n();
        } else if k == "failed_logins" {
            f.failed_logins = n();
        } else if let Some(c) = k.strip_prefix("c#") {
            f.by_class.insert(c.to_string(), n());
        } else if let Some(a) = k.strip_prefix("a#") {
            f.by_action.insert(a.to_string(), n());
        } else if let Some(o) = k.strip_prefix("o#") {
            f.by_outcome.insert(o.to_string(), n());
        } else if k == "privilege_changes"
            && let AttributeValue::L(list) = v
        {
            f.privilege_changes = list
                .iter()
                .filter_map(|x| x.as_s().ok())
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect();
        }
    }
    f
}

impl DynamoStore {
    /// The figures of `date` (its shards read at once, merged).
    pub(crate) async fn read_day_figures(
        &self,
        date: chrono::NaiveDate,
    ) -> Result<DayFigures, StoreError> {
        let keys = (0..DAY_SHARDS)
            .map(|i| HashMap::from([(PK.into(), s(day_pk(date, i))), (SK.into(), s(DAY_SK))]))
            .collect();
        let mut figures = DayFigures::default();
        for item in self.table.batch_get(keys).await? {
            figures.merge(day_figures_of(&item));
        }
        Ok(figures)
    }
}

impl AuditReports for DynamoStore {
    fn day_figures<'a>(&'a self, date: chrono::NaiveDate) -> Fut<'a, DayFigures> {
        Box::pin(self.read_day_figures(date))
    }

    fn put_report<'a>(&'a self, report: &'a ComplianceReport) -> Fut<'a, ()> {
        Box::pin(async move {
            let text =
                serde_json::to_string(report).map_err(|e| StoreError::Internal(e.to_string()))?;
            let item: Item = HashMap::from([
                (PK.into(), s(REPORT_PK)),
                (SK.into(), s(format!("D#{}", report.date))),
                ("report".into(), s(text)),
            ]);
            self.table.put_if(item, None, Expr::default()).await?;
            Ok(())
        })
    }

    fn report<'a>(&'a self, date: chrono::NaiveDate) -> Fut<'a, Option<ComplianceReport>> {
        Box::pin(async move {
            let key = HashMap::from([
                (PK.into(), s(REPORT_PK)),
                (SK.into(), s(format!("D#{date}"))),
            ]);
            let Some(item) = self.table.get(key, None).await? else {
                return Ok(None);
            };
            report_of(&item).map(Some)
        })
    }

    fn reports<'a>(&'a self, limit: usize) -> Fut<'a, Vec<ComplianceReport>> {
        Box::pin(async move {
            let range = ("D#".to_string(), "D#~".to_string());
            let (items, _) = self
                .query_between_keys(REPORT_PK, range, false, limit, None, None)
                .await?;
            items.iter().map(report_of).collect()
        })
    }
}

fn report_of(item: &Item) -> Result<ComplianceReport, StoreError> {
    let text = item
        .get("report")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Internal("a report item without its report".into()))?;
    serde_json::from_str(text).map_err(|e| StoreError::Internal(e.to_string()))
}

impl AuditInbox for DynamoStore {
    fn note<'a>(&'a self, chain: &'a Chain, draft: &'a Draft) -> Fut<'a, ()> {
        Box::pin(async move {
            let draft_json =
                serde_json::to_string(draft).map_err(|e| StoreError::Internal(e.to_string()))?;
            let expires = (Utc::now() + chrono::Duration::hours(NOTE_TTL_HOURS))
                .timestamp()
                .to_string();
            let item: Item = HashMap::from([
                (PK.into(), s(format!("{NOTE_PK_PREFIX}{}", draft.id))),
                (SK.into(), s(NOTE_SK)),
                ("chain".into(), s(chain.key())),
                ("draft".into(), s(draft_json)),
                (EXPIRES_AT.into(), AttributeValue::N(expires)),
            ]);
            self.table.put_if(item, None, Expr::default()).await?;
            Ok(())
        })
    }
}

/// The note an inbox item holds (its stream image): `Ok(None)` for any other item, `Err` for
/// a note that cannot be read.
pub fn note_of(keys: &Item, new: Option<&Item>) -> Result<Option<(Chain, Draft)>, String> {
    let is_note =
        matches!(keys.get(PK), Some(AttributeValue::S(pk)) if pk.starts_with(NOTE_PK_PREFIX));
    let Some(item) = new.filter(|_| is_note) else {
        return Ok(None);
    };
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.as_str()),
        _ => Err(format!("the audit note has no {k}")),
    };
    let chain = Chain::parse(text("chain")?).ok_or("the audit note names no chain")?;
    let draft = serde_json::from_str(text("draft")?).map_err(|e| format!("draft: {e}"))?;
    Ok(Some((chain, draft)))
}
