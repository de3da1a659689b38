//! The worker handler against the emulator's DynamoDB and SQS: a chain of steps runs through
//! real queues, one document per step, and a repeated message changes nothing.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::Map;
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::{QueueUrls, SqsQueue};
use shared::domain::run::{self, PlanRequest, Run, RunOptions, RunStatus, StepStatus};
use shared::domain::{Node, NodeStatus, Principal, Role, Settings, Workflow, WorkflowStatus, ids};
use shared::generators::Builtin;
use shared::ports::{Nodes, Runs, StepMessage, TaskQueue, Workflows};
use std::time::{Duration, Instant};
use worker::{Deps, handle};

struct Stack {
    deps: Deps<DynamoStore, SqsQueue, Builtin>,
    sqs: aws_sdk_sqs::Client,
    urls: Vec<String>,
}

async fn stack() -> Stack {
    let (client, table) = localstack::testing::fresh_table("worker").await;
    let sdk = localstack::testing::emulator_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut urls = Vec::new();
    for level in ["critical", "high", "normal", "low"] {
        let name = format!("steps-{level}-{}", ids::new_id().to_lowercase());
        let out = sqs.create_queue().queue_name(name).send().await.unwrap();
        urls.push(out.queue_url.unwrap());
    }
    let queue = SqsQueue::new(
        sqs.clone(),
        QueueUrls {
            critical: urls[0].clone(),
            high: urls[1].clone(),
            normal: urls[2].clone(),
            low: urls[3].clone(),
        },
    );
    Stack {
        deps: Deps {
            store: DynamoStore::new(client, table),
            queue,
            generator: Builtin,
            default_model: "builtin".into(),
        },
        sqs,
        urls,
    }
}

impl Stack {
    /// What the event source does: receive from every queue, hand the batch to the handler,
    /// delete what succeeded. The number of records handled.
    async fn deliver(&self) -> usize {
        let mut records = Vec::new();
        let mut receipts = Vec::new();
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
        let n = records.len();
        if n == 0 {
            return 0;
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
        n
    }
}

#[tokio::test]
async fn a_chain_runs_through_the_queues_one_document_per_step() {
    let s = stack().await;
    let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let workflow = Workflow {
        id: ids::new_id(),
        owner_id: owner.user_id.clone(),
        name: "Chain".into(),
        description: String::new(),
        status: WorkflowStatus::Active,
        settings: Settings::with_defaults(Map::new()),
        tags: vec![],
        node_count: 0,
        created_at: now,
        updated_at: now,
        version: 1,
        shares: Default::default(),
    };
    s.deps
        .store
        .create_workflow(&workflow, &[], None)
        .await
        .unwrap();
    let new_ids = ids::new_ids(3);
    let plan = run::plan_continue(None, 3, &new_ids);
    let options = RunOptions {
        plan: PlanRequest::Continue {
            from_node_id: None,
            steps: 3,
        },
        model: None,
        priority: 4,
        max_attempts: 3,
        timeout_s: 600,
        approval: false,
    };
    let r = Run::new(
        ids::new_id(),
        workflow.id.clone(),
        owner.user_id.clone(),
        &options,
        3,
        now,
    );
    let steps = run::steps_from_plan(&r.id, &plan, &ids::new_ids(3), false);
    let nodes: Vec<Node> = plan.iter().map(|p| p.new_node(&workflow.id, now)).collect();
    s.deps
        .store
        .create_run(&owner, &r, &steps, &nodes, None)
        .await
        .unwrap();
    let first = StepMessage {
        workflow_id: workflow.id.clone(),
        run_id: r.id.clone(),
        step_id: steps[0].id.clone(),
        attempt: 1,
    };
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
    assert_eq!(s.deliver().await, 1);
    for (n, before) in nodes.iter().zip(&contents) {
        let (_, node) = s.deps.store.get_node(&workflow.id, &n.id).await.unwrap();
        assert_eq!(&node.unwrap().content, before);
    }
    assert_eq!(s.deliver().await, 0);
}
