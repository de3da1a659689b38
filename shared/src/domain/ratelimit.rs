//! Rate limits: four algorithms, each a pure function of the limit, the state stored for a key
//! and the time ([`decide`]). Stores (DynamoDB, memory) keep the [`State`] and apply
//! [`Decision::new_state`] atomically; nothing here does I/O.
//!
//! All algorithms admit a burst of `capacity` requests and, on average, `capacity` requests per
//! `period`. Time is epoch milliseconds and all arithmetic is on integers, so boundaries are
//! exact and never admit more than the limit:
//!
//! - **Token bucket**: `capacity` tokens, one token back every `period / capacity`; a request
//!   takes one. State: tokens and the time refilling counts from.
//! - **Leaky bucket** (as a meter): a bucket of `capacity` that drains one request every
//!   `period / capacity`; a request is admitted if it fits. State: level and the time draining
//!   counts from. As a meter it admits what the token bucket admits (the level is the tokens
//!   used); it differs in what it reports: `reset_after` is when the bucket is empty.
//! - **Fixed window**: at most `capacity` requests per window; windows are aligned to multiples
//!   of `period` since the epoch. Up to twice the capacity can pass around a window edge.
//! - **Sliding window**: the two-window weighted counter approximation. Windows are aligned as
//!   for the fixed window; the count over the sliding `period` ending now is estimated as
//!   `previous * (period - elapsed) / period + current`, where `elapsed` is the time since the
//!   current window began, i.e. the previous window's requests are assumed evenly spread over it.
//!   A request is admitted when that estimate, counting the request, is at most `capacity`. It
//!   needs two counters instead of a log of timestamps; it can be off the exact sliding count
//!   when the previous window's requests were bunched, in either direction.
//!
//! Where the period is not a whole multiple of `capacity` milliseconds the buckets credit whole
//! units only and move their time forward by the credited time rounded up, so they lose at most
//! 1 ms of refill per credit and never admit more than the rate.
//!
//! A refused request changes nothing that needs storing: [`decide`] derives everything else
//! (refills, window changes) from the stored state and the time, so deciding later from the
//! older state gives the same answers. Stores therefore write only admitted requests.
//!
//! Time never runs backwards for a key: a caller whose clock is behind the time in the stored
//! state (another instance's clock) is decided as at that time.

use super::error::{DomainError, Errors};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest capacity a limit may have (requests per period).
pub const MAX_CAPACITY: u32 = 1_000_000;
/// Longest period a limit may have.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    TokenBucket,
    SlidingWindow,
    FixedWindow,
    LeakyBucket,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::TokenBucket,
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::LeakyBucket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::LeakyBucket => "leaky_bucket",
        }
    }
}

/// `capacity` requests per `period` under one algorithm. Valid by construction ([`Limit::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    algorithm: Algorithm,
    capacity: u32,
    period: Duration,
}

