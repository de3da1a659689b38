//! The chain's ports: where runs and their steps are kept, the queue that carries steps to the
//! worker, and the model that writes a step's document.

use super::{Fut, IdempotencyRecord, Page, PageKey};
use crate::domain::run::{Run, Step, StepError, StepStatus};
use crate::domain::{Node, Principal, Workflow};
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

/// A run with its steps, its workflow, and, when asked for, a node and that node's parent, as
/// one request reads them (each `None` when not stored): what an attempt of a step needs
/// before it generates, and what a run's route needs to check access.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunWith {
    pub run: Option<(Run, Vec<Step>)>,
    pub workflow: Option<Workflow>,
    pub node: Option<Node>,
    pub parent: Option<Node>,
}

/// Runs and their steps, kept with their workflow.
pub trait Runs: Send + Sync {
    /// Stores a new run with its steps and the new nodes a `continue` plan writes into (all
    /// `pending`), and, when given, the idempotency record: all or nothing. The workflow must
    /// still be changeable by `actor` and, with new nodes, still have the `max_nodes` the
    /// caller read (`max_nodes`) and room below it for them
    /// ([`super::StoreError::WorkflowRejected`] otherwise).
    fn create_run<'a>(
        &'a self,
        actor: &'a Principal,
        run: &'a Run,
        steps: &'a [Step],
        new_nodes: &'a [Node],
        max_nodes: u64,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()>;
    /// A run with every step, steps in plan order.
    fn get_run<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
    ) -> Fut<'a, Option<(Run, Vec<Step>)>>;
    /// A run with every step (as [`Runs::get_run`]), its workflow, and, when named, one of the
    /// workflow's nodes and that node's parent, in one read.
    fn get_run_with<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
        node_id: Option<&'a str>,
        parent_id: Option<&'a str>,
    ) -> Fut<'a, RunWith>;
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
    /// Runs that are not over (queued, running, paused), as (workflow id, run id), at most
    /// `limit` of them (the sweep's list; an index read, eventually consistent).
    fn active_runs<'a>(&'a self, limit: usize) -> Fut<'a, Vec<(String, String)>>;
}

/// The message that asks the worker to run (an attempt of) one step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StepMessage {
    pub workflow_id: String,
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
    /// The step's node and that node's parent, so the worker reads them with the run in one
    /// request (checked against the stored step; a message without them is read in two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_node_id: Option<String>,
}

impl StepMessage {
    /// The message asking for the next attempt of `step` of `run`.
    pub fn next_attempt(run: &Run, step: &Step) -> StepMessage {
        StepMessage {
            workflow_id: run.workflow_id.clone(),
            run_id: run.id.clone(),
            step_id: step.id.clone(),
            attempt: step.attempts + 1,
            node_id: Some(step.node_id.clone()),
            parent_node_id: step.parent_node_id.clone(),
        }
    }
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

/// One of the four step queues, by priority (each has its dead-letter queue).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StepQueue {
    /// Priority 5.
    Critical,
    /// Priority 4.
    High,
    /// Priority 3.
    Normal,
    /// Priorities 1 and 2.
    Low,
}

impl StepQueue {
    pub const ALL: [StepQueue; 4] = [
        StepQueue::Critical,
        StepQueue::High,
        StepQueue::Normal,
        StepQueue::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepQueue::Critical => "critical",
            StepQueue::High => "high",
            StepQueue::Normal => "normal",
            StepQueue::Low => "low",
        }
    }

    /// The queue named `name` (`critical`, `high`, `normal`, `low`), if any.
    pub fn parse(name: &str) -> Option<StepQueue> {
        StepQueue::ALL.into_iter().find(|q| q.as_str() == name)
    }
}

/// A string or number message attribute, carried along when a message is redriven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number`, or either with a custom suffix (`Number.int`).
    pub data_type: String,
    pub value: String,
}

/// A message received from a dead-letter queue (hidden from other receivers until it is
/// deleted, released, or its visibility timeout passes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    /// What deletes or releases this receipt of the message.
    pub receipt_handle: String,
    pub body: String,
    /// The fair-queue group (the run's owner), when the message had one.
    pub message_group_id: Option<String>,
    /// Its string and number attributes (binary ones are not carried).
    pub attributes: std::collections::BTreeMap<String, MessageAttribute>,
    /// Receives so far, this one included (the source queue's count moves along with it).
    pub receive_count: u32,
    /// When it was first sent (to the source queue).
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The step queues' dead-letter queues, as far as an operator redrives them: receive, send
/// back to the source queue, delete, release. The emulator has no `StartMessageMoveTask`, so
/// moving messages is these primitives (`app::runs::dead_letters`).
pub trait DeadLetters: Send + Sync {
    /// Up to `max` (1..=10) messages of `queue`'s dead-letter queue, hidden for
    /// `visibility_s`, waiting at most `wait_s` (0: at once) for one.
    fn receive(
        &self,
        queue: StepQueue,
        max: u32,
        visibility_s: u32,
        wait_s: u32,
    ) -> Fut<'_, Vec<DeadLetter>>;
    /// About how many messages `queue`'s dead-letter queue holds (not counting those in flight).
    fn approximate_count(&self, queue: StepQueue) -> Fut<'_, u64>;
    /// Sends each message (up to 10) to `queue` itself, body, group and attributes as
    /// received; whether each was sent, in order.
    fn send_to_source<'a>(
        &'a self,
        queue: StepQueue,
        messages: &'a [DeadLetter],
    ) -> Fut<'a, Vec<bool>>;
    /// Deletes these receipts (up to 10) from `queue`'s dead-letter queue.
    fn delete<'a>(&'a self, queue: StepQueue, messages: &'a [&'a DeadLetter]) -> Fut<'a, ()>;
    /// Makes these receipts (up to 10) visible again at once.
    fn release<'a>(&'a self, queue: StepQueue, messages: &'a [&'a DeadLetter]) -> Fut<'a, ()>;
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
