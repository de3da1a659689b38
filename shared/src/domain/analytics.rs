//! Analytics: what each change of the table adds to the counters, and the reports read from them.
//!
//! The aggregator (`api-analytics`' stream function) turns every stream record into a [`Tally`]
//! ([`tally`]): increments of named counters and histogram buckets in [`Group`]s (`all`, and one
//! per model), at the time of the change. The store adds each tally once to the hour and the day
//! it falls in, for the run's owner, its workflow and the system. Reports ([`Report`]) are built
//! from the buckets a range covers: counters add up and histograms merge, so any range is exact
//! up to the buckets' 1.6 % (see [`super::histogram`]).
//!
//! Definitions:
//! - `runs_started`: runs created (a start request accepted); `runs_succeeded`, `runs_failed`,
//!   `runs_cancelled`: runs entering that status (a failed run retried and then succeeding counts
//!   once in each);
//! - `completion_rate`: `runs_succeeded / (runs_succeeded + runs_failed)`: cancelled runs are the
//!   user's choice, not a failure (the specification's KPI: > 95 %);
//! - models are the runs' `model` as requested (`default`: the deployment's default model);
//! - `steps_succeeded`, `steps_failed` (steps that ended failed), `retries` (attempts after a
//!   step's first), `documents`, `words` and quality (of the documents steps wrote), tokens in and out
//!   (every attempt's), and per model: `generations` (successful attempts with their latency),
//!   `errors` (failed attempts, also by error class `failures.<class>`), tokens.

use super::broadcast::Change;
use super::histogram::{Histogram, Percentiles};
use super::run::{Run, RunStatus, Step, StepStatus};
use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The model group of steps whose run names no model (the deployment's default).
pub const DEFAULT_MODEL: &str = "default";
/// Longest range read hour by hour; longer ones are read by day.
pub const MAX_HOURLY_SPAN_HOURS: i64 = 7 * 24;

pub const RUNS_STARTED: &str = "runs_started";
pub const RUNS_SUCCEEDED: &str = "runs_succeeded";
pub const RUNS_FAILED: &str = "runs_failed";
pub const RUNS_CANCELLED: &str = "runs_cancelled";
pub const STEPS_SUCCEEDED: &str = "steps_succeeded";
pub const STEPS_FAILED: &str = "steps_failed";
pub const RETRIES: &str = "retries";
pub const DOCUMENTS: &str = "documents";
pub const WORDS: &str = "words";
pub const TOKENS_IN: &str = "tokens_in";
pub const TOKENS_OUT: &str = "tokens_out";
pub const GENERATIONS: &str = "generations";
pub const ERRORS: &str = "errors";
/// Prefix of a failure class counter (`f_timeout`).
pub const FAILURE_PREFIX: &str = "f_";
/// Prefix of a generation latency bucket (`l_<bucket>`, milliseconds).
pub const LATENCY_PREFIX: &str = "l_";
/// Prefix of a quality score bucket (`q_<bucket>`, 0..=100).
pub const QUALITY_PREFIX: &str = "q_";

/// What a counter item holds: everything (`all`) or one model's generations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    All,
    Model(String),
}

