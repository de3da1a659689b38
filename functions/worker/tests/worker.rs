//! The worker handler against the emulator's DynamoDB and SQS: a chain of steps runs through
//! real queues, one document per step, and a repeated message changes nothing. Runs started and
//! controlled through the use cases clients call (pause, resume, cancel, approve), with the fake
//! OpenAI-compatible server as the model: paused and cancelled runs drop their messages, approval
//! gates each step, a stalled call times out and is retried, pending children follow their parent.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use shared::app::runs::{Control, RunDetail, StartRun, control, start};
use shared::app::workflows::requests::CreateWorkflowRequest;
use shared::app::workflows::{ChangeStatus, CreateWorkflow};
use shared::app::{AppError, Outcome as Created};
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::{QueueUrls, SqsQueue};
use shared::config::WorkerConfig;
use shared::domain::run::ModelRef;
use shared::domain::run::{ErrorKind, Run, Step};
use shared::domain::run::{RunStatus, StepStatus};
use shared::domain::{Node, Workflow, WorkflowStatus};
use shared::domain::{NodeStatus, Principal, Role, ids};
use shared::generators::Builtin;
use shared::generators::Generators;
use shared::generators::openai::OpenAi;
use shared::ports::{Nodes, Runs, StepMessage, TaskQueue, TextGenerator, Workflows};
use shared::testing::openai_server::{FakeOpenAi, Reply};
use shared::testing::runs::{active_workflow, chain, message};
use std::time::{Duration, Instant};
use worker::{Deps, handle};

struct Stack<G = Builtin> {
    deps: Deps<DynamoStore, SqsQueue, G>,
    sqs: aws_sdk_sqs::Client,
    urls: [String; 4],
}

async fn stack<G>(generator: G) -> Stack<G> {
    let (client, table) = localstack::testing::fresh_table("worker").await;
    let sdk = localstack::testing::emulator_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let urls = localstack::testing::step_queues(&sqs, "steps").await;
    let queue = SqsQueue::new(sqs.clone(), QueueUrls::from(urls.clone()));
    Stack {
        deps: Deps {
            store: DynamoStore::new(client, table),
            queue,
            generator,
            default_model: "builtin".into(),
            poster: None,
        },
        sqs,
        urls,
    }
}

impl<G: TextGenerator> Stack<G> {
    /// What the event source does: receive from every queue, hand the batch to the handler,
    /// delete what succeeded. The step ids of the records handled, in batch order.
    async fn deliver(&self) -> Vec<String> {
        let mut records = Vec::new();
        let mut receipts = Vec::new();
        let mut delivered = Vec::new();
        for url in &self.urls {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            for m in out.messages.unwrap_or_default() {
                let step = m
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str::<StepMessage>(b).ok())
                    .map_or_else(|| "not a step".to_string(), |m| m.step_id);
                delivered.push(step);
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.body = m.body.clone();
                records.push(record);
                receipts.push((
                    url.clone(),
                    m.message_id.unwrap(),
                    m.receipt_handle.unwrap(),
                ));
            }
        }
        if records.is_empty() {
            return delivered;
        }
        let mut event = SqsEvent::default();
        event.records = records;
        let response = handle(&self.deps, event, None).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for (url, id, receipt) in receipts {
            if !failed.contains(&id) {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap();
            }
        }
        delivered
    }
}

