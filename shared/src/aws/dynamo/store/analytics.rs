//! [`Analytics`] over the table: counters of hours and days, per user, workflow and the system.
//!
//! | item | `PK` | `SK` | attributes |
//! | --- | --- | --- | --- |
//! | hour bucket | `AGG#U#<user>`, `AGG#W#<workflow>` or `AGG#SYS` | `H#<yyyy-mm-ddThh>#<group>` | one number per counter and non-empty histogram bucket; `expires_at` 100 days on |
//! | day bucket | the same | `D#<yyyy-mm-dd>#<group>` | the same, kept |
//! | change counted | `AGGSEEN#<stream event id>` | `#SEEN` | `expires_at` 2 days on (the stream keeps records 24 h) |
//!
//! `<group>` is `all` or `m#<model>` ([`Group::key`]).
//!
//! Access patterns:
//! - count a change: TransactWriteItems of the "counted" marker (`attribute_not_exists`) and an
//!   Update `ADD` per bucket item (owner, workflow and system; hour and day; each group): a
//!   retried stream batch finds the marker and adds nothing, and a failed transaction adds
//!   nothing either, so each change is counted exactly once;
//! - read a range: one Query per scope, `PK = AGG#... AND SK BETWEEN H#<from> AND H#<last>#~`
//!   (hours for ranges up to 7 days, days beyond, so a year is 365 items per group).
//!
//! Counting into the day items in the same transaction keeps long ranges exact and current,
//! with no rollup job to lag behind or to run twice.

use super::super::table::reason_code;
use super::*;
use crate::domain::analytics::{Bucket, Granularity, Group, Scope, Tally, Window};

const SEEN_SK: &str = "#SEEN";
/// How long hour buckets are kept (ranges past 7 days read days).
const HOUR_TTL_DAYS: i64 = 100;
/// How long a change's "counted" marker is kept: past the stream's 24 h retention.
const SEEN_TTL_HOURS: i64 = 48;

fn scope_pk(scope: &Scope) -> String {
    match scope {
        Scope::User(u) => format!("AGG#U#{u}"),
        Scope::Workflow(w) => format!("AGG#W#{w}"),
        Scope::System => "AGG#SYS".into(),
    }
}

fn period(granularity: Granularity, t: DateTime<Utc>) -> String {
    match granularity {
        Granularity::Hour => format!("H#{}", t.format("%Y-%m-%dT%H")),
        Granularity::Day => format!("D#{}", t.format("%Y-%m-%d")),
    }
}

/// The bucket start and group of a sort key written by [`period`].
fn parse_sk(sk: &str) -> Option<(DateTime<Utc>, Group)> {
    let (kind, rest) = sk.split_once('#')?;
    let (time, group) = rest.split_once('#')?;
    let start = match kind {
        "H" => {
            chrono::NaiveDateTime::parse_from_str(&format!("{time}:00"), "%Y-%m-%dT%H:%M").ok()?
        }
        "D" => chrono::NaiveDate::parse_from_str(time, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?,
        _ => return None,
    };
    Some((start.and_utc(), Group::from_key(group)?))
}

fn bucket_from(item: &Item) -> Option<Bucket> {
    let Some(AttributeValue::S(sk)) = item.get(SK) else {
        return None;
    };
    let (start, group) = parse_sk(sk)?;
    let counters = item
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), PK | SK | "expires_at"))
        .filter_map(|(k, v)| match v {
            AttributeValue::N(n) => Some((k.clone(), n.parse().ok()?)),
            _ => None,
        })
        .collect();
    Some(Bucket {
        start,
        group,
        counters,
    })
}

