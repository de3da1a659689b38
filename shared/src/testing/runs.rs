//! In-memory fakes of the chain's other ports: [`MemoryQueue`] ([`TaskQueue`]) and
//! [`ScriptedGenerator`] ([`TextGenerator`]). Runs and steps are kept by
//! [`super::workflows::MemoryWorkflowStore`], with the workflows they belong to.

use crate::domain::run::{ErrorKind, MAX_PRIORITY, MIN_PRIORITY, SQS_MAX_DELAY_S, StepError};
use crate::generators::Builtin;
use crate::ports::{
    Fut, GenFut, Generated, Generation, OnDelta, StepMessage, StoreError, TaskQueue, TextGenerator,
};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One message a [`MemoryQueue`] was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub priority: u8,
    pub owner_id: String,
    pub message: StepMessage,
    pub delay_s: u32,
}

#[derive(Debug, Default)]
struct QueueInner {
    sent: Vec<Sent>,
    failures: VecDeque<String>,
}

/// The task queues in memory: records every message sent, in order, for the test to deliver
/// (or not). Refuses what SQS refuses: a priority outside 1..=5 or a delay beyond 900 s
/// ([`StoreError::Internal`], nothing recorded).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<QueueInner>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every message sent so far (not taken), in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// The messages sent so far, in order; the queue forgets them.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut self.lock().sent)
    }

    /// Makes the next send fail with [`StoreError::Unavailable`]`(reason)`, recording nothing.
    /// Called several times, it fails as many sends, in order.
    pub fn fail_next(&self, reason: impl Into<String>) {
        self.lock().failures.push_back(reason.into());
    }
}

impl TaskQueue for MemoryQueue {
    fn enqueue<'a>(
        &'a self,
        priority: u8,
        owner_id: &'a str,
        message: &'a StepMessage,
        delay_s: u32,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut inner = self.lock();
            if let Some(reason) = inner.failures.pop_front() {
                return Err(StoreError::Unavailable(reason));
            }
            if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
                return Err(StoreError::Internal(format!(
                    "no queue of priority {priority}"
                )));
            }
            if delay_s > SQS_MAX_DELAY_S {
                return Err(StoreError::Internal(format!(
                    "a delay of {delay_s} s (at most {SQS_MAX_DELAY_S})"
                )));
            }
            inner.sent.push(Sent {
                priority,
                owner_id: owner_id.to_string(),
                message: message.clone(),
                delay_s,
            });
            Ok(())
        })
    }
}

/// One scripted answer of a [`ScriptedGenerator`].
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// Streams the text, then answers it (or the error).
    Result(Result<Generated, StepError>),
    /// Never answers: the caller's timeout ends the call.
    Hang,
}

#[derive(Debug, Default)]
struct GeneratorInner {
    script: VecDeque<Answer>,
    requests: Vec<Generation>,
}

/// A model that answers from a script, one answer per call in order, then as
/// [`Builtin`] does once the script is used up. Streams a scripted text through `on_delta` in
/// a few pieces (the pieces together are the text), and records every request.
#[derive(Debug, Default)]
pub struct ScriptedGenerator {
    inner: Mutex<GeneratorInner>,
}

/// Words of `text`, a rough token count.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

