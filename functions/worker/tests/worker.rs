//! The worker handler against the emulator's DynamoDB and SQS: a chain of steps runs through
//! real queues, one document per step, and a repeated message changes nothing.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shared::aws::dynamo::DynamoStore;
use shared::aws::sqs::{QueueUrls, SqsQueue};
use shared::config::WorkerConfig;
use shared::domain::run::ModelRef;
use shared::domain::run::{RunStatus, StepStatus};
use shared::domain::{NodeStatus, Principal, Role, ids};
use shared::generators::Builtin;
use shared::ports::{Nodes, Runs, TaskQueue, TextGenerator, Workflows};
use shared::testing::openai_server::{FakeOpenAi, Reply};
use shared::testing::runs::{active_workflow, chain, message};
use std::time::{Duration, Instant};
use worker::{Deps, handle};

struct Stack<G = Builtin> {
    deps: Deps<DynamoStore, SqsQueue, G>,
    sqs: aws_sdk_sqs::Client,
    urls: Vec<String>,
}

async fn stack<G>(generator: G) -> Stack<G> {
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
            generator,
            default_model: "builtin".into(),
        },
        sqs,
        urls,
    }
}

impl<G: TextGenerator> Stack<G> {
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
    assert_eq!(s.deliver().await, 1);
    for (n, before) in nodes.iter().zip(&contents) {
        let (_, node) = s.deps.store.get_node(&workflow.id, &n.id).await.unwrap();
        assert_eq!(&node.unwrap().content, before);
    }
    assert_eq!(s.deliver().await, 0);
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
        s.deliver().await;
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
