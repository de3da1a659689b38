//! Runs of a workflow's chain: plans, steps, their status machines and retry policy.
//!
//! A run executes a plan of steps; each step generates the content of one node. Everything here
//! is pure: ids, clocks and random numbers come from the caller, so the rules are deterministic
//! and tested without AWS.
//!
//! Lifecycle in short:
//! - Start: a [`StartRunRequest`] is validated into [`RunOptions`]; the plan comes from
//!   [`plan_pending`] or [`plan_continue`] and becomes steps with [`steps_from_plan`]; the run is
//!   [`Run::new`] (`queued`).
//! - Dispatch: [`ready_steps`] names the steps to start now (dependency done, within
//!   `max_parallel`); [`Step::start`] takes a lease.
//! - An attempt ends with [`Step::succeed`], [`Step::fail`] (which retries through
//!   [`RetryPolicy`] or gives up), or [`Step::skip`]; a lost worker is found by
//!   [`expired_leases`] and handled by [`Step::expire_lease`].
//! - After every step change, [`progress`] tells the run's counters and next status.
//! - Retrying a failed run puts its failed steps back with [`Step::reset_for_retry`]; succeeded
//!   steps never run again.

use super::error::{DomainError, Errors};
use super::ids;
use super::node::{MAX_TITLE_CHARS, Node, NodeStatus};
use super::tree;
use super::workflow::{MAX_MODEL_CHARS, Settings};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use utoipa::ToSchema;

/// `steps` of a `continue` plan: 1..=50.
pub const MAX_CONTINUE_STEPS: u32 = 50;
pub const MIN_PRIORITY: u8 = 1;
pub const MAX_PRIORITY: u8 = 5;
pub const DEFAULT_PRIORITY: u8 = 3;
/// Attempts per step (the first one included): 1..=10, 5 when not given.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const MAX_MAX_ATTEMPTS: u32 = 10;
/// Wall-clock limit of a whole run, counted from its (latest) start: 1..=86,400 s.
pub const DEFAULT_RUN_TIMEOUT_S: u64 = 3600;
pub const MAX_RUN_TIMEOUT_S: u64 = 86_400;
/// `settings.max_parallel`: steps of one run generating at the same time.
pub const DEFAULT_MAX_PARALLEL: usize = 4;
pub const MAX_MAX_PARALLEL: usize = 16;
/// Upper bound of `retry.interval_s` and `retry.max_delay_s`.
pub const MAX_RETRY_DELAY_S: f64 = 3600.0;
pub const MAX_BACKOFF_RATE: f64 = 10.0;
/// SQS `DelaySeconds` is at most 15 minutes.
pub const SQS_MAX_DELAY_S: u32 = 900;
/// How much of the end of the parent's content a default prompt quotes.
pub const PROMPT_TAIL_CHARS: usize = 2000;
/// Error messages kept on steps and runs are cut to this many characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// A status change a status machine does not allow, naming the legal targets.
///
/// Generic over the machine ([`RunStatus`] or [`StepStatus`]); `DomainError::IllegalTransition`
/// is the workflow machine's, so the run use cases map this one (409 `illegal-transition`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition from {from} to {to}")]
pub struct IllegalTransition<S: fmt::Debug + fmt::Display> {
    pub from: S,
    pub to: S,
    pub allowed: Vec<S>,
}

/// A status machine: its statuses, their names and the legal moves; the checks follow.
pub trait StatusMachine: Copy + PartialEq + fmt::Debug + fmt::Display + Sized + 'static {
    /// Every status.
    const STATUSES: &'static [Self];

    fn as_str(self) -> &'static str;

    /// The only legal targets from this status.
    fn allowed_targets(self) -> &'static [Self];

    fn parse(s: &str) -> Option<Self> {
        Self::STATUSES.iter().copied().find(|v| v.as_str() == s)
    }

    fn can_become(self, target: Self) -> bool {
        self.allowed_targets().contains(&target)
    }

    /// Every status from which `target` is reachable in one step (the condition of the store's
    /// conditional write).
    fn sources_of(target: Self) -> Vec<Self> {
        Self::STATUSES
            .iter()
            .copied()
            .filter(|s| s.can_become(target))
            .collect()
    }

    /// Checks one transition; an illegal one names the allowed targets.
    fn transition(self, target: Self) -> Result<Self, IllegalTransition<Self>> {
        if self.can_become(target) {
            Ok(target)
        } else {
            Err(IllegalTransition {
                from: self,
                to: target,
                allowed: self.allowed_targets().to_vec(),
            })
        }
    }
}

/// Status of a run.
///
/// ```text
/// queued  -> running | paused | cancelled
/// running -> paused | succeeded | failed | cancelled
/// paused  -> running | cancelled
/// failed  -> running            (retry: its failed steps run again)
/// succeeded, cancelled: final
/// ```
///
/// A queued run may be paused (it starts only on resume) or cancelled before it starts. Resuming
/// a paused run always goes to `running`, even if it never started: starting sets `started_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Paused,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Nothing happens any more without a client's request: `succeeded`, `failed` (which a
    /// retry may still restart) and `cancelled`. These set `finished_at`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl StatusMachine for RunStatus {
    const STATUSES: &'static [RunStatus] = &Self::ALL;

    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn allowed_targets(self) -> &'static [RunStatus] {
        use RunStatus::*;
        match self {
            Queued => &[Running, Paused, Cancelled],
            Running => &[Paused, Succeeded, Failed, Cancelled],
            Paused => &[Running, Cancelled],
            Failed => &[Running],
            Succeeded | Cancelled => &[],
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a step.
///
/// ```text
/// waiting_approval -> pending | skipped    (approve; cancel)
/// pending          -> running | skipped    (dispatch; cancel)
/// running          -> succeeded | failed | skipped
///                   | pending              (lease expired or a retryable error: another attempt)
/// failed           -> pending              (the run is retried)
/// succeeded, skipped: final
/// ```
///
/// There is no separate `retrying` status: a step waiting for its next attempt is `pending`
/// with `attempts > 0` and `lease_until` set to when that attempt is due
/// ([`Step::is_scheduled_retry`]). Steps of a run with `approval: true` are created
/// `waiting_approval` and each needs an approve before it can run (so an approved step never
/// waits again, also not on a retry). `skipped` is for a cancelled run, or a step whose node is
/// no longer pending when its attempt starts (someone wrote it meanwhile); a skipped step
/// counts as done for the steps depending on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    WaitingApproval,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub const ALL: [StepStatus; 6] = [
        Self::Pending,
        Self::WaitingApproval,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Skipped,
    ];

    /// The status a new step starts in.
    pub fn initial(approval: bool) -> StepStatus {
        if approval {
            Self::WaitingApproval
        } else {
            Self::Pending
        }
    }

    /// No attempt is running or due: `succeeded`, `failed` (a run retry may restart it) and
    /// `skipped`. These set `finished_at`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }

    /// Whether a step depending on one in this status may run: its parent node has content.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
}

impl StatusMachine for StepStatus {
    const STATUSES: &'static [StepStatus] = &Self::ALL;

    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::WaitingApproval => "waiting_approval",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn allowed_targets(self) -> &'static [StepStatus] {
        use StepStatus::*;
        match self {
            WaitingApproval => &[Pending, Skipped],
            Pending => &[Running, Skipped],
            Running => &[Succeeded, Failed, Skipped, Pending],
            Failed => &[Pending],
            Succeeded | Skipped => &[],
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model provider refused for rate or quota (HTTP 429, ThrottlingException).
    Throttled,
    /// The attempt ran out of time (including an expired lease).
    Timeout,
    /// The provider failed (5xx, connection errors).
    Upstream,
    /// The provider refused the request itself (bad model, prompt too long).
    InvalidRequest,
    /// The provider's content filter refused the prompt or the output.
    ContentFiltered,
    /// The provider refused our credentials (HTTP 401/403): a configuration to fix, not a
    /// moment to wait out.
    Unauthorized,
    /// The run was cancelled during the attempt.
    Cancelled,
    /// A bug or a broken invariant on our side.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        Self::Throttled,
        Self::Timeout,
        Self::Upstream,
        Self::InvalidRequest,
        Self::ContentFiltered,
        Self::Unauthorized,
        Self::Cancelled,
        Self::Internal,
    ];

    /// Whether another attempt may succeed: only transient errors are.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Timeout | Self::Upstream)
    }
}

/// The error of a step's last failed attempt (also the run's, when the run failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepError {
    pub kind: ErrorKind,
    /// For a person; at most 1000 characters.
    pub message: String,
    /// Whether another attempt may succeed; the kind's default unless the adapter knows better.
    pub retryable: bool,
}

impl StepError {
    /// An error with the kind's retryability; the message is cut to
    /// [`MAX_ERROR_MESSAGE_CHARS`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = match message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
            Some((i, _)) => message[..i].to_string(),
            None => message,
        };
        StepError {
            kind,
            message,
            retryable: kind.retryable(),
        }
    }
}

/// When to try a failed step again, like a Step Functions `Retry`: the n-th retry waits up to
/// `interval_s * backoff_rate^(n-1)` seconds, capped at `max_delay_s`, with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Seconds before the first retry (before jitter): more than 0, at most 3600.
    #[schema(minimum = 0, maximum = 3600)]
    pub interval_s: f64,
    /// Factor of each following delay: 1.0..=10.0.
    #[schema(minimum = 1, maximum = 10)]
    pub backoff_rate: f64,
    /// Attempts per step, the first one included: 1..=10.
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: u32,
    /// Cap of any delay: more than 0, at most 3600.
    #[schema(minimum = 0, maximum = 3600)]
    pub max_delay_s: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            interval_s: 2.0,
            backoff_rate: 2.0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_delay_s: 300.0,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// No attempt left, or the error is not retryable.
    GiveUp,
}

impl RetryPolicy {
    /// Checks every range, reporting paths under `field` (`retry.interval_s`).
    pub fn validate(&self, errors: &mut Errors, field: &str) {
        let path = |k: &str| format!("{field}.{k}");
        let positive_delay = |v: f64| v.is_finite() && v > 0.0 && v <= MAX_RETRY_DELAY_S;
        if !positive_delay(self.interval_s) {
            errors.push(
                path("interval_s"),
                format!("must be a number greater than 0 and at most {MAX_RETRY_DELAY_S}"),
            );
        }
        if !(1.0..=MAX_BACKOFF_RATE).contains(&self.backoff_rate) {
            errors.push(
                path("backoff_rate"),
                format!("must be a number from 1.0 to {MAX_BACKOFF_RATE:.1}"),
            );
        }
        if !(1..=MAX_MAX_ATTEMPTS).contains(&self.max_attempts) {
            errors.push(
                path("max_attempts"),
                format!("must be an integer from 1 to {MAX_MAX_ATTEMPTS}"),
            );
        }
        if !positive_delay(self.max_delay_s) {
            errors.push(
                path("max_delay_s"),
                format!("must be a number greater than 0 and at most {MAX_RETRY_DELAY_S}"),
            );
        }
    }

