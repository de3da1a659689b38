//! Trying a failed delivery again: what a receiver's answer means, and how long to wait.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::time::Duration;

/// How often and how far apart deliveries of one notification to one channel are tried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The longest wait after the first failed attempt.
    pub base: Duration,
    /// How much the longest wait grows with each failed attempt.
    pub rate: f64,
    /// The longest wait ever (SQS's longest message delay by default).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 2 s growing twofold, at most 900 s (SQS's longest `DelaySeconds`).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(2),
            rate: 2.0,
            cap: Duration::from_secs(900),
        }
    }
}

impl RetryPolicy {
    /// Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
    /// `random * min(cap, base * rate^(attempt-1))`, where `attempt` is the attempt that just
    /// failed (1-based) and `random` is in [0, 1). A `retry_after` (capped at `cap`) is a
    /// floor: never retry sooner than the receiver asked.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: f64) -> Duration {
        let cap = self.cap.as_secs_f64();
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.base.as_secs_f64() * self.rate.powi(exponent);
        let ceiling = if grown.is_finite() {
            grown.clamp(0.0, cap)
        } else {
            cap
        };
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = Duration::from_secs_f64(ceiling * random);
        let floor = retry_after.map_or(Duration::ZERO, |r| r.min(self.cap));
        jittered.max(floor)
    }

    /// Whether `attempt` (1-based, the one that just failed) was the last allowed.
    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }
}

/// What a delivery attempt's outcome means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 429, 5xx, timeouts, connection errors: try again, not sooner than `retry_after`.
    Retry {
        retry_after: Option<Duration>,
    },
    /// Other 4xx (a gone webhook, a bad address) and 3xx: stop, and mark the channel.
    Permanent,
}

/// The verdict of an HTTP status: 2xx delivered; 408, 425, 429 and 5xx retried (with the
/// receiver's `Retry-After`); any other (3xx, since redirects are not followed, and 4xx)
/// permanent.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 425 | 429 | 500..=599 => Verdict::Retry { retry_after },
        _ => Verdict::Permanent,
    }
}

/// A `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3; IMF-fixdate, and
/// the obsolete RFC 850 and asctime forms a recipient must accept), relative to `now`. `None`
/// when unreadable; a date in the past is zero.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64: as long as can be (the policy's cap applies).
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = http_date(value)?;
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

fn http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc2822(value) {
        return Some(t.with_timezone(&Utc));
    }
    // RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_grows_to_the_cap_with_full_jitter() {
        let p = RetryPolicy::default();
        let almost_one = 0.999_999;
        let ceilings: Vec<u64> = (1..=12)
            .map(|a| p.delay(a, None, almost_one).as_secs())
            .collect();
        // 2, 4, 8, ... 512, then the 900 s cap (just under, as random < 1).
        assert_eq!(
            ceilings,
            [1, 3, 7, 15, 31, 63, 127, 255, 511, 899, 899, 899]
        );
        assert!(p.delay(1_000, None, almost_one) <= S(900));
        assert!(p.delay(u32::MAX, None, almost_one) <= S(900));
        // Full jitter: anything from zero.
        assert_eq!(p.delay(5, None, 0.0), Duration::ZERO);
        assert_eq!(p.delay(5, None, 0.5), S(16));
        // Nonsense randomness cannot exceed the ceiling or go negative.
        assert_eq!(p.delay(1, None, f64::NAN), Duration::ZERO);
        assert_eq!(p.delay(1, None, 7.0), S(2));
        assert_eq!(p.delay(1, None, -1.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, Some(S(120)), 0.0), S(120));
        assert_eq!(p.delay(1, Some(S(120)), 0.9), S(120));
        // A longer jittered wait wins over a short Retry-After.
        assert_eq!(p.delay(10, Some(S(1)), 0.5), S(450));
        assert_eq!(p.delay(1, Some(S(86_400)), 0.0), S(900));
    }

    #[test]
    fn attempts_run_out() {
        let p = RetryPolicy::default();
        assert!(!p.exhausted(1));
        assert!(!p.exhausted(7));
        assert!(p.exhausted(8));
        assert!(p.exhausted(9));
    }

    #[test]
    fn statuses_are_classified() {
        let ra = Some(S(30));
        assert_eq!(classify_status(200, None), Verdict::Delivered);
        assert_eq!(classify_status(204, ra), Verdict::Delivered);
        for s in [301, 302, 304, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(classify_status(s, ra), Verdict::Permanent, "{s}");
        }
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(
                classify_status(s, ra),
                Verdict::Retry { retry_after: ra },
                "{s}"
            );
        }
        assert_eq!(
            classify_status(503, None),
            Verdict::Retry { retry_after: None }
        );
    }

    #[test]
    fn retry_after_headers_parse() {
        let now: DateTime<Utc> = "2025-01-15T12:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("120", now), Some(S(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(S(0)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(S(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 12:02:00 GMT", now),
            Some(S(120))
        );
        assert_eq!(
            parse_retry_after("Wednesday, 15-Jan-25 12:01:00 GMT", now),
            Some(S(60))
        );
        assert_eq!(
            parse_retry_after("Wed Jan 15 12:00:30 2025", now),
            Some(S(30))
        );
        // In the past: now.
        assert_eq!(
            parse_retry_after("Tue, 14 Jan 2025 12:00:00 GMT", now),
            Some(S(0))
        );
        for garbage in [
            "",
            "soon",
            "-5",
            "1.5",
            "12 s",
            "Wed, 99 Jan 2025 12:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage}");
        }
    }
}
