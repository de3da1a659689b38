//! The wall clock: the [`Clock`] adapter every function wires.

use crate::domain::time::truncate_to_millis;
use crate::ports::Clock;
use chrono::{DateTime, Utc};

/// The wall clock, truncated to milliseconds (the precision stored and sorted on).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_millis(Utc::now())
    }
}