    /// Delay before the attempt after attempt number `attempt` (1-based: after the first
    /// attempt failed, `attempt` is 1 and the cap is `interval_s`), with full jitter:
    /// `random_unit * min(max_delay_s, interval_s * backoff_rate^(attempt-1))`.
    ///
    /// `random_unit` is a uniform number in `[0, 1]` from the caller (clamped; NaN counts as 1,
    /// the longest wait). `attempt` 0 counts as 1.
    pub fn delay_for(&self, attempt: u32, random_unit: f64) -> Duration {
        let exponent = f64::from(attempt.max(1) - 1);
        let uncapped = self.interval_s * self.backoff_rate.powf(exponent);
        let cap = if uncapped.is_nan() {
            self.max_delay_s
        } else {
            uncapped.min(self.max_delay_s)
        };
        let unit = if random_unit.is_nan() {
            1.0
        } else {
            random_unit.clamp(0.0, 1.0)
        };
        Duration::try_from_secs_f64(unit * cap).unwrap_or(Duration::ZERO)
    }

    /// Whether an attempt that failed with `kind` deserves another: the kind is retryable and
    /// attempt number `attempt` (1-based) was not the last allowed.
    pub fn should_retry(&self, kind: ErrorKind, attempt: u32) -> bool {
        kind.retryable() && attempt < self.max_attempts
    }

    /// The decision after attempt `attempt` failed with `error` (its own `retryable` flag
    /// decides, so an adapter can refuse to retry a retryable kind).
    pub fn decide(&self, error: &StepError, attempt: u32, random_unit: f64) -> RetryDecision {
        if error.retryable && attempt < self.max_attempts {
            RetryDecision::RetryAfter(self.delay_for(attempt, random_unit))
        } else {
            RetryDecision::GiveUp
        }
    }
}

/// Splits a delay into SQS `DelaySeconds` (whole seconds, rounded up, at most 900) and what is
/// left beyond 15 minutes, which the consumer waits again (it re-sends the message with that
/// delay when it arrives early).
pub fn queue_delay(delay: Duration) -> (u32, Option<Duration>) {
    let max = Duration::from_secs(u64::from(SQS_MAX_DELAY_S));
    if delay > max {
        return (SQS_MAX_DELAY_S, Some(delay - max));
    }
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    (u32::try_from(secs).unwrap_or(SQS_MAX_DELAY_S), None)
}

/// A model a run generates with: `builtin`, `openai:<model>` or `bedrock:<model id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModelRef {
    /// The service's own deterministic generator (no provider).
    Builtin,
    /// An OpenAI model name (`gpt-4o-mini`, `ft:gpt-4o-mini:org::id`).
    OpenAi(String),
    /// A Bedrock model id, inference profile id or ARN.
    Bedrock(String),
}

impl ModelRef {
    pub const SHAPE: &'static str =
        "must be builtin, openai:<model> or bedrock:<model id> (letters, digits and . _ - : /)";

    pub fn parse(s: &str) -> Result<ModelRef, String> {
        if s.chars().count() > MAX_MODEL_CHARS {
            return Err(format!("must be at most {MAX_MODEL_CHARS} characters"));
        }
        let name_ok = |name: &str, slash: bool| {
            !name.is_empty()
                && name.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '.' | '_' | '-' | ':')
                        || (slash && c == '/')
                })
        };
        if s == "builtin" {
            Ok(ModelRef::Builtin)
        } else if let Some(name) = s.strip_prefix("openai:")
            && name_ok(name, false)
        {
            Ok(ModelRef::OpenAi(name.to_string()))
        } else if let Some(id) = s.strip_prefix("bedrock:")
            && name_ok(id, true)
        {
            Ok(ModelRef::Bedrock(id.to_string()))
        } else {
            Err(Self::SHAPE.to_string())
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::OpenAi(name) => write!(f, "openai:{name}"),
            Self::Bedrock(id) => write!(f, "bedrock:{id}"),
        }
    }
}

impl std::str::FromStr for ModelRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ModelRef::parse(s)
    }
}

impl TryFrom<String> for ModelRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ModelRef::parse(&s)
    }
}

impl From<ModelRef> for String {
    fn from(m: ModelRef) -> String {
        m.to_string()
    }
}

/// What a run generates, chosen at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlanRequest {
    /// Every pending node of the workflow, parents before children; independent branches run
    /// in parallel up to `settings.max_parallel` (default 4). (A struct variant, so that
    /// unknown fields are refused in this mode too.)
    Pending {},
    /// A chain of `steps` new nodes, each the child of the one before, under `from_node_id`
    /// (a new root when `null` or absent).
    Continue {
        #[serde(default)]
        from_node_id: Option<String>,
        /// 1..=50.
        #[schema(minimum = 1, maximum = 50)]
        steps: u32,
    },
}

impl PlanRequest {
    pub fn validate(&self, errors: &mut Errors, field: &str) {
        if let PlanRequest::Continue {
            from_node_id,
            steps,
        } = self
        {
            if !(1..=MAX_CONTINUE_STEPS).contains(steps) {
                errors.push(
                    format!("{field}.steps"),
                    format!("must be an integer from 1 to {MAX_CONTINUE_STEPS}"),
                );
            }
            if let Some(id) = from_node_id
                && !ids::is_valid_id(id)
            {
                errors.push(format!("{field}.from_node_id"), "must be a node id or null");
            }
        }
    }
}

/// The body that starts a run. Numbers are read wide and range-checked by
/// [`StartRunRequest::validate`], so every problem is reported with its path.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunRequest {
    pub plan: PlanRequest,
    /// `builtin`, `openai:<model>` or `bedrock:<model id>`; the workflow's `settings.model`
    /// (or the service default) when absent.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^(builtin|openai:[A-Za-z0-9._:-]+|bedrock:[A-Za-z0-9._:/-]+)$"
    )]
    pub model: Option<String>,
    /// 1 (low) ..= 5 (critical); the workflow's `settings.priority` (or 3) when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5)]
    pub priority: Option<u32>,
    /// Attempts per step, the first included: 1..=10; 5 when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<u32>,
    /// Limit of the whole run in seconds: 1..=86400; 3600 when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_s: Option<u64>,
    /// Whether every step waits for an explicit approve before it runs.
    #[serde(default)]
    pub approval: bool,
}

/// A start request that passed validation, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub plan: PlanRequest,
    pub model: Option<ModelRef>,
    pub priority: u8,
    pub max_attempts: u32,
    pub timeout_s: u64,
    pub approval: bool,
}

impl StartRunRequest {
    /// Checks every field (paths `plan.steps`, `plan.from_node_id`, `model`, `priority`,
    /// `max_attempts`, `timeout_s`) and applies the defaults.
    pub fn validate(&self) -> Result<RunOptions, DomainError> {
        let mut errors = Errors::default();
        self.plan.validate(&mut errors, "plan");
        let model = match self.model.as_deref().map(ModelRef::parse) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(message)) => {
                errors.push("model", message);
                None
            }
        };
        let priority = match self.priority {
            None => DEFAULT_PRIORITY,
            Some(p) => match u8::try_from(p) {
                Ok(p) if (MIN_PRIORITY..=MAX_PRIORITY).contains(&p) => p,
                _ => {
                    errors.push(
                        "priority",
                        format!("must be an integer from {MIN_PRIORITY} (low) to {MAX_PRIORITY} (critical)"),
                    );
                    DEFAULT_PRIORITY
                }
            },
        };
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_MAX_ATTEMPTS).contains(&max_attempts) {
            errors.push(
                "max_attempts",
                format!("must be an integer from 1 to {MAX_MAX_ATTEMPTS}"),
            );
        }
        let timeout_s = self.timeout_s.unwrap_or(DEFAULT_RUN_TIMEOUT_S);
        if !(1..=MAX_RUN_TIMEOUT_S).contains(&timeout_s) {
            errors.push(
                "timeout_s",
                format!("must be an integer from 1 to {MAX_RUN_TIMEOUT_S}"),
            );
        }
        errors.into_result(RunOptions {
            plan: self.plan.clone(),
            model,
            priority,
            max_attempts,
            timeout_s,
            approval: self.approval,
        })
    }
}

/// One run of a workflow's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: String,
    pub workflow_id: String,
    /// The user who started it.
    pub owner_id: String,
    pub status: RunStatus,
    /// `builtin`, `openai:<model>` or `bedrock:<model id>`; `null` for the workflow's default.
    pub model: Option<String>,
    #[schema(minimum = 1, maximum = 5)]
    pub priority: u8,
    /// Attempts per step, the first included.
    pub max_attempts: u32,
    /// Limit of the run in seconds, counted from `started_at`.
    pub timeout_s: u64,
    /// Whether each step waits for an approve before it runs.
    pub approval: bool,
    pub steps_total: u32,
    pub steps_succeeded: u32,
    pub steps_failed: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the run last started running: its first start, or the latest retry.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last became terminal; cleared by a retry.
    pub finished_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency; bumped by the store on every write.
    pub version: u64,
    /// Why the run failed; cleared by a retry.
    pub last_error: Option<StepError>,
}

impl Run {
    /// A queued run of `steps_total` steps.
    pub fn new(
        id: String,
        workflow_id: String,
        owner_id: String,
        options: &RunOptions,
        steps_total: u32,
        now: DateTime<Utc>,
    ) -> Run {
        Run {
            id,
            workflow_id,
            owner_id,
            status: RunStatus::Queued,
            model: options.model.as_ref().map(ToString::to_string),
            priority: options.priority,
            max_attempts: options.max_attempts,
            timeout_s: options.timeout_s,
            approval: options.approval,
            steps_total,
            steps_succeeded: 0,
            steps_failed: 0,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            version: 1,
            last_error: None,
        }
    }

    /// Changes the status and its timestamps: entering `running` from `queued`, `paused`
    /// (never started) or `failed` sets `started_at`; a terminal status sets `finished_at`;
    /// a retry clears `finished_at` and `last_error`. The version is the store's to bump.
    pub fn transition(
        &mut self,
        target: RunStatus,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalTransition<RunStatus>> {
        let from = self.status;
        self.status = from.transition(target)?;
        if target == RunStatus::Running && (self.started_at.is_none() || from == RunStatus::Failed)
        {
            self.started_at = Some(now);
        }
        if from == RunStatus::Failed {
            self.finished_at = None;
            self.last_error = None;
            self.steps_failed = 0;
        }
        if target.is_terminal() {
            self.finished_at = Some(now);
        }
        self.updated_at = now;
        Ok(())
    }

    /// The retry policy of this run's steps: `base` (the workflow's `settings.retry`) with this
    /// run's `max_attempts`.
    pub fn retry_policy(&self, base: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            ..*base
        }
    }

