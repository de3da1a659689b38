//! The analytics counters: hour and day buckets per user, workflow and the system.

use super::Fut;
use crate::domain::analytics::{Bucket, Scope, Tally, Window};

pub trait Analytics: Send + Sync {
    /// Adds `tally` to the hour and the day of `tally.at`, for its owner, its workflow and the
    /// system, exactly once per `event_id` (the stream record's id): `Ok(false)` when that
    /// change was counted before (a retried batch), and nothing is added again.
    fn record<'a>(&'a self, event_id: &'a str, tally: &'a Tally) -> Fut<'a, bool>;
    /// The buckets of `scope` that start in `window`, at its granularity (one Query).
    fn buckets<'a>(&'a self, scope: &'a Scope, window: &'a Window) -> Fut<'a, Vec<Bucket>>;
}