impl Group {
    /// As stored in the sort key: `all` or `m#<model>`.
    pub fn key(&self) -> String {
        match self {
            Group::All => "all".into(),
            Group::Model(m) => format!("m#{m}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Group> {
        match key {
            "all" => Some(Group::All),
            k => k.strip_prefix("m#").map(|m| Group::Model(m.to_string())),
        }
    }
}

/// Increments of one change: per group, counter (or bucket) name -> amount.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    pub at: DateTime<Utc>,
    pub owner_id: String,
    pub workflow_id: String,
    pub groups: BTreeMap<Group, BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&mut self, group: &Group, name: &str, by: u64) {
        if by > 0 {
            *self
                .groups
                .entry(group.clone())
                .or_default()
                .entry(name.to_string())
                .or_default() += by;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// What `change` adds to the counters; `None` for changes that count nothing. Only runs (with
/// their steps) count: a step's success carries its document's words and quality.
pub fn tally(change: &Change) -> Option<Tally> {
    let t = match change {
        Change::Run {
            old,
            new: Some(new),
        } => run_tally(old.as_ref(), new),
        _ => None,
    }?;
    (!t.is_empty()).then_some(t)
}

fn run_tally(old: Option<&(Run, Vec<Step>)>, (run, steps): &(Run, Vec<Step>)) -> Option<Tally> {
    let mut t = Tally {
        at: run.updated_at,
        owner_id: run.owner_id.clone(),
        workflow_id: run.workflow_id.clone(),
        groups: BTreeMap::new(),
    };
    let all = Group::All;
    let old_status = old.map(|(r, _)| r.status);
    if old.is_none() {
        t.add(&all, RUNS_STARTED, 1);
    }
    if old_status != Some(run.status) {
        match run.status {
            RunStatus::Succeeded => t.add(&all, RUNS_SUCCEEDED, 1),
            RunStatus::Failed => t.add(&all, RUNS_FAILED, 1),
            RunStatus::Cancelled => t.add(&all, RUNS_CANCELLED, 1),
            _ => {}
        }
    }
    for step in steps {
        let before = old.and_then(|(_, s)| s.iter().find(|o| o.id == step.id));
        step_tally(&mut t, run, before, step);
    }
    Some(t)
}

fn step_tally(t: &mut Tally, run: &Run, before: Option<&Step>, step: &Step) {
    let all = Group::All;
    // The run's model as requested, so an attempt's failures and successes share a group.
    let model = Group::Model(
        run.model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
    );
    let was = before.map(|s| s.status);
    let (old_attempts, old_in, old_out) =
        before.map_or((0, 0, 0), |s| (s.attempts, s.input_tokens, s.output_tokens));
    // Attempts after the first (a run retry resets attempts to 0, which adds nothing).
    if step.attempts > old_attempts.max(1) {
        t.add(&all, RETRIES, (step.attempts - old_attempts.max(1)) as u64);
    }
    for (group, (name, old, new)) in [
        (&all, (TOKENS_IN, old_in, step.input_tokens)),
        (&all, (TOKENS_OUT, old_out, step.output_tokens)),
        (&model, (TOKENS_IN, old_in, step.input_tokens)),
        (&model, (TOKENS_OUT, old_out, step.output_tokens)),
    ] {
        t.add(group, name, new.saturating_sub(old));
    }
    if was == Some(step.status) {
        return;
    }
    if step.status == StepStatus::Succeeded {
        t.add(&all, STEPS_SUCCEEDED, 1);
        t.add(&all, DOCUMENTS, 1);
        t.add(&all, WORDS, step.words);
        if let Some(q) = step.quality {
            let bucket = super::histogram::bucket_of(q as u64);
            t.add(&all, &format!("{QUALITY_PREFIX}{bucket}"), 1);
        }
        t.add(&model, GENERATIONS, 1);
        let bucket = super::histogram::bucket_of(step.latency_ms);
        t.add(&model, &format!("{LATENCY_PREFIX}{bucket}"), 1);
    }
    // A running attempt that ended without success: failed, or back to pending for a retry
    // (its error, or a lost worker's expired lease).
    if was == Some(StepStatus::Running)
        && matches!(step.status, StepStatus::Failed | StepStatus::Pending)
    {
        let class = step
            .last_error
            .as_ref()
            .map_or("timeout".to_string(), |e| error_class(e.kind));
        t.add(&model, ERRORS, 1);
        t.add(&model, &format!("{FAILURE_PREFIX}{class}"), 1);
    }
    if step.status == StepStatus::Failed {
        t.add(&all, STEPS_FAILED, 1);
    }
}

fn error_class(kind: super::run::ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "internal".into())
}

/// Whose counters: a user's, a workflow's, or everyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    User(String),
    Workflow(String),
    System,
}

/// Hour or day buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn step(self) -> TimeDelta {
        match self {
            Granularity::Hour => TimeDelta::hours(1),
            Granularity::Day => TimeDelta::days(1),
        }
    }

    /// The start of the bucket holding `t`.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.step()).unwrap_or(t)
    }
}

/// The specification's ranges, ending now.
pub const RANGES: [(&str, i64); 6] = [
    ("1h", 1),
    ("24h", 24),
    ("7d", 7 * 24),
    ("30d", 30 * 24),
    ("90d", 90 * 24),
    ("1y", 365 * 24),
];

/// A time range `[from, to)` and the buckets it is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
}

