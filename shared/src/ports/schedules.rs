//! User schedules: the table's view ([`Schedules`]) and the EventBridge Scheduler schedules that
//! fire them ([`Triggers`]).

use super::Fut;
use crate::domain::schedule::{Fire, Schedule};

/// The schedules of workflows, as their users see them.
pub trait Schedules: Send + Sync {
    /// Stores a new schedule, if its workflow has fewer than `max` (`Ok(false)` otherwise).
    fn create_schedule<'a>(&'a self, schedule: &'a Schedule, max: usize) -> Fut<'a, bool>;
    fn get_schedule<'a>(&'a self, workflow_id: &'a str, id: &'a str) -> Fut<'a, Option<Schedule>>;
    /// A workflow's schedules, oldest first (one Query).
    fn list_schedules<'a>(&'a self, workflow_id: &'a str) -> Fut<'a, Vec<Schedule>>;
    /// Writes `schedule` if the stored one is at `expected_version`
    /// ([`super::StoreError::Conflict`] otherwise, or when it is gone).
    fn update_schedule<'a>(&'a self, schedule: &'a Schedule, expected_version: u64) -> Fut<'a, ()>;
    /// Deletes a schedule (a repeat finds nothing and succeeds).
    fn delete_schedule<'a>(&'a self, workflow_id: &'a str, id: &'a str) -> Fut<'a, ()>;
    /// Records what a fire did, unless a later fire is recorded already; leaves the version.
    fn record_fire<'a>(&'a self, workflow_id: &'a str, id: &'a str, fire: &'a Fire) -> Fut<'a, ()>;
}

/// What fires schedules: EventBridge Scheduler.
pub trait Triggers: Send + Sync {
    /// Creates or replaces the trigger of `schedule` (its expression, time zone, state).
    fn put_trigger<'a>(&'a self, schedule: &'a Schedule, create: bool) -> Fut<'a, ()>;
    /// Deletes the trigger of schedule `id` (one already gone is no error).
    fn delete_trigger<'a>(&'a self, id: &'a str) -> Fut<'a, ()>;
}