#[tokio::test]
async fn a_chain_runs_through_the_queues_one_document_per_step() {
    let s = stack(Builtin).await;
    let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let workflow = active_workflow(&owner, "Chain", now);
    s.deps
        .store
        .create_workflow(&workflow, &[], None)
        .await
        .unwrap();
    let (r, steps, nodes) = chain(&workflow, 3, None, 4, now);
    s.deps
        .store
        .create_run(
            &owner,
            &r,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    let first = message(&r, &steps[0]);
    s.deps
        .queue
        .enqueue(r.priority, &owner.user_id, &first, 0)
        .await
        .unwrap();

    // Deliver until the run is over (poll with a deadline; no sleeps as synchronisation).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (run, _) = s
            .deps
            .store
            .get_run(&workflow.id, &r.id)
            .await
            .unwrap()
            .unwrap();
        if run.status == RunStatus::Succeeded || Instant::now() > deadline {
            break;
        }
        s.deliver().await;
    }
    let (run, steps) = s
        .deps
        .store
        .get_run(&workflow.id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(
        steps
            .iter()
            .all(|st| st.status == StepStatus::Succeeded && st.attempts == 1)
    );
    let mut contents = Vec::new();
    for n in &nodes {
        let (_, node) = s.deps.store.get_node(&workflow.id, &n.id).await.unwrap();
        let node = node.unwrap();
        assert_eq!(node.status, NodeStatus::Completed);
        assert!(node.metrics.words > 0);
        contents.push(node.content);
    }

    // The first step's message again: nothing changes, nothing is left to redeliver.
    s.deps
        .queue
        .enqueue(r.priority, &owner.user_id, &first, 0)
        .await
        .unwrap();
    assert_eq!(s.deliver().await.len(), 1);
    for (n, before) in nodes.iter().zip(&contents) {
        let (_, node) = s.deps.store.get_node(&workflow.id, &n.id).await.unwrap();
        assert_eq!(&node.unwrap().content, before);
    }
    assert!(s.deliver().await.is_empty());
}

/// Runs until `run_id` is over or 60 s have passed (polling, no sleeps).
async fn deliver_until_over<G: TextGenerator>(s: &Stack<G>, workflow_id: &str, run_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (run, _) = s
            .deps
            .store
            .get_run(workflow_id, run_id)
            .await
            .unwrap()
            .unwrap();
        if run.status.is_terminal() || Instant::now() > deadline {
            return;
        }
        if s.deliver().await.is_empty() {
            // Nothing visible yet (a delayed retry): poll again shortly.
            tokio::time::sleep(POLL).await;
        }
    }
}

