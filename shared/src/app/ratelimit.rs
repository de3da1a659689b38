//! Rate limiting over any [`RateLimitStore`]: the per-instance [`MemoryFront`].
//!
//! The rules are in [`crate::domain::ratelimit`]; the shared counters in a store such as
//! [`crate::aws::dynamo::DynamoRateLimits`].

use crate::domain::ratelimit::{Decision, Limit};
use crate::ports::RateLimitStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Keys a [`MemoryFront`] remembers by default.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

use crate::ports::Fut;

/// Remembers, in this instance, the keys the store refused and until when, and refuses them
/// again without asking the store until then.
///
/// A refusal says no request of the key is admitted before `now + retry_after`, whoever sends
/// it, so answering locally until then gives the answer the store would give, without its round
/// trip. Admissions always go to the store (they must be counted where every instance sees
/// them). At most `max_keys` refusals are remembered; when full, ones that have run out are
/// dropped, and if none has, the new one is not remembered (it is answered by the store again).
pub struct MemoryFront<S> {
    inner: S,
    max_keys: usize,
    refused: Mutex<HashMap<String, Refusal>>,
}

struct Refusal {
    limit: Limit,
    /// When the store refused, and until when (epoch ms).
    at_ms: i64,
    until_ms: i64,
    decision: Decision,
}

impl<S: RateLimitStore> MemoryFront<S> {
    pub fn new(inner: S) -> Self {
        Self::with_max_keys(inner, DEFAULT_MAX_KEYS)
    }

    pub fn with_max_keys(inner: S, max_keys: usize) -> Self {
        MemoryFront {
            inner,
            max_keys,
            refused: Mutex::new(HashMap::new()),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Refusals remembered now (some may have run out).
    pub fn len(&self) -> usize {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The refusal to answer without the store, if `key` is known to be refused at `now_ms`.
    fn local(&self, key: &str, limit: &Limit, now_ms: i64) -> Option<Decision> {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        let r = refused.get(key)?;
        if now_ms >= r.until_ms {
            refused.remove(key);
            return None;
        }
        if r.limit != *limit {
            return None;
        }
        let elapsed = Duration::from_millis(u64::try_from(now_ms - r.at_ms).unwrap_or(0));
        let wait = Duration::from_millis(u64::try_from(r.until_ms - now_ms).unwrap_or(0));
        Some(Decision {
            allowed: false,
            remaining: 0,
            reset_after: r.decision.reset_after.saturating_sub(elapsed).max(wait),
            retry_after: Some(wait),
            ..r.decision
        })
    }

    fn remember(&self, key: &str, limit: &Limit, now_ms: i64, decision: &Decision) {
        let Some(wait) = decision.retry_after.filter(|_| !decision.allowed) else {
            return;
        };
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= self.max_keys && !refused.contains_key(key) {
            refused.retain(|_, r| r.until_ms > now_ms);
            if refused.len() >= self.max_keys {
                return;
            }
        }
        refused.insert(
            key.to_string(),
            Refusal {
                limit: *limit,
                at_ms: now_ms,
                until_ms: now_ms.saturating_add(wait_ms),
                decision: *decision,
            },
        );
    }
}

impl<S: RateLimitStore> RateLimitStore for MemoryFront<S> {
    fn check<'a>(&'a self, key: &'a str, limit: &'a Limit, now_ms: i64) -> Fut<'a, Decision> {
        Box::pin(async move {
            if let Some(d) = self.local(key, limit, now_ms) {
                return Ok(d);
            }
            let d = self.inner.check(key, limit, now_ms).await?;
            self.remember(key, limit, now_ms, &d);
            Ok(d)
        })
    }
}

/// A store shared by handlers (`Arc<DynamoRateLimits>`) is a store.
impl<S: RateLimitStore + ?Sized> RateLimitStore for Arc<S> {
    fn check<'a>(&'a self, key: &'a str, limit: &'a Limit, now_ms: i64) -> Fut<'a, Decision> {
        (**self).check(key, limit, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ratelimit::{Algorithm, State, decide};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store in memory that counts how often it is asked.
    #[derive(Default)]
    struct Counting {
        states: Mutex<HashMap<String, State>>,
        calls: AtomicUsize,
    }

    impl RateLimitStore for Counting {
        fn check<'a>(&'a self, key: &'a str, limit: &'a Limit, now_ms: i64) -> Fut<'a, Decision> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let mut states = self.states.lock().unwrap();
                let d = decide(limit, states.get(key).copied(), now_ms);
                if d.allowed {
                    states.insert(key.to_string(), d.new_state);
                }
                Ok(d)
            })
        }
    }

    fn calls(f: &MemoryFront<Counting>) -> usize {
        f.inner().calls.load(Ordering::SeqCst)
    }

    fn per_minute(n: u32) -> Limit {
        Limit::new(Algorithm::FixedWindow, n, Duration::from_secs(60)).unwrap()
    }

    #[tokio::test]
    async fn a_refused_key_is_refused_locally_until_its_retry_time() {
        let f = MemoryFront::new(Counting::default());
        let l = per_minute(2);
        for _ in 0..2 {
            assert!(f.check("k", &l, 30_000).await.unwrap().allowed);
        }
        let first = f.check("k", &l, 30_000).await.unwrap();
        assert!(!first.allowed);
        assert_eq!(first.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(calls(&f), 3);

        let d = f.check("k", &l, 50_000).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(10)));
        assert_eq!(d.reset_after, Duration::from_secs(10));
        assert_eq!(d.remaining, 0);
        assert!(!f.check("k", &l, 59_999).await.unwrap().allowed);
        assert_eq!(calls(&f), 3, "answered without the store");

        // At the retry time the store is asked again, and admits.
        assert!(f.check("k", &l, 60_000).await.unwrap().allowed);
        assert_eq!(calls(&f), 4);
        assert!(f.is_empty());
    }

    #[tokio::test]
    async fn admissions_and_other_keys_and_limits_always_reach_the_store() {
        let f = MemoryFront::new(Counting::default());
        let l = per_minute(1);
        assert!(f.check("a", &l, 0).await.unwrap().allowed);
        assert!(!f.check("a", &l, 0).await.unwrap().allowed);
        assert!(f.check("b", &l, 0).await.unwrap().allowed);
        // Same key, another limit: not known to be refused under it.
        assert!(f.check("a", &per_minute(5), 0).await.unwrap().allowed);
        assert_eq!(calls(&f), 4);
    }

    #[tokio::test]
    async fn it_remembers_at_most_max_keys() {
        let f = MemoryFront::with_max_keys(Counting::default(), 2);
        let l = per_minute(1);
        for key in ["a", "b", "c"] {
            f.check(key, &l, 0).await.unwrap();
            assert!(!f.check(key, &l, 0).await.unwrap().allowed);
        }
        assert_eq!(f.len(), 2);
        assert_eq!(calls(&f), 6);
        // "c" was not remembered: the store answers it again.
        assert!(!f.check("c", &l, 1).await.unwrap().allowed);
        assert_eq!(calls(&f), 7);
        // Once the remembered refusals run out they make room.
        f.check("d", &l, 60_000).await.unwrap();
        assert!(!f.check("d", &l, 60_000).await.unwrap().allowed);
        assert_eq!(f.len(), 1);
    }
}
