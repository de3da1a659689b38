//! The chain's ports: where runs and their steps are kept, the queue that carries steps to the
//! worker, and the model that writes a step's document.

use super::{Fut, IdempotencyRecord, Page, PageKey};
use crate::domain::run::{Run, Step, StepError, StepStatus};
use crate::domain::{Node, Principal};
use std::future::Future;
use std::pin::Pin;

/// One write of a step's outcome: the step, the node it writes (when it succeeded) and the
/// run's progress, all or nothing, and only while the attempt that claimed the step still
/// holds it (the step is `running` at `attempt`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepCommit {
    pub step: Step,
    /// The attempt that claimed the step.
    pub attempt: u32,
    /// The node with its new content, metrics and quality (its version one up from the
    /// stored one), when the step succeeded.
    pub node: Option<Node>,
    /// The run as it is to be written, conditional on `run_version`.
    pub run: Run,
    pub run_version: u64,
}

/// Runs and their steps, kept with their workflow.
pub trait Runs: Send + Sync {
    /// Stores a new run with its steps and the new nodes a `continue` plan writes into (all
    /// `pending`), and, when given, the idempotency record: all or nothing. The workflow must
    /// still be changeable by `actor` and below its `max_nodes` with the new nodes
    /// ([`super::StoreError::WorkflowRejected`] otherwise).
    fn create_run<'a>(
        &'a self,
        actor: &'a Principal,
        run: &'a Run,
        steps: &'a [Step],
        new_nodes: &'a [Node],
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()>;
    /// A run with every step, steps in plan order.
    fn get_run<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
    ) -> Fut<'a, Option<(Run, Vec<Step>)>>;
    /// A workflow's runs, newest first.
    fn list_runs<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Run>>;
    /// Writes `run` (and `steps`, each conditional on its status as read) if the stored run is
    /// at `expected_version`; [`super::StoreError::Conflict`] otherwise.
    fn update_run<'a>(
        &'a self,
        run: &'a Run,
        expected_version: u64,
        steps: &'a [(Step, StepStatus)],
    ) -> Fut<'a, ()>;
    /// Claims `step` for an attempt: writes it (now `running`, with a lease) only if the stored
    /// step is still in `from` and, for an expired lease or a due retry, its `lease_until` has
    /// passed `now`. Whether the claim held.
    fn claim_step<'a>(
        &'a self,
        step: &'a Step,
        from: StepStatus,
        expected_attempts: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Fut<'a, bool>;
    /// Applies a step's outcome ([`StepCommit`]) in one transaction: `Ok(true)` when written;
    /// `Ok(false)` when the attempt lost its claim (the stored step is no longer `running` at
    /// `attempt`: another worker owns it), and nothing is written;
    /// [`super::StoreError::Conflict`] when only the run moved on (another step committed
    /// meanwhile): read the run again and commit once more.
    fn commit_step<'a>(&'a self, commit: &'a StepCommit) -> Fut<'a, bool>;
}

/// The message that asks the worker to run (an attempt of) one step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepMessage {
    pub workflow_id: String,
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
}

/// The queues that carry steps to the worker, one per priority.
pub trait TaskQueue: Send + Sync {
    /// Sends `message` to the queue of `priority` (1..=5), grouped by `owner_id` (fair
    /// queues: one tenant cannot starve the others), visible after `delay_s` (<= 900).
    fn enqueue<'a>(
        &'a self,
        priority: u8,
        owner_id: &'a str,
        message: &'a StepMessage,
        delay_s: u32,
    ) -> Fut<'a, ()>;
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The model reference as a run names it (`builtin`, `openai:<model>`,
    /// `bedrock:<model id>`): the provider's prefix routes the request
    /// ([`crate::generators::Generators`]); each adapter strips its own.
    pub model: String,
    pub system: Option<String>,
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: f32,
    /// The longest the call may take.
    pub timeout: std::time::Duration,
}

/// What a model wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `stop`, `length`, `content_filter`, ... as the provider says.
    pub finish_reason: String,
}

/// Receives the text as it is written, piece by piece (for live updates); may be a no-op.
pub type OnDelta<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The future of a generation: the text, or why not, classified for retries.
pub type GenFut<'a> = Pin<Box<dyn Future<Output = Result<Generated, StepError>> + Send + 'a>>;

/// A model that writes text from a prompt (OpenAI-compatible servers, Bedrock, the built-in
/// deterministic one).
pub trait TextGenerator: Send + Sync {
    fn generate<'a>(&'a self, request: &'a Generation, on_delta: OnDelta<'a>) -> GenFut<'a>;
}
