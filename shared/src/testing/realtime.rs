//! A [`Poster`] that records what it was asked to send, and answers as told: some connections
//! gone (410), some throttled (429) a number of times first.

use crate::ports::{PostError, Poster};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

#[derive(Default)]
pub struct RecordingPoster {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    delivered: Vec<(String, String)>,
    attempts: u64,
    gone: HashSet<String>,
    throttle: HashMap<String, u32>,
}

impl RecordingPoster {
    pub fn new() -> RecordingPoster {
        RecordingPoster::default()
    }

    /// Posts to `connection_id` answer 410 from now on.
    pub fn gone(&self, connection_id: &str) {
        self.lock().gone.insert(connection_id.to_string());
    }

    /// The next `times` posts to `connection_id` answer 429.
    pub fn throttle(&self, connection_id: &str, times: u32) {
        self.lock()
            .throttle
            .insert(connection_id.to_string(), times);
    }

    /// Every frame delivered, as (connection, frame), in order.
    pub fn delivered(&self) -> Vec<(String, String)> {
        self.lock().delivered.clone()
    }

    /// The frames delivered to one connection, parsed, in order.
    pub fn frames_to(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.lock()
            .delivered
            .iter()
            .filter(|(c, _)| c == connection_id)
            .filter_map(|(_, f)| serde_json::from_str(f).ok())
            .collect()
    }

    /// Every post tried, delivered or not.
    pub fn attempts(&self) -> u64 {
        self.lock().attempts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Poster for RecordingPoster {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), PostError>> + Send + 'a>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.attempts += 1;
            if s.gone.contains(connection_id) {
                return Err(PostError::Gone);
            }
            if let Some(n) = s.throttle.get_mut(connection_id)
                && *n > 0
            {
                *n -= 1;
                return Err(PostError::Throttled);
            }
            s.delivered
                .push((connection_id.to_string(), frame.to_string()));
            Ok(())
        })
    }
}