#[tokio::test]
async fn an_openai_step_throttled_once_is_retried_and_succeeds() {
    let server = FakeOpenAi::start().await;
    server
        .push(Reply::throttled(1))
        .push(Reply::text("The model wrote this part.", 2));
    // The API key sealed with the emulator's KMS and opened as a cold start does.
    let sdk = localstack::testing::emulator_config().await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let ciphertext = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new("sk-worker-test"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    let env = |k: &str| match k {
        "GENERATOR_URL" => Some(server.url()),
        "GENERATOR_API_KEY_CIPHERTEXT" => Some(STANDARD.encode(&ciphertext)),
        "KMS_KEY_ID" => Some(key_id.clone()),
        "DEFAULT_MODEL" => None,
        _ => Some("unused".into()),
    };
    let config = WorkerConfig::from_lookup(env).unwrap();
    let s = stack(worker::generators(&config, &sdk).await.unwrap()).await;

    let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let workflow = active_workflow(&owner, "Model chain", now);
    let store = &s.deps.store;
    store.create_workflow(&workflow, &[], None).await.unwrap();
    let (r, steps, nodes) = chain(
        &workflow,
        1,
        Some(ModelRef::OpenAi("tiny-model".into())),
        3,
        now,
    );
    store
        .create_run(
            &owner,
            &r,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    let first = message(&r, &steps[0]);
    s.deps
        .queue
        .enqueue(r.priority, &owner.user_id, &first, 0)
        .await
        .unwrap();

    deliver_until_over(&s, &workflow.id, &r.id).await;

    let (run, steps) = store.get_run(&workflow.id, &r.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?} {steps:?}");
    assert_eq!(
        (steps[0].status, steps[0].attempts),
        (StepStatus::Succeeded, 2)
    );
    assert_eq!(server.calls(), 2);
    for request in server.received() {
        assert_eq!(request.body["model"], "tiny-model");
        assert_eq!(request.authorization(), Some("Bearer sk-worker-test"));
    }
    let (_, node) = store.get_node(&workflow.id, &nodes[0].id).await.unwrap();
    assert_eq!(node.unwrap().content, "The model wrote this part.");
}

// ----- runs driven through the use cases clients call -----

/// How long a polling loop waits when nothing was delivered (a delayed retry not yet visible).
const POLL: Duration = Duration::from_millis(50);

fn now() -> chrono::DateTime<chrono::Utc> {
    shared::domain::time::truncate_to_millis(chrono::Utc::now())
}

/// A stack whose generator reaches `server` for `openai:` models (no API key).
async fn openai_stack(server: &FakeOpenAi) -> Stack<Generators> {
    stack(Generators::new(Some(
        OpenAi::new(&server.url(), None).unwrap(),
    )))
    .await
}

impl<G: TextGenerator> Stack<G> {
    /// A workflow of `owner` created with `settings` and `nodes` (create request shapes) and
    /// made active, through the workflow use cases.
    async fn active_workflow(
        &self,
        owner: &Principal,
        settings: Value,
        nodes: Value,
    ) -> (Workflow, Vec<Node>) {
        let body: CreateWorkflowRequest =
            serde_json::from_value(json!({"name": "Chain", "settings": settings, "nodes": nodes}))
                .unwrap();
        let created = shared::app::workflows::create(
            &self.deps.store,
            CreateWorkflow {
                principal: owner,
                body,
                idempotency: None,
                now: now(),
            },
        )
        .await
        .unwrap();
        let Created::Created(created) = created else {
            panic!("a replay without a key: {created:?}");
        };
        let workflow = shared::app::workflows::change_status(
            &self.deps.store,
            ChangeStatus {
                principal: owner,
                id: &created.workflow.id,
                target: WorkflowStatus::Active,
                expected_version: None,
                now: now(),
            },
        )
        .await
        .unwrap();
        (workflow, created.nodes)
    }

    /// Starts a run with `body` (a start request), as `POST .../runs` does.
    async fn start(&self, owner: &Principal, workflow_id: &str, body: Value) -> RunDetail {
        let started = start(
            &self.deps.store,
            &self.deps.queue,
            StartRun {
                principal: owner,
                workflow_id,
                body: serde_json::from_value(body).unwrap(),
                idempotency: None,
                now: now(),
            },
        )
        .await
        .unwrap();
        match started {
            Created::Created(detail) => detail,
            replay => panic!("a replay without a key: {replay:?}"),
        }
    }

    async fn control(
        &self,
        owner: &Principal,
        r: &Run,
        action: Control,
    ) -> Result<RunDetail, AppError> {
        control(
            &self.deps.store,
            &self.deps.queue,
            owner,
            &r.workflow_id,
            &r.id,
            action,
            now(),
        )
        .await
    }

    /// The run and its steps as stored.
    async fn run(&self, r: &Run) -> (Run, Vec<Step>) {
        self.deps
            .store
            .get_run(&r.workflow_id, &r.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The node a step writes, as stored.
    async fn node_of(&self, step: &Step, workflow_id: &str) -> Node {
        let (_, node) = self
            .deps
            .store
            .get_node(workflow_id, &step.node_id)
            .await
            .unwrap();
        node.unwrap()
    }

    /// Every node of the workflow, as stored.
    async fn nodes(&self, workflow_id: &str) -> Vec<Node> {
        self.deps
            .store
            .get_tree(workflow_id)
            .await
            .unwrap()
            .unwrap()
            .1
    }

    /// Messages in the queues: visible, in flight or delayed.
    async fn queued(&self) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let mut n = 0;
        for url in &self.urls {
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::All)
                .send()
                .await
                .unwrap();
            let attributes = out.attributes.unwrap_or_default();
            for name in [
                A::ApproximateNumberOfMessages,
                A::ApproximateNumberOfMessagesNotVisible,
                A::ApproximateNumberOfMessagesDelayed,
            ] {
                n += attributes
                    .get(&name)
                    .map(|v| v.parse::<usize>().unwrap())
                    .unwrap_or(0);
            }
        }
        n
    }
}

/// The same model for every run here.
const MODEL: &str = "openai:tiny-model";

/// A `continue` run of 3 steps on a new active workflow of `owner`, its first step delivered
/// and written (one model call).
async fn three_steps_after_the_first(
    s: &Stack<Generators>,
    server: &FakeOpenAi,
    owner: &Principal,
) -> (Workflow, Run, Vec<Step>) {
    let (workflow, _) = s.active_workflow(owner, json!({}), json!([])).await;
    let RunDetail { run: r, steps } = s
        .start(
            owner,
            &workflow.id,
            json!({"plan": {"mode": "continue", "steps": 3}, "model": MODEL}),
        )
        .await;
    assert_eq!(s.deliver().await, [steps[0].id.clone()]);
    assert_eq!(server.calls(), 1);
    (workflow, r, steps)
}

#[tokio::test]
async fn a_paused_run_drops_its_next_message_and_resuming_queues_the_step_again() {
    let server = FakeOpenAi::start().await;
    server
        .push(Reply::text("The first part.", 2))
        .push(Reply::text("The second part.", 2))
        .push(Reply::text("The third part.", 2));
    let s = openai_stack(&server).await;
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (workflow, r, steps) = three_steps_after_the_first(&s, &server, &owner).await;

    let paused = s.control(&owner, &r, Control::Pause).await.unwrap();
    assert_eq!(paused.run.status, RunStatus::Paused);
    // The message the first step's commit queued arrives, and is dropped (deleted, not retried).
    assert_eq!(s.deliver().await, [steps[1].id.clone()]);
    assert_eq!(server.calls(), 1, "nothing generated while paused");
    assert_eq!(s.queued().await, 0);
    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(
        (stored[1].status, stored[1].attempts),
        (StepStatus::Pending, 0)
    );
    let second = s.node_of(&stored[1], &workflow.id).await;
    assert_eq!(
        (second.status, second.content.as_str()),
        (NodeStatus::Pending, "")
    );

    let resumed = s.control(&owner, &r, Control::Resume).await.unwrap();
    assert_eq!(resumed.run.status, RunStatus::Running);
    assert_eq!(s.deliver().await, [steps[1].id.clone()], "queued again");
    deliver_until_over(&s, &workflow.id, &r.id).await;

    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?} {stored:?}");
    assert!(
        stored
            .iter()
            .all(|st| st.status == StepStatus::Succeeded && st.attempts == 1),
        "{stored:?}"
    );
    assert_eq!(server.calls(), 3);
    let nodes = s.nodes(&workflow.id).await;
    assert_eq!(nodes.len(), 3);
    for (step, text) in
        stored
            .iter()
            .zip(["The first part.", "The second part.", "The third part."])
    {
        let node = s.node_of(step, &workflow.id).await;
        assert_eq!(
            (node.status, node.content.as_str()),
            (NodeStatus::Completed, text)
        );
    }
}

#[tokio::test]
async fn cancelling_mid_run_skips_the_remaining_steps_and_drops_their_messages() {
    let server = FakeOpenAi::start().await;
    let s = openai_stack(&server).await;
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (workflow, r, steps) = three_steps_after_the_first(&s, &server, &owner).await;

    let cancelled = s.control(&owner, &r, Control::Cancel).await.unwrap();
    assert_eq!(cancelled.run.status, RunStatus::Cancelled);
    // The second step's message, queued by the first step's commit, finds the run over.
    assert_eq!(s.deliver().await, [steps[1].id.clone()]);
    assert_eq!(s.queued().await, 0);
    assert!(s.deliver().await.is_empty());
    assert_eq!(server.calls(), 1, "nothing generated after the cancel");

    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    let statuses: Vec<StepStatus> = stored.iter().map(|st| st.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Succeeded,
            StepStatus::Skipped,
            StepStatus::Skipped
        ]
    );
    assert_eq!(
        s.node_of(&stored[0], &workflow.id).await.status,
        NodeStatus::Completed
    );
    for st in &stored[1..] {
        let node = s.node_of(st, &workflow.id).await;
        assert_eq!(
            (node.status, node.content.as_str()),
            (NodeStatus::Pending, "")
        );
    }
    // A cancelled run stays over.
    assert!(matches!(
        s.control(&owner, &r, Control::Resume).await,
        Err(AppError::IllegalTransition { .. })
    ));
    assert_eq!(s.queued().await, 0);
}