    /// `started_at + timeout_s` (a pause does not stop the clock); none before the start.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.started_at
            .map(|t| later(t, Duration::from_secs(self.timeout_s)))
    }

    pub fn is_past_deadline(&self, now: DateTime<Utc>) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Applies what [`progress`] computed: counters always, the status (with its timestamps and
    /// `last_error`) when it changes.
    pub fn apply(
        &mut self,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<(), IllegalTransition<RunStatus>> {
        self.steps_total = progress.counts.total;
        self.steps_succeeded = progress.counts.succeeded;
        self.steps_failed = progress.counts.failed;
        if progress.status != self.status {
            self.transition(progress.status, now)?;
            if progress.status == RunStatus::Failed {
                self.last_error.clone_from(&progress.error);
            }
        }
        self.updated_at = now;
        Ok(())
    }
}

/// `t + d`, saturating at the latest representable time.
fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// One step of a run: generating one node's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub id: String,
    pub run_id: String,
    /// The node whose content this step generates.
    pub node_id: String,
    /// That node's parent, whose content the prompt continues.
    pub parent_node_id: Option<String>,
    /// Order in the plan (0-based); parents come first, and dispatch prefers lower positions.
    pub position: u32,
    /// The step producing the parent node, when it is in this run.
    pub depends_on: Option<String>,
    pub status: StepStatus,
    /// Attempts started so far (the running one included); reset by a run retry.
    pub attempts: u32,
    /// While `running`: when the attempt's lease ends (its worker is presumed lost after).
    /// While `pending`: when the scheduled retry is due (a delayed message owns the step).
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<StepError>,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The model of the successful attempt.
    pub model: Option<String>,
    /// Tokens of every attempt together.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Latency of the latest finished attempt.
    pub latency_ms: u64,
    /// Words of the document the step wrote (0 until it succeeds).
    #[serde(default)]
    pub words: u64,
    /// Overall quality score (0-100) of the document the step wrote; `null` until it succeeds.
    #[serde(default)]
    pub quality: Option<u8>,
}

/// What a finished model call used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: u64,
}

impl Step {
    fn set_status(&mut self, target: StepStatus) -> Result<(), IllegalTransition<StepStatus>> {
        self.status = self.status.transition(target)?;
        Ok(())
    }

    /// A pending step waiting for its retry's delayed message.
    pub fn is_scheduled_retry(&self) -> bool {
        self.status == StepStatus::Pending && self.lease_until.is_some()
    }

    /// Takes up one of the run's `max_parallel` slots: running, or a retry scheduled to run.
    pub fn occupies_slot(&self) -> bool {
        self.status == StepStatus::Running || self.is_scheduled_retry()
    }

    /// `waiting_approval -> pending`.
    pub fn approve(&mut self) -> Result<(), IllegalTransition<StepStatus>> {
        self.set_status(StepStatus::Pending)
    }

    /// `pending -> running`: the next attempt, leased for `lease` (the attempt's timeout plus a
    /// margin). Returns the attempt number (1-based).
    pub fn start(
        &mut self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<u32, IllegalTransition<StepStatus>> {
        self.set_status(StepStatus::Running)?;
        self.attempts = self.attempts.saturating_add(1);
        self.lease_until = Some(later(now, lease));
        self.started_at.get_or_insert(now);
        Ok(self.attempts)
    }

    /// `running -> succeeded`, adding what the call used.
    pub fn succeed(
        &mut self,
        now: DateTime<Utc>,
        usage: Usage,
    ) -> Result<(), IllegalTransition<StepStatus>> {
        self.set_status(StepStatus::Succeeded)?;
        self.lease_until = None;
        self.finished_at = Some(now);
        self.model = usage.model;
        self.input_tokens = self.input_tokens.saturating_add(usage.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(usage.output_tokens);
        self.latency_ms = usage.latency_ms;
        Ok(())
    }

    /// Ends the running attempt with `error`: back to `pending` with the retry due at
    /// `now + delay` when `policy` allows another attempt, else `failed`.
    pub fn fail(
        &mut self,
        now: DateTime<Utc>,
        error: StepError,
        policy: &RetryPolicy,
        random_unit: f64,
    ) -> Result<RetryDecision, IllegalTransition<StepStatus>> {
        let decision = policy.decide(&error, self.attempts, random_unit);
        match decision {
            RetryDecision::RetryAfter(delay) => {
                self.set_status(StepStatus::Pending)?;
                self.lease_until = Some(later(now, delay));
            }
            RetryDecision::GiveUp => {
                self.set_status(StepStatus::Failed)?;
                self.lease_until = None;
                self.finished_at = Some(now);
            }
        }
        self.last_error = Some(error);
        Ok(decision)
    }

    /// A running attempt whose lease ended: its worker is presumed lost, so it fails as a
    /// timeout (and is retried within the policy). A scheduled retry whose message is overdue
    /// is released instead: it becomes dispatchable again.
    pub fn expire_lease(
        &mut self,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
        random_unit: f64,
    ) -> Result<RetryDecision, IllegalTransition<StepStatus>> {
        if self.is_scheduled_retry() {
            self.lease_until = None;
            return Ok(RetryDecision::RetryAfter(Duration::ZERO));
        }
        let error = StepError::new(
            ErrorKind::Timeout,
            "the attempt's lease ended before it reported a result",
        );
        self.fail(now, error, policy, random_unit)
    }

    /// `pending`, `waiting_approval` or `running` -> `skipped`.
    pub fn skip(&mut self, now: DateTime<Utc>) -> Result<(), IllegalTransition<StepStatus>> {
        self.set_status(StepStatus::Skipped)?;
        self.lease_until = None;
        self.finished_at = Some(now);
        Ok(())
    }

    /// `failed -> pending` when the run is retried, with a fresh attempt budget; the last
    /// error stays for the record.
    pub fn reset_for_retry(&mut self) -> Result<(), IllegalTransition<StepStatus>> {
        self.set_status(StepStatus::Pending)?;
        self.attempts = 0;
        self.lease_until = None;
        self.finished_at = None;
        Ok(())
    }
}

/// One planned step, before the run and step ids exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    /// The node to generate: an existing pending node, or the id the new node will get.
    pub node_id: String,
    pub parent_node_id: Option<String>,
    /// Index in the plan of the step producing the parent node, when it is in the plan.
    pub depends_on: Option<usize>,
    /// The node's title (existing), or the title of the node to create.
    pub title: String,
    /// Whether the node is new (`continue` plans) and must be created with the run.
    pub creates_node: bool,
}

impl StepPlan {
    /// The pending node this step writes, as a `continue` plan creates it with the run.
    pub fn new_node(&self, workflow_id: &str, now: DateTime<Utc>) -> Node {
        Node::new(
            self.node_id.clone(),
            workflow_id.to_string(),
            self.parent_node_id.clone(),
            crate::domain::NodeFields::pending(self.title.as_str()),
            now,
        )
    }
}

/// The steps of a `pending` plan: every pending node of the workflow, each after its parent.
/// Nodes are taken level by level (roots first), higher node priority first within a level,
/// then in the given order, so dispatch by position spreads over independent branches.
///
/// `max_parallel` is the workflow's `settings.max_parallel`, checked here (1..=16). Errors
/// (422): `plan.mode` when no node is pending, `settings.max_parallel` when out of range.
pub fn plan_pending(nodes: &[Node], max_parallel: usize) -> Result<Vec<StepPlan>, DomainError> {
    let mut errors = Errors::default();
    if !(1..=MAX_MAX_PARALLEL).contains(&max_parallel) {
        errors.push(
            "settings.max_parallel",
            format!("must be an integer from 1 to {MAX_MAX_PARALLEL}"),
        );
    }
    let depth = tree::depths(nodes);
    let mut pending: Vec<(usize, &Node)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.status == NodeStatus::Pending)
        .collect();
    if pending.is_empty() {
        errors.push(
            "plan.mode",
            "no node of this workflow is pending; nothing to run",
        );
    }
    if !errors.is_empty() {
        return errors.into_result(vec![]);
    }
    pending.sort_by_key(|&(i, n)| {
        (
            depth.get(n.id.as_str()).copied().unwrap_or(1),
            std::cmp::Reverse(n.priority),
            i,
        )
    });
    let index: HashMap<&str, usize> = pending
        .iter()
        .enumerate()
        .map(|(k, (_, n))| (n.id.as_str(), k))
        .collect();
    Ok(pending
        .iter()
        .map(|(_, n)| StepPlan {
            node_id: n.id.clone(),
            parent_node_id: n.parent_id.clone(),
            depends_on: n.parent_id.as_deref().and_then(|p| index.get(p).copied()),
            title: n.title.clone(),
            creates_node: false,
        })
        .collect())
}

/// The steps of a `continue` plan: a chain of `steps` new nodes under `from` (a new root when
/// `None`), each the child of the one before. The caller passes the new node ids (at least
/// `steps`; only as many steps as ids are planned).
///
/// Titles: "Part 1".."Part N" for a new root; after a parent titled "… Part 3" the numbering
/// goes on ("… Part 4", …); after any other parent title, "<title> — Part 1".."Part N". Titles
/// are cut to fit 255 characters.
pub fn plan_continue(from: Option<&Node>, steps: u32, new_ids: &[String]) -> Vec<StepPlan> {
    let n = usize::try_from(steps)
        .unwrap_or(usize::MAX)
        .min(new_ids.len());
    let titles = continuation_titles(from.map(|p| p.title.as_str()), n);
    let mut parent = from.map(|p| p.id.clone());
    new_ids
        .iter()
        .take(n)
        .zip(titles)
        .enumerate()
        .map(|(i, (id, title))| StepPlan {
            node_id: id.clone(),
            parent_node_id: parent.replace(id.clone()),
            depends_on: i.checked_sub(1),
            title,
            creates_node: true,
        })
        .collect()
}

fn continuation_titles(parent_title: Option<&str>, n: usize) -> Vec<String> {
    let numbered = parent_title.and_then(|t| {
        let t = t.trim_end();
        let digits = t.len() - t.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, number) = t.split_at(t.len() - digits);
        let is_part = head
            .get(head.len().checked_sub(5)?..)
            .is_some_and(|s| s.eq_ignore_ascii_case("part "));
        match (is_part, number.parse::<u64>()) {
            (true, Ok(k)) => Some((head, k)),
            _ => None,
        }
    });
    (1..=n as u64)
        .map(|k| match (parent_title, numbered) {
            (_, Some((head, last))) => fit_title(head, &last.saturating_add(k).to_string()),
            (Some(title), None) => fit_title(title.trim_end(), &format!(" — Part {k}")),
            (None, None) => format!("Part {k}"),
        })
        .collect()
}

/// `head` + `tail`, with `head` cut so the whole has at most [`MAX_TITLE_CHARS`] characters.
fn fit_title(head: &str, tail: &str) -> String {
    let room = MAX_TITLE_CHARS.saturating_sub(tail.chars().count());
    let head: String = head.chars().take(room).collect();
    format!("{head}{tail}")
}

/// The steps of a plan once the ids exist (`step_ids[i]` for `plan[i]`; only as many steps as
/// ids). Steps start `pending`, or `waiting_approval` when the run has `approval`.
pub fn steps_from_plan(
    run_id: &str,
    plan: &[StepPlan],
    step_ids: &[String],
    approval: bool,
) -> Vec<Step> {
    plan.iter()
        .zip(step_ids)
        .enumerate()
        .map(|(i, (p, id))| Step {
            id: id.clone(),
            run_id: run_id.to_string(),
            node_id: p.node_id.clone(),
            parent_node_id: p.parent_node_id.clone(),
            position: u32::try_from(i).unwrap_or(u32::MAX),
            depends_on: p.depends_on.and_then(|d| step_ids.get(d).cloned()),
            status: StepStatus::initial(approval),
            attempts: 0,
            lease_until: None,
            last_error: None,
            started_at: None,
            finished_at: None,
            model: None,
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            words: 0,
            quality: None,
        })
        .collect()
}

