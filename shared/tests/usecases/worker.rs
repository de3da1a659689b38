//! The worker's step execution over the fakes: one document per step whatever the deliveries,
//! retries with their delays, permanent failures, and a lost worker's lease.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, json};
use shared::app::runs::worker::{Outcome, Worker};
use shared::domain::run::{
    self, ErrorKind, PlanRequest, Run, RunOptions, RunStatus, Step, StepStatus,
};
use shared::domain::{
    Node, NodeFields, NodeStatus, Principal, Priority, Role, Settings, Workflow, WorkflowStatus,
    ids,
};
use shared::ports::{Runs, StepMessage, TaskQueue, Workflows};
use shared::testing::runs::{MemoryQueue, ScriptedGenerator};
use shared::testing::workflows::MemoryWorkflowStore;

struct World {
    store: MemoryWorkflowStore,
    queue: MemoryQueue,
    generator: ScriptedGenerator,
    owner: Principal,
    workflow: Workflow,
    now: DateTime<Utc>,
}

impl World {
    async fn new(settings: serde_json::Value) -> World {
        let now = shared::domain::time::truncate_to_millis(Utc::now());
        let owner = Principal::user(ids::new_id(), Role::Editor);
        let workflow = Workflow {
            id: ids::new_id(),
            owner_id: owner.user_id.clone(),
            name: "Chain".into(),
            description: String::new(),
            status: WorkflowStatus::Active,
            settings: Settings::with_defaults(settings.as_object().cloned().unwrap_or_default()),
            tags: vec![],
            node_count: 0,
            created_at: now,
            updated_at: now,
            version: 1,
            shares: Default::default(),
        };
        let store = MemoryWorkflowStore::new();
        store.create_workflow(&workflow, &[], None).await.unwrap();
        World {
            store,
            queue: MemoryQueue::new(),
            generator: ScriptedGenerator::new(),
            owner,
            workflow,
            now,
        }
    }

    fn worker(&self) -> Worker<'_, MemoryWorkflowStore, MemoryQueue, ScriptedGenerator> {
        Worker {
            store: &self.store,
            queue: &self.queue,
            generator: &self.generator,
            default_model: "builtin",
        }
    }

    /// Starts a `continue` run of `steps` new chained nodes (a new root first) and queues its
    /// first step, as starting a run does.
    async fn start_chain(&self, steps: u32) -> (Run, Vec<Step>) {
        let new_ids: Vec<String> = ids::new_ids(steps as usize);
        let plan = run::plan_continue(None, steps, &new_ids);
        let options = RunOptions {
            plan: PlanRequest::Continue {
                from_node_id: None,
                steps,
            },
            model: None,
            priority: 3,
            max_attempts: 3,
            timeout_s: 3600,
            approval: false,
        };
        let run = Run::new(
            ids::new_id(),
            self.workflow.id.clone(),
            self.owner.user_id.clone(),
            &options,
            steps,
            self.now,
        );
        let step_ids = ids::new_ids(plan.len());
        let steps_of_run = run::steps_from_plan(&run.id, &plan, &step_ids, false);
        let nodes: Vec<Node> = plan
            .iter()
            .map(|p| {
                Node::new(
                    p.node_id.clone(),
                    self.workflow.id.clone(),
                    p.parent_node_id.clone(),
                    NodeFields {
                        title: p.title.clone(),
                        content: String::new(),
                        prompt: String::new(),
                        priority: Priority::default(),
                        status: NodeStatus::Pending,
                        tags: vec![],
                        metadata: Map::new(),
                    },
                    self.now,
                )
            })
            .collect();
        self.store
            .create_run(&self.owner, &run, &steps_of_run, &nodes, None)
            .await
            .unwrap();
        self.queue_step(&run, &steps_of_run[0], 0).await;
        (run, steps_of_run)
    }

    async fn queue_step(&self, run: &Run, step: &Step, delay_s: u32) {
        self.queue
            .enqueue(
                run.priority,
                &run.owner_id,
                &World::message(run, step),
                delay_s,
            )
            .await
            .unwrap();
    }

    fn message(run: &Run, step: &Step) -> StepMessage {
        StepMessage {
            workflow_id: run.workflow_id.clone(),
            run_id: run.id.clone(),
            step_id: step.id.clone(),
            attempt: step.attempts + 1,
        }
    }

    /// Delivers every queued message at `at` until the queue is empty (at most `limit` rounds);
    /// the outcomes in order.
    async fn drain(&self, at: DateTime<Utc>, limit: usize) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for _ in 0..limit {
            let sent = self.queue.take();
            if sent.is_empty() {
                break;
            }
            for s in sent {
                outcomes.push(
                    self.worker()
                        .execute(&s.message, at, None, 0.5)
                        .await
                        .unwrap(),
                );
            }
        }
        outcomes
    }

    fn run(&self, run: &Run) -> (Run, Vec<Step>) {
        self.store.run(&run.workflow_id, &run.id).unwrap()
    }
}

