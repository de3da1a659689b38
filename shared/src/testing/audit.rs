//! An [`AuditInbox`] that keeps what it is given, for tests of the handlers that write notes.

use crate::domain::audit::{Chain, Draft};
use crate::ports::{AuditInbox, Fut};
use std::sync::Mutex;

#[derive(Default)]
pub struct RecordingInbox {
    notes: Mutex<Vec<(Chain, Draft)>>,
}

impl RecordingInbox {
    /// Every note so far, in order.
    pub fn notes(&self) -> Vec<(Chain, Draft)> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// The notes of `action`.
    pub fn of(&self, action: &str) -> Vec<(Chain, Draft)> {
        self.notes()
            .into_iter()
            .filter(|(_, d)| d.action == action)
            .collect()
    }
}

impl AuditInbox for RecordingInbox {
    fn note<'a>(&'a self, chain: &'a Chain, draft: &'a Draft) -> Fut<'a, ()> {
        if let Ok(mut n) = self.notes.lock() {
            n.push((chain.clone(), draft.clone()));
        }
        Box::pin(async { Ok(()) })
    }
}