/// Whether `step`'s dependency is done (succeeded or skipped), or it has none. A dependency
/// missing from `by_id` is not done.
fn dependency_done(step: &Step, by_id: &HashMap<&str, &Step>) -> bool {
    match step.depends_on.as_deref() {
        None => true,
        Some(d) => by_id.get(d).is_some_and(|s| s.status.is_done()),
    }
}

fn index_by_id(steps: &[Step]) -> HashMap<&str, &Step> {
    steps.iter().map(|s| (s.id.as_str(), s)).collect()
}

/// The steps to start now, by position: pending (not a scheduled retry) with their dependency
/// done, at most `max_parallel` minus the steps already occupying a slot (running, or a retry
/// scheduled). Only a `running` run dispatches; the caller checks the run's status.
pub fn ready_steps(steps: &[Step], max_parallel: usize) -> Vec<&Step> {
    let by_id = index_by_id(steps);
    let busy = steps.iter().filter(|s| s.occupies_slot()).count();
    let mut ready: Vec<&Step> = steps
        .iter()
        .filter(|s| {
            s.status == StepStatus::Pending && s.lease_until.is_none() && dependency_done(s, &by_id)
        })
        .collect();
    ready.sort_by_key(|s| s.position);
    ready.truncate(max_parallel.saturating_sub(busy));
    ready
}

/// Whether `step` may be approved now: it waits for approval and its dependency is done, so
/// the reviewer has seen the content it continues.
pub fn can_approve(step: &Step, steps: &[Step]) -> bool {
    step.status == StepStatus::WaitingApproval && dependency_done(step, &index_by_id(steps))
}

/// Steps whose lease ended at or before `now`: running attempts presumed lost, and scheduled
/// retries whose message is overdue. The caller may pass `now` minus a grace period.
pub fn expired_leases(steps: &[Step], now: DateTime<Utc>) -> Vec<&Step> {
    steps
        .iter()
        .filter(|s| {
            matches!(s.status, StepStatus::Running | StepStatus::Pending)
                && s.lease_until.is_some_and(|t| t <= now)
        })
        .collect()
}

/// The steps a retry of a failed run puts back to `pending`: the failed ones (succeeded steps
/// never run again; pending ones blocked behind a failure run once it succeeds).
pub fn steps_to_retry(steps: &[Step]) -> Vec<&Step> {
    steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .collect()
}

/// How many steps are in each status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepCounts {
    pub total: u32,
    pub pending: u32,
    pub waiting_approval: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub skipped: u32,
}

impl StepCounts {
    pub fn of(steps: &[Step]) -> Self {
        let mut c = StepCounts::default();
        for s in steps {
            c.total += 1;
            let slot = match s.status {
                StepStatus::Pending => &mut c.pending,
                StepStatus::WaitingApproval => &mut c.waiting_approval,
                StepStatus::Running => &mut c.running,
                StepStatus::Succeeded => &mut c.succeeded,
                StepStatus::Failed => &mut c.failed,
                StepStatus::Skipped => &mut c.skipped,
            };
            *slot += 1;
        }
        c
    }
}

/// A run's state as its steps tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub status: RunStatus,
    pub counts: StepCounts,
    /// When `status` is `failed`: the error of the first failed step (by position).
    pub error: Option<StepError>,
}

/// The next status of a `running` run from its steps (any other status is kept: a paused run
/// is re-evaluated when it resumes, a queued one when it starts):
/// - every step succeeded or skipped: `succeeded`;
/// - some step can still progress (running, a retry scheduled, or pending / waiting approval
///   with no failed step among its ancestors in the run): `running`, so independent branches
///   finish even after a failure;
/// - otherwise (a failed step, having used its attempts, blocks everything left): `failed`.
pub fn progress(run: &Run, steps: &[Step]) -> Progress {
    let counts = StepCounts::of(steps);
    let mut error = None;
    let status = if run.status != RunStatus::Running {
        run.status
    } else if counts.succeeded + counts.skipped == counts.total {
        RunStatus::Succeeded
    } else if can_progress(steps) {
        RunStatus::Running
    } else {
        error = Some(
            steps
                .iter()
                .filter(|s| s.status == StepStatus::Failed)
                .min_by_key(|s| s.position)
                .map(|s| {
                    s.last_error.clone().unwrap_or_else(|| {
                        StepError::new(ErrorKind::Internal, "a step failed without an error")
                    })
                })
                .unwrap_or_else(|| {
                    StepError::new(ErrorKind::Internal, "no step can make progress")
                }),
        );
        RunStatus::Failed
    };
    Progress {
        status,
        counts,
        error,
    }
}

/// Whether any step is running or may still run: pending or waiting approval, with every
/// ancestor in the run present and not failed.
fn can_progress(steps: &[Step]) -> bool {
    let by_id = index_by_id(steps);
    let blocked = |s: &Step| {
        let mut current = s;
        // Plans are acyclic; the bound guards against a corrupt one.
        for _ in 0..=steps.len() {
            let Some(dep) = current.depends_on.as_deref() else {
                return false;
            };
            match by_id.get(dep) {
                None => return true,
                Some(d) if d.status == StepStatus::Failed => return true,
                Some(d) => current = d,
            }
        }
        true
    };
    steps.iter().any(|s| match s.status {
        StepStatus::Running => true,
        StepStatus::Pending | StepStatus::WaitingApproval => !blocked(s),
        _ => false,
    })
}

/// The prompt of a node without one of its own: the start of a document titled `node_title`,
/// or a continuation of `parent` quoting the end of its content (its last 2,000 characters).
pub fn default_prompt(parent: Option<&Node>, node_title: &str) -> String {
    match parent {
        None => format!(
            "Write the document \"{node_title}\". Give it a clear structure and make it complete \
             on its own."
        ),
        Some(p) if p.content.trim().is_empty() => format!(
            "Write \"{node_title}\", the part that follows \"{}\" in the same document.",
            p.title
        ),
        Some(p) => {
            let (tail, cut) = tail_chars(&p.content, PROMPT_TAIL_CHARS);
            format!(
                "Continue the document \"{}\" with its next part, \"{node_title}\". Pick up \
                 exactly where the previous part ends, keep its voice and style, and do not \
                 repeat it.\n\nThe previous part ends with:\n\n{}{tail}",
                p.title,
                if cut { "…" } else { "" }
            )
        }
    }
}

/// The prompt a step sends for `node`: its own prompt, or [`default_prompt`] when blank.
pub fn prompt_for(node: &Node, parent: Option<&Node>) -> String {
    if node.prompt.trim().is_empty() {
        default_prompt(parent, &node.title)
    } else {
        node.prompt.clone()
    }
}

/// The last `n` characters of `s` (cut on a char boundary), and whether anything was cut.
fn tail_chars(s: &str, n: usize) -> (&str, bool) {
    if n == 0 {
        return ("", !s.is_empty());
    }
    match s.char_indices().rev().nth(n - 1) {
        Some((i, _)) => (&s[i..], i > 0),
        None => (s, false),
    }
}

/// `settings.max_parallel`, or 4 when absent or out of range.
pub fn max_parallel(settings: &Settings) -> usize {
    settings
        .0
        .get("max_parallel")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=MAX_MAX_PARALLEL).contains(n))
        .unwrap_or(DEFAULT_MAX_PARALLEL)
}

/// `settings.priority` (the priority of the workflow's runs), or 3 when absent or invalid.
pub fn default_priority(settings: &Settings) -> u8 {
    settings
        .0
        .get("priority")
        .and_then(Value::as_u64)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| (MIN_PRIORITY..=MAX_PRIORITY).contains(p))
        .unwrap_or(DEFAULT_PRIORITY)
}

/// `settings.retry`, or the default policy when absent or invalid.
pub fn retry_policy(settings: &Settings) -> RetryPolicy {
    settings
        .0
        .get("retry")
        .and_then(|v| serde_json::from_value::<RetryPolicy>(v.clone()).ok())
        .filter(|p| {
            let mut e = Errors::default();
            p.validate(&mut e, "retry");
            e.is_empty()
        })
        .unwrap_or_default()
}