#[tokio::test]
async fn each_step_of_an_approval_run_waits_for_its_approve() {
    let server = FakeOpenAi::start().await;
    server
        .push(Reply::text("The approved first part.", 2))
        .push(Reply::text("The approved second part.", 2));
    let s = openai_stack(&server).await;
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (workflow, _) = s.active_workflow(&owner, json!({}), json!([])).await;
    let RunDetail { run: r, steps } = s
        .start(
            &owner,
            &workflow.id,
            json!({"plan": {"mode": "continue", "steps": 2}, "model": MODEL, "approval": true}),
        )
        .await;
    assert!(
        steps
            .iter()
            .all(|st| st.status == StepStatus::WaitingApproval)
    );
    assert_eq!(s.queued().await, 0, "nothing queued before an approve");
    assert!(s.deliver().await.is_empty());
    // A stray message of the first step (as a client might replay one) changes nothing.
    s.deps
        .queue
        .enqueue(r.priority, &owner.user_id, &message(&r, &steps[0]), 0)
        .await
        .unwrap();
    assert_eq!(s.deliver().await, [steps[0].id.clone()]);
    assert_eq!(server.calls(), 0);
    assert_eq!(s.queued().await, 0);
    assert_eq!(s.run(&r).await.1[0].status, StepStatus::WaitingApproval);

    // The second step cannot be approved before the first is done.
    let second = Control::Approve {
        step_id: steps[1].id.clone(),
    };
    assert!(matches!(
        s.control(&owner, &r, second.clone()).await,
        Err(AppError::Conflict {
            slug: "step-not-approvable",
            ..
        })
    ));
    let first = Control::Approve {
        step_id: steps[0].id.clone(),
    };
    s.control(&owner, &r, first).await.unwrap();
    assert_eq!(s.deliver().await, [steps[0].id.clone()]);
    assert_eq!(server.calls(), 1);
    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(
        (stored[0].status, stored[1].status),
        (StepStatus::Succeeded, StepStatus::WaitingApproval)
    );
    assert_eq!(
        s.node_of(&stored[0], &workflow.id).await.content,
        "The approved first part."
    );
    // The next step waits again: its commit queued nothing.
    assert_eq!(s.queued().await, 0);
    assert!(s.deliver().await.is_empty());
    assert_eq!(server.calls(), 1);

    s.control(&owner, &r, second).await.unwrap();
    assert_eq!(s.deliver().await, [steps[1].id.clone()]);
    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?} {stored:?}");
    assert_eq!(server.calls(), 2);
    assert_eq!(
        s.node_of(&stored[1], &workflow.id).await.content,
        "The approved second part."
    );
}

