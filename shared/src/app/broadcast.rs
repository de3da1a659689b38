//! Sending messages to the connections they are for (`ws-broadcast`, and the worker's live
//! text): who follows each workflow (one Query per workflow) or which connections a user has,
//! then every connection's frames in order, with a bounded number of connections served at
//! once. A connection that is gone (410) is forgotten with its subscriptions; a throttled post
//! (429) is retried with exponential backoff and full jitter; any other failure is counted and
//! dropped, since a client that missed a message reads the state over REST.

use crate::domain::broadcast::{Audience, Message};
use crate::ports::{Connections, PostError, Poster, StoreError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// How a fan-out is carried out.
#[derive(Debug, Clone, Copy)]
pub struct FanOut {
    /// Connections posted to at once.
    pub concurrency: usize,
    /// Retries of a throttled post before it is given up.
    pub throttle_retries: u32,
    /// The first retry's upper bound; each later one doubles it.
    pub backoff: Duration,
}

impl Default for FanOut {
    fn default() -> Self {
        FanOut {
            concurrency: 64,
            throttle_retries: 4,
            backoff: Duration::from_millis(50),
        }
    }
}

/// What became of a fan-out, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Connections that had at least one message to receive.
    pub connections: u64,
    /// Frames delivered.
    pub sent: u64,
    /// Connections found gone (and forgotten).
    pub gone: u64,
    /// Frames not delivered for another reason (throttled past the retries included).
    pub failed: u64,
    /// Posts answered 429 (each retry counted).
    pub throttled: u64,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, o: Delivery) {
        self.connections += o.connections;
        self.sent += o.sent;
        self.gone += o.gone;
        self.failed += o.failed;
        self.throttled += o.throttled;
    }
}

impl Delivery {
    /// One EMF record of a fan-out (`crate::emf`, by `[Service]`): `FanOutSize` (one value per
    /// message: the connections it was for), `FanOutConnections`, `FramesSent`,
    /// `ConnectionsGone`, `PostsThrottled` and `PostsFailed`.
    pub fn emit_metrics(&self, fan_out_sizes: &[f64]) {
        use crate::emf::{Record, Unit, metric};
        Record::new()
            .values(metric::FAN_OUT_SIZE, Unit::Count, fan_out_sizes)
            .count(metric::FAN_OUT_CONNECTIONS, self.connections)
            .count(metric::FRAMES_SENT, self.sent)
            .count(metric::CONNECTIONS_GONE, self.gone)
            .count(metric::POSTS_THROTTLED, self.throttled)
            .count(metric::POSTS_FAILED, self.failed)
            .emit();
    }
}

