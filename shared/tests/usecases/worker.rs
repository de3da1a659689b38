//! The worker's step execution over the fakes: one document per step whatever the deliveries,
//! retries with their delays, permanent failures, and a lost worker's lease.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use shared::app::runs::worker::{Outcome, Worker};
use shared::domain::run::{ErrorKind, Run, RunStatus, Step, StepStatus};
use shared::domain::{
    Node, NodeFields, NodeStatus, Principal, Role, Settings, Workflow, WorkflowStatus, ids,
};
use shared::ports::{Nodes, Runs, TaskQueue, Workflows};
use shared::testing::runs::{MemoryQueue, ScriptedGenerator, active_workflow, chain, message};
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
        let mut workflow = active_workflow(&owner, "Chain", now);
        workflow.settings =
            Settings::with_defaults(settings.as_object().cloned().unwrap_or_default());
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
            live: None,
        }
    }

    /// Starts a `continue` run of `steps` new chained nodes (a new root first) and queues its
    /// first step, as starting a run does.
    async fn start_chain(&self, steps: u32) -> (Run, Vec<Step>) {
        let (run, steps_of_run, nodes) = chain(&self.workflow, steps, None, 3, self.now);
        self.store
            .create_run(
                &self.owner,
                &run,
                &steps_of_run,
                &nodes,
                self.workflow.settings.max_nodes(),
                None,
            )
            .await
            .unwrap();
        self.queue_step(&run, &steps_of_run[0], 0).await;
        (run, steps_of_run)
    }

    async fn queue_step(&self, run: &Run, step: &Step, delay_s: u32) {
        self.queue
            .enqueue(run.priority, &run.owner_id, &message(run, step), delay_s)
            .await
            .unwrap();
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
    let message = message(&run, &steps[0]);
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
    // A failed run sets its workflow to error.
    assert_eq!(
        w.store.workflow(&w.workflow.id).unwrap().status,
        WorkflowStatus::Error
    );
}

#[tokio::test]
async fn a_lost_workers_lease_expires_and_the_message_again_retries_the_step() {
    let w = World::new(json!({"timeout_s": 30})).await;
    let (run, steps) = w.start_chain(1).await;
    let message = message(&run, &steps[0]);
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
    let [Outcome::Retrying { delay_s }] = outcomes[..] else {
        panic!("{outcomes:?}");
    };
    let (_, steps) = w.run(&run);
    assert_eq!(
        steps[0].last_error.as_ref().unwrap().kind,
        ErrorKind::Timeout
    );
    // The retry waits from when the attempt ended (a second after its message arrived), not
    // from the message's arrival.
    assert!(
        steps[0].lease_until.unwrap()
            >= w.now + Duration::seconds(1) + Duration::seconds(delay_s as i64),
        "{:?}",
        steps[0]
    );
}

