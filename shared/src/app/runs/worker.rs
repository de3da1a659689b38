//! One attempt of one step, as the worker runs it for each queue message.
//!
//! Exactly one document per step: the attempt first claims the step (a conditional write that
//! sets it `running` with a lease), then generates, then commits the node's content, the step's
//! result and the run's progress in one write conditional on still holding that claim. A
//! duplicate or late message finds the step claimed or done and changes nothing; a worker that
//! dies mid-step leaves a lease that expires, and the message, delivered again, fails that
//! attempt as a timeout and schedules the next within the retry policy. Steps that become ready
//! are queued after the commit, and again whenever a message of a done step comes back (so a
//! queue outage right after a commit loses nothing: the claims make repeats harmless).

use crate::app::AppError;
use crate::app::broadcast::{LiveBuffer, LiveTarget, LiveText};
use crate::domain::run::{self, RetryDecision, Run, RunStatus, Step, StepError, StepStatus, Usage};
use crate::domain::{ContentMetrics, Node, NodeStatus, QualityScores, prompt};
use crate::ports::{
    Generation, Nodes, RunWith, Runs, StepCommit, StepMessage, StoreError, TaskQueue,
    TextGenerator, WorkflowChange, WorkflowUpdate, Workflows,
};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// How many times a commit is tried again when only the run moved on (parallel steps).
const COMMIT_ATTEMPTS: usize = 8;
/// A step's model call may take this long when the workflow does not say (`settings.timeout_s`).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// The lease outlives the call by this much (or by the step timeout, when shorter), so a slow
/// commit is not taken for a lost worker, and a short step's lost worker is noticed soon.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
const MAX_TOKENS: u32 = 1024;

/// What the worker needs from the world.
pub struct Worker<'a, S: ?Sized, Q: ?Sized, G: ?Sized> {
    pub store: &'a S,
    pub queue: &'a Q,
    pub generator: &'a G,
    /// The model when neither the run nor the workflow names one (the template's default).
    pub default_model: &'a str,
    /// Where the text goes while it is written (`node_delta` to the workflow's followers);
    /// `None`: only the finished node tells them.
    pub live: Option<LiveText<'a>>,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step succeeded and was committed.
    Succeeded,
    /// The attempt failed; another is scheduled after `delay_s` seconds.
    Retrying { delay_s: u64 },
    /// The attempt failed and the step (with its run) has failed.
    Failed,
    /// Nothing to do: the message is stale or a duplicate (the reason says which).
    Dropped(&'static str),
    /// The step is held by a live attempt or not yet due: deliver the message again later.
    Later,
}