/// Checks the run keys of workflow settings (`max_parallel`, `retry`) under `field`
/// (`settings.max_parallel`, `settings.retry.interval_s`).
pub fn validate_settings(errors: &mut Errors, field: &str, settings: &Settings) {
    if let Some(v) = settings.0.get("max_parallel") {
        match v.as_u64() {
            Some(n) if (1..=MAX_MAX_PARALLEL as u64).contains(&n) => {}
            _ => errors.push(
                format!("{field}.max_parallel"),
                format!("must be an integer from 1 to {MAX_MAX_PARALLEL}"),
            ),
        }
    }
    if let Some(v) = settings.0.get("retry") {
        let path = format!("{field}.retry");
        match serde_json::from_value::<RetryPolicy>(v.clone()) {
            Ok(policy) => policy.validate(errors, &path),
            Err(e) => errors.push(path, format!("must be a retry policy: {e}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::node::{NodeFields, Priority};
    use chrono::TimeZone;
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn node(id: &str, parent: Option<&str>, status: NodeStatus) -> Node {
        let fields = NodeFields {
            title: format!("Title {id}"),
            content: String::new(),
            prompt: String::new(),
            priority: Priority::default(),
            status,
            tags: vec![],
            metadata: Default::default(),
        };
        Node::new(id.into(), "w".into(), parent.map(Into::into), fields, t0())
    }

    fn pending(id: &str, parent: Option<&str>) -> Node {
        node(id, parent, NodeStatus::Pending)
    }

    /// A step of run `r` for node `n-<id>` (the tests of other modules build theirs here too).
    pub(crate) fn step(
        id: &str,
        position: u32,
        depends_on: Option<&str>,
        status: StepStatus,
    ) -> Step {
        Step {
            id: id.into(),
            run_id: "r".into(),
            node_id: format!("n-{id}"),
            parent_node_id: depends_on.map(|d| format!("n-{d}")),
            position,
            depends_on: depends_on.map(Into::into),
            status,
            attempts: 0,
            lease_until: None,
            last_error: None,
            started_at: None,
            finished_at: None,
            model: None,
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            words: 0,
            quality: None,
        }
    }

    fn options() -> RunOptions {
        RunOptions {
            plan: PlanRequest::Pending {},
            model: None,
            priority: 3,
            max_attempts: 3,
            timeout_s: 600,
            approval: false,
        }
    }

    fn running_run() -> Run {
        let mut run = Run::new("r".into(), "w".into(), "u".into(), &options(), 0, t0());
        run.transition(RunStatus::Running, t0()).unwrap();
        run
    }

    fn fields_of(e: DomainError) -> Vec<String> {
        match e {
            DomainError::Validation(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn errors_with(f: impl FnOnce(&mut Errors)) -> Vec<String> {
        let mut e = Errors::default();
        f(&mut e);
        match e.into_result(()) {
            Ok(()) => vec![],
            Err(e) => fields_of(e),
        }
    }

    // ---- run status machine ----

    #[test]
    fn run_machine_allows_only_the_documented_transitions() {
        use RunStatus::*;
        let legal = [
            (Queued, Running),
            (Queued, Paused),
            (Queued, Cancelled),
            (Running, Paused),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
            (Paused, Running),
            (Paused, Cancelled),
            (Failed, Running),
        ];
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
                assert_eq!(from.transition(to).is_ok(), legal.contains(&(from, to)));
            }
        }
    }

    #[test]
    fn run_machine_forbidden_samples_and_sources() {
        use RunStatus::*;
        for (from, to) in [
            (Succeeded, Running),
            (Cancelled, Running),
            (Failed, Cancelled),
            (Paused, Succeeded),
            (Queued, Succeeded),
            (Running, Queued),
            (Running, Running),
        ] {
            assert!(!from.can_become(to), "{from} -> {to}");
        }
        match Succeeded.transition(Running) {
            Err(IllegalTransition { from, to, allowed }) => {
                assert_eq!((from, to), (Succeeded, Running));
                assert!(allowed.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let e = Paused.transition(Failed).unwrap_err();
        assert_eq!(e.allowed, vec![Running, Cancelled]);
        assert_eq!(e.to_string(), "illegal transition from paused to failed");
        assert_eq!(RunStatus::sources_of(Running), vec![Queued, Paused, Failed]);
        assert_eq!(
            RunStatus::sources_of(Cancelled),
            vec![Queued, Running, Paused]
        );
        assert_eq!(RunStatus::sources_of(Paused), vec![Queued, Running]);
        assert_eq!(RunStatus::sources_of(Succeeded), vec![Running]);
        assert!(RunStatus::sources_of(Queued).is_empty());
    }

    #[test]
    fn run_terminal_statuses() {
        use RunStatus::*;
        let terminal: Vec<_> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Succeeded, Failed, Cancelled]);
    }

    #[test]
    fn status_strings_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(s.to_string(), s.as_str());
        }
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(
            serde_json::to_value(StepStatus::WaitingApproval).unwrap(),
            json!("waiting_approval")
        );
        assert_eq!(RunStatus::parse("Running"), None);
    }

    // ---- step status machine ----

    #[test]
    fn step_machine_allows_only_the_documented_transitions() {
        use StepStatus::*;
        let legal = [
            (WaitingApproval, Pending),
            (WaitingApproval, Skipped),
            (Pending, Running),
            (Pending, Skipped),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Skipped),
            (Running, Pending),
            (Failed, Pending),
        ];
        for from in StepStatus::ALL {
            for to in StepStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn step_machine_forbidden_samples_sources_and_terminals() {
        use StepStatus::*;
        for (from, to) in [
            (Succeeded, Pending),
            (Succeeded, Running),
            (Skipped, Pending),
            (WaitingApproval, Running),
            (Pending, Succeeded),
            (Pending, Failed),
            (Failed, Running),
        ] {
            assert!(from.transition(to).is_err(), "{from} -> {to}");
        }
        assert_eq!(
            WaitingApproval.transition(Running).unwrap_err().allowed,
            vec![Pending, Skipped]
        );
        assert_eq!(
            StepStatus::sources_of(Pending),
            vec![WaitingApproval, Running, Failed]
        );
        assert_eq!(
            StepStatus::sources_of(Skipped),
            vec![Pending, WaitingApproval, Running]
        );
        assert_eq!(StepStatus::sources_of(Running), vec![Pending]);
        assert!(StepStatus::sources_of(WaitingApproval).is_empty());
        let terminal: Vec<_> = StepStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Succeeded, Failed, Skipped]);
        let done: Vec<_> = StepStatus::ALL
            .into_iter()
            .filter(|s| s.is_done())
            .collect();
        assert_eq!(done, [Succeeded, Skipped]);
        assert_eq!(StepStatus::initial(true), WaitingApproval);
        assert_eq!(StepStatus::initial(false), Pending);
    }

    // ---- errors ----

    #[test]
    fn only_transient_errors_are_retryable() {
        use ErrorKind::*;
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.retryable())
            .collect();
        assert_eq!(retryable, [Throttled, Timeout, Upstream]);
        assert_eq!(
            serde_json::to_value(ContentFiltered).unwrap(),
            json!("content_filtered")
        );
        let e = StepError::new(InvalidRequest, "bad");
        assert!(!e.retryable);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"kind": "invalid_request", "message": "bad", "retryable": false})
        );
    }

    #[test]
    fn error_messages_are_cut_on_char_boundaries() {
        let e = StepError::new(ErrorKind::Upstream, "é".repeat(MAX_ERROR_MESSAGE_CHARS + 5));
        assert_eq!(e.message.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        assert!(e.retryable);
        assert_eq!(
            StepError::new(ErrorKind::Internal, "short").message,
            "short"
        );
    }

    // ---- retry policy ----

    #[test]
    fn retry_policy_defaults_and_serde() {
        let p: RetryPolicy = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p, RetryPolicy::default());
        assert_eq!(
            (p.interval_s, p.backoff_rate, p.max_attempts, p.max_delay_s),
            (2.0, 2.0, 5, 300.0)
        );
        let p: RetryPolicy =
            serde_json::from_value(json!({"interval_s": 1, "max_attempts": 2})).unwrap();
        assert_eq!(
            (p.interval_s, p.max_attempts, p.backoff_rate),
            (1.0, 2, 2.0)
        );
        assert!(serde_json::from_value::<RetryPolicy>(json!({"interval": 1})).is_err());
    }

    #[test]
    fn delays_grow_exponentially_with_full_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_for(1, 1.0), secs(2.0));
        assert_eq!(p.delay_for(2, 1.0), secs(4.0));
        assert_eq!(p.delay_for(3, 1.0), secs(8.0));
        assert_eq!(p.delay_for(3, 0.5), secs(4.0));
        assert_eq!(p.delay_for(3, 0.25), secs(2.0));
        assert_eq!(p.delay_for(4, 0.0), Duration::ZERO);
        // Attempt 0 counts as the first.
        assert_eq!(p.delay_for(0, 1.0), secs(2.0));
        let slow = RetryPolicy {
            interval_s: 1.5,
            backoff_rate: 3.0,
            ..RetryPolicy::default()
        };
        assert_eq!(slow.delay_for(3, 1.0), secs(13.5));
    }

    #[test]
    fn delays_are_capped() {
        let p = RetryPolicy::default();
        // 2 * 2^8 = 512 > 300.
        assert_eq!(p.delay_for(9, 1.0), secs(300.0));
        assert_eq!(p.delay_for(9, 0.5), secs(150.0));
        assert_eq!(p.delay_for(u32::MAX, 1.0), secs(300.0));
        let flat = RetryPolicy {
            backoff_rate: 1.0,
            ..RetryPolicy::default()
        };
        assert_eq!(flat.delay_for(100, 1.0), secs(2.0));
    }

    #[test]
    fn random_units_out_of_range_are_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_for(2, 7.0), secs(4.0));
        assert_eq!(p.delay_for(2, -1.0), Duration::ZERO);
        assert_eq!(p.delay_for(2, f64::NAN), secs(4.0));
    }

    #[test]
    fn retries_stop_at_max_attempts_and_for_permanent_errors() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(p.should_retry(ErrorKind::Throttled, 1));
        assert!(p.should_retry(ErrorKind::Timeout, 2));
        assert!(!p.should_retry(ErrorKind::Upstream, 3));
        assert!(!p.should_retry(ErrorKind::InvalidRequest, 1));
        assert!(!p.should_retry(ErrorKind::Cancelled, 1));
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert!(!once.should_retry(ErrorKind::Throttled, 1));

        let transient = StepError::new(ErrorKind::Throttled, "slow down");
        assert_eq!(
            p.decide(&transient, 2, 1.0),
            RetryDecision::RetryAfter(secs(4.0))
        );
        assert_eq!(p.decide(&transient, 3, 1.0), RetryDecision::GiveUp);
        let refused = StepError {
            retryable: false,
            ..transient
        };
        assert_eq!(p.decide(&refused, 1, 1.0), RetryDecision::GiveUp);
    }

    #[test]
    fn retry_policy_validation_names_each_field() {
        assert!(errors_with(|e| RetryPolicy::default().validate(e, "retry")).is_empty());
        let bad = RetryPolicy {
            interval_s: 0.0,
            backoff_rate: 0.5,
            max_attempts: 11,
            max_delay_s: f64::INFINITY,
        };
        assert_eq!(
            errors_with(|e| bad.validate(e, "retry")),
            [
                "retry.interval_s",
                "retry.backoff_rate",
                "retry.max_attempts",
                "retry.max_delay_s"
            ]
        );
        let bad = RetryPolicy {
            interval_s: 3600.5,
            backoff_rate: 10.5,
            max_attempts: 0,
            max_delay_s: -1.0,
        };
        assert_eq!(errors_with(|e| bad.validate(e, "retry")).len(), 4);
        let edges = RetryPolicy {
            interval_s: 3600.0,
            backoff_rate: 10.0,
            max_attempts: 10,
            max_delay_s: 0.001,
        };
        assert!(errors_with(|e| edges.validate(e, "retry")).is_empty());
        let nan = RetryPolicy {
            backoff_rate: f64::NAN,
            ..RetryPolicy::default()
        };
        assert_eq!(
            errors_with(|e| nan.validate(e, "retry")),
            ["retry.backoff_rate"]
        );
    }

    // ---- queue delay ----

    #[test]
    fn queue_delay_rounds_up_and_splits_beyond_fifteen_minutes() {
        assert_eq!(queue_delay(Duration::ZERO), (0, None));
        assert_eq!(queue_delay(secs(1.2)), (2, None));
        assert_eq!(queue_delay(secs(4.0)), (4, None));
        assert_eq!(queue_delay(Duration::from_nanos(1)), (1, None));
        assert_eq!(queue_delay(secs(899.5)), (900, None));
        assert_eq!(queue_delay(secs(900.0)), (900, None));
        assert_eq!(queue_delay(secs(900.5)), (900, Some(secs(0.5))));
        assert_eq!(queue_delay(secs(3600.0)), (900, Some(secs(2700.0))));
    }

    // ---- models ----

    #[test]
    fn model_refs_parse_and_print() {
        for s in [
            "builtin",
            "openai:gpt-4o-mini",
            "openai:ft:gpt-4o-mini:org::abc",
            "bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0",
            "bedrock:arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3",
        ] {
            let m = ModelRef::parse(s).unwrap();
            assert_eq!(m.to_string(), s);
            assert_eq!(serde_json::to_value(&m).unwrap(), json!(s));
            assert_eq!(serde_json::from_value::<ModelRef>(json!(s)).unwrap(), m);
        }
        assert_eq!(
            "openai:gpt-4o".parse::<ModelRef>().unwrap(),
            ModelRef::OpenAi("gpt-4o".into())
        );
        for bad in [
            "",
            "Builtin",
            "gpt-4o",
            "openai:",
            "openai:gpt 4o",
            "openai:a/b",
            "bedrock:",
            "anthropic:claude",
            "bedrock:é",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
        let long = format!("openai:{}", "a".repeat(MAX_MODEL_CHARS));
        assert!(ModelRef::parse(&long).unwrap_err().contains("at most"));
        assert!(serde_json::from_value::<ModelRef>(json!("nope")).is_err());
    }

    // ---- plan requests and start validation ----

    #[test]
    fn plan_requests_are_tagged_by_mode() {
        assert_eq!(
            serde_json::from_value::<PlanRequest>(json!({"mode": "pending"})).unwrap(),
            PlanRequest::Pending {}
        );
        assert_eq!(
            serde_json::from_value::<PlanRequest>(json!({"mode": "continue", "steps": 3})).unwrap(),
            PlanRequest::Continue {
                from_node_id: None,
                steps: 3
            }
        );
        let with_parent =
            json!({"mode": "continue", "from_node_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "steps": 2});
        let plan: PlanRequest = serde_json::from_value(with_parent.clone()).unwrap();
        assert_eq!(serde_json::to_value(&plan).unwrap(), with_parent);
        assert_eq!(
            serde_json::to_value(PlanRequest::Pending {}).unwrap(),
            json!({"mode": "pending"})
        );
        for bad in [
            json!({"mode": "pending", "steps": 3}),
            json!({"mode": "continue", "steps": 3, "extra": true}),
            json!({"mode": "continue"}),
            json!({"mode": "all"}),
            json!({"steps": 3}),
            json!({"mode": "continue", "steps": -1}),
        ] {
            assert!(
                serde_json::from_value::<PlanRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    fn start(body: Value) -> Result<RunOptions, DomainError> {
        serde_json::from_value::<StartRunRequest>(body)
            .unwrap()
            .validate()
    }

    #[test]
    fn start_request_defaults() {
        let o = start(json!({"plan": {"mode": "pending"}})).unwrap();
        assert_eq!(
            o,
            RunOptions {
                plan: PlanRequest::Pending {},
                model: None,
                priority: DEFAULT_PRIORITY,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                timeout_s: DEFAULT_RUN_TIMEOUT_S,
                approval: false,
            }
        );
        let o = start(json!({
            "plan": {"mode": "continue", "from_node_id": null, "steps": 50},
            "model": "openai:gpt-4o", "priority": 5, "max_attempts": 10,
            "timeout_s": 86400, "approval": true
        }))
        .unwrap();
        assert_eq!(o.model, Some(ModelRef::OpenAi("gpt-4o".into())));
        assert_eq!(
            (o.priority, o.max_attempts, o.timeout_s, o.approval),
            (5, 10, 86400, true)
        );
        assert!(
            serde_json::from_value::<StartRunRequest>(json!({"plan": {"mode": "pending"}, "x": 1}))
                .is_err()
        );
    }

    #[test]
    fn start_request_reports_every_error_with_its_path() {
        let e = start(json!({
            "plan": {"mode": "continue", "from_node_id": "not-an-id", "steps": 51},
            "model": "gpt-4", "priority": 6, "max_attempts": 0, "timeout_s": 86401
        }))
        .unwrap_err();
        assert_eq!(
            fields_of(e),
            [
                "plan.steps",
                "plan.from_node_id",
                "model",
                "priority",
                "max_attempts",
                "timeout_s"
            ]
        );
        let e = start(json!({
            "plan": {"mode": "continue", "steps": 0},
            "priority": 0, "max_attempts": 11, "timeout_s": 0
        }))
        .unwrap_err();
        assert_eq!(
            fields_of(e),
            ["plan.steps", "priority", "max_attempts", "timeout_s"]
        );
        assert_eq!(
            fields_of(start(json!({"plan": {"mode": "pending"}, "priority": 300})).unwrap_err()),
            ["priority"]
        );
    }

    #[test]
    fn api_types_have_schemas() {
        use utoipa::PartialSchema;
        let plan = serde_json::to_value(PlanRequest::schema()).unwrap();
        let text = plan.to_string();
        assert!(
            text.contains("\"pending\"") && text.contains("\"continue\""),
            "{text}"
        );
        for schema in [
            StartRunRequest::schema(),
            Run::schema(),
            Step::schema(),
            RetryPolicy::schema(),
            StepError::schema(),
        ] {
            assert!(serde_json::to_value(schema).unwrap().is_object());
        }
    }

    // ---- runs ----

    #[test]
    fn a_new_run_is_queued_with_the_options() {
        let mut o = options();
        o.model = Some(ModelRef::Bedrock("amazon.nova-lite-v1:0".into()));
        o.approval = true;
        let run = Run::new("r".into(), "w".into(), "u".into(), &o, 7, t0());
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.model.as_deref(), Some("bedrock:amazon.nova-lite-v1:0"));
        assert_eq!(
            (run.steps_total, run.steps_succeeded, run.steps_failed),
            (7, 0, 0)
        );
        assert_eq!((run.version, run.max_attempts, run.timeout_s), (1, 3, 600));
        assert!(run.approval && run.started_at.is_none() && run.finished_at.is_none());
        assert_eq!(run.deadline(), None);
        let v = serde_json::to_value(&run).unwrap();
        assert_eq!(v["status"], json!("queued"));
        assert_eq!(serde_json::from_value::<Run>(v).unwrap(), run);
    }

    #[test]
    fn run_transitions_keep_their_timestamps() {
        let mut run = Run::new("r".into(), "w".into(), "u".into(), &options(), 2, t0());
        let t1 = t0() + TimeDelta::seconds(10);
        let t2 = t0() + TimeDelta::seconds(20);
        let t3 = t0() + TimeDelta::seconds(30);
        run.transition(RunStatus::Running, t1).unwrap();
        assert_eq!(run.started_at, Some(t1));
        assert_eq!(run.deadline(), Some(t1 + TimeDelta::seconds(600)));
        assert!(!run.is_past_deadline(t1 + TimeDelta::seconds(599)));
        assert!(run.is_past_deadline(t1 + TimeDelta::seconds(600)));
        run.transition(RunStatus::Paused, t2).unwrap();
        run.transition(RunStatus::Running, t2).unwrap();
        assert_eq!(run.started_at, Some(t1), "resuming keeps the start");
        run.transition(RunStatus::Failed, t2).unwrap();
        run.last_error = Some(StepError::new(ErrorKind::Upstream, "x"));
        run.steps_failed = 1;
        assert_eq!(run.finished_at, Some(t2));
        run.transition(RunStatus::Running, t3).unwrap();
        assert_eq!((run.started_at, run.finished_at), (Some(t3), None));
        assert_eq!((run.last_error.clone(), run.steps_failed), (None, 0));
        assert_eq!(run.updated_at, t3);
        let e = run.transition(RunStatus::Queued, t3).unwrap_err();
        assert_eq!(e.from, RunStatus::Running);
        assert_eq!(run.status, RunStatus::Running);
    }

    #[test]
    fn a_paused_queued_run_starts_on_resume() {
        let mut run = Run::new("r".into(), "w".into(), "u".into(), &options(), 1, t0());
        run.transition(RunStatus::Paused, t0()).unwrap();
        assert_eq!(run.started_at, None);
        run.transition(RunStatus::Running, t0()).unwrap();
        assert_eq!(run.started_at, Some(t0()));
        run.transition(RunStatus::Cancelled, t0()).unwrap();
        assert_eq!(run.finished_at, Some(t0()));
    }

    #[test]
    fn run_retry_policy_takes_the_runs_attempts() {
        let run = running_run();
        let base = RetryPolicy {
            interval_s: 1.0,
            ..RetryPolicy::default()
        };
        let p = run.retry_policy(&base);
        assert_eq!((p.interval_s, p.max_attempts), (1.0, 3));
    }

    // ---- planning ----

    fn plan_ids(plan: &[StepPlan]) -> Vec<&str> {
        plan.iter().map(|p| p.node_id.as_str()).collect()
    }

    #[test]
    fn pending_plan_puts_parents_first_level_by_level() {
        let nodes = [
            pending("c", Some("b")),
            pending("b", Some("a")),
            node("done", None, NodeStatus::Completed),
            pending("x", Some("done")),
            pending("a", None),
            pending("y", Some("x")),
        ];
        let plan = plan_pending(&nodes, 4).unwrap();
        assert_eq!(plan_ids(&plan), ["a", "b", "x", "c", "y"]);
        let dep = |id: &str| {
            plan.iter()
                .find(|p| p.node_id == id)
                .unwrap()
                .depends_on
                .map(|i| plan[i].node_id.as_str())
        };
        assert_eq!(dep("a"), None);
        assert_eq!(dep("b"), Some("a"));
        assert_eq!(dep("c"), Some("b"));
        assert_eq!(dep("x"), None, "its parent is completed, not in the plan");
        assert_eq!(dep("y"), Some("x"));
        for (i, p) in plan.iter().enumerate() {
            assert!(p.depends_on.is_none_or(|d| d < i));
            assert!(!p.creates_node);
        }
        assert_eq!(plan[0].title, "Title a");
        assert_eq!(plan[3].parent_node_id.as_deref(), Some("b"));
    }

    #[test]
    fn pending_plan_prefers_higher_priority_within_a_level() {
        let mut low = pending("low", None);
        low.priority = Priority::LOW;
        let mut high = pending("high", None);
        high.priority = Priority::CRITICAL;
        let normal = pending("normal", None);
        let child = pending("child", Some("low"));
        let plan = plan_pending(&[child, low, normal, high], 1).unwrap();
        assert_eq!(plan_ids(&plan), ["high", "normal", "low", "child"]);
        assert_eq!(plan[3].depends_on, Some(2));
    }

    #[test]
    fn pending_plan_skips_non_pending_nodes_and_keeps_orphans() {
        let nodes = [
            node("a", None, NodeStatus::Generating),
            node("b", Some("a"), NodeStatus::Failed),
            pending("c", Some("b")),
            pending("orphan", Some("missing")),
        ];
        let plan = plan_pending(&nodes, 2).unwrap();
        assert_eq!(plan_ids(&plan), ["orphan", "c"]);
        assert!(plan.iter().all(|p| p.depends_on.is_none()));
    }

    #[test]
    fn pending_plan_errors() {
        let done = [node("a", None, NodeStatus::Completed)];
        assert_eq!(
            fields_of(plan_pending(&done, 4).unwrap_err()),
            ["plan.mode"]
        );
        assert_eq!(fields_of(plan_pending(&[], 4).unwrap_err()), ["plan.mode"]);
        let one = [pending("a", None)];
        assert_eq!(
            fields_of(plan_pending(&one, 0).unwrap_err()),
            ["settings.max_parallel"]
        );
        assert_eq!(
            fields_of(plan_pending(&done, MAX_MAX_PARALLEL + 1).unwrap_err()),
            ["settings.max_parallel", "plan.mode"]
        );
        assert!(plan_pending(&one, MAX_MAX_PARALLEL).is_ok());
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("new{i}")).collect()
    }

    #[test]
    fn continue_plan_chains_new_nodes_under_a_new_root() {
        let plan = plan_continue(None, 3, &ids(3));
        assert_eq!(plan_ids(&plan), ["new0", "new1", "new2"]);
        let parents: Vec<_> = plan.iter().map(|p| p.parent_node_id.as_deref()).collect();
        assert_eq!(parents, [None, Some("new0"), Some("new1")]);
        let deps: Vec<_> = plan.iter().map(|p| p.depends_on).collect();
        assert_eq!(deps, [None, Some(0), Some(1)]);
        let titles: Vec<_> = plan.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["Part 1", "Part 2", "Part 3"]);
        assert!(plan.iter().all(|p| p.creates_node));
    }

    #[test]
    fn continue_plan_under_a_parent() {
        let parent = pending("p", None);
        let plan = plan_continue(Some(&parent), 2, &ids(5));
        assert_eq!(plan.len(), 2, "only `steps` ids are used");
        assert_eq!(plan[0].parent_node_id.as_deref(), Some("p"));
        assert_eq!(plan[0].depends_on, None, "the parent is not in the run");
        assert_eq!(plan[1].parent_node_id.as_deref(), Some("new0"));
        assert_eq!(plan[0].title, "Title p — Part 1");
        assert_eq!(plan[1].title, "Title p — Part 2");
        assert_eq!(plan_continue(Some(&parent), 5, &ids(2)).len(), 2);
        assert!(plan_continue(None, 0, &ids(2)).is_empty());
    }

    #[test]
    fn continue_plan_goes_on_numbering_parts() {
        let mut parent = pending("p", None);
        parent.title = "Saga — Part 3".into();
        let titles: Vec<_> = plan_continue(Some(&parent), 2, &ids(2))
            .into_iter()
            .map(|p| p.title)
            .collect();
        assert_eq!(titles, ["Saga — Part 4", "Saga — Part 5"]);
        parent.title = "part 9 ".into();
        assert_eq!(plan_continue(Some(&parent), 1, &ids(1))[0].title, "part 10");
        parent.title = "Chapter 12".into();
        assert_eq!(
            plan_continue(Some(&parent), 1, &ids(1))[0].title,
            "Chapter 12 — Part 1"
        );
        parent.title = "Départ 2".into();
        assert_eq!(
            plan_continue(Some(&parent), 1, &ids(1))[0].title,
            "Départ 3",
            "ends with `part 2`"
        );
        parent.title = "é2".into();
        assert_eq!(
            plan_continue(Some(&parent), 1, &ids(1))[0].title,
            "é2 — Part 1"
        );
    }

    #[test]
    fn continue_titles_fit_the_title_limit() {
        let mut parent = pending("p", None);
        parent.title = "é".repeat(MAX_TITLE_CHARS);
        let plan = plan_continue(Some(&parent), 10, &ids(10));
        for p in &plan {
            assert_eq!(p.title.chars().count(), MAX_TITLE_CHARS);
        }
        assert!(plan[9].title.ends_with(" — Part 10"));
        let mut errors = Errors::default();
        crate::domain::validate::name(&mut errors, "title", &plan[9].title, MAX_TITLE_CHARS);
        assert!(errors.is_empty());
    }

    #[test]
    fn steps_follow_the_plan() {
        let plan = plan_continue(None, 3, &ids(3));
        let step_ids: Vec<String> = ["s0", "s1", "s2"].map(String::from).into();
        let steps = steps_from_plan("run", &plan, &step_ids, false);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].depends_on, None);
        assert_eq!(steps[1].depends_on.as_deref(), Some("s0"));
        assert_eq!(steps[2].depends_on.as_deref(), Some("s1"));
        assert_eq!(steps[2].node_id, "new2");
        assert_eq!(steps[2].parent_node_id.as_deref(), Some("new1"));
        assert_eq!(
            steps.iter().map(|s| s.position).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(
            steps
                .iter()
                .all(|s| s.status == StepStatus::Pending && s.run_id == "run" && s.attempts == 0)
        );
        let gated = steps_from_plan("run", &plan, &step_ids[..2], true);
        assert_eq!(gated.len(), 2);
        assert!(
            gated
                .iter()
                .all(|s| s.status == StepStatus::WaitingApproval)
        );
    }

    // ---- dispatch ----

    fn ready_ids(steps: &[Step], max_parallel: usize) -> Vec<&str> {
        ready_steps(steps, max_parallel)
            .into_iter()
            .map(|s| s.id.as_str())
            .collect()
    }

    #[test]
    fn ready_steps_wait_for_their_dependency() {
        use StepStatus::*;
        let mut steps = vec![
            step("a", 0, None, Pending),
            step("b", 1, Some("a"), Pending),
            step("x", 2, None, Pending),
        ];
        assert_eq!(ready_ids(&steps, 4), ["a", "x"]);
        steps[0].status = Running;
        assert_eq!(ready_ids(&steps, 4), ["x"]);
        steps[0].status = Succeeded;
        assert_eq!(ready_ids(&steps, 4), ["b", "x"]);
        steps[0].status = Skipped;
        assert_eq!(ready_ids(&steps, 4), ["b", "x"], "skipped counts as done");
        steps[0].status = Failed;
        assert_eq!(ready_ids(&steps, 4), ["x"]);
        let orphan = [step("o", 0, Some("gone"), Pending)];
        assert!(ready_ids(&orphan, 4).is_empty());
    }

    #[test]
    fn ready_steps_respect_max_parallel_by_position() {
        use StepStatus::*;
        let mut steps: Vec<Step> = (0..6)
            .rev()
            .map(|i| step(&format!("s{i}"), i, None, Pending))
            .collect();
        assert_eq!(ready_ids(&steps, 4), ["s0", "s1", "s2", "s3"]);
        assert_eq!(ready_ids(&steps, 1), ["s0"]);
        assert!(ready_ids(&steps, 0).is_empty());
        // s5 and s4 are running: two slots left.
        steps[0].status = Running;
        steps[1].status = Running;
        assert_eq!(ready_ids(&steps, 4), ["s0", "s1"]);
        // A scheduled retry holds a slot and is not dispatched again.
        steps[5].lease_until = Some(t0());
        assert!(steps[5].is_scheduled_retry());
        assert_eq!(ready_ids(&steps, 4), ["s1"]);
        assert!(ready_ids(&steps, 3).is_empty());
        assert!(ready_ids(&steps, 2).is_empty(), "more busy than slots");
        // Steps waiting for approval do not run and take no slot.
        steps[4].status = WaitingApproval;
        assert_eq!(ready_ids(&steps, 5), ["s2", "s3"]);
    }

    #[test]
    fn approval_needs_the_dependency_done() {
        use StepStatus::*;
        let mut steps = vec![
            step("a", 0, None, WaitingApproval),
            step("b", 1, Some("a"), WaitingApproval),
        ];
        assert!(can_approve(&steps[0], &steps));
        assert!(!can_approve(&steps[1], &steps));
        steps[0].approve().unwrap();
        assert_eq!(steps[0].status, Pending);
        assert!(!can_approve(&steps[0], &steps), "already approved");
        assert!(steps[0].approve().is_err());
        steps[0].status = Succeeded;
        assert!(can_approve(&steps[1], &steps));
    }

    #[test]
    fn expired_leases_find_lost_attempts_and_overdue_retries() {
        use StepStatus::*;
        let mut steps = vec![
            step("lost", 0, None, Running),
            step("alive", 1, None, Running),
            step("due", 2, None, Pending),
            step("later", 3, None, Pending),
            step("idle", 4, None, Pending),
        ];
        steps[0].lease_until = Some(t0());
        steps[1].lease_until = Some(t0() + TimeDelta::seconds(1));
        steps[2].lease_until = Some(t0() - TimeDelta::seconds(1));
        steps[3].lease_until = Some(t0() + TimeDelta::seconds(60));
        let ids: Vec<_> = expired_leases(&steps, t0())
            .into_iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["lost", "due"]);
    }

    // ---- step lifecycle ----

    #[test]
    fn an_attempt_takes_a_lease_and_records_usage() {
        let mut s = step("s", 0, None, StepStatus::Pending);
        assert_eq!(s.start(t0(), secs(960.0)).unwrap(), 1);
        assert_eq!(s.status, StepStatus::Running);
        assert_eq!(s.lease_until, Some(t0() + TimeDelta::seconds(960)));
        assert_eq!(s.started_at, Some(t0()));
        assert!(s.start(t0(), secs(1.0)).is_err(), "already running");
        let t1 = t0() + TimeDelta::seconds(5);
        s.succeed(
            t1,
            Usage {
                model: Some("builtin".into()),
                input_tokens: 10,
                output_tokens: 20,
                latency_ms: 1500,
            },
        )
        .unwrap();
        assert_eq!(s.status, StepStatus::Succeeded);
        assert_eq!((s.lease_until, s.finished_at), (None, Some(t1)));
        assert_eq!(
            (s.input_tokens, s.output_tokens, s.latency_ms),
            (10, 20, 1500)
        );
        assert_eq!(s.model.as_deref(), Some("builtin"));
        assert!(s.succeed(t1, Usage::default()).is_err());
    }

    #[test]
    fn a_retryable_failure_schedules_another_attempt_until_the_budget_is_spent() {
        let policy = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let mut s = step("s", 0, None, StepStatus::Pending);
        s.start(t0(), secs(60.0)).unwrap();
        let t1 = t0() + TimeDelta::seconds(3);
        let d = s
            .fail(
                t1,
                StepError::new(ErrorKind::Throttled, "429"),
                &policy,
                0.5,
            )
            .unwrap();
        assert_eq!(d, RetryDecision::RetryAfter(secs(1.0)));
        assert_eq!(s.status, StepStatus::Pending);
        assert_eq!(s.lease_until, Some(t1 + TimeDelta::seconds(1)));
        assert!(s.is_scheduled_retry() && s.occupies_slot());
        assert_eq!(
            s.last_error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Throttled)
        );
        assert_eq!(s.start(t1, secs(60.0)).unwrap(), 2);
        assert_eq!(s.started_at, Some(t0()), "the first start is kept");
        let d = s
            .fail(t1, StepError::new(ErrorKind::Upstream, "502"), &policy, 0.5)
            .unwrap();
        assert_eq!(d, RetryDecision::GiveUp);
        assert_eq!(
            (s.status, s.lease_until, s.finished_at),
            (StepStatus::Failed, None, Some(t1))
        );
        assert!(!s.occupies_slot());
        assert!(
            s.fail(t1, StepError::new(ErrorKind::Upstream, "x"), &policy, 0.5)
                .is_err()
        );
    }

    #[test]
    fn a_permanent_failure_fails_at_once() {
        let mut s = step("s", 0, None, StepStatus::Pending);
        s.start(t0(), secs(60.0)).unwrap();
        let d = s
            .fail(
                t0(),
                StepError::new(ErrorKind::ContentFiltered, "refused"),
                &RetryPolicy::default(),
                1.0,
            )
            .unwrap();
        assert_eq!((d, s.status), (RetryDecision::GiveUp, StepStatus::Failed));
    }

    #[test]
    fn expired_leases_fail_as_timeouts_or_release_retries() {
        let policy = RetryPolicy::default();
        let mut s = step("s", 0, None, StepStatus::Pending);
        s.start(t0(), secs(60.0)).unwrap();
        let d = s.expire_lease(t0(), &policy, 1.0).unwrap();
        assert_eq!(d, RetryDecision::RetryAfter(secs(2.0)));
        assert_eq!(
            s.last_error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Timeout)
        );
        assert!(s.is_scheduled_retry());
        // The retry's message never came: the step becomes dispatchable again.
        s.expire_lease(t0(), &policy, 1.0).unwrap();
        assert_eq!((s.status, s.lease_until), (StepStatus::Pending, None));
        assert_eq!(ready_steps(std::slice::from_ref(&s), 1).len(), 1);
    }

    #[test]
    fn skipping_and_run_retry() {
        let mut s = step("s", 0, None, StepStatus::WaitingApproval);
        s.skip(t0()).unwrap();
        assert_eq!((s.status, s.finished_at), (StepStatus::Skipped, Some(t0())));
        assert!(s.skip(t0()).is_err());
        assert!(s.reset_for_retry().is_err(), "skipped is final");

        let mut f = step("f", 0, None, StepStatus::Failed);
        f.attempts = 5;
        f.finished_at = Some(t0());
        f.last_error = Some(StepError::new(ErrorKind::Upstream, "502"));
        f.reset_for_retry().unwrap();
        assert_eq!(
            (f.status, f.attempts, f.finished_at),
            (StepStatus::Pending, 0, None)
        );
        assert!(f.last_error.is_some(), "kept for the record");
        let mut ok = step("ok", 0, None, StepStatus::Succeeded);
        assert!(ok.reset_for_retry().is_err());
    }

    #[test]
    fn run_retry_takes_only_failed_steps() {
        use StepStatus::*;
        let steps = [
            step("a", 0, None, Succeeded),
            step("b", 1, Some("a"), Failed),
            step("c", 2, Some("b"), Pending),
            step("x", 3, None, Failed),
        ];
        let ids: Vec<_> = steps_to_retry(&steps)
            .into_iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["b", "x"]);
    }

    // ---- progress ----

    #[test]
    fn all_done_succeeds() {
        use StepStatus::*;
        let run = running_run();
        let steps = [
            step("a", 0, None, Succeeded),
            step("b", 1, Some("a"), Skipped),
            step("c", 2, Some("b"), Succeeded),
        ];
        let p = progress(&run, &steps);
        assert_eq!(p.status, RunStatus::Succeeded);
        assert_eq!(
            (p.counts.total, p.counts.succeeded, p.counts.skipped),
            (3, 2, 1)
        );
        assert_eq!(p.error, None);
    }

    #[test]
    fn work_in_flight_keeps_running() {
        use StepStatus::*;
        let run = running_run();
        for s in [Pending, Running, WaitingApproval] {
            let steps = [step("a", 0, None, Succeeded), step("b", 1, Some("a"), s)];
            assert_eq!(progress(&run, &steps).status, RunStatus::Running, "{s}");
        }
        let mut scheduled = step("a", 0, None, Pending);
        scheduled.lease_until = Some(t0());
        assert_eq!(progress(&run, &[scheduled]).status, RunStatus::Running);
    }

    #[test]
    fn a_failure_lets_independent_branches_finish_then_fails() {
        use StepStatus::*;
        let run = running_run();
        let mut steps = vec![
            step("a", 0, None, Failed),
            step("b", 1, Some("a"), Pending),
            step("c", 2, Some("b"), WaitingApproval),
            step("x", 3, None, Running),
        ];
        steps[0].last_error = Some(StepError::new(ErrorKind::Upstream, "502 after 5 attempts"));
        let p = progress(&run, &steps);
        assert_eq!((p.status, p.error.clone()), (RunStatus::Running, None));
        steps[3].status = Succeeded;
        let p = progress(&run, &steps);
        assert_eq!(p.status, RunStatus::Failed);
        assert_eq!(
            p.error.map(|e| e.message),
            Some("502 after 5 attempts".to_string())
        );
        assert_eq!(
            (
                p.counts.failed,
                p.counts.pending,
                p.counts.waiting_approval,
                p.counts.succeeded
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn the_run_error_is_the_first_failed_step_by_position() {
        use StepStatus::*;
        let run = running_run();
        let mut late = step("late", 5, None, Failed);
        late.last_error = Some(StepError::new(ErrorKind::Timeout, "late"));
        let mut early = step("early", 1, None, Failed);
        early.last_error = Some(StepError::new(ErrorKind::Throttled, "early"));
        let p = progress(&run, &[late, early]);
        assert_eq!(p.error.map(|e| e.message), Some("early".to_string()));
        let p = progress(&run, &[step("bare", 0, None, Failed)]);
        assert_eq!(p.error.map(|e| e.kind), Some(ErrorKind::Internal));
    }

    #[test]
    fn a_stuck_plan_fails() {
        let run = running_run();
        let steps = [step("o", 0, Some("gone"), StepStatus::Pending)];
        let p = progress(&run, &steps);
        assert_eq!(p.status, RunStatus::Failed);
        assert_eq!(
            p.error.map(|e| (e.kind, e.message)),
            Some((ErrorKind::Internal, "no step can make progress".to_string()))
        );
        let cycle = [
            step("a", 0, Some("b"), StepStatus::Pending),
            step("b", 1, Some("a"), StepStatus::Pending),
        ];
        assert_eq!(progress(&run, &cycle).status, RunStatus::Failed);
    }

    #[test]
    fn only_running_runs_move() {
        use StepStatus::*;
        let steps = [step("a", 0, None, Succeeded), step("b", 1, None, Failed)];
        for status in [
            RunStatus::Queued,
            RunStatus::Paused,
            RunStatus::Cancelled,
            RunStatus::Failed,
        ] {
            let mut run = running_run();
            run.status = status;
            let p = progress(&run, &steps);
            assert_eq!(p.status, status);
            assert_eq!(p.error, None);
        }
    }

    #[test]
    fn applying_progress_updates_counters_status_and_error() {
        use StepStatus::*;
        let mut run = running_run();
        let mut steps = vec![step("a", 0, None, Succeeded), step("b", 1, None, Running)];
        let t1 = t0() + TimeDelta::seconds(9);
        run.apply(&progress(&run, &steps), t1).unwrap();
        assert_eq!(
            (
                run.status,
                run.steps_total,
                run.steps_succeeded,
                run.finished_at
            ),
            (RunStatus::Running, 2, 1, None)
        );
        steps[1].status = Failed;
        steps[1].last_error = Some(StepError::new(ErrorKind::Upstream, "boom"));
        run.apply(&progress(&run, &steps), t1).unwrap();
        assert_eq!((run.status, run.steps_failed), (RunStatus::Failed, 1));
        assert_eq!(run.finished_at, Some(t1));
        assert_eq!(
            run.last_error.as_ref().map(|e| e.message.as_str()),
            Some("boom")
        );
        // Retry: the failed step runs again and the run succeeds.
        run.transition(RunStatus::Running, t1).unwrap();
        steps[1].reset_for_retry().unwrap();
        steps[1].status = Succeeded;
        run.apply(&progress(&run, &steps), t1).unwrap();
        assert_eq!(
            (run.status, run.steps_succeeded, run.steps_failed),
            (RunStatus::Succeeded, 2, 0)
        );
        assert_eq!(run.last_error, None);
    }

    // ---- prompts ----

    #[test]
    fn a_root_prompt_names_the_title() {
        let p = default_prompt(None, "Part 1");
        assert!(p.contains("\"Part 1\""), "{p}");
    }

    #[test]
    fn a_continuation_quotes_the_end_of_the_parent() {
        let mut parent = pending("p", None);
        parent.title = "Saga".into();
        parent.content = "Once upon a time.".into();
        let p = default_prompt(Some(&parent), "Saga — Part 2");
        assert!(
            p.contains("\"Saga\"") && p.contains("\"Saga — Part 2\""),
            "{p}"
        );
        assert!(p.ends_with("\n\nOnce upon a time."), "{p}");

        parent.content = format!("{}{}", "a".repeat(10), "é".repeat(PROMPT_TAIL_CHARS));
        let p = default_prompt(Some(&parent), "next");
        assert!(p.ends_with(&format!("…{}", "é".repeat(PROMPT_TAIL_CHARS))));
        assert!(
            !p.contains("aaaaaaaaaa"),
            "the head of the content is cut off"
        );

        parent.content = "b".repeat(PROMPT_TAIL_CHARS);
        let p = default_prompt(Some(&parent), "next");
        assert!(p.ends_with(&format!("\n\n{}", "b".repeat(PROMPT_TAIL_CHARS))));
        assert!(!p.contains('…'));

        parent.content = "  \n".into();
        let p = default_prompt(Some(&parent), "next");
        assert!(p.contains("follows \"Saga\""), "{p}");
    }

    #[test]
    fn tails_are_cut_on_char_boundaries() {
        assert_eq!(tail_chars("héllo", 3), ("llo", true));
        assert_eq!(tail_chars("héllo", 4), ("éllo", true));
        assert_eq!(tail_chars("héllo", 5), ("héllo", false));
        assert_eq!(tail_chars("héllo", 50), ("héllo", false));
        assert_eq!(tail_chars("", 5), ("", false));
        assert_eq!(tail_chars("x", 0), ("", true));
    }

    #[test]
    fn a_nodes_own_prompt_wins() {
        let mut n = pending("n", None);
        assert_eq!(prompt_for(&n, None), default_prompt(None, "Title n"));
        n.prompt = "Write a haiku.".into();
        assert_eq!(prompt_for(&n, None), "Write a haiku.");
        n.prompt = "   ".into();
        assert_eq!(prompt_for(&n, None), default_prompt(None, "Title n"));
    }

    // ---- settings ----

    fn settings(v: Value) -> Settings {
        Settings(v.as_object().unwrap().clone())
    }

    #[test]
    fn run_settings_are_read_with_defaults() {
        assert_eq!(max_parallel(&settings(json!({}))), DEFAULT_MAX_PARALLEL);
        assert_eq!(max_parallel(&settings(json!({"max_parallel": 2}))), 2);
        assert_eq!(
            max_parallel(&settings(json!({"max_parallel": 0}))),
            DEFAULT_MAX_PARALLEL
        );
        assert_eq!(
            max_parallel(&settings(json!({"max_parallel": "8"}))),
            DEFAULT_MAX_PARALLEL
        );
        assert_eq!(retry_policy(&settings(json!({}))), RetryPolicy::default());
        assert_eq!(
            retry_policy(&settings(json!({"retry": {"interval_s": 0.5}}))).interval_s,
            0.5
        );
        assert_eq!(
            retry_policy(&settings(json!({"retry": {"interval_s": -1}}))),
            RetryPolicy::default()
        );
    }

    #[test]
    fn run_settings_validation_has_paths() {
        let check = |v: Value| errors_with(|e| validate_settings(e, "settings", &settings(v)));
        assert!(
            check(json!({"max_parallel": 16, "retry": {"max_attempts": 3}, "other": 1})).is_empty()
        );
        assert_eq!(
            check(json!({"max_parallel": 17})),
            ["settings.max_parallel"]
        );
        assert_eq!(
            check(json!({"retry": {"interval_s": 0, "backoff_rate": 0.5}})),
            ["settings.retry.interval_s", "settings.retry.backoff_rate"]
        );
        assert_eq!(check(json!({"retry": {"bogus": 1}})), ["settings.retry"]);
        assert_eq!(check(json!({"retry": 3})), ["settings.retry"]);
    }
}