impl Window {
    /// `range` (one of [`RANGES`]) ending at `now`, or `from`..`to` (`to` defaults to now);
    /// the edges are widened to whole buckets. Errors name the problem.
    pub fn parse(
        range: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Window, String> {
        let (from, to) = match (range, from) {
            (Some(_), Some(_)) => return Err("give either range or from/to, not both".into()),
            (None, Some(from)) => (from, to.unwrap_or(now)),
            (range, None) => {
                if to.is_some() {
                    return Err("to needs from".into());
                }
                let range = range.unwrap_or("24h");
                let hours = RANGES
                    .iter()
                    .find(|(name, _)| *name == range)
                    .map(|(_, h)| *h)
                    .ok_or_else(|| {
                        format!("range must be one of 1h, 24h, 7d, 30d, 90d, 1y, not '{range}'")
                    })?;
                (now - Duration::hours(hours), now)
            }
        };
        if from >= to {
            return Err("from must be before to".into());
        }
        if to - from > Duration::days(366 * 2) {
            return Err("a range spans at most two years".into());
        }
        let granularity = if to - from <= Duration::hours(MAX_HOURLY_SPAN_HOURS) {
            Granularity::Hour
        } else {
            Granularity::Day
        };
        let start = granularity.floor(from);
        let end_floor = granularity.floor(to);
        let end = if end_floor == to {
            to
        } else {
            end_floor + granularity.step()
        };
        Ok(Window {
            from: start,
            to: end,
            granularity,
        })
    }

    /// The window of the same length just before this one (for week-over-week rules).
    pub fn previous(&self) -> Window {
        Window {
            from: self.from - (self.to - self.from),
            to: self.from,
            granularity: self.granularity,
        }
    }
}

/// One stored bucket: counters of one group over one hour or day.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub group: Group,
    pub counters: BTreeMap<String, u64>,
}

impl Bucket {
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// The buckets of the histogram whose attributes start with `prefix`.
    pub fn histogram(&self, prefix: &str, into: &mut Histogram) {
        for (name, &count) in &self.counters {
            if let Some(index) = name.strip_prefix(prefix).and_then(|i| i.parse().ok()) {
                into.add_bucket(index, count);
            }
        }
    }
}

/// Everything the routes report for a window, from its buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub totals: BTreeMap<String, u64>,
    pub quality: Histogram,
    pub models: BTreeMap<String, ModelFigures>,
    /// Per bucket start: runs started, succeeded, failed.
    pub series: BTreeMap<DateTime<Utc>, [u64; 3]>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelFigures {
    pub counters: BTreeMap<String, u64>,
    pub latency: Histogram,
}

impl Report {
    /// The buckets that start inside `window`.
    pub fn of<'a>(window: &Window, buckets: impl IntoIterator<Item = &'a Bucket>) -> Report {
        let mut r = Report::default();
        for b in buckets {
            if b.start < window.from || b.start >= window.to {
                continue;
            }
            match &b.group {
                Group::All => {
                    for (k, v) in &b.counters {
                        if !k.starts_with(QUALITY_PREFIX) {
                            *r.totals.entry(k.clone()).or_default() += v;
                        }
                    }
                    b.histogram(QUALITY_PREFIX, &mut r.quality);
                    let s = r.series.entry(b.start).or_default();
                    s[0] += b.get(RUNS_STARTED);
                    s[1] += b.get(RUNS_SUCCEEDED);
                    s[2] += b.get(RUNS_FAILED);
                }
                Group::Model(m) => {
                    let f = r.models.entry(m.clone()).or_default();
                    for (k, v) in &b.counters {
                        if !k.starts_with(LATENCY_PREFIX) {
                            *f.counters.entry(k.clone()).or_default() += v;
                        }
                    }
                    b.histogram(LATENCY_PREFIX, &mut f.latency);
                }
            }
        }
        r
    }

    pub fn total(&self, name: &str) -> u64 {
        self.totals.get(name).copied().unwrap_or(0)
    }

    pub fn overview(&self) -> Overview {
        let (succeeded, failed) = (self.total(RUNS_SUCCEEDED), self.total(RUNS_FAILED));
        Overview {
            runs_started: self.total(RUNS_STARTED),
            runs_succeeded: succeeded,
            runs_failed: failed,
            runs_cancelled: self.total(RUNS_CANCELLED),
            completion_rate: ratio(succeeded, succeeded + failed),
            steps_succeeded: self.total(STEPS_SUCCEEDED),
            steps_failed: self.total(STEPS_FAILED),
            retries: self.total(RETRIES),
            documents: self.total(DOCUMENTS),
            words: self.total(WORDS),
            tokens_in: self.total(TOKENS_IN),
            tokens_out: self.total(TOKENS_OUT),
        }
    }

    pub fn generation(&self) -> Vec<ModelGeneration> {
        self.models
            .iter()
            .map(|(model, f)| {
                let get = |k: &str| f.counters.get(k).copied().unwrap_or(0);
                let (generations, errors) = (get(GENERATIONS), get(ERRORS));
                ModelGeneration {
                    model: model.clone(),
                    generations,
                    errors,
                    error_rate: ratio(errors, generations + errors),
                    errors_by_class: f
                        .counters
                        .iter()
                        .filter_map(|(k, v)| Some((k.strip_prefix(FAILURE_PREFIX)?.into(), *v)))
                        .collect(),
                    latency_ms: f.latency.summary(),
                    tokens_in: get(TOKENS_IN),
                    tokens_out: get(TOKENS_OUT),
                }
            })
            .collect()
    }

    pub fn quality(&self) -> QualityFigures {
        let mut bins = vec![0u64; 10];
        for (index, count) in self.quality.buckets() {
            let score = super::histogram::bucket_bounds(index).0;
            bins[(score / 10).min(9) as usize] += count;
        }
        QualityFigures {
            documents: self.quality.count(),
            score: self.quality.summary(),
            distribution: bins
                .into_iter()
                .enumerate()
                .map(|(i, count)| QualityBin {
                    from: i as u8 * 10,
                    to: if i == 9 { 100 } else { i as u8 * 10 + 9 },
                    count,
                })
                .collect(),
        }
    }
}

