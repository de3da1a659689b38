//! EventBridge Scheduler schedule expressions: parse and check them as AWS does, and compute
//! when they fire.
//!
//! - `cron(minutes hours day-of-month month day-of-week year)`: AWS's six fields, with `?`,
//!   `L`, `W`, `#`, names (`MON`, `JAN`), ranges and steps (see [`cron`]). Evaluated in the
//!   schedule's time zone, so `cron(0 9 * * ? *)` in `Europe/Berlin` fires at 09:00 Berlin time
//!   on both sides of a daylight-saving change; a time the change skips fires at the end of
//!   the gap, and one it repeats fires once, at its first occurrence.
//! - `rate(value unit)`: `minute`/`minutes`, `hour`/`hours`, `day`/`days`; the singular only
//!   with 1, the plural otherwise, as AWS requires. A rate fires at `anchor + k * period` for
//!   k = 1, 2, ...: the anchor is the start date if the schedule has one, else the anchor given
//!   with [`Schedule::anchored_at`] (its creation time), else the Unix epoch. So nothing fires
//!   the instant a schedule is created or starts; the first run is one period later. Rates do
//!   not depend on the time zone.
//! - `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time in the schedule's time zone (a
//!   time skipped by a daylight-saving change fires at the first instant after the gap, a
//!   repeated one at its first occurrence). As on AWS, start and end dates do not apply to it.
//!
//! A time zone is an IANA name (`Europe/Berlin`); none (or empty) is UTC. Start and end dates
//! bound recurring schedules: fire times are on or after the start and before the end.
//!
//! ```
//! use schedule_expr::Schedule;
//! let schedule = Schedule::new("cron(0 9 ? * MON-FRI *)", "Europe/Berlin").unwrap();
//! let t = "2026-03-27T12:00:00Z".parse().unwrap();
//! let next: Vec<String> = schedule.upcoming(t, 2).iter().map(|t| t.to_rfc3339()).collect();
//! // Friday was before the change to summer time; Monday is after it.
//! assert_eq!(next, ["2026-03-30T07:00:00+00:00", "2026-03-31T07:00:00+00:00"]);
//! ```

pub mod cron;
mod error;

pub use chrono_tz::Tz;
pub use cron::CronExpr;
pub use error::ScheduleError;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use std::fmt;
use std::str::FromStr;

/// The unit of a `rate()` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    fn singular(self) -> &'static str {
        match self {
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
            RateUnit::Day => 86_400,
        }
    }
}

/// A parsed schedule expression.
#[derive(Debug, Clone)]
pub enum Expression {
    Cron(Box<CronExpr>),
    Rate {
        value: u32,
        unit: RateUnit,
    },
    /// The wall-clock time, in the schedule's time zone.
    At(NaiveDateTime),
}

impl Expression {
    /// `cron(...)`, `rate(...)` or `at(...)`.
    pub fn parse(text: &str) -> Result<Expression, ScheduleError> {
        let text = text.trim();
        let inner = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
        };
        if let Some(fields) = inner("cron(") {
            return CronExpr::parse(fields).map(|c| Expression::Cron(Box::new(c)));
        }
        if let Some(body) = inner("rate(") {
            return parse_rate(body);
        }
        if let Some(body) = inner("at(") {
            return NaiveDateTime::parse_from_str(body.trim(), "%Y-%m-%dT%H:%M:%S")
                .map(Expression::At)
                .map_err(|_| ScheduleError::At(body.to_owned()));
        }
        Err(ScheduleError::Form(text.to_owned()))
    }

    /// The period of a `rate()`.
    pub fn period(&self) -> Option<TimeDelta> {
        match self {
            Expression::Rate { value, unit } => {
                Some(TimeDelta::seconds(i64::from(*value) * unit.seconds()))
            }
            _ => None,
        }
    }
}

impl FromStr for Expression {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Expression, ScheduleError> {
        Expression::parse(s)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expression::Cron(c) => write!(f, "cron({})", c.fields),
            Expression::Rate { value, unit } => {
                let plural = if *value == 1 { "" } else { "s" };
                write!(f, "rate({value} {}{plural})", unit.singular())
            }
            Expression::At(t) => write!(f, "at({})", t.format("%Y-%m-%dT%H:%M:%S")),
        }
    }
}