impl ScriptedGenerator {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, GeneratorInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call writes `text` (`finish_reason` `stop`; tokens counted as words of the
    /// prompt and of the text).
    pub fn push_ok(&self, text: impl Into<String>) -> &Self {
        let text = text.into();
        self.push(Ok(Generated {
            input_tokens: 0,
            output_tokens: words(&text),
            text,
            finish_reason: "stop".into(),
        }))
    }

    /// The next call fails with `kind` (retryable as the kind is) and `message`.
    pub fn push_err(&self, kind: ErrorKind, message: impl Into<String>) -> &Self {
        self.push(Err(StepError::new(kind, message)))
    }

    /// The next call answers exactly `answer` (a successful text is streamed first). An
    /// `input_tokens` of 0 is replaced by the words of the request's prompt.
    pub fn push(&self, answer: Result<Generated, StepError>) -> &Self {
        self.lock().script.push_back(Answer::Result(answer));
        self
    }

    /// The next call never finishes: it waits on a future that never resolves, so only the
    /// caller's timeout (or dropping the call) ends it.
    pub fn push_hang(&self) -> &Self {
        self.lock().script.push_back(Answer::Hang);
        self
    }

    /// Calls made so far (hanging ones included).
    pub fn calls(&self) -> usize {
        self.lock().requests.len()
    }

    /// The requests of every call so far, in order.
    pub fn requests(&self) -> Vec<Generation> {
        self.lock().requests.clone()
    }

    /// Scripted answers not used yet.
    pub fn remaining(&self) -> usize {
        self.lock().script.len()
    }
}

/// `text` through `on_delta` in (at most) three pieces of whole words.
async fn stream(text: &str, on_delta: OnDelta<'_>) {
    let pieces: Vec<&str> = text.split_inclusive(' ').collect();
    let size = pieces.len().div_ceil(3).max(1);
    for chunk in pieces.chunks(size) {
        on_delta(&chunk.concat());
        tokio::task::yield_now().await;
    }
}

impl TextGenerator for ScriptedGenerator {
    fn generate<'a>(&'a self, request: &'a Generation, on_delta: OnDelta<'a>) -> GenFut<'a> {
        Box::pin(async move {
            let answer = {
                let mut inner = self.lock();
                inner.requests.push(request.clone());
                inner.script.pop_front()
            };
            match answer {
                None => Builtin.generate(request, on_delta).await,
                Some(Answer::Hang) => {
                    std::future::pending::<()>().await;
                    Err(StepError::new(ErrorKind::Internal, "a hung call ended"))
                }
                Some(Answer::Result(Ok(mut generated))) => {
                    stream(&generated.text, on_delta).await;
                    if generated.input_tokens == 0 {
                        generated.input_tokens = words(&request.prompt);
                    }
                    Ok(generated)
                }
                Some(Answer::Result(Err(error))) => Err(error),
            }
        })
    }
}

/// An `active` workflow of `owner` named `name`, made at `now`, with default settings (for the
/// tests of workers and stores that start from a stored workflow).
pub fn active_workflow(
    owner: &crate::domain::Principal,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::domain::Workflow {
    crate::domain::Workflow {
        id: crate::domain::ids::new_id(),
        owner_id: owner.user_id.clone(),
        name: name.into(),
        description: String::new(),
        status: crate::domain::WorkflowStatus::Active,
        settings: crate::domain::Settings::with_defaults(Default::default()),
        tags: vec![],
        node_count: 0,
        created_at: now,
        updated_at: now,
        version: 1,
        shares: Default::default(),
    }
}

/// A `continue` run of `workflow` (by its owner) writing a chain of `n` new nodes under a new
/// root, as starting one plans it: the run, its steps and the pending nodes to store with it.
pub fn chain(
    workflow: &crate::domain::Workflow,
    n: u32,
    model: Option<crate::domain::run::ModelRef>,
    priority: u8,
    now: chrono::DateTime<chrono::Utc>,
) -> (
    crate::domain::run::Run,
    Vec<crate::domain::run::Step>,
    Vec<crate::domain::Node>,
) {
    use crate::domain::ids;
    use crate::domain::run::{self, PlanRequest, Run, RunOptions};
    let plan = run::plan_continue(None, n, &ids::new_ids(n as usize));
    let options = RunOptions {
        plan: PlanRequest::Continue {
            from_node_id: None,
            steps: n,
        },
        model,
        priority,
        max_attempts: 3,
        timeout_s: 600,
        approval: false,
    };
    let r = Run::new(
        ids::new_id(),
        workflow.id.clone(),
        workflow.owner_id.clone(),
        &options,
        n,
        now,
    );
    let steps = run::steps_from_plan(&r.id, &plan, &ids::new_ids(plan.len()), false);
    let nodes = plan.iter().map(|p| p.new_node(&workflow.id, now)).collect();
    (r, steps, nodes)
}

/// The message asking for the next attempt of `step`.
pub fn message(run: &crate::domain::run::Run, step: &crate::domain::run::Step) -> StepMessage {
    StepMessage {
        workflow_id: run.workflow_id.clone(),
        run_id: run.id.clone(),
        step_id: step.id.clone(),
        attempt: step.attempts + 1,
    }
}