#[tokio::test]
async fn a_model_call_that_stalls_times_out_and_a_later_attempt_succeeds() {
    let server = FakeOpenAi::start().await;
    server
        .push(Reply::Hang)
        .push(Reply::text("Written after the stall.", 2));
    let s = openai_stack(&server).await;
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let settings = json!({
        "timeout_s": 1,
        "retry": {"interval_s": 0.5, "backoff_rate": 1.0, "max_delay_s": 1}
    });
    let (workflow, _) = s.active_workflow(&owner, settings, json!([])).await;
    let RunDetail { run: r, steps } = s
        .start(
            &owner,
            &workflow.id,
            json!({"plan": {"mode": "continue", "steps": 1}, "model": MODEL}),
        )
        .await;

    let began = Instant::now();
    assert_eq!(s.deliver().await, [steps[0].id.clone()]);
    assert!(began.elapsed() >= Duration::from_secs(1), "the call waited");
    assert_eq!(server.calls(), 1);
    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Running);
    let step = &stored[0];
    assert_eq!((step.status, step.attempts), (StepStatus::Pending, 1));
    assert_eq!(
        step.last_error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Timeout),
        "{step:?}"
    );
    assert!(step.lease_until.is_some(), "a retry is scheduled");
    assert_eq!(s.queued().await, 1, "the retry's delayed message");

    deliver_until_over(&s, &workflow.id, &r.id).await;
    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?} {stored:?}");
    assert_eq!(
        (stored[0].status, stored[0].attempts),
        (StepStatus::Succeeded, 2)
    );
    assert_eq!(server.calls(), 2);
    let nodes = s.nodes(&workflow.id).await;
    assert_eq!(nodes.len(), 1, "exactly one document");
    assert_eq!(
        (nodes[0].status, nodes[0].content.as_str()),
        (NodeStatus::Completed, "Written after the stall.")
    );
    assert_eq!(s.queued().await, 0);
}