/// Makes the connections of each `(user, workflow)` stop following the workflow (a share
/// revoked): one Query of the user's connections, one delete per subscription they hold. A
/// connection that did not follow it is left as it is.
pub async fn unsubscribe_revoked(
    connections: &(impl Connections + ?Sized),
    revoked: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut removed = 0;
    for (user, workflow_id) in revoked {
        for id in connections.user_connections(user, now).await? {
            if connections.unsubscribe(&id, workflow_id).await? {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The connections each message is for: one lookup per distinct audience.
pub async fn recipients(
    connections: &(impl Connections + ?Sized),
    messages: &[Message],
    now: DateTime<Utc>,
) -> Result<HashMap<Audience, Vec<String>>, StoreError> {
    let mut found: HashMap<Audience, Vec<String>> = HashMap::new();
    for m in messages {
        if found.contains_key(&m.audience) {
            continue;
        }
        let ids = match &m.audience {
            Audience::Workflow(id) => connections.subscribers(id, now).await?,
            Audience::User(id) => connections.user_connections(id, now).await?,
        };
        found.insert(m.audience.clone(), ids);
    }
    Ok(found)
}

/// Sends `messages` to the connections they are for, each connection's in the order given.
/// Fails only when the recipients cannot be read (nothing was sent then).
pub async fn deliver(
    connections: &(impl Connections + ?Sized),
    poster: &(impl Poster + ?Sized),
    messages: &[Message],
    now: DateTime<Utc>,
    how: FanOut,
) -> Result<Delivery, StoreError> {
    if messages.is_empty() {
        return Ok(Delivery::default());
    }
    let found = recipients(connections, messages, now).await?;
    let mut frames: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for m in messages {
        for id in found.get(&m.audience).into_iter().flatten() {
            let i = *at.entry(id.as_str()).or_insert_with(|| {
                frames.push((id.as_str(), Vec::new()));
                frames.len() - 1
            });
            frames[i].1.push(m.frame.as_str());
        }
    }
    let delivery = post_all(connections, poster, &frames, how).await;
    let sizes: Vec<f64> = messages
        .iter()
        .map(|m| found.get(&m.audience).map_or(0, Vec::len) as f64)
        .collect();
    delivery.emit_metrics(&sizes);
    Ok(delivery)
}

/// Posts each connection's frames in order, `how.concurrency` connections at a time.
pub async fn post_all(
    connections: &(impl Connections + ?Sized),
    poster: &(impl Poster + ?Sized),
    frames: &[(&str, Vec<&str>)],
    how: FanOut,
) -> Delivery {
    futures_util::stream::iter(frames)
        .map(|(id, frames)| post_in_order(connections, poster, id, frames, how))
        .buffer_unordered(how.concurrency.max(1))
        .fold(Delivery::default(), |mut total, d| async move {
            total += d;
            total
        })
        .await
}

async fn post_in_order(
    connections: &(impl Connections + ?Sized),
    poster: &(impl Poster + ?Sized),
    id: &str,
    frames: &[&str],
    how: FanOut,
) -> Delivery {
    let mut d = Delivery {
        connections: 1,
        ..Delivery::default()
    };
    for (i, frame) in frames.iter().enumerate() {
        match post_with_backoff(poster, id, frame, how, &mut d.throttled).await {
            Ok(()) => d.sent += 1,
            Err(PostError::Gone) => {
                d.gone = 1;
                d.failed += (frames.len() - i - 1) as u64;
                if let Err(e) = connections.remove_connection(id).await {
                    tracing::warn!(connection_id = id, error = %e, "could not forget a gone connection");
                }
                break;
            }
            Err(e) => {
                tracing::warn!(connection_id = id, error = %e, "message not delivered");
                d.failed += 1;
            }
        }
    }
    d
}

/// One post, retried while throttled: the n-th retry waits a random time below
/// `backoff * 2^n` (full jitter).
async fn post_with_backoff(
    poster: &(impl Poster + ?Sized),
    id: &str,
    frame: &str,
    how: FanOut,
    throttled: &mut u64,
) -> Result<(), PostError> {
    let mut attempt = 0;
    loop {
        let posted = poster.post(id, frame).await;
        if matches!(posted, Err(PostError::Throttled)) {
            *throttled += 1;
        }
        match posted {
            Err(PostError::Throttled) if attempt < how.throttle_retries => {
                let cap = how.backoff.saturating_mul(1 << attempt.min(16));
                tokio::time::sleep(cap.mul_f64(jitter())).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A random number in [0, 1).
fn jitter() -> f64 {
    (ulid::Ulid::new().random() & 0xFFFF_FFFF) as f64 / (1u64 << 32) as f64
}

/// The node whose text is being written, as its `node_delta` messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTarget {
    pub workflow_id: String,
    pub node_id: String,
    pub run_id: String,
    pub attempt: u32,
}

/// Live text: what a generator streams reaches the workflow's followers as `node_delta`
/// messages, at most one batch per `interval` (the specification's 250 ms), so a client shows
/// the document being written. Followers are read at the first batch and again every
/// `followers_ttl`; with none, nothing is posted.
#[derive(Clone, Copy)]
pub struct LiveText<'a> {
    pub connections: &'a dyn Connections,
    pub poster: &'a dyn Poster,
    pub interval: Duration,
    pub followers_ttl: Duration,
    pub fan_out: FanOut,
}

/// Text streamed by a generator and not yet sent (its `on_delta` appends here).
#[derive(Default)]
pub struct LiveBuffer(std::sync::Mutex<String>);

impl LiveBuffer {
    pub fn push(&self, piece: &str) {
        self.lock().push_str(piece);
    }

    fn take(&self) -> String {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<'a> LiveText<'a> {
    pub fn new(connections: &'a dyn Connections, poster: &'a dyn Poster) -> LiveText<'a> {
        LiveText {
            connections,
            poster,
            interval: Duration::from_millis(250),
            followers_ttl: Duration::from_secs(2),
            fan_out: FanOut::default(),
        }
    }

    /// Runs `generation` (whose deltas go to `buffer`) to its end, sending what the buffer
    /// holds every `interval` and once more at the end. Sending never delays or fails the
    /// generation: a batch being posted when the generation ends is finished first.
    pub async fn around<T>(
        &self,
        target: &LiveTarget,
        buffer: &LiveBuffer,
        generation: impl std::future::Future<Output = T>,
    ) -> T {
        let mut state = Sent::default();
        let mut generation = std::pin::pin!(generation);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut generation => break result,
                _ = tick.tick() => self.flush(target, buffer, &mut state).await,
            }
        };
        self.flush(target, buffer, &mut state).await;
        // One record per generation, not per batch: the batches of one are one fan-out.
        if state.delivery.connections > 0 {
            state.delivery.emit_metrics(&state.sizes);
        }
        result
    }

    async fn flush(&self, target: &LiveTarget, buffer: &LiveBuffer, sent: &mut Sent) {
        let text = buffer.take();
        if text.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        if sent
            .followers_at
            .is_none_or(|at| now.duration_since(at) >= self.followers_ttl)
        {
            match self
                .connections
                .subscribers(&target.workflow_id, Utc::now())
                .await
            {
                Ok(ids) => sent.followers = ids,
                Err(e) => tracing::warn!(error = %e, "live text: followers unavailable"),
            }
            sent.followers_at = Some(now);
        }
        let messages = crate::domain::broadcast::node_deltas(
            &target.workflow_id,
            &target.node_id,
            &target.run_id,
            target.attempt,
            sent.seq,
            sent.offset,
            &text,
        );
        sent.seq += messages.len() as u64;
        sent.offset += text.chars().count();
        if sent.followers.is_empty() {
            return;
        }
        let frames: Vec<&str> = messages.iter().map(|m| m.frame.as_str()).collect();
        let all: Vec<(&str, Vec<&str>)> = sent
            .followers
            .iter()
            .map(|id| (id.as_str(), frames.clone()))
            .collect();
        let d = post_all(self.connections, self.poster, &all, self.fan_out).await;
        sent.delivery += d;
        sent.sizes.push(sent.followers.len() as f64);
        if d.gone > 0 {
            // Read them again next time rather than post to the gone ones.
            sent.followers_at = None;
        }
    }
}

#[derive(Default)]
struct Sent {
    seq: u64,
    offset: usize,
    followers: Vec<String>,
    followers_at: Option<std::time::Instant>,
    /// What the batches came to, and each batch's fan-out size (for one metrics record).
    delivery: Delivery,
    sizes: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::realtime::Connection;
    use crate::emf::{Capture, dimension_sets, metric};
    use crate::ports::Fut;
    use crate::testing::realtime::RecordingPoster;

    /// Followers per workflow; forgetting a connection always succeeds.
    struct Followers(HashMap<String, Vec<String>>);

    impl Connections for Followers {
        fn add_connection<'a>(&'a self, _: &'a Connection) -> Fut<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn get_connection<'a>(
            &'a self,
            _: &'a str,
            _: DateTime<Utc>,
        ) -> Fut<'a, Option<Connection>> {
            Box::pin(async { Ok(None) })
        }
        fn remove_connection<'a>(&'a self, _: &'a str) -> Fut<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn subscribe<'a>(&'a self, _: &'a Connection, _: &'a str, _: u64) -> Fut<'a, bool> {
            Box::pin(async { Ok(true) })
        }
        fn unsubscribe<'a>(&'a self, _: &'a str, _: &'a str) -> Fut<'a, bool> {
            Box::pin(async { Ok(false) })
        }
        fn connection_stats<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: DateTime<Utc>,
        ) -> Fut<'a, (u64, u64)> {
            Box::pin(async { Ok((0, 0)) })
        }
        fn subscribers<'a>(
            &'a self,
            workflow_id: &'a str,
            _: DateTime<Utc>,
        ) -> Fut<'a, Vec<String>> {
            let ids = self.0.get(workflow_id).cloned().unwrap_or_default();
            Box::pin(async move { Ok(ids) })
        }
        fn user_connections<'a>(&'a self, _: &'a str, _: DateTime<Utc>) -> Fut<'a, Vec<String>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn message(workflow_id: &str) -> Message {
        Message {
            audience: Audience::Workflow(workflow_id.into()),
            frame: format!(r#"{{"type":"workflow_update","workflow_id":"{workflow_id}"}}"#),
        }
    }

    #[tokio::test]
    async fn a_fan_out_emits_its_sizes_gone_connections_and_throttled_posts() {
        let connections = Followers(HashMap::from([
            (
                "w1".to_string(),
                vec!["a".to_string(), "b".to_string(), "c".to_string()],
            ),
            ("w2".to_string(), vec!["a".to_string()]),
        ]));
        let poster = RecordingPoster::new();
        poster.gone("b");
        poster.throttle("c", 2);
        let how = FanOut {
            backoff: Duration::from_millis(1),
            ..FanOut::default()
        };
        let capture = Capture::start();
        let messages = [message("w1"), message("w2"), message("nobody")];
        let d = deliver(&connections, &poster, &messages, Utc::now(), how)
            .await
            .unwrap();
        assert_eq!((d.connections, d.sent, d.gone, d.throttled), (3, 3, 1, 2));
        let records = capture.with_metric(metric::FAN_OUT_SIZE);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(dimension_sets(r), [vec!["Service"]]);
        assert_eq!(
            r["FanOutSize"],
            serde_json::json!([3, 1, 0]),
            "one value per message"
        );
        assert_eq!(r["FanOutConnections"], 3);
        assert_eq!(r["FramesSent"], 3);
        assert_eq!(r["ConnectionsGone"], 1);
        assert_eq!(r["PostsThrottled"], 2);
        assert_eq!(r["PostsFailed"], 0);

        // Nothing to send: no record.
        deliver(&connections, &poster, &[], Utc::now(), how)
            .await
            .unwrap();
        assert_eq!(capture.lines().len(), 1);
    }
}
