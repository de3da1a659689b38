//! Requests per step (DESIGN.md §8: worker overhead per step <= 3 DynamoDB requests + 1 SQS
//! send): the worker's handler runs each step of a three-step `continue` chain (generator
//! `builtin`) against the emulator, one step message per invocation, with an interceptor on the
//! DynamoDB and SQS clients counting every request it sends (retries included).
//!
//! What a middle step sends (shared/src/app/runs/worker.rs, shared/src/aws/dynamo), asserted
//! request by request:
//! 1. BatchGetItem: the run item with its steps, the workflow, the step's node and its parent,
//!    whose text the prompt continues, named by the message (`get_run_with`);
//! 2. UpdateItem: the claim, conditional on the step still pending (`claim_step`);
//! 3. TransactWriteItems: the node's content with the step's result and the run's progress
//!    (`commit_step`);
//! 4. SQS SendMessage: the next step (`enqueue_ready`).
//!
//! The first step sends one UpdateItem more (it moves the run from queued to running); the last
//! sends no message.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::{QueueUrls, SqsQueue};
use shared::domain::run::{RunStatus, StepStatus};
use shared::domain::{Principal, Role, ids};
use shared::generators::Builtin;
use shared::ports::{Runs, Workflows};
use shared::testing::runs::{active_workflow, chain, message};
use worker::{Deps, handle};

/// DESIGN.md §8: DynamoDB requests per step.
const BUDGET_DYNAMO: usize = 3;
/// DESIGN.md §8: SQS sends per step.
const BUDGET_SQS_SENDS: usize = 1;
/// What a middle step sends to DynamoDB, in order (see the module docs).
const MIDDLE_STEP_DYNAMO: [&str; 3] = [
    "DynamoDB.BatchGetItem",
    "DynamoDB.UpdateItem",
    "DynamoDB.TransactWriteItems",
];

/// Every request sent through the clients it is installed on, in order.
type Counter = shared::testing::RequestCounter;

/// The requests of one step, split by service.
#[derive(Debug)]
struct StepRequests {
    dynamo: Vec<String>,
    sqs: Vec<String>,
}

impl StepRequests {
    fn of(all: Vec<String>) -> StepRequests {
        let (dynamo, sqs) = all.into_iter().partition(|r| r.starts_with("DynamoDB."));
        StepRequests { dynamo, sqs }
    }

    fn sends(&self) -> usize {
        self.sqs
            .iter()
            .filter(|r| r.ends_with(".SendMessage"))
            .count()
    }
}

#[tokio::test]
async fn each_step_of_a_chain_sends_a_bounded_number_of_requests() {
    let counter = Counter::default();
    let (plain, table) = localstack::testing::fresh_table("worker-requests").await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        plain
            .config()
            .to_builder()
            .interceptor(counter.clone())
            .build(),
    );
    let sdk = localstack::testing::emulator_config().await;
    let plain_sqs = aws_sdk_sqs::Client::new(&sdk);
    let urls = localstack::testing::step_queues(&plain_sqs, "steps").await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        plain_sqs
            .config()
            .to_builder()
            .interceptor(counter.clone())
            .build(),
    );
    let deps = Deps {
        store: DynamoStore::new(client, table),
        queue: SqsQueue::new(sqs, QueueUrls::from(urls)),
        generator: Builtin,
        default_model: "builtin".into(),
        poster: None,
    };

    let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
    let owner = Principal::user(ids::new_id(), Role::Editor);
    let workflow = active_workflow(&owner, "Counted chain", now);
    deps.store
        .create_workflow(&workflow, &[], None)
        .await
        .unwrap();
    let (r, steps, nodes) = chain(&workflow, 3, None, 4, now);
    deps.store
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
    counter.take_qualified();

    // One invocation per step, in order, each with the message the step before queued (the
    // event source is not needed to count what the worker itself sends).
    let mut per_step = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("m-{i}"));
        record.body = Some(serde_json::to_string(&message(&r, step)).unwrap());
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let response = handle(&deps, event, None).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "step {i} was not done"
        );
        per_step.push(StepRequests::of(counter.take_qualified()));
    }
    let (run, done) = deps
        .store
        .get_run(&workflow.id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(done.iter().all(|s| s.status == StepStatus::Succeeded));
    for (i, s) in per_step.iter().enumerate() {
        eprintln!("step {i}: DynamoDB {:?}; SQS {:?}", s.dynamo, s.sqs);
    }

    // A middle step: neither the first (which also starts the run) nor the last (nothing to
    // queue after it).
    let middle = &per_step[1];
    assert_eq!(
        middle.sends(),
        BUDGET_SQS_SENDS,
        "SQS sends of a middle step: {middle:?}"
    );
    assert_eq!(middle.sqs.len(), middle.sends(), "{middle:?}");
    assert_eq!(middle.dynamo, MIDDLE_STEP_DYNAMO, "{middle:?}");
    assert!(middle.dynamo.len() <= BUDGET_DYNAMO);
    // The first step also moves the run from queued to running (one UpdateItem more, before
    // its claim); the last one queues nothing.
    assert_eq!(
        per_step[0].dynamo,
        [
            "DynamoDB.BatchGetItem",
            "DynamoDB.UpdateItem",
            "DynamoDB.UpdateItem",
            "DynamoDB.TransactWriteItems"
        ],
        "{per_step:?}"
    );
    assert_eq!(per_step[0].sends(), BUDGET_SQS_SENDS, "{per_step:?}");
    assert_eq!(per_step[2].dynamo, MIDDLE_STEP_DYNAMO, "{per_step:?}");
    assert_eq!(per_step[2].sends(), 0, "{per_step:?}");
}
