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
    StepMessage::next_attempt(run, step)
}

use crate::ports::{DeadLetter, DeadLetters, StepQueue};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
struct DeadLettersInner {
    /// Each dead-letter queue's messages, oldest first, with whether a receive holds them.
    dead: HashMap<StepQueue, Vec<(DeadLetter, bool)>>,
    /// What was sent back to each source queue, in order.
    redriven: HashMap<StepQueue, Vec<DeadLetter>>,
    /// Receipts handed out so far (each receive makes new ones, as SQS does).
    receipts: u64,
    /// Messages whose next send back fails (by message id).
    failing_sends: HashSet<String>,
    /// Errors the next calls of each operation answer, in order.
    failures: HashMap<&'static str, VecDeque<String>>,
}

/// The dead-letter queues in memory: [`MemoryDeadLetters::push`] puts a message in one; a
/// receive hides what it returns until it is deleted or released (time does not pass here);
/// sends back are recorded per source queue.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    inner: Mutex<DeadLettersInner>,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, DeadLettersInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a message with `body`, grouped by `group`, in `queue`'s dead-letter queue, as if it
    /// had failed 5 receives; its message id.
    pub fn push(&self, queue: StepQueue, body: impl Into<String>, group: Option<&str>) -> String {
        let message_id = crate::domain::ids::new_id();
        let message = DeadLetter {
            message_id: message_id.clone(),
            receipt_handle: String::new(),
            body: body.into(),
            message_group_id: group.map(str::to_string),
            attributes: Default::default(),
            receive_count: 5,
            sent_at: Some(chrono::Utc::now()),
        };
        self.lock()
            .dead
            .entry(queue)
            .or_default()
            .push((message, false));
        message_id
    }

    /// Every message of `queue`'s dead-letter queue, received or not, oldest first.
    pub fn dead(&self, queue: StepQueue) -> Vec<DeadLetter> {
        let inner = self.lock();
        inner
            .dead
            .get(&queue)
            .map(|d| d.iter().map(|(m, _)| m.clone()).collect())
            .unwrap_or_default()
    }

    /// The messages of `queue`'s dead-letter queue that a receive holds now.
    pub fn in_flight(&self, queue: StepQueue) -> usize {
        let inner = self.lock();
        inner
            .dead
            .get(&queue)
            .map_or(0, |d| d.iter().filter(|(_, held)| *held).count())
    }

    /// What was sent back to `queue` so far, in order.
    pub fn redriven(&self, queue: StepQueue) -> Vec<DeadLetter> {
        self.lock()
            .redriven
            .get(&queue)
            .cloned()
            .unwrap_or_default()
    }

    /// Makes every send back of the message `message_id` fail (the others of its batch go).
    pub fn fail_send_of(&self, message_id: &str) {
        self.lock().failing_sends.insert(message_id.to_string());
    }

    /// Makes the next call of `operation` (`receive`, `count`, `send`, `delete`, `release`)
    /// fail with [`StoreError::Unavailable`]`(reason)`, changing nothing. Called several
    /// times, it fails as many calls, in order.
    pub fn fail_next(&self, operation: &'static str, reason: impl Into<String>) {
        self.lock()
            .failures
            .entry(operation)
            .or_default()
            .push_back(reason.into());
    }

    fn failure(inner: &mut DeadLettersInner, operation: &'static str) -> Result<(), StoreError> {
        match inner
            .failures
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
        {
            Some(reason) => Err(StoreError::Unavailable(reason)),
            None => Ok(()),
        }
    }

    /// Applies `change` to the held message of `queue` with each receipt; an unknown receipt
    /// is an error, as SQS's batch entries fail.
    fn on_receipts(
        &self,
        queue: StepQueue,
        messages: &[&DeadLetter],
        delete: bool,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        Self::failure(&mut inner, if delete { "delete" } else { "release" })?;
        let dead = inner.dead.entry(queue).or_default();
        for m in messages {
            let i = dead
                .iter()
                .position(|(d, held)| *held && d.receipt_handle == m.receipt_handle)
                .ok_or_else(|| {
                    StoreError::Internal(format!("receipt {} is not valid", m.receipt_handle))
                })?;
            if delete {
                dead.remove(i);
            } else {
                dead[i].1 = false;
            }
        }
        Ok(())
    }
}

impl DeadLetters for MemoryDeadLetters {
    fn receive(
        &self,
        queue: StepQueue,
        max: u32,
        _visibility_s: u32,
        _wait_s: u32,
    ) -> Fut<'_, Vec<DeadLetter>> {
        Box::pin(async move {
            if !(1..=10).contains(&max) {
                return Err(StoreError::Internal(format!(
                    "MaxNumberOfMessages {max} (1..=10)"
                )));
            }
            let mut inner = self.lock();
            Self::failure(&mut inner, "receive")?;
            let mut receipts = inner.receipts;
            let mut out = Vec::new();
            for (m, held) in inner.dead.entry(queue).or_default().iter_mut() {
                if out.len() == max as usize {
                    break;
                }
                if *held {
                    continue;
                }
                receipts += 1;
                *held = true;
                m.receipt_handle = format!("receipt-{receipts}");
                m.receive_count += 1;
                out.push(m.clone());
            }
            inner.receipts = receipts;
            Ok(out)
        })
    }

    fn approximate_count(&self, queue: StepQueue) -> Fut<'_, u64> {
        Box::pin(async move {
            let mut inner = self.lock();
            Self::failure(&mut inner, "count")?;
            Ok(inner
                .dead
                .get(&queue)
                .map_or(0, |d| d.iter().filter(|(_, held)| !*held).count()) as u64)
        })
    }

    fn send_to_source<'a>(
        &'a self,
        queue: StepQueue,
        messages: &'a [DeadLetter],
    ) -> Fut<'a, Vec<bool>> {
        Box::pin(async move {
            if messages.len() > 10 {
                return Err(StoreError::Internal("more than 10 entries".into()));
            }
            let mut inner = self.lock();
            Self::failure(&mut inner, "send")?;
            let mut sent = Vec::with_capacity(messages.len());
            for m in messages {
                let ok = !inner.failing_sends.contains(&m.message_id);
                if ok {
                    inner.redriven.entry(queue).or_default().push(m.clone());
                }
                sent.push(ok);
            }
            Ok(sent)
        })
    }

    fn delete<'a>(&'a self, queue: StepQueue, messages: &'a [&'a DeadLetter]) -> Fut<'a, ()> {
        Box::pin(async move { self.on_receipts(queue, messages, true) })
    }

    fn release<'a>(&'a self, queue: StepQueue, messages: &'a [&'a DeadLetter]) -> Fut<'a, ()> {
        Box::pin(async move { self.on_receipts(queue, messages, false) })
    }
}
