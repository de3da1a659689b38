//! Key formats of the single table (see the module docs of [`super`]).

use chrono::{DateTime, SecondsFormat, Utc};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI2: &str = "GSI2";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";

pub const WORKFLOW_SK: &str = "#WORKFLOW";
pub const NODE_SK_PREFIX: &str = "NODE#";
pub const IDEMPOTENCY_SK: &str = "#IDEMPOTENCY";

pub fn workflow_pk(id: &str) -> String {
    format!("WF#{id}")
}

pub fn node_sk(id: &str) -> String {
    format!("{NODE_SK_PREFIX}{id}")
}

pub fn owner_pk(owner_id: &str) -> String {
    format!("OWNER#{owner_id}")
}

/// Fixed-width UTC time with milliseconds: sorts as text in time order.
pub fn sort_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn owner_sk(created_at: DateTime<Utc>, id: &str) -> String {
    format!("WF#{}#{id}", sort_time(created_at))
}

/// Lowest `GSI1SK` of workflows created strictly after `t` (`~` sorts after every id).
pub fn owner_sk_after(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("WF#{}#~", sort_time(t)),
        None => "WF#".to_string(),
    }
}

/// Highest `GSI1SK` of workflows created strictly before `t`.
pub fn owner_sk_before(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("WF#{}#", sort_time(t)),
        None => "WF#~".to_string(),
    }
}

pub fn idempotency_pk(owner_id: &str, key: &str) -> String {
    format!("IDEM#{owner_id}#{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_sort_keys_order_by_time_and_bound_strictly() {
        let t1 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let t2 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00.5Z")
            .unwrap()
            .to_utc();
        let a = owner_sk(t1, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let b = owner_sk(t2, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert!(a < b);
        assert!(owner_sk_after(Some(t1)) > a && owner_sk_after(Some(t1)) < b);
        assert!(owner_sk_before(Some(t2)) > a && owner_sk_before(Some(t2)) < b);
        assert!(owner_sk_after(None) < a && owner_sk_before(None) > b);
    }
}