#[tokio::test]
async fn a_paused_or_cancelled_run_drops_its_messages() {
    let w = World::new(json!({})).await;
    let (run, steps) = w.start_chain(1).await;
    let message = message(&run, &steps[0]);
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

// ----- starting and controlling runs -----

use shared::app::AppError;
use shared::app::Outcome as Started;
use shared::app::runs::{Control, StartRun, control, start};
use shared::domain::run::StartRunRequest;

fn start_request(body: serde_json::Value) -> StartRunRequest {
    serde_json::from_value(body).unwrap()
}

impl World {
    async fn start(
        &self,
        who: &Principal,
        body: serde_json::Value,
    ) -> Result<(Run, Vec<Step>), AppError> {
        start(
            &self.store,
            &self.queue,
            StartRun {
                principal: who,
                workflow_id: &self.workflow.id,
                body: start_request(body),
                idempotency: None,
                now: self.now,
            },
        )
        .await
        .map(|o| match o {
            Started::Created(d) => (d.run, d.steps),
            replay => panic!("a replay without a key: {replay:?}"),
        })
    }

    async fn control(&self, r: &Run, action: Control) -> Result<(Run, Vec<Step>), AppError> {
        control(
            &self.store,
            &self.queue,
            &self.owner,
            &r.workflow_id,
            &r.id,
            action,
            self.now,
        )
        .await
        .map(|d| (d.run, d.steps))
    }
}

#[tokio::test]
async fn starting_a_continue_run_writes_its_nodes_and_queues_the_first_step() {
    let w = World::new(json!({})).await;
    let (r, steps) = w
        .start(
            &w.owner,
            json!({"plan": {"mode": "continue", "steps": 3}, "priority": 5}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.priority, steps.len()),
        (RunStatus::Queued, 5, 3)
    );
    assert_eq!(w.store.nodes(&w.workflow.id).len(), 3);
    let sent = w.queue.sent();
    assert_eq!(sent.len(), 1, "a chain: one step at a time");
    assert_eq!(
        (sent[0].priority, sent[0].message.step_id.as_str()),
        (5, steps[0].id.as_str())
    );
    assert_eq!(w.drain(w.now, 10).await, vec![Outcome::Succeeded; 3]);
    assert_eq!(w.run(&r).0.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_run_starts_only_on_an_active_workflow_by_someone_who_may_change_it() {
    let w = World::new(json!({})).await;
    let body = json!({"plan": {"mode": "continue", "steps": 1}});
    let stranger = Principal::user(ids::new_id(), Role::Editor);
    assert!(matches!(
        w.start(&stranger, body.clone()).await,
        Err(AppError::NotFound("workflow"))
    ));
    let viewer = Principal::user(w.owner.user_id.clone(), Role::Viewer);
    assert!(matches!(
        w.start(&viewer, body.clone()).await,
        Err(AppError::Forbidden(_))
    ));
    let bad = w
        .start(
            &w.owner,
            json!({"plan": {"mode": "continue", "steps": 51}, "priority": 9}),
        )
        .await;
    match bad {
        Err(AppError::Validation(errors)) => {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["plan.steps", "priority"]);
        }
        other => panic!("{other:?}"),
    }
    let mut draft = w.workflow.clone();
    draft.status = WorkflowStatus::Draft;
    draft.version += 1;
    w.store
        .edit_workflow(&w.workflow.id, |s| s.status = WorkflowStatus::Draft);
    assert!(matches!(
        w.start(&w.owner, body).await,
        Err(AppError::Conflict {
            slug: "workflow-not-active",
            ..
        })
    ));
    assert!(w.store.runs().is_empty());
    assert!(w.store.nodes(&w.workflow.id).is_empty());
    assert!(w.queue.sent().is_empty());
}

#[tokio::test]
async fn independent_pending_nodes_run_in_parallel_and_parents_first() {
    let w = World::new(json!({"max_parallel": 2})).await;
    // Two roots and a child of the first, all pending.
    let ids3 = ids::new_ids(3);
    let node = |i: usize, parent: Option<usize>| {
        Node::new(
            ids3[i].clone(),
            w.workflow.id.clone(),
            parent.map(|p| ids3[p].clone()),
            NodeFields::pending(format!("Node {i}")),
            w.now,
        )
    };
    use shared::ports::Nodes;
    for n in [node(0, None), node(1, None), node(2, Some(0))] {
        w.store.add_node(&w.owner, &n, None).await.unwrap();
    }
    let (r, steps) = w
        .start(&w.owner, json!({"plan": {"mode": "pending"}}))
        .await
        .unwrap();
    assert_eq!(steps.len(), 3);
    let first: Vec<String> = w
        .queue
        .sent()
        .into_iter()
        .map(|s| s.message.step_id)
        .collect();
    assert_eq!(first.len(), 2, "both roots at once");
    assert!(!first.contains(&steps.iter().find(|s| s.node_id == ids3[2]).unwrap().id));
    let outcomes = w.drain(w.now, 10).await;
    // A step queued again by the other branch's commit finds itself claimed or done: dropped.
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Succeeded)
            .count(),
        3,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Succeeded | Outcome::Dropped(_)))
    );
    assert_eq!(w.generator.calls(), 3);
    assert_eq!(w.run(&r).0.status, RunStatus::Succeeded);
    assert!(
        w.store
            .nodes(&w.workflow.id)
            .iter()
            .all(|n| n.status == NodeStatus::Completed)
    );
}