#[tokio::test]
async fn a_chain_runs_step_by_step_and_writes_one_document_per_step() {
    let w = World::new(json!({})).await;
    let (run, _) = w.start_chain(3).await;
    let outcomes = w.drain(w.now, 10).await;
    assert_eq!(outcomes, vec![Outcome::Succeeded; 3]);
    let (run, steps) = w.run(&run);
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.steps_succeeded, run.steps_total), (3, 3));
    assert!(
        steps
            .iter()
            .all(|s| s.status == StepStatus::Succeeded && s.attempts == 1)
    );
    let nodes = w.store.nodes(&w.workflow.id);
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert_eq!(n.status, NodeStatus::Completed, "{}", n.title);
        assert!(!n.content.is_empty());
        assert!(n.metrics.words > 0 && n.quality.overall > 0, "{n:?}");
    }
    // Each continues its parent: the prompt quotes the end of the parent's content.
    let requests = w.generator.requests();
    assert_eq!(requests.len(), 3);
    let first = nodes.iter().find(|n| n.parent_id.is_none()).unwrap();
    assert!(
        requests[1]
            .prompt
            .contains(&first.content[first.content.len() - 20..])
    );
}

#[tokio::test]
async fn a_duplicate_message_finds_the_step_done_and_generates_nothing() {
    let w = World::new(json!({})).await;
    let (run, steps) = w.start_chain(1).await;
    let message = World::message(&run, &steps[0]);
    w.queue.take();
    let first = w
        .worker()
        .execute(&message, w.now, None, 0.5)
        .await
        .unwrap();
    let again = w
        .worker()
        .execute(&message, w.now, None, 0.5)
        .await
        .unwrap();
    assert_eq!(first, Outcome::Succeeded);
    assert_eq!(again, Outcome::Dropped("run over"));
    assert_eq!(w.generator.calls(), 1);
}

#[tokio::test]
async fn a_retryable_error_schedules_another_attempt_after_its_delay() {
    let w =
        World::new(json!({"retry": {"interval_s": 4, "backoff_rate": 2, "max_attempts": 5}})).await;
    let (run, _) = w.start_chain(1).await;
    w.generator.push_err(ErrorKind::Throttled, "429 slow down");
    let outcomes = w.drain(w.now, 1).await;
    // Full jitter with a random unit of 0.5: half of 4 s.
    assert_eq!(outcomes, vec![Outcome::Retrying { delay_s: 2 }]);
    let sent = w.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].delay_s, 2);
    let (_, steps) = w.run(&run);
    assert_eq!(steps[0].status, StepStatus::Pending);
    assert_eq!(
        steps[0].last_error.as_ref().unwrap().kind,
        ErrorKind::Throttled
    );
    // Delivered early (a clock a little behind): not yet; then when due, the attempt runs.
    let early = w.drain(w.now + Duration::seconds(1), 1).await;
    assert_eq!(early, vec![Outcome::Later]);
    w.queue_step(&run, &steps[0], 0).await;
    let due = w.drain(w.now + Duration::seconds(3), 1).await;
    assert_eq!(due, vec![Outcome::Succeeded]);
    let (run, steps) = w.run(&run);
    assert_eq!((run.status, steps[0].attempts), (RunStatus::Succeeded, 2));
    assert_eq!(w.generator.calls(), 2);
}

