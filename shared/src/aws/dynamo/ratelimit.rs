//! [`RateLimitStore`] over the single table: one item per rate limit key, read consistently,
//! decided by [`decide`] and written back only if no one wrote it in between.
//!
//! # Item
//!
//! | item | `PK` | `SK` | other attributes |
//! | --- | --- | --- | --- |
//! | rate limit counter | `RL#<key>` (`RL#sha256:<hex>` for keys over 1024 bytes) | `#RATE` | `state` (map, [`State`]), `version` (number), `expires_at` (TTL, epoch seconds) |
//!
//! # Access pattern
//!
//! | pattern | request | key condition |
//! | --- | --- | --- |
//! | check a request against a limit | GetItem (consistent), then, only if admitted, PutItem | `PK = RL#<key> AND SK = #RATE`; the Put is conditional on `attribute_not_exists(PK)` for a new item, else on `version = <version read>` |
//!
//! An admitted request costs two round trips (read, conditional write), a refused one only the
//! read. A write whose condition fails means another request of the key was admitted since the
//! read: the check reads again and decides again, at most [`ATTEMPTS`] times, with a short
//! random pause. Since every failed attempt of a caller is a distinct admission of another one,
//! a caller refused for contention has seen at least [`ATTEMPTS`] admissions meanwhile; it gets
//! a refusal with [`CONTENDED_RETRY_AFTER`], never an error.
//!
//! `expires_at` is a little after the time the state stops mattering (when the limit's whole
//! capacity is available again, [`Decision::reset_after`]); the table's TTL removes the item
//! some time after that. An expired item still present is read as any other: its state decides
//! exactly as no state would.

use super::expr::Expr;
use super::items::{EXPIRES_AT, Item};
use super::keys::{PK, SK};
use super::table::Table;
use crate::domain::ratelimit::{Decision, Limit, State, decide};
use crate::ports::{Fut, RateLimitStore, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Reads and conditional writes one check tries before refusing for contention.
pub const ATTEMPTS: u32 = 8;
/// The wait a request refused for contention is told (the smallest `Retry-After` there is).
pub const CONTENDED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long an item outlives the time its state stops mattering.
const EXPIRY_MARGIN_SECONDS: i64 = 60;
/// Keys longer than this are stored by their hash (a partition key holds at most 2048 bytes).
const MAX_PLAIN_KEY_BYTES: usize = 1024;

const RATE_SK: &str = "#RATE";
const STATE: &str = "state";
const VERSION: &str = "version";

/// Rate limit counters in the single table.
#[derive(Clone, Debug)]
pub struct DynamoRateLimits {
    table: Table,
}

/// What a read found: the state (none for a new key) and the version to write against.
struct Read {
    state: Option<State>,
    version: Option<u64>,
}

fn rate_pk(key: &str) -> String {
    if key.len() <= MAX_PLAIN_KEY_BYTES {
        return format!("RL#{key}");
    }
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("RL#sha256:{hex}")
}

fn rate_key(key: &str) -> Item {
    HashMap::from([
        (PK.into(), AttributeValue::S(rate_pk(key))),
        (SK.into(), AttributeValue::S(RATE_SK.into())),
    ])
}

/// The TTL of an item written at `now_ms` with `decision` (epoch seconds).
fn expires_at(now_ms: i64, decision: &Decision) -> i64 {
    let reset_ms = i64::try_from(decision.reset_after.as_millis()).unwrap_or(i64::MAX / 2);
    let until_ms = now_ms.saturating_add(reset_ms);
    until_ms.div_euclid(1000) + i64::from(until_ms.rem_euclid(1000) > 0) + EXPIRY_MARGIN_SECONDS
}

/// A pause of 0..2^attempt ms (at most 32 ms), different for each caller, so that callers who
/// collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(random % (1u64 << attempt.clamp(1, 5)))
}