impl Limit {
    /// A limit of `capacity` (1..=[`MAX_CAPACITY`]) requests per `period` (whole milliseconds,
    /// 1 ms..=[`MAX_PERIOD`]).
    pub fn new(algorithm: Algorithm, capacity: u32, period: Duration) -> Result<Self, DomainError> {
        let mut errors = Errors::default();
        if capacity == 0 || capacity > MAX_CAPACITY {
            errors.push(
                "capacity",
                format!("must be between 1 and {MAX_CAPACITY} requests"),
            );
        }
        if period < Duration::from_millis(1) || period > MAX_PERIOD {
            errors.push(
                "period",
                format!(
                    "must be between 1 ms and {} days",
                    MAX_PERIOD.as_secs() / 86400
                ),
            );
        } else if !period.subsec_nanos().is_multiple_of(1_000_000) {
            errors.push("period", "must be a whole number of milliseconds");
        }
        errors.into_result(Limit {
            algorithm,
            capacity,
            period,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    fn period_ms(&self) -> i64 {
        // At most MAX_PERIOD, so it fits.
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX)
    }
}

/// What is stored per key, one shape per algorithm. A state of another algorithm than the
/// limit's (the limit changed) counts as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum State {
    /// Tokens left, and the time (epoch ms) from which the next token accrues.
    TokenBucket { tokens: u32, refilled_at_ms: i64 },
    /// Requests counted in the window starting at `window_start_ms`.
    FixedWindow { window_start_ms: i64, count: u32 },
    /// Requests counted in the window starting at `window_start_ms` (`current`) and in the one
    /// before it (`previous`).
    SlidingWindow {
        window_start_ms: i64,
        previous: u32,
        current: u32,
    },
    /// Requests in the bucket, and the time (epoch ms) from which the next one drains.
    LeakyBucket { level: u32, leaked_at_ms: i64 },
}

impl State {
    /// The latest time this state speaks of, before which no decision is made.
    fn time_ms(&self) -> i64 {
        match *self {
            State::TokenBucket { refilled_at_ms, .. } => refilled_at_ms,
            State::FixedWindow {
                window_start_ms, ..
            }
            | State::SlidingWindow {
                window_start_ms, ..
            } => window_start_ms,
            State::LeakyBucket { leaked_at_ms, .. } => leaked_at_ms,
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The state to store when the request is admitted (a refusal needs no write).
    pub new_state: State,
    /// Requests that would be admitted right after this one.
    pub remaining: u32,
    /// Time until the whole capacity is available again (and the state no longer matters).
    pub reset_after: Duration,
    /// For a refusal, the time until a request would be admitted.
    pub retry_after: Option<Duration>,
}

/// Decides one request of a key whose stored state is `state`, at `now_ms` (epoch ms).
pub fn decide(limit: &Limit, state: Option<State>, now_ms: i64) -> Decision {
    let state = state.filter(|s| matches_algorithm(s, limit.algorithm));
    let now = state.map_or(now_ms, |s| now_ms.max(s.time_ms()));
    match limit.algorithm {
        Algorithm::TokenBucket => token_bucket(limit, state, now),
        Algorithm::LeakyBucket => leaky_bucket(limit, state, now),
        Algorithm::FixedWindow => fixed_window(limit, state, now),
        Algorithm::SlidingWindow => sliding_window(limit, state, now),
    }
}

fn matches_algorithm(s: &State, a: Algorithm) -> bool {
    matches!(
        (s, a),
        (State::TokenBucket { .. }, Algorithm::TokenBucket)
            | (State::FixedWindow { .. }, Algorithm::FixedWindow)
            | (State::SlidingWindow { .. }, Algorithm::SlidingWindow)
            | (State::LeakyBucket { .. }, Algorithm::LeakyBucket)
    )
}

/// Whole units a bucket credits in `elapsed_ms` (one unit per `period / capacity`), and the
/// time those units took, rounded up.
fn credit(limit: &Limit, elapsed_ms: i64) -> (u32, i64) {
    let c = i128::from(limit.capacity);
    let units = (i128::from(elapsed_ms.max(0)) * c / i128::from(limit.period_ms())).min(c);
    // units <= capacity, so both fit.
    (
        u32::try_from(units).unwrap_or(limit.capacity),
        time_for(limit, units),
    )
}

/// Milliseconds a bucket needs to credit `units` (rounded up).
fn time_for(limit: &Limit, units: i128) -> i64 {
    let c = i128::from(limit.capacity);
    let t = (units * i128::from(limit.period_ms()) + c - 1) / c;
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn token_bucket(limit: &Limit, state: Option<State>, now: i64) -> Decision {
    let cap = limit.capacity;
    let (tokens, since) = match state {
        Some(State::TokenBucket {
            tokens,
            refilled_at_ms,
        }) => (tokens.min(cap), refilled_at_ms),
        _ => (cap, now),
    };
    let (gained, took) = credit(limit, now - since);
    let (mut tokens, since) = if u64::from(tokens) + u64::from(gained) >= u64::from(cap) {
        (cap, now)
    } else {
        (tokens + gained, since + took)
    };
    let allowed = tokens > 0;
    if allowed {
        tokens -= 1;
    }
    let missing = i128::from(cap - tokens);
    Decision {
        allowed,
        new_state: State::TokenBucket {
            tokens,
            refilled_at_ms: since,
        },
        remaining: tokens,
        reset_after: millis(since + time_for(limit, missing) - now),
        retry_after: (!allowed).then(|| millis(since + time_for(limit, 1) - now)),
    }
}

fn leaky_bucket(limit: &Limit, state: Option<State>, now: i64) -> Decision {
    let cap = limit.capacity;
    let (level, since) = match state {
        Some(State::LeakyBucket {
            level,
            leaked_at_ms,
        }) => (level.min(cap), leaked_at_ms),
        _ => (0, now),
    };
    let (leaked, took) = credit(limit, now - since);
    let (mut level, since) = if leaked >= level {
        (0, now)
    } else {
        (level - leaked, since + took)
    };
    let allowed = level < cap;
    if allowed {
        level += 1;
    }
    Decision {
        allowed,
        new_state: State::LeakyBucket {
            level,
            leaked_at_ms: since,
        },
        remaining: cap - level,
        reset_after: millis(since + time_for(limit, i128::from(level)) - now),
        retry_after: (!allowed).then(|| millis(since + time_for(limit, 1) - now)),
    }
}

fn window_start(limit: &Limit, now: i64) -> i64 {
    now - now.rem_euclid(limit.period_ms())
}

fn fixed_window(limit: &Limit, state: Option<State>, now: i64) -> Decision {
    let start = window_start(limit, now);
    let mut count = match state {
        Some(State::FixedWindow {
            window_start_ms,
            count,
        }) if window_start_ms == start => count,
        _ => 0,
    };
    let allowed = count < limit.capacity;
    if allowed {
        count += 1;
    }
    let reset_after = millis(start + limit.period_ms() - now);
    Decision {
        allowed,
        new_state: State::FixedWindow {
            window_start_ms: start,
            count,
        },
        remaining: limit.capacity.saturating_sub(count),
        reset_after,
        retry_after: (!allowed).then_some(reset_after),
    }
}

fn sliding_window(limit: &Limit, state: Option<State>, now: i64) -> Decision {
    let p = limit.period_ms();
    let start = window_start(limit, now);
    let (previous, mut current) = match state {
        Some(State::SlidingWindow {
            window_start_ms,
            previous,
            current,
        }) if window_start_ms == start => (previous, current),
        Some(State::SlidingWindow {
            window_start_ms,
            current,
            ..
        }) if window_start_ms == start - p => (current, 0),
        _ => (0, 0),
    };
    let elapsed = now - start;
    let window = Window {
        capacity: limit.capacity,
        period: p,
    };
    let allowed = window.admits(previous, current, elapsed);
    if allowed {
        current += 1;
    }
    let reset_after = if current > 0 {
        start + 2 * p - now
    } else if previous > 0 {
        start + p - now
    } else {
        0
    };
    let retry_after = (!allowed).then(|| match window.first_admitted(previous, current, elapsed) {
        Some(at) => at - elapsed,
        // Not in this window: in the next one, where `current` becomes the previous count.
        None => p + window.first_admitted(current, 0, 0).unwrap_or(p) - elapsed,
    });
    Decision {
        allowed,
        new_state: State::SlidingWindow {
            window_start_ms: start,
            previous,
            current,
        },
        remaining: window.remaining(previous, current, elapsed),
        reset_after: millis(reset_after),
        retry_after: retry_after.map(millis),
    }
}

/// The weighted counter's arithmetic, scaled by the period so that it stays in integers:
/// `previous * (period - elapsed) + current * period <= capacity * period`.
struct Window {
    capacity: u32,
    period: i64,
}

impl Window {
    /// The estimated count, times the period.
    fn weighted(&self, previous: u32, current: u32, elapsed: i64) -> i128 {
        i128::from(previous) * i128::from(self.period - elapsed)
            + i128::from(current) * i128::from(self.period)
    }

    fn admits(&self, previous: u32, current: u32, elapsed: i64) -> bool {
        self.weighted(previous, current + 1, elapsed)
            <= i128::from(self.capacity) * i128::from(self.period)
    }

    fn remaining(&self, previous: u32, current: u32, elapsed: i64) -> u32 {
        let free = i128::from(self.capacity) * i128::from(self.period)
            - self.weighted(previous, current, elapsed);
        u32::try_from((free / i128::from(self.period)).max(0)).unwrap_or(0)
    }

    /// The first elapsed time, from `elapsed` on and within this window, at which a request is
    /// admitted; `None` when no time in this window admits one.
    fn first_admitted(&self, previous: u32, current: u32, elapsed: i64) -> Option<i64> {
        if current >= self.capacity {
            return None;
        }
        if previous == 0 {
            return Some(elapsed);
        }
        // previous * (period - t) <= (capacity - current - 1) * period
        let room = i128::from(self.capacity - current - 1) * i128::from(self.period);
        let t = i128::from(self.period) - room / i128::from(previous);
        let t = i64::try_from(t.max(0)).unwrap_or(i64::MAX).max(elapsed);
        (t < self.period).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1000;

    fn limit(algorithm: Algorithm, capacity: u32, period_ms: u64) -> Limit {
        Limit::new(algorithm, capacity, Duration::from_millis(period_ms)).unwrap()
    }

    /// Sends `n` requests at `now`, storing what the admitted ones leave (as a store does).
    fn burst(l: &Limit, state: &mut Option<State>, now: i64, n: usize) -> Vec<Decision> {
        (0..n)
            .map(|_| {
                let d = decide(l, *state, now);
                if d.allowed {
                    *state = Some(d.new_state);
                }
                d
            })
            .collect()
    }

    fn admitted(ds: &[Decision]) -> usize {
        ds.iter().filter(|d| d.allowed).count()
    }

    fn ms(v: i64) -> Duration {
        Duration::from_millis(v as u64)
    }

    #[test]
    fn limits_are_validated() {
        let ok = Limit::new(Algorithm::FixedWindow, 5, Duration::from_secs(60)).unwrap();
        assert_eq!(
            (ok.algorithm(), ok.capacity(), ok.period()),
            (Algorithm::FixedWindow, 5, Duration::from_secs(60))
        );
        for (capacity, period) in [
            (0, Duration::from_secs(1)),
            (MAX_CAPACITY + 1, Duration::from_secs(1)),
            (1, Duration::ZERO),
            (1, Duration::from_micros(1500)),
            (1, MAX_PERIOD + Duration::from_millis(1)),
        ] {
            assert!(
                matches!(
                    Limit::new(Algorithm::TokenBucket, capacity, period),
                    Err(DomainError::Validation(_))
                ),
                "{capacity} per {period:?} should be refused"
            );
        }
        let Err(DomainError::Validation(fields)) =
            Limit::new(Algorithm::TokenBucket, 0, Duration::ZERO)
        else {
            panic!("expected a validation error")
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["capacity", "period"]);
        assert!(Limit::new(Algorithm::TokenBucket, MAX_CAPACITY, MAX_PERIOD).is_ok());
    }

    #[test]
    fn every_algorithm_admits_a_burst_of_exactly_its_capacity() {
        for a in Algorithm::ALL {
            let l = limit(a, 5, 60_000);
            let mut state = None;
            let ds = burst(&l, &mut state, 1_000_000, 7);
            let allowed: Vec<bool> = ds.iter().map(|d| d.allowed).collect();
            assert_eq!(
                allowed,
                [true, true, true, true, true, false, false],
                "{a:?}"
            );
            let remaining: Vec<u32> = ds.iter().map(|d| d.remaining).collect();
            assert_eq!(remaining, [4, 3, 2, 1, 0, 0, 0], "{a:?}");
            assert!(ds[..5].iter().all(|d| d.retry_after.is_none()), "{a:?}");
            assert!(ds[5..].iter().all(|d| d.retry_after.is_some()), "{a:?}");
        }
    }

    #[test]
    fn a_state_of_another_algorithm_counts_as_none() {
        let l = limit(Algorithm::TokenBucket, 2, 1000);
        let other = State::FixedWindow {
            window_start_ms: 0,
            count: 99,
        };
        let d = decide(&l, Some(other), 500);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn token_bucket_refills_one_token_per_interval() {
        // 5 per 10 s: a token every 2 s.
        let l = limit(Algorithm::TokenBucket, 5, 10_000);
        let mut s = None;
        let ds = burst(&l, &mut s, 0, 6);
        assert_eq!(ds[4].reset_after, ms(10_000));
        assert_eq!(ds[5].retry_after, Some(ms(2000)));
        assert_eq!(ds[5].reset_after, ms(10_000));
        // One millisecond before the token: still refused, 1 ms to wait.
        let d = decide(&l, s, 1999);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(ms(1)));
        // Exactly at the token: one admitted, then refused for a whole interval.
        let ds = burst(&l, &mut s, 2000, 2);
        assert!(ds[0].allowed && !ds[1].allowed);
        assert_eq!(ds[1].retry_after, Some(ms(2000)));
        // Half-way through the next interval, the partial token is kept.
        let d = decide(&l, s, 3000);
        assert_eq!(d.retry_after, Some(ms(1000)));
        // Long idle: full again, and never more than the capacity.
        let ds = burst(&l, &mut s, 1_000_000, 7);
        assert_eq!(admitted(&ds), 5);
    }

    #[test]
    fn token_bucket_with_an_uneven_interval_never_exceeds_the_rate() {
        // 3 per second: a token every 333.3 ms, credited at 334 ms.
        let l = limit(Algorithm::TokenBucket, 3, 1000);
        let mut s = None;
        assert_eq!(admitted(&burst(&l, &mut s, 0, 4)), 3);
        assert_eq!(decide(&l, s, 333).retry_after, Some(ms(1)));
        let mut n = 0;
        for t in 1..=10 * SECOND {
            n += admitted(&burst(&l, &mut s, t, 1));
        }
        // Exactly 30 tokens accrue in 10 s; at most 1 ms per token is lost to rounding.
        assert!((29..=30).contains(&n), "{n}");
    }

    #[test]
    fn leaky_bucket_drains_one_request_per_interval() {
        // 4 per 2 s: one drains every 500 ms.
        let l = limit(Algorithm::LeakyBucket, 4, 2000);
        let mut s = None;
        let ds = burst(&l, &mut s, 10_000, 5);
        assert_eq!(ds[0].reset_after, ms(500));
        assert_eq!(ds[3].reset_after, ms(2000));
        assert_eq!(ds[4].retry_after, Some(ms(500)));
        assert_eq!(
            s,
            Some(State::LeakyBucket {
                level: 4,
                leaked_at_ms: 10_000
            })
        );
        assert!(!decide(&l, s, 10_499).allowed);
        let ds = burst(&l, &mut s, 10_500, 2);
        assert!(ds[0].allowed && !ds[1].allowed);
        assert_eq!(ds[0].remaining, 0);
        assert_eq!(ds[1].retry_after, Some(ms(500)));
        // Two intervals later two fit; after it is empty, the whole capacity.
        assert_eq!(admitted(&burst(&l, &mut s, 11_500, 3)), 2);
        assert_eq!(admitted(&burst(&l, &mut s, 13_500, 5)), 4);
    }

    #[test]
    fn fixed_window_resets_at_the_window_edge() {
        let l = limit(Algorithm::FixedWindow, 5, 60_000);
        let mut s = None;
        let ds = burst(&l, &mut s, 119_999, 6);
        assert_eq!(admitted(&ds), 5);
        assert_eq!(ds[0].reset_after, ms(1));
        assert_eq!(ds[5].retry_after, Some(ms(1)));
        // The next window starts at 120 000 with a full count: a burst of 2x across the edge.
        let ds = burst(&l, &mut s, 120_000, 6);
        assert_eq!(admitted(&ds), 5);
        assert_eq!(ds[5].retry_after, Some(ms(60_000)));
        assert_eq!(
            s,
            Some(State::FixedWindow {
                window_start_ms: 120_000,
                count: 5
            })
        );
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        let l = limit(Algorithm::SlidingWindow, 10, 60_000);
        let mut s = None;
        let ds = burst(&l, &mut s, 0, 11);
        assert_eq!(admitted(&ds), 10);
        assert_eq!(ds[9].reset_after, ms(120_000));
        // At 66 s the previous 10 weigh 10 * 54/60 = 9, so one more fits.
        assert_eq!(ds[10].retry_after, Some(ms(66_000)));
        let d = decide(&l, s, 65_999);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(ms(1)));
        let ds = burst(&l, &mut s, 66_000, 2);
        assert!(ds[0].allowed && !ds[1].allowed);
        assert_eq!(ds[0].remaining, 0);
        // At 72 s: 10 * 48/60 + 1 + the request = 10.
        assert_eq!(ds[1].retry_after, Some(ms(6000)));
        // A window later the previous window holds 1 (weight <= 1): 9 fit at its start.
        assert_eq!(admitted(&burst(&l, &mut s, 120_000, 11)), 9);
        // Two windows later nothing counts any more.
        assert_eq!(admitted(&burst(&l, &mut s, 240_000, 11)), 10);
    }

    #[test]
    fn sliding_window_refuses_the_edge_burst_a_fixed_window_admits() {
        let l = limit(Algorithm::SlidingWindow, 10, 60_000);
        let mut s = None;
        assert_eq!(admitted(&burst(&l, &mut s, 59_999, 10)), 10);
        let d = decide(&l, s, 60_000);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        // previous 10 * (60 - t) / 60 + 1 <= 10 from t = 6 s.
        assert_eq!(d.retry_after, Some(ms(6000)));
    }

    #[test]
    fn sliding_window_of_one_waits_two_windows() {
        let l = limit(Algorithm::SlidingWindow, 1, 1000);
        let mut s = None;
        let ds = burst(&l, &mut s, 500, 2);
        assert!(ds[0].allowed && !ds[1].allowed);
        // The next window still weighs the previous one above zero until its very end.
        assert_eq!(ds[1].retry_after, Some(ms(1500)));
        assert!(!decide(&l, s, 1999).allowed);
        assert!(decide(&l, s, 2000).allowed);
    }

    #[test]
    fn retry_after_is_exactly_when_a_request_is_admitted() {
        // For every algorithm and many shapes: refused just before retry_after, admitted at it.
        for a in Algorithm::ALL {
            for (capacity, period) in [(1, 1000), (3, 1000), (5, 60_000), (7, 10_000)] {
                let l = limit(a, capacity, period);
                let mut s = None;
                let mut t = 12_345;
                for step in 0..40 {
                    let d = decide(&l, s, t);
                    if d.allowed {
                        s = Some(d.new_state);
                        t += (step * 37) % 200;
                        continue;
                    }
                    let wait = d.retry_after.unwrap().as_millis() as i64;
                    assert!(wait > 0, "{a:?} {capacity}/{period} at {t}");
                    assert!(
                        !decide(&l, s, t + wait - 1).allowed,
                        "{a:?} {capacity}/{period}"
                    );
                    assert!(decide(&l, s, t + wait).allowed, "{a:?} {capacity}/{period}");
                    t += wait;
                }
            }
        }
    }

    #[test]
    fn not_storing_refusals_changes_no_answer() {
        // A store that writes every decision and one that writes only admissions agree.
        for a in Algorithm::ALL {
            let l = limit(a, 4, 1000);
            let (mut every, mut admitted_only) = (None, None);
            let mut t = 0i64;
            let mut x = 7u64;
            for _ in 0..2000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t += ((x >> 33) % 400) as i64;
                let d1 = decide(&l, every, t);
                let d2 = decide(&l, admitted_only, t);
                assert_eq!(d1.allowed, d2.allowed, "{a:?} at {t}");
                assert_eq!(d1.remaining, d2.remaining, "{a:?} at {t}");
                every = Some(d1.new_state);
                if d2.allowed {
                    admitted_only = Some(d2.new_state);
                }
            }
        }
    }

    #[test]
    fn a_caller_behind_the_stored_time_is_decided_at_that_time() {
        let l = limit(Algorithm::FixedWindow, 1, 1000);
        let s = decide(&l, None, 5000).new_state;
        // Another instance whose clock is 2 s behind: still the window of 5000.
        let d = decide(&l, Some(s), 3000);
        assert!(!d.allowed);
        let l = limit(Algorithm::TokenBucket, 1, 1000);
        let s = decide(&l, None, 5000).new_state;
        assert!(!decide(&l, Some(s), 3000).allowed);
    }

    #[test]
    fn states_serialise_with_their_algorithm() {
        let s = State::SlidingWindow {
            window_start_ms: 60_000,
            previous: 3,
            current: 1,
        };
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"algorithm": "sliding_window", "window_start_ms": 60_000, "previous": 3, "current": 1})
        );
        assert_eq!(serde_json::from_value::<State>(json).unwrap(), s);
    }
}