/// `n / d` rounded to 4 decimals; `None` when `d` is 0.
pub fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| (n as f64 / d as f64 * 10_000.0).round() / 10_000.0)
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Overview {
    pub runs_started: u64,
    pub runs_succeeded: u64,
    pub runs_failed: u64,
    pub runs_cancelled: u64,
    /// `runs_succeeded / (runs_succeeded + runs_failed)`; `null` without finished runs.
    pub completion_rate: Option<f64>,
    pub steps_succeeded: u64,
    pub steps_failed: u64,
    pub retries: u64,
    pub documents: u64,
    pub words: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelGeneration {
    pub model: String,
    /// Successful attempts.
    pub generations: u64,
    /// Failed attempts (each retry's failure counts).
    pub errors: u64,
    /// `errors / (generations + errors)`.
    pub error_rate: Option<f64>,
    pub errors_by_class: BTreeMap<String, u64>,
    /// Of successful attempts.
    pub latency_ms: Percentiles,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QualityFigures {
    /// Generated documents with a score.
    pub documents: u64,
    pub score: Percentiles,
    /// Documents per score band of ten (the last one 90-100).
    pub distribution: Vec<QualityBin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QualityBin {
    pub from: u8,
    pub to: u8,
    pub count: u64,
}

/// A finding of a rule over two consecutive windows, with the numbers it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Insight {
    /// The rule's name (`model_failure_rate_rising`, ...).
    pub rule: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub message: String,
    /// The figures the rule compared.
    #[schema(value_type = Object)]
    pub figures: serde_json::Value,
}

/// Least attempts (or finished runs) in a window before a rule speaks.
pub const MIN_SAMPLE: u64 = 10;

/// The rules, over the current window and the one before it.
pub fn insights(current: &Report, previous: &Report) -> Vec<Insight> {
    let mut out = Vec::new();
    let overview = current.overview();
    let finished = overview.runs_succeeded + overview.runs_failed;
    if let Some(rate) = overview.completion_rate
        && finished >= MIN_SAMPLE
        && rate < 0.95
    {
        out.push(Insight {
            rule: "completion_rate_below_target".into(),
            severity: if rate < 0.8 { "critical" } else { "warning" }.into(),
            message: format!(
                "{:.1}% of finished runs succeeded ({} of {}); the target is 95%",
                rate * 100.0,
                overview.runs_succeeded,
                finished
            ),
            figures: serde_json::json!({
                "completion_rate": rate, "runs_succeeded": overview.runs_succeeded,
                "runs_failed": overview.runs_failed, "target": 0.95,
            }),
        });
    }
    let before: BTreeMap<String, ModelGeneration> = previous
        .generation()
        .into_iter()
        .map(|g| (g.model.clone(), g))
        .collect();
    for now in current.generation() {
        let attempts = now.generations + now.errors;
        let (Some(rate), Some(prev)) = (now.error_rate, before.get(&now.model)) else {
            continue;
        };
        let prev_attempts = prev.generations + prev.errors;
        if attempts >= MIN_SAMPLE && prev_attempts >= MIN_SAMPLE {
            let prev_rate = prev.error_rate.unwrap_or(0.0);
            if rate >= 0.05 && rate >= 3.0 * prev_rate.max(0.01) {
                out.push(Insight {
                    rule: "model_failure_rate_rising".into(),
                    severity: "warning".into(),
                    message: format!(
                        "{}'s failure rate rose from {:.1}% to {:.1}% ({} of {} attempts failed)",
                        now.model,
                        prev_rate * 100.0,
                        rate * 100.0,
                        now.errors,
                        attempts
                    ),
                    figures: serde_json::json!({
                        "model": now.model, "error_rate": rate, "previous_error_rate": prev_rate,
                        "errors": now.errors, "attempts": attempts,
                    }),
                });
            }
            if let (Some(p95), Some(prev_p95)) = (now.latency_ms.p95, prev.latency_ms.p95)
                && now.generations >= MIN_SAMPLE
                && prev.generations >= MIN_SAMPLE
                && p95 >= 2.0 * prev_p95
            {
                out.push(Insight {
                    rule: "model_latency_rising".into(),
                    severity: "info".into(),
                    message: format!(
                        "{}'s P95 latency doubled: {prev_p95:.0} ms to {p95:.0} ms",
                        now.model
                    ),
                    figures: serde_json::json!({
                        "model": now.model, "p95_ms": p95, "previous_p95_ms": prev_p95,
                    }),
                });
            }
        }
    }
    let steps = overview.steps_succeeded + overview.steps_failed;
    if steps >= MIN_SAMPLE && overview.retries * 5 > steps {
        out.push(Insight {
            rule: "retries_high".into(),
            severity: "info".into(),
            message: format!(
                "{} retries for {} finished steps: more than one in five steps needed another attempt",
                overview.retries, steps
            ),
            figures: serde_json::json!({ "retries": overview.retries, "steps": steps }),
        });
    }
    let (q_now, q_prev) = (
        current.quality.summary().mean,
        previous.quality.summary().mean,
    );
    if let (Some(now), Some(prev)) = (q_now, q_prev)
        && current.quality.count() >= MIN_SAMPLE
        && previous.quality.count() >= MIN_SAMPLE
        && prev - now >= 10.0
    {
        out.push(Insight {
            rule: "quality_dropping".into(),
            severity: "warning".into(),
            message: format!("mean quality fell from {prev:.1} to {now:.1}"),
            figures: serde_json::json!({ "mean_quality": now, "previous_mean_quality": prev }),
        });
    }
    out
}

/// The columns of an export row (one per bucket and group).
pub const EXPORT_COLUMNS: [&str; 19] = [
    "period_start",
    "granularity",
    "model",
    RUNS_STARTED,
    RUNS_SUCCEEDED,
    RUNS_FAILED,
    RUNS_CANCELLED,
    STEPS_SUCCEEDED,
    STEPS_FAILED,
    RETRIES,
    DOCUMENTS,
    WORDS,
    TOKENS_IN,
    TOKENS_OUT,
    GENERATIONS,
    ERRORS,
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
];

/// One export row per bucket: values in [`EXPORT_COLUMNS`] order (`null` where not applicable).
pub fn export_row(bucket: &Bucket, granularity: Granularity) -> Vec<serde_json::Value> {
    use serde_json::Value;
    let mut row = vec![
        Value::from(
            bucket
                .start
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        Value::from(match granularity {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }),
        match &bucket.group {
            Group::All => Value::Null,
            Group::Model(m) => Value::from(m.as_str()),
        },
    ];
    for name in &EXPORT_COLUMNS[3..16] {
        row.push(Value::from(bucket.get(name)));
    }
    let mut latency = Histogram::new();
    bucket.histogram(LATENCY_PREFIX, &mut latency);
    let s = latency.summary();
    for p in [s.p50, s.p95, s.p99] {
        row.push(p.map_or(Value::Null, Value::from));
    }
    row
}

#[cfg(test)]
mod tests;