impl DynamoRateLimits {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRateLimits {
            table: Table::new(client, table),
        }
    }

    pub fn table(&self) -> &str {
        self.table.name()
    }

    async fn read(&self, key: &str) -> Result<Read, StoreError> {
        let item = self.table.get(rate_key(key), None).await?;
        let Some(item) = item else {
            return Ok(Read {
                state: None,
                version: None,
            });
        };
        let version = item
            .get(VERSION)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| StoreError::Internal(format!("rate limit item {key}: no version")))?;
        // A state this code cannot read (another format) counts as none; the version still
        // guards the write that replaces it.
        let state = match item
            .get(STATE)
            .cloned()
            .map(serde_dynamo::from_attribute_value)
        {
            Some(Ok(state)) => Some(state),
            Some(Err(e)) => {
                tracing::warn!(key, error = %e, "unreadable rate limit state replaced");
                None
            }
            None => None,
        };
        Ok(Read {
            state,
            version: Some(version),
        })
    }

    /// Writes the decision's state if the item is still at `read_version`; `false` when another
    /// write came first.
    async fn write(
        &self,
        key: &str,
        read_version: Option<u64>,
        decision: &Decision,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let state: AttributeValue = serde_dynamo::to_attribute_value(decision.new_state)
            .map_err(|e| StoreError::Internal(format!("rate limit state: {e}")))?;
        let mut item = rate_key(key);
        item.insert("type".into(), AttributeValue::S("rate_limit".into()));
        item.insert(STATE.into(), state);
        item.insert(
            VERSION.into(),
            AttributeValue::N((read_version.unwrap_or(0) + 1).to_string()),
        );
        item.insert(
            EXPIRES_AT.into(),
            AttributeValue::N(expires_at(now_ms, decision).to_string()),
        );
        let mut e = Expr::default();
        let condition = match read_version {
            None => format!("attribute_not_exists({})", e.name(PK)),
            Some(v) => format!("{} = {}", e.name(VERSION), e.n(v)),
        };
        self.table.put_if(item, Some(condition), e).await
    }
}

impl RateLimitStore for DynamoRateLimits {
    fn check<'a>(&'a self, key: &'a str, limit: &'a Limit, now_ms: i64) -> Fut<'a, Decision> {
        Box::pin(async move {
            let mut last = None;
            for attempt in 1..=ATTEMPTS {
                if attempt > 1 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                let read = self.read(key).await?;
                let decision = decide(limit, read.state, now_ms);
                if !decision.allowed || self.write(key, read.version, &decision, now_ms).await? {
                    return Ok(decision);
                }
                last = Some(decision);
            }
            tracing::info!(
                key,
                attempts = ATTEMPTS,
                "rate limit check refused for contention"
            );
            let last = last.ok_or_else(|| StoreError::Internal("no attempt was made".into()))?;
            Ok(Decision {
                allowed: false,
                remaining: 0,
                retry_after: Some(CONTENDED_RETRY_AFTER),
                ..last
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ratelimit::Algorithm;

    #[test]
    fn long_keys_are_stored_by_their_hash() {
        assert_eq!(rate_pk("route:GET /x|user:a"), "RL#route:GET /x|user:a");
        let long = "k".repeat(MAX_PLAIN_KEY_BYTES + 1);
        let pk = rate_pk(&long);
        assert!(pk.starts_with("RL#sha256:") && pk.len() == 10 + 64, "{pk}");
        assert_ne!(pk, rate_pk(&"k".repeat(MAX_PLAIN_KEY_BYTES + 2)));
    }

    #[test]
    fn items_expire_a_margin_after_the_state_stops_mattering() {
        let limit = Limit::new(Algorithm::FixedWindow, 5, Duration::from_secs(60)).unwrap();
        // Window [60 s, 120 s): at 90.5 s the state matters until 120 s.
        let d = decide(&limit, None, 90_500);
        assert_eq!(expires_at(90_500, &d), 120 + EXPIRY_MARGIN_SECONDS);
        let limit = Limit::new(Algorithm::TokenBucket, 2, Duration::from_millis(1500)).unwrap();
        // One token back after 750 ms: 10.75 s, rounded up.
        let d = decide(&limit, None, 10_000);
        assert_eq!(expires_at(10_000, &d), 11 + EXPIRY_MARGIN_SECONDS);
    }

    #[test]
    fn backoff_stays_short() {
        for attempt in 0..20 {
            assert!(backoff(attempt) < Duration::from_millis(32));
        }
    }
}
