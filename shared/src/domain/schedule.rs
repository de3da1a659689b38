//! A user's schedule: a run of a workflow started at the times of an EventBridge Scheduler
//! expression (`cron(...)`, `rate(...)` or `at(...)`) in an IANA time zone. The table keeps the
//! user's view; EventBridge Scheduler holds a schedule of the same id that fires it.

use super::error::{DomainError, Errors};
use super::run::StartRunRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Schedules per workflow.
pub const MAX_SCHEDULES_PER_WORKFLOW: usize = 20;
/// Longest expression and time zone name accepted.
pub const MAX_EXPRESSION_CHARS: usize = 256;
pub const MAX_TIMEZONE_CHARS: usize = 64;
/// Fire times `GET` of one schedule shows.
pub const UPCOMING: usize = 5;

/// A schedule as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub id: String,
    pub workflow_id: String,
    pub owner_id: String,
    /// `cron(min hour day-of-month month day-of-week year)`, `rate(N unit)` or
    /// `at(yyyy-mm-ddThh:mm:ss)`, as EventBridge Scheduler reads them.
    pub expression: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// The body of the run each fire starts (as `POST /runs` takes it).
    #[schema(value_type = Object)]
    pub run: serde_json::Value,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// The latest fire: when it was due, and the run it started or why it started none.
    #[serde(default)]
    pub last_fire: Option<Fire>,
}

/// What one fire did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Fire {
    /// The scheduled time (the run's idempotency key: one run per scheduled time).
    pub scheduled_time: DateTime<Utc>,
    /// The run started, when one was.
    pub run_id: Option<String>,
    /// Why no run was started (the workflow not active, the run refused, ...).
    pub skipped: Option<String>,
}

/// `POST /api/v3/workflows/{id}/schedules`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    #[schema(min_length = 1, max_length = 256, example = "rate(1 hour)")]
    pub expression: String,
    /// IANA name; `UTC` when absent.
    #[serde(default)]
    #[schema(max_length = 64, example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// The body of the run each fire starts, as `POST /api/v3/workflows/{id}/runs` takes it.
    #[schema(value_type = Object)]
    pub run: serde_json::Value,
    /// `true` when absent.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /api/v3/workflows/{id}/schedules/{schedule_id}`: the fields to change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateScheduleRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub expression: Option<String>,
    #[serde(default)]
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub run: Option<serde_json::Value>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The version read (or `If-Match`).
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Checks an expression and time zone; the error names the problem (schedule-expr's words).
pub fn check(
    errors: &mut Errors,
    expression: &str,
    timezone: &str,
) -> Option<schedule_expr::Schedule> {
    if expression.chars().count() > MAX_EXPRESSION_CHARS {
        errors.push(
            "expression",
            format!("at most {MAX_EXPRESSION_CHARS} characters"),
        );
        return None;
    }
    if timezone.chars().count() > MAX_TIMEZONE_CHARS {
        errors.push(
            "timezone",
            format!("at most {MAX_TIMEZONE_CHARS} characters"),
        );
        return None;
    }
    if let Err(e) = schedule_expr::parse_timezone(timezone) {
        errors.push("timezone", e.to_string());
        return None;
    }
    match schedule_expr::Schedule::new(expression, timezone) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push("expression", e.to_string());
            None
        }
    }
}

/// Checks the run body as starting a run would (paths under `run.`).
pub fn check_run(errors: &mut Errors, run: &serde_json::Value) {
    match serde_json::from_value::<StartRunRequest>(run.clone()) {
        Ok(body) => {
            if let Err(DomainError::Validation(fields)) = body.validate() {
                for f in fields {
                    errors.push(format!("run.{}", f.field), f.message);
                }
            }
        }
        Err(e) => errors.push("run", e.to_string()),
    }
}

impl Schedule {
    /// The parsed expression, its `rate()` anchored at creation (as Scheduler fires one).
    pub fn timing(&self) -> Option<schedule_expr::Schedule> {
        schedule_expr::Schedule::new(&self.expression, &self.timezone)
            .ok()
            .map(|s| s.anchored_at(self.created_at))
    }

    /// The next [`UPCOMING`] fire times after `now` (none while disabled).
    pub fn upcoming(&self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        match (self.enabled, self.timing()) {
            (true, Some(t)) => t.upcoming(now, UPCOMING),
            _ => Vec::new(),
        }
    }

    /// The run body a fire starts.
    pub fn run_request(&self) -> Result<StartRunRequest, String> {
        serde_json::from_value(self.run.clone()).map_err(|e| e.to_string())
    }
}

/// A schedule with its next fire times, as `GET` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub schedule: Schedule,
    /// The next five fire times (UTC); empty while disabled or when it never fires again.
    pub next_fire_times: Vec<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(expression: &str, timezone: &str) -> Schedule {
        let t = Utc
            .with_ymd_and_hms(2026, 3, 28, 10, 0, 30)
            .single()
            .expect("t");
        Schedule {
            id: "s".into(),
            workflow_id: "w".into(),
            owner_id: "u".into(),
            expression: expression.into(),
            timezone: timezone.into(),
            run: serde_json::json!({"plan": {"mode": "continue", "steps": 1}}),
            enabled: true,
            created_at: t,
            updated_at: t,
            version: 1,
            last_fire: None,
        }
    }

    #[test]
    fn upcoming_times_follow_the_expression_in_its_time_zone() {
        let s = schedule("rate(1 minute)", "UTC");
        let now = s.created_at;
        let next = s.upcoming(now);
        assert_eq!(next.len(), UPCOMING);
        assert_eq!(next[0], now + chrono::Duration::minutes(1));
        assert_eq!(next[4] - next[3], chrono::Duration::minutes(1));
        // 09:00 in Berlin is 08:00 UTC before the switch to summer time (29 March), 07:00 after.
        let berlin = schedule("cron(0 9 * * ? *)", "Europe/Berlin");
        let next = berlin.upcoming(berlin.created_at);
        assert_eq!(
            next[0],
            Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0)
                .single()
                .expect("t")
        );
        let mut off = s.clone();
        off.enabled = false;
        assert!(off.upcoming(now).is_empty());
    }

    #[test]
    fn bad_expressions_time_zones_and_runs_are_named() {
        let mut e = Errors::default();
        assert!(check(&mut e, "cron(0 9 * * * *)", "UTC").is_none());
        assert!(check(&mut e, "rate(1 hour)", "Mars/Base").is_none());
        check_run(
            &mut e,
            &serde_json::json!({"plan": {"mode": "continue", "steps": 0}}),
        );
        check_run(&mut e, &serde_json::json!({"plan": 1}));
        let Err(DomainError::Validation(fields)) = e.into_result(()) else {
            panic!("errors expected");
        };
        let named: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.field.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(named[0].0, "expression");
        assert!(named[0].1.contains('?'), "{named:?}");
        assert_eq!(named[1], ("timezone", "unknown timezone 'Mars/Base'"));
        assert_eq!(named[2].0, "run.plan.steps");
        assert_eq!(named[3].0, "run");
    }
}