impl DynamoStore {
    fn bucket_update(
        &self,
        pk: String,
        sk: String,
        counters: &std::collections::BTreeMap<String, u64>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::default();
        let adds: Vec<String> = counters
            .iter()
            .map(|(name, by)| format!("{} {}", e.name(name), e.n(by)))
            .collect();
        let mut update = format!("ADD {}", adds.join(", "));
        if let Some(t) = expires_at {
            update += &format!(" SET {} = {}", e.name("expires_at"), e.n(t.timestamp()));
        }
        let update = Update::builder()
            .table_name(self.table.name())
            .key(PK, AttributeValue::S(pk))
            .key(SK, AttributeValue::S(sk))
            .update_expression(update)
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .build()
            .map_err(build)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

impl Analytics for DynamoStore {
    fn record<'a>(&'a self, event_id: &'a str, tally: &'a Tally) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = format!("attribute_not_exists({})", e.name(PK));
            let marker = Put::builder()
                .table_name(self.table.name())
                .item(PK, AttributeValue::S(format!("AGGSEEN#{event_id}")))
                .item(SK, AttributeValue::S(SEEN_SK.into()))
                .item(
                    "expires_at",
                    AttributeValue::N(
                        (Utc::now() + chrono::Duration::hours(SEEN_TTL_HOURS))
                            .timestamp()
                            .to_string(),
                    ),
                )
                .condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .build()
                .map_err(build)?;
            let mut actions = vec![TransactWriteItem::builder().put(marker).build()];
            let scopes = [
                Scope::User(tally.owner_id.clone()),
                Scope::Workflow(tally.workflow_id.clone()),
                Scope::System,
            ];
            for scope in &scopes {
                for granularity in [Granularity::Hour, Granularity::Day] {
                    let start = granularity.floor(tally.at);
                    let expires = (granularity == Granularity::Hour)
                        .then(|| start + chrono::Duration::days(HOUR_TTL_DAYS));
                    for (group, counters) in &tally.groups {
                        let sk = format!("{}#{}", period(granularity, start), group.key());
                        actions.push(self.bucket_update(scope_pk(scope), sk, counters, expires)?);
                    }
                }
            }
            match self.table.transact(actions).await {
                Ok(()) => Ok(true),
                Err(TxError::Cancelled(reasons))
                    if reason_code(&reasons, 0) == Some("ConditionalCheckFailed") =>
                {
                    Ok(false)
                }
                Err(TxError::Cancelled(reasons)) => Err(StoreError::Internal(format!(
                    "counting a change was cancelled: {:?}",
                    reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                ))),
                Err(TxError::Other(e)) => Err(e),
            }
        })
    }

    fn buckets<'a>(&'a self, scope: &'a Scope, window: &'a Window) -> Fut<'a, Vec<Bucket>> {
        Box::pin(async move {
            let last = window.to - window.granularity.step();
            let from = period(window.granularity, window.from);
            let to = format!("{}#~", period(window.granularity, last));
            let items = self
                .table
                .query_between(&scope_pk(scope), &from, &to)
                .await?;
            Ok(items.iter().filter_map(bucket_from).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sort_keys_sort_in_time_order_and_read_back() {
        let t = Utc
            .with_ymd_and_hms(2026, 3, 9, 7, 45, 0)
            .single()
            .expect("t");
        let h = period(Granularity::Hour, Granularity::Hour.floor(t));
        assert_eq!(h, "H#2026-03-09T07");
        let d = period(Granularity::Day, Granularity::Day.floor(t));
        assert_eq!(d, "D#2026-03-09");
        let hour = Utc
            .with_ymd_and_hms(2026, 3, 9, 7, 0, 0)
            .single()
            .expect("t");
        let day = Utc
            .with_ymd_and_hms(2026, 3, 9, 0, 0, 0)
            .single()
            .expect("t");
        assert_eq!(parse_sk(&format!("{h}#all")), Some((hour, Group::All)));
        assert_eq!(
            parse_sk(&format!("{d}#m#openai:gpt#4")),
            Some((day, Group::Model("openai:gpt#4".into())))
        );
        assert_eq!(parse_sk("X#1#all"), None);
        assert!(format!("{h}#all") < format!("{h}#~"));
        assert!(format!("{h}#m#z") < format!("{h}#~"));
    }
}
