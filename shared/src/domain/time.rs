//! Time as stored: UTC with milliseconds.

use chrono::{DateTime, Utc};

/// `t` without its sub-millisecond part (the precision stored and sorted on).
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