#[tokio::test]
async fn a_permanent_error_fails_the_step_and_the_run_without_retrying() {
    let w = World::new(json!({})).await;
    let (run, _) = w.start_chain(2).await;
    w.generator
        .push_err(ErrorKind::InvalidRequest, "the prompt is too long");
    let outcomes = w.drain(w.now, 5).await;
    assert_eq!(outcomes, vec![Outcome::Failed]);
    let (run, steps) = w.run(&run);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.last_error.as_ref().unwrap().kind,
        ErrorKind::InvalidRequest
    );
    assert_eq!(steps[0].status, StepStatus::Failed);
    assert_eq!(steps[1].status, StepStatus::Pending);
    assert_eq!(w.generator.calls(), 1);
    assert!(w.queue.sent().is_empty());
}

#[tokio::test]
async fn a_lost_workers_lease_expires_and_the_message_again_retries_the_step() {
    let w = World::new(json!({"timeout_s": 30})).await;
    let (run, steps) = w.start_chain(1).await;
    let message = World::message(&run, &steps[0]);
    w.queue.take();
    // A worker claims the step, then dies before it commits.
    let mut claimed = steps[0].clone();
    claimed
        .start(w.now, std::time::Duration::from_secs(60))
        .unwrap();
    assert!(
        w.store
            .claim_step(&claimed, StepStatus::Pending, 0, w.now)
            .await
            .unwrap()
    );
    // While the lease holds, the message waits.
    assert_eq!(
        w.worker()
            .execute(&message, w.now + Duration::seconds(10), None, 0.5)
            .await
            .unwrap(),
        Outcome::Later
    );
    // Past the lease: the lost attempt counts as a timeout and another is scheduled.
    let later = w.now + Duration::seconds(61);
    let outcome = w
        .worker()
        .execute(&message, later, None, 0.5)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Retrying { .. }), "{outcome:?}");
    let (_, steps) = w.run(&run);
    assert_eq!(
        steps[0].last_error.as_ref().unwrap().kind,
        ErrorKind::Timeout
    );
    let done = w.drain(later + Duration::seconds(600), 1).await;
    assert_eq!(done, vec![Outcome::Succeeded]);
    let (run, steps) = w.run(&run);
    assert_eq!((run.status, steps[0].attempts), (RunStatus::Succeeded, 2));
    assert_eq!(
        w.generator.calls(),
        1,
        "the dead worker's call never happened here"
    );
    assert_eq!(w.store.nodes(&w.workflow.id).len(), 1);
}

#[tokio::test]
async fn a_call_that_hangs_ends_at_the_step_timeout_and_is_retried() {
    let w = World::new(json!({"timeout_s": 1})).await;
    let (run, _) = w.start_chain(1).await;
    w.generator.push_hang();
    let outcomes = w.drain(w.now, 1).await;
    assert!(
        matches!(outcomes[..], [Outcome::Retrying { .. }]),
        "{outcomes:?}"
    );
    let (_, steps) = w.run(&run);
    assert_eq!(
        steps[0].last_error.as_ref().unwrap().kind,
        ErrorKind::Timeout
    );
}

#[tokio::test]
async fn a_paused_or_cancelled_run_drops_its_messages() {
    let w = World::new(json!({})).await;
    let (run, steps) = w.start_chain(1).await;
    let message = World::message(&run, &steps[0]);
    w.queue.take();
    let mut paused = run.clone();
    paused.transition(RunStatus::Paused, w.now).unwrap();
    w.store.update_run(&paused, run.version, &[]).await.unwrap();
    assert_eq!(
        w.worker()
            .execute(&message, w.now, None, 0.5)
            .await
            .unwrap(),
        Outcome::Dropped("run paused")
    );
    assert_eq!(w.generator.calls(), 0);
}