fn parse_rate(body: &str) -> Result<Expression, ScheduleError> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err(ScheduleError::RateForm(format!("rate({body})")));
    };
    let number = value
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ScheduleError::RateValue(value.to_owned()))?;
    let (unit, plural) = match unit {
        "minute" => (RateUnit::Minute, false),
        "minutes" => (RateUnit::Minute, true),
        "hour" => (RateUnit::Hour, false),
        "hours" => (RateUnit::Hour, true),
        "day" => (RateUnit::Day, false),
        "days" => (RateUnit::Day, true),
        other => return Err(ScheduleError::RateUnit(other.to_owned())),
    };
    match (number == 1, plural) {
        (true, true) => Err(ScheduleError::RateSingular(unit.singular())),
        (false, false) => Err(ScheduleError::RatePlural {
            value: number,
            unit: unit.singular(),
        }),
        _ => Ok(Expression::Rate {
            value: number,
            unit,
        }),
    }
}

/// An IANA time zone name; empty is UTC.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::Timezone(name.to_owned()))
}

/// An expression in a time zone, with optional start and end dates.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: Expression,
    timezone: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    anchor: Option<DateTime<Utc>>,
}

impl Schedule {
    /// `expression` in `timezone` (an IANA name; empty is UTC), without start or end.
    pub fn new(expression: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        Ok(Schedule {
            expression: Expression::parse(expression)?,
            timezone: parse_timezone(timezone)?,
            start: None,
            end: None,
            anchor: None,
        })
    }

    /// Fire times on or after `start` and before `end` (either may be absent); an end that is
    /// not after the start is an error.
    pub fn with_window(
        mut self,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Schedule, ScheduleError> {
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(ScheduleError::Window {
                start: s.to_rfc3339(),
                end: e.to_rfc3339(),
            });
        }
        self.start = start;
        self.end = end;
        Ok(self)
    }

    /// The anchor of a `rate()` without a start date: usually the schedule's creation time.
    pub fn anchored_at(mut self, anchor: DateTime<Utc>) -> Schedule {
        self.anchor = Some(anchor);
        self
    }

    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    /// An `at()` schedule: it fires once.
    pub fn is_one_time(&self) -> bool {
        matches!(self.expression, Expression::At(_))
    }

    /// The first fire time strictly after `t`, if there is one.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = match &self.expression {
            Expression::At(local) => {
                let at = self.at_instant(*local)?;
                // Start and end dates do not apply to one-time schedules.
                return (at > t).then_some(at);
            }
            Expression::Rate { .. } => {
                let period = self.expression.period()?;
                let anchor = self
                    .start
                    .or(self.anchor)
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
                let k = if t < anchor {
                    1
                } else {
                    (t - anchor).num_seconds() / period.num_seconds() + 1
                };
                anchor.checked_add_signed(period.checked_mul(i32::try_from(k).ok()?)?)?
            }
            Expression::Cron(c) => {
                let (from, inclusive) = match self.start {
                    Some(start) if start > t => (start, true),
                    _ => (t, false),
                };
                let local = from.with_timezone(&self.timezone);
                c.cron
                    .find_next_occurrence(&local, inclusive)
                    .ok()?
                    .with_timezone(&Utc)
            }
        };
        match self.end {
            Some(end) if next >= end => None,
            _ => Some(next),
        }
    }

    /// The next `n` fire times after `t`, in order (fewer if the schedule ends).
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(n.min(64));
        let mut cursor = t;
        while times.len() < n {
            match self.next_after(cursor) {
                Some(next) => {
                    times.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        times
    }

    /// Every fire time in `(after, until]`, in order, at most `limit` of them.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let mut cursor = after;
        while times.len() < limit {
            match self.next_after(cursor) {
                Some(next) if next <= until => {
                    times.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        times
    }

    /// The instant of an `at()` wall-clock time in the schedule's zone.
    fn at_instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        // A skipped time (spring forward) moves to the first instant after the gap.
        let mut probe = local;
        for _ in 0..=24 * 60 {
            match self.timezone.from_local_datetime(&probe) {
                LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                LocalResult::None => probe += TimeDelta::minutes(1),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