/// A new active workflow of `owner` with a pending root and two pending children, with
/// `settings.max_parallel`, and a `pending` run of it started.
async fn root_and_two_children(
    s: &Stack<Generators>,
    owner: &Principal,
    max_parallel: usize,
) -> (Workflow, Vec<Node>, Run, Vec<Step>) {
    let (workflow, nodes) = s
        .active_workflow(
            owner,
            json!({"max_parallel": max_parallel}),
            json!([
                {"ref": "root", "title": "Root"},
                {"parent_ref": "root", "title": "Left"},
                {"parent_ref": "root", "title": "Right"},
            ]),
        )
        .await;
    assert!(nodes.iter().all(|n| n.status == NodeStatus::Pending));
    let RunDetail { run: r, steps } = s
        .start(
            owner,
            &workflow.id,
            json!({"plan": {"mode": "pending"}, "model": MODEL}),
        )
        .await;
    (workflow, nodes, r, steps)
}

#[tokio::test]
async fn pending_children_are_queued_after_their_parent_commits_and_run_together() {
    let server = FakeOpenAi::start().await;
    server.push(Reply::text("The root part of the tree.", 2));
    let s = openai_stack(&server).await;
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (workflow, nodes, r, steps) = root_and_two_children(&s, &owner, 2).await;
    let root = nodes.iter().find(|n| n.parent_id.is_none()).unwrap();
    assert_eq!(steps.len(), 3);
    let root_step = steps.iter().find(|st| st.node_id == root.id).unwrap();
    let mut children: Vec<String> = steps
        .iter()
        .filter(|st| st.node_id != root.id)
        .map(|st| st.id.clone())
        .collect();
    children.sort();

    // Only the root's step is queued at first.
    assert_eq!(s.deliver().await, std::slice::from_ref(&root_step.id));
    assert_eq!(server.calls(), 1);
    // Its commit queued both children; they come in one batch.
    let mut second = s.deliver().await;
    second.sort();
    assert_eq!(second, children);
    // The first child's commit queued the second again (it was still pending then): that
    // repeat finds the run over and generates nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.queued().await > 0 && Instant::now() < deadline {
        for repeat in s.deliver().await {
            assert!(children.contains(&repeat), "{repeat}");
        }
    }
    assert_eq!(s.queued().await, 0);

    let (run, stored) = s.run(&r).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?} {stored:?}");
    assert!(
        stored
            .iter()
            .all(|st| st.status == StepStatus::Succeeded && st.attempts == 1),
        "{stored:?}"
    );
    assert_eq!(server.calls(), 3);
    // Both children continue the root's text, which existed when they were asked for.
    for request in &server.received()[1..] {
        let prompt = request.message("user").unwrap();
        assert!(prompt.contains("The root part of the tree."), "{prompt}");
    }
    let nodes = s.nodes(&workflow.id).await;
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes
            .iter()
            .all(|n| n.status == NodeStatus::Completed && !n.content.is_empty()),
        "{nodes:?}"
    );
    assert_eq!(s.queued().await, 0);
}

