//! A [`Triggers`] fake: records what would have been sent to EventBridge Scheduler, and fails
//! the next call when told to.

use crate::domain::schedule::Schedule;
use crate::ports::{Fut, StoreError, Triggers};
use std::sync::Mutex;

/// One call: `put` (created or replaced) or `delete`.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerCall {
    Put {
        schedule: Box<Schedule>,
        create: bool,
    },
    Delete {
        id: String,
    },
}

#[derive(Default)]
pub struct RecordingTriggers {
    calls: Mutex<Vec<TriggerCall>>,
    fail: Mutex<Option<String>>,
}

impl RecordingTriggers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn calls(&self) -> Vec<TriggerCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The next call fails as an unreachable Scheduler would.
    pub fn fail_next(&self, reason: impl Into<String>) {
        if let Ok(mut f) = self.fail.lock() {
            *f = Some(reason.into());
        }
    }

    fn call(&self, call: TriggerCall) -> Result<(), StoreError> {
        if let Some(reason) = self.fail.lock().ok().and_then(|mut f| f.take()) {
            return Err(StoreError::Unavailable(reason));
        }
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
        Ok(())
    }
}

impl Triggers for RecordingTriggers {
    fn put_trigger<'a>(&'a self, schedule: &'a Schedule, create: bool) -> Fut<'a, ()> {
        let r = self.call(TriggerCall::Put {
            schedule: Box::new(schedule.clone()),
            create,
        });
        Box::pin(async move { r })
    }

    fn delete_trigger<'a>(&'a self, id: &'a str) -> Fut<'a, ()> {
        let r = self.call(TriggerCall::Delete { id: id.to_string() });
        Box::pin(async move { r })
    }
}