#[tokio::test]
async fn approval_gates_each_step_and_a_step_waits_for_its_parent() {
    let w = World::new(json!({})).await;
    let (r, steps) = w
        .start(
            &w.owner,
            json!({"plan": {"mode": "continue", "steps": 2}, "approval": true}),
        )
        .await
        .unwrap();
    assert!(w.queue.sent().is_empty(), "nothing runs before an approve");
    // A stray message for the waiting step runs nothing and leaves the run queued.
    let stray = w
        .worker()
        .execute(&message(&r, &steps[0]), w.now, None, 0.5)
        .await
        .unwrap();
    assert_eq!(stray, Outcome::Dropped("step waits for approval"));
    assert_eq!(w.run(&r).0.status, RunStatus::Queued);
    assert_eq!(w.generator.calls(), 0);
    assert!(matches!(
        w.control(
            &r,
            Control::Approve {
                step_id: steps[1].id.clone()
            }
        )
        .await,
        Err(AppError::Conflict {
            slug: "step-not-approvable",
            ..
        })
    ));
    w.control(
        &r,
        Control::Approve {
            step_id: steps[0].id.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(w.drain(w.now, 5).await, vec![Outcome::Succeeded]);
    assert_eq!(w.run(&r).1[1].status, StepStatus::WaitingApproval);
    w.control(
        &r,
        Control::Approve {
            step_id: steps[1].id.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(w.drain(w.now, 5).await, vec![Outcome::Succeeded]);
    assert_eq!(w.run(&r).0.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn pause_resume_and_cancel_follow_the_run_machine() {
    let w = World::new(json!({})).await;
    let (r, _) = w
        .start(&w.owner, json!({"plan": {"mode": "continue", "steps": 2}}))
        .await
        .unwrap();
    w.control(&r, Control::Pause).await.unwrap();
    assert_eq!(
        w.drain(w.now, 5).await,
        vec![Outcome::Dropped("run paused")]
    );
    assert_eq!(w.generator.calls(), 0);
    w.control(&r, Control::Resume).await.unwrap();
    assert_eq!(w.drain(w.now, 1).await, vec![Outcome::Succeeded]);
    let (cancelled, steps) = w.control(&r, Control::Cancel).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(steps[1].status, StepStatus::Skipped);
    assert_eq!(w.drain(w.now, 5).await, vec![Outcome::Dropped("run over")]);
    match w.control(&r, Control::Resume).await {
        Err(AppError::IllegalTransition { from, to, allowed }) => {
            assert_eq!((from, to), ("cancelled", "running"));
            assert!(allowed.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failed_run_is_retried_from_its_failed_step_without_running_the_others_again() {
    let w = World::new(json!({})).await;
    let (r, _) = w
        .start(&w.owner, json!({"plan": {"mode": "continue", "steps": 3}}))
        .await
        .unwrap();
    w.generator.push_ok("The first part.");
    w.generator.push_err(ErrorKind::InvalidRequest, "refused");
    assert_eq!(
        w.drain(w.now, 5).await,
        vec![Outcome::Succeeded, Outcome::Failed]
    );
    let (failed, steps) = w.run(&r);
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(steps[0].status, StepStatus::Succeeded);
    w.control(&r, Control::Retry).await.unwrap();
    assert_eq!(
        w.drain(w.now, 5).await,
        vec![Outcome::Succeeded, Outcome::Succeeded]
    );
    let (done, steps) = w.run(&r);
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(steps[0].attempts, 1, "the succeeded step never ran again");
    assert_eq!(w.generator.calls(), 4);
    let first = w.store.node(&w.workflow.id, &steps[0].node_id).unwrap();
    assert_eq!(first.content, "The first part.");
}

#[tokio::test]
async fn a_message_ahead_of_its_parent_step_generates_nothing() {
    let w = World::new(json!({})).await;
    let (r, steps) = w.start_chain(2).await;
    let early = message(&r, &steps[1]);
    assert_eq!(
        w.worker().execute(&early, w.now, None, 0.5).await.unwrap(),
        Outcome::Dropped("waits for its parent step")
    );
    assert_eq!(w.generator.calls(), 0);
    assert_eq!(w.drain(w.now, 5).await, vec![Outcome::Succeeded; 2]);
}

#[tokio::test]
async fn the_prompt_template_and_system_prompt_shape_what_the_model_is_given() {
    let w = World::new(json!({
        "system_prompt": "Be terse.",
        "prompt_template": "[{{ workflow.name }}] after {{ parent.title }}: {{ node.prompt }}"
    }))
    .await;
    let (r, steps) = w.start_chain(2).await;
    w.generator.push_ok("The first part.");
    w.generator.push_ok("The second part.");
    assert_eq!(
        w.drain(w.now, 5).await,
        vec![Outcome::Succeeded, Outcome::Succeeded]
    );
    let requests = w.generator.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|g| g.system.as_deref() == Some("Be terse."))
    );
    // The root has no parent: its variables are empty.
    assert!(
        requests[0].prompt.starts_with("[Chain] after : "),
        "{}",
        requests[0].prompt
    );
    let (_, first) = w
        .store
        .get_node(&r.workflow_id, &steps[0].node_id)
        .await
        .unwrap();
    let first = first.unwrap();
    assert!(
        requests[1]
            .prompt
            .starts_with(&format!("[Chain] after {}: ", first.title)),
        "{}",
        requests[1].prompt
    );
    // node.prompt is the continuation of the parent's text.
    assert!(
        requests[1].prompt.contains("The first part."),
        "{}",
        requests[1].prompt
    );
}

#[tokio::test]
async fn a_workflow_paused_behind_the_runs_back_pauses_the_run_at_its_next_step() {
    let w = World::new(json!({})).await;
    let (r, _) = w.start_chain(2).await;
    // Paused directly in the store (as a bulk change past the runs it reads would leave it).
    w.store
        .change_workflow(&shared::ports::WorkflowChange {
            id: w.workflow.id.clone(),
            actor: w.owner.clone(),
            expected_version: None,
            allowed_from: vec![WorkflowStatus::Active],
            max_nodes: None,
            update: shared::ports::WorkflowUpdate {
                status: Some(WorkflowStatus::Paused),
                ..Default::default()
            },
            now: w.now,
        })
        .await
        .unwrap();
    assert_eq!(
        w.drain(w.now, 5).await,
        vec![Outcome::Dropped("workflow not active")]
    );
    assert_eq!(w.generator.calls(), 0);
    let (run, _) = w
        .store
        .get_run(&r.workflow_id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Paused);
}

#[tokio::test]
async fn a_message_without_node_ids_or_naming_other_nodes_writes_the_steps_own_node() {
    let w = World::new(json!({})).await;
    let (run, steps) = w.start_chain(2).await;
    w.queue.take();
    // As queued before messages named the step's nodes: the worker reads them itself.
    let mut old = message(&run, &steps[0]);
    (old.node_id, old.parent_node_id) = (None, None);
    let outcome = w.worker().execute(&old, w.now, None, 0.5).await.unwrap();
    assert_eq!(outcome, Outcome::Succeeded);
    let first = w.store.node(&w.workflow.id, &steps[0].node_id).unwrap();
    assert_eq!(first.status, NodeStatus::Completed);

    // A message naming other nodes (stale or forged) generates the step's own node, continuing
    // its own parent, and leaves the named node alone.
    w.queue.take();
    let mut forged = message(&run, &steps[1]);
    forged.node_id = Some(steps[0].node_id.clone());
    forged.parent_node_id = None;
    let outcome = w.worker().execute(&forged, w.now, None, 0.5).await.unwrap();
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(
        w.store.node(&w.workflow.id, &steps[0].node_id),
        Some(first.clone())
    );
    let second = w.store.node(&w.workflow.id, &steps[1].node_id).unwrap();
    assert_eq!(second.status, NodeStatus::Completed);
    let tail: String = first
        .content
        .chars()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        w.generator.requests()[1].prompt.contains(tail.trim()),
        "the second step continues the first node's text"
    );
    assert_eq!(w.run(&run).0.status, RunStatus::Succeeded);
}