impl<S, Q, G> Worker<'_, S, Q, G>
where
    S: Runs + Nodes + Workflows + ?Sized,
    Q: TaskQueue + ?Sized,
    G: TextGenerator + ?Sized,
{
    /// The model's answer within the request's timeout, its text streamed to the workflow's
    /// followers meanwhile when live text is on.
    async fn generate(
        &self,
        request: &Generation,
        workflow_id: &str,
        node_id: &str,
        run_id: &str,
        attempt: u32,
    ) -> Result<Result<crate::ports::Generated, StepError>, tokio::time::error::Elapsed> {
        let buffer = LiveBuffer::default();
        let on_delta = |piece: &str| buffer.push(piece);
        let call =
            tokio::time::timeout(request.timeout, self.generator.generate(request, &on_delta));
        match &self.live {
            None => call.await,
            Some(live) => {
                let target = LiveTarget {
                    workflow_id: workflow_id.to_string(),
                    node_id: node_id.to_string(),
                    run_id: run_id.to_string(),
                    attempt,
                };
                live.around(&target, &buffer, call).await
            }
        }
    }

    /// Runs the attempt `message` asks for. `deadline` is the invocation's; `random_unit`
    /// (0..1) draws the retry jitter.
    pub async fn execute(
        &self,
        message: &StepMessage,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
        random_unit: f64,
    ) -> Result<Outcome, AppError> {
        // The run, its workflow and the step's nodes as the message names them, in one read.
        let mut inputs = self
            .store
            .get_run_with(
                &message.workflow_id,
                &message.run_id,
                message.node_id.as_deref(),
                message.parent_node_id.as_deref(),
            )
            .await?;
        let Some((mut run, steps)) = inputs.run.take() else {
            return Ok(Outcome::Dropped("run not found"));
        };
        let Some(step) = steps.iter().find(|s| s.id == message.step_id).cloned() else {
            return Ok(Outcome::Dropped("step not found"));
        };
        let settings = inputs.workflow.as_ref().map(|w| &w.settings);
        let max_parallel = settings.map_or(run::DEFAULT_MAX_PARALLEL, run::max_parallel);
        let runnable = step.status == StepStatus::Pending
            && step.lease_until.is_none_or(|t| t <= now)
            && parent_done(&step, &steps);
        match run.status {
            RunStatus::Running => {}
            // A message that runs nothing (a step waiting for approval, a stray) leaves a run
            // that has not started as it is.
            RunStatus::Queued if !runnable => {}
            RunStatus::Queued => {
                let version = run.version;
                run.transition(RunStatus::Running, now).map_err(internal)?;
                match self.store.update_run(&run, version, &[]).await {
                    Ok(()) => run.version += 1,
                    // Another message started it: read it as it is now.
                    Err(StoreError::Conflict) => {
                        return Box::pin(self.execute(message, now, deadline, random_unit)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            RunStatus::Paused => return Ok(Outcome::Dropped("run paused")),
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled => {
                return Ok(Outcome::Dropped("run over"));
            }
        }
        match step.status {
            StepStatus::Succeeded | StepStatus::Skipped => {
                // A repeat of a done step: make sure what it made ready is queued.
                self.enqueue_ready(&run, &steps, max_parallel).await?;
                Ok(Outcome::Dropped("step done"))
            }
            StepStatus::Failed => Ok(Outcome::Dropped("step failed")),
            StepStatus::WaitingApproval => Ok(Outcome::Dropped("step waits for approval")),
            StepStatus::Running if step.lease_until.is_some_and(|t| t > now) => Ok(Outcome::Later),
            StepStatus::Running => {
                let policy = run.retry_policy(&settings.map(run::retry_policy).unwrap_or_default());
                self.expire(run, steps, step, &policy, max_parallel, now, random_unit)
                    .await
            }
            StepStatus::Pending if step.lease_until.is_some_and(|t| t > now) => Ok(Outcome::Later),
            // A message ahead of its parent (a stray or forged one): the parent's commit queues
            // this step when its text exists.
            StepStatus::Pending if !parent_done(&step, &steps) => {
                Ok(Outcome::Dropped("waits for its parent step"))
            }
            StepStatus::Pending => {
                self.attempt(run, steps, step, inputs, now, deadline, random_unit)
                    .await
            }
        }
    }

    /// The attempt's worker was lost: it fails as a timeout, within `policy` (the run's, else
    /// its workflow's `settings.retry`, as any failed attempt).
    #[allow(clippy::too_many_arguments)]
    async fn expire(
        &self,
        run: Run,
        steps: Vec<Step>,
        step: Step,
        policy: &run::RetryPolicy,
        max_parallel: usize,
        now: DateTime<Utc>,
        random_unit: f64,
    ) -> Result<Outcome, AppError> {
        let mut next = step.clone();
        let decision = next
            .expire_lease(now, policy, random_unit)
            .map_err(internal)?;
        let commit = Commit {
            next,
            attempt: step.attempts,
            node: None,
            decision: Some(decision),
            max_parallel,
        };
        self.finish(run, steps, commit, now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        run: Run,
        steps: Vec<Step>,
        step: Step,
        mut inputs: RunWith,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
        random_unit: f64,
    ) -> Result<Outcome, AppError> {
        let begun = Instant::now();
        // A message that did not name the step's nodes (or named others): read them now.
        let named = inputs.node.as_ref().map(|n| n.id.as_str()) == Some(step.node_id.as_str())
            && inputs.parent.as_ref().map(|n| n.id.as_str()) == step.parent_node_id.as_deref();
        if !named {
            inputs = self
                .store
                .get_run_with(
                    &run.workflow_id,
                    &run.id,
                    Some(&step.node_id),
                    step.parent_node_id.as_deref(),
                )
                .await?;
        }
        let RunWith {
            workflow,
            node,
            parent,
            ..
        } = inputs;
        let (Some(workflow), Some(node)) = (workflow, node) else {
            return Ok(Outcome::Dropped("node not found"));
        };
        // The workflow was paused, cancelled or deleted after the run started and the run was
        // not told (a bulk change beyond the runs it reads): the run follows it now.
        if let Some(action) = super::following(workflow.status) {
            let version = run.version;
            let (r, _, changed) = super::decide(run, steps, &action, now)?;
            return match self.store.update_run(&r, version, &changed).await {
                Ok(()) | Err(StoreError::Conflict) => Ok(Outcome::Dropped("workflow not active")),
                Err(e) => Err(e.into()),
            };
        }
        let step_timeout = workflow
            .settings
            .0
            .get("timeout_s")
            .and_then(serde_json::Value::as_u64)
            .map_or(DEFAULT_STEP_TIMEOUT, Duration::from_secs);
        let mut next = step.clone();
        next.lease_until = None;
        let attempt = next
            .start(now, step_timeout + step_timeout.min(LEASE_MARGIN))
            .map_err(internal)?;
        if !self
            .store
            .claim_step(&next, StepStatus::Pending, step.attempts, now)
            .await?
        {
            return Ok(Outcome::Dropped("claimed by another attempt"));
        }
        let model = run
            .model
            .clone()
            .or_else(|| {
                workflow
                    .settings
                    .0
                    .get("model")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| self.default_model.to_string());
        // Templates were checked when written and at start; what can still fail here depends
        // on the parent's text (fuel, length), and fails the step without a retry.
        let rendered = prompt::render(
            &workflow.settings,
            &prompt::Variables {
                workflow_name: &workflow.name,
                node: &node,
                parent: parent.as_ref(),
            },
        );
        let (system, prompt_text, render_error) = match rendered {
            Ok(p) => (p.system, p.prompt, None),
            Err(message) => (None, String::new(), Some(message)),
        };
        let request = Generation {
            // The full reference: the generator routes on its provider prefix.
            model: model.clone(),
            system,
            prompt: prompt_text,
            max_tokens: MAX_TOKENS,
            temperature: 0.7,
            timeout: bounded(step_timeout, deadline),
        };
        let started = Instant::now();
        let called_model = render_error.is_none();
        let generated = match render_error {
            Some(message) => Err(StepError::new(
                run::ErrorKind::InvalidRequest,
                format!("settings.prompt_template: {message}"),
            )),
            None => match self
                .generate(&request, &run.workflow_id, &node.id, &run.id, attempt)
                .await
            {
                Ok(result) => result,
                Err(_) => Err(StepError::new(
                    run::ErrorKind::Timeout,
                    format!("no answer within {} s", request.timeout.as_secs()),
                )),
            },
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        if called_model {
            generation_metrics(
                &model_dimension(&model, self.default_model),
                started.elapsed(),
                generated.as_ref().ok(),
            );
        }
        // The attempt ends now: `now` was when its message arrived, before the model's call.
        let now = crate::domain::time::truncate_to_millis(
            now + chrono::Duration::from_std(begun.elapsed()).unwrap_or_default(),
        );
        let policy = run.retry_policy(&run::retry_policy(&workflow.settings));
        let (node, decision) = match generated {
            Ok(g) => {
                next.succeed(
                    now,
                    Usage {
                        model: Some(model),
                        input_tokens: g.input_tokens,
                        output_tokens: g.output_tokens,
                        latency_ms,
                    },
                )
                .map_err(internal)?;
                let node = written(node, g.text, now);
                next.words = node.metrics.words;
                next.quality = Some(node.quality.overall);
                (Some(node), None)
            }
            Err(error) => {
                next.latency_ms = latency_ms;
                let decision = next
                    .fail(now, error, &policy, random_unit)
                    .map_err(internal)?;
                (None, Some(decision))
            }
        };
        let commit = Commit {
            next,
            attempt,
            node,
            decision,
            max_parallel: run::max_parallel(&workflow.settings),
        };
        self.finish(run, steps, commit, now).await
    }

    /// Commits the attempt's outcome and queues what follows from it.
    async fn finish(
        &self,
        mut run: Run,
        mut steps: Vec<Step>,
        commit: Commit,
        now: DateTime<Utc>,
    ) -> Result<Outcome, AppError> {
        let Commit {
            next,
            attempt,
            node,
            decision,
            max_parallel,
        } = commit;
        for _ in 0..COMMIT_ATTEMPTS {
            if let Some(s) = steps.iter_mut().find(|s| s.id == next.id) {
                *s = next.clone();
            }
            let run_version = run.version;
            let mut written_run = run.clone();
            written_run
                .apply(&run::progress(&run, &steps), now)
                .map_err(internal)?;
            let commit = StepCommit {
                step: next.clone(),
                attempt,
                node: node.clone(),
                run: written_run.clone(),
                run_version,
            };
            match self.store.commit_step(&commit).await {
                Ok(true) => {
                    written_run.version = run_version + 1;
                    return self
                        .after_commit(&written_run, &steps, &next, decision, max_parallel)
                        .await;
                }
                Ok(false) => return Ok(Outcome::Dropped("claim lost before the commit")),
                Err(StoreError::Conflict) => {
                    let Some((r, s)) = self.store.get_run(&run.workflow_id, &run.id).await? else {
                        return Ok(Outcome::Dropped("run not found"));
                    };
                    run = r;
                    steps = s;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(
            "the run changed on every commit; the message will come again".into(),
        ))
    }

    async fn after_commit(
        &self,
        run: &Run,
        steps: &[Step],
        step: &Step,
        decision: Option<RetryDecision>,
        max_parallel: usize,
    ) -> Result<Outcome, AppError> {
        step_metrics(step, decision);
        match decision {
            Some(RetryDecision::RetryAfter(delay)) => {
                let (delay_s, _later) = run::queue_delay(delay);
                // Longer waits than SQS allows are left to the scheduler's sweep of due steps.
                self.send(run, step, delay_s).await?;
                Ok(Outcome::Retrying {
                    delay_s: delay.as_secs(),
                })
            }
            Some(RetryDecision::GiveUp) => {
                if run.status == RunStatus::Failed {
                    self.mark_workflow_failed(run).await?;
                }
                Ok(Outcome::Failed)
            }
            None => {
                self.enqueue_ready(run, steps, max_parallel).await?;
                Ok(Outcome::Succeeded)
            }
        }
    }

    /// A run that fails sets its workflow to `error` (only an `active` one: a workflow paused,
    /// completed or deleted meanwhile keeps its status).
    async fn mark_workflow_failed(&self, run: &Run) -> Result<(), AppError> {
        let change = WorkflowChange {
            id: run.workflow_id.clone(),
            actor: crate::domain::Principal::user("worker", crate::domain::Role::Admin),
            expected_version: None,
            allowed_from: vec![crate::domain::WorkflowStatus::Active],
            max_nodes: None,
            update: WorkflowUpdate {
                status: Some(crate::domain::WorkflowStatus::Error),
                ..WorkflowUpdate::default()
            },
            now: run.updated_at,
        };
        match self.store.change_workflow(&change).await {
            Ok(_) | Err(StoreError::WorkflowRejected(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Queues every step that may run now, at most `max_parallel` running at once (the
    /// workflow's `settings.max_parallel`; a repeat finds a step claimed and drops).
    async fn enqueue_ready(
        &self,
        run: &Run,
        steps: &[Step],
        max_parallel: usize,
    ) -> Result<(), AppError> {
        if run.status != RunStatus::Running {
            return Ok(());
        }
        for step in run::ready_steps(steps, max_parallel) {
            self.send(run, step, 0).await?;
        }
        Ok(())
    }

    async fn send(&self, run: &Run, step: &Step, delay_s: u32) -> Result<(), AppError> {
        super::send(self.queue, run, step, delay_s).await
    }
}

/// An attempt's outcome, to commit: the step as it ends, the attempt that claimed it, the node
/// it wrote (on success), what follows a failure, and how many steps may run at once.
struct Commit {
    next: Step,
    attempt: u32,
    node: Option<Node>,
    decision: Option<RetryDecision>,
    max_parallel: usize,
}

/// The `Model` dimension of a generation: the configured default model by name, any other
/// only by its provider, so user-chosen model names never become dimension values.
fn model_dimension(model: &str, default_model: &str) -> String {
    if model == default_model {
        return model.to_string();
    }
    match run::ModelRef::parse(model) {
        Ok(run::ModelRef::Builtin) => "builtin".into(),
        Ok(run::ModelRef::OpenAi(_)) => "openai:other".into(),
        Ok(run::ModelRef::Bedrock(_)) => "bedrock:other".into(),
        Err(_) => "other".into(),
    }
}

/// One EMF record per model call: `Generations`, `GenerationFailures`, `GenerationLatency` and,
/// when it answered, `InputTokens` / `OutputTokens`, by `[Service]` and `[Service, Model]`.
fn generation_metrics(model: &str, took: Duration, generated: Option<&crate::ports::Generated>) {
    use crate::emf::{Record, dim, metric};
    let mut record = Record::new()
        .dimension(dim::MODEL, model)
        .dimension_set(&[dim::MODEL])
        .count(metric::GENERATIONS, 1)
        .count(metric::GENERATION_FAILURES, u64::from(generated.is_none()))
        .millis(metric::GENERATION_LATENCY, took.as_secs_f64() * 1000.0);
    if let Some(g) = generated {
        record = record
            .count(metric::INPUT_TOKENS, g.input_tokens)
            .count(metric::OUTPUT_TOKENS, g.output_tokens);
    }
    record.emit();
}

/// One EMF record per committed attempt: `StepsSucceeded`, `StepRetries` and `StepsFailed`
/// (one of them 1, the others 0) by `[Service]`; a failed attempt adds `StepAttemptFailures` by
/// `[Service]` and `[Service, ErrorKind]`.
fn step_metrics(step: &Step, decision: Option<RetryDecision>) {
    use crate::emf::{Record, dim, metric};
    let (succeeded, retried, failed) = match decision {
        None => (1, 0, 0),
        Some(RetryDecision::RetryAfter(_)) => (0, 1, 0),
        Some(RetryDecision::GiveUp) => (0, 0, 1),
    };
    Record::new()
        .count(metric::STEPS_SUCCEEDED, succeeded)
        .count(metric::STEP_RETRIES, retried)
        .count(metric::STEPS_FAILED, failed)
        .emit();
    if decision.is_some() {
        let kind = step
            .last_error
            .as_ref()
            .map_or(run::ErrorKind::Internal, |e| e.kind);
        Record::new()
            .dimension(dim::ERROR_KIND, error_kind_name(kind))
            .dimension_set(&[dim::ERROR_KIND])
            .count(metric::STEP_ATTEMPT_FAILURES, 1)
            .emit();
    }
}

/// The kind's name as the API writes it (`invalid_request`).
fn error_kind_name(kind: run::ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "internal".into())
}

/// Whether the step that writes `step`'s parent node (if it is in the run) is done.
fn parent_done(step: &Step, steps: &[Step]) -> bool {
    step.depends_on
        .as_ref()
        .is_none_or(|id| steps.iter().any(|s| &s.id == id && s.status.is_done()))
}

/// The node with `text` as its content, as any content change writes it.
fn written(mut node: Node, text: String, now: DateTime<Utc>) -> Node {
    node.metrics = ContentMetrics::of(&text);
    node.quality = QualityScores::of(&text, &node.metrics);
    node.content = text;
    node.status = NodeStatus::Completed;
    node.version += 1;
    node.updated_at = now;
    node
}

/// The step's timeout, shortened to end a little before the invocation's deadline.
fn bounded(step: Duration, deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => step.min(
            d.saturating_duration_since(Instant::now())
                .saturating_sub(Duration::from_secs(2)),
        ),
        None => step,
    }
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::run::ErrorKind;
    use crate::domain::{Principal, Role, ids};
    use crate::emf::{Capture, dimension_sets, metric};
    use crate::testing::runs::{MemoryQueue, ScriptedGenerator, active_workflow, chain, message};
    use crate::testing::workflows::MemoryWorkflowStore;

    #[tokio::test]
    async fn each_attempt_emits_its_step_outcome_its_generation_and_its_failure_class() {
        let now = crate::domain::time::truncate_to_millis(Utc::now());
        let owner = Principal::user(ids::new_id(), Role::Editor);
        let workflow = active_workflow(&owner, "Chain", now);
        let store = MemoryWorkflowStore::new();
        store.create_workflow(&workflow, &[], None).await.unwrap();
        let (run, steps, nodes) = chain(&workflow, 2, None, 3, now);
        store
            .create_run(
                &owner,
                &run,
                &steps,
                &nodes,
                workflow.settings.max_nodes(),
                None,
            )
            .await
            .unwrap();
        let queue = MemoryQueue::new();
        queue
            .enqueue(run.priority, &run.owner_id, &message(&run, &steps[0]), 0)
            .await
            .unwrap();
        let generator = ScriptedGenerator::new();
        generator
            .push_err(ErrorKind::Throttled, "429 slow down")
            .push_ok("The first part.")
            .push_err(ErrorKind::InvalidRequest, "the prompt is too long");
        let worker = Worker {
            store: &store,
            queue: &queue,
            generator: &generator,
            default_model: "builtin",
            live: None,
        };

        let capture = Capture::start();
        let mut outcomes = Vec::new();
        let mut at = now;
        for _ in 0..5 {
            for sent in queue.take() {
                outcomes.push(worker.execute(&sent.message, at, None, 0.5).await.unwrap());
            }
            at += chrono::Duration::hours(1);
        }
        assert!(
            matches!(
                outcomes.as_slice(),
                [
                    Outcome::Retrying { .. },
                    Outcome::Succeeded,
                    Outcome::Failed
                ]
            ),
            "{outcomes:?}"
        );

        let steps: Vec<_> = capture
            .with_metric(metric::STEPS_SUCCEEDED)
            .iter()
            .map(|r| {
                assert_eq!(dimension_sets(r), [vec!["Service"]]);
                (
                    r["StepsSucceeded"].as_i64().unwrap(),
                    r["StepRetries"].as_i64().unwrap(),
                    r["StepsFailed"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(steps, [(0, 1, 0), (1, 0, 0), (0, 0, 1)]);

        let failures = capture.with_metric(metric::STEP_ATTEMPT_FAILURES);
        let kinds: Vec<_> = failures
            .iter()
            .map(|r| r["ErrorKind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["throttled", "invalid_request"]);
        assert_eq!(
            dimension_sets(&failures[0]),
            [vec!["Service"], vec!["Service", "ErrorKind"]]
        );

        let generations = capture.with_metric(metric::GENERATIONS);
        assert_eq!(generations.len(), 3);
        for (r, failed) in generations.iter().zip([1, 0, 1]) {
            assert_eq!(r["Model"], "builtin");
            assert_eq!(
                dimension_sets(r),
                [vec!["Service"], vec!["Service", "Model"]]
            );
            assert_eq!(r["GenerationFailures"], failed);
            assert!(r["GenerationLatency"].as_f64().unwrap() >= 0.0);
            // Tokens only when the model answered.
            assert_eq!(r.get("OutputTokens").is_some(), failed == 0);
        }
        assert_eq!(generations[1]["OutputTokens"], 3, "three words written");
    }

    #[test]
    fn only_the_configured_model_is_named_in_the_model_dimension() {
        let default = "openai:gpt-4o-mini";
        assert_eq!(model_dimension(default, default), default);
        assert_eq!(
            model_dimension("openai:my-own-fine-tune", default),
            "openai:other"
        );
        assert_eq!(
            model_dimension("bedrock:anthropic.claude", default),
            "bedrock:other"
        );
        assert_eq!(model_dimension("builtin", default), "builtin");
        assert_eq!(model_dimension("nonsense!", default), "other");
    }
}