#[tokio::test]
async fn max_parallel_bounds_the_steps_a_commit_queues() {
    let server = FakeOpenAi::start().await;
    let s = openai_stack(&server).await;
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (workflow, nodes, r, steps) = root_and_two_children(&s, &owner, 1).await;
    let root = nodes.iter().find(|n| n.parent_id.is_none()).unwrap();
    let root_step = steps.iter().find(|st| st.node_id == root.id).unwrap();
    assert_eq!(s.deliver().await, std::slice::from_ref(&root_step.id));
    // One step of the run at a time: the root's commit queues one child, not both.
    assert_eq!(s.queued().await, 1, "settings.max_parallel is 1");
    assert_eq!(s.deliver().await.len(), 1);
    deliver_until_over(&s, &workflow.id, &r.id).await;
    assert_eq!(s.run(&r).await.0.status, RunStatus::Succeeded);
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn followers_receive_the_text_as_it_is_written_in_batches_that_add_up_to_the_node() {
    use shared::domain::realtime::Connection;
    use shared::ports::Connections;
    use shared::testing::realtime::RecordingPoster;
    use std::sync::Arc;

    let server = FakeOpenAi::start().await;
    let text = "One two three four five six seven eight nine ten eleven twelve.";
    // 12 pieces, 60 ms apart: about 0.7 s of writing, so several 250 ms batches.
    server.push(Reply::Stream {
        text: text.into(),
        chunks: 12,
        delay: Duration::from_millis(60),
        finish_reason: "stop".into(),
        usage: true,
    });
    let mut s = openai_stack(&server).await;
    let poster = Arc::new(RecordingPoster::new());
    s.deps.poster = Some(Box::new(poster.clone()));
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let (workflow, _) = s.active_workflow(&owner, json!({}), json!([])).await;
    let follower = Connection::open("c-follower", &owner, now());
    s.deps.store.add_connection(&follower).await.unwrap();
    assert!(
        s.deps
            .store
            .subscribe(&follower, &workflow.id, 100)
            .await
            .unwrap()
    );
    let detail = s
        .start(
            &owner,
            &workflow.id,
            json!({"plan": {"mode": "continue", "steps": 1}, "model": MODEL}),
        )
        .await;
    deliver_until_over(&s, &workflow.id, &detail.run.id).await;

    let (run, stored) = s.run(&detail.run).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let node = s.node_of(&stored[0], &workflow.id).await;
    assert_eq!(node.content, text);
    let deltas = poster.frames_to("c-follower");
    assert!(
        deltas.len() >= 2,
        "the text arrives in several batches while it is written: {deltas:?}"
    );
    let mut written = String::new();
    for (i, d) in deltas.iter().enumerate() {
        assert_eq!(d["type"], "node_delta");
        assert_eq!(d["seq"], i as u64);
        assert_eq!(d["offset"], written.chars().count() as u64);
        assert_eq!(
            (
                d["workflow_id"].as_str(),
                d["node_id"].as_str(),
                d["run_id"].as_str()
            ),
            (
                Some(workflow.id.as_str()),
                Some(node.id.as_str()),
                Some(run.id.as_str())
            )
        );
        assert_eq!(d["attempt"], 1);
        written.push_str(d["text"].as_str().unwrap());
    }
    assert_eq!(written, text, "the deltas add up to the node's text");
}
