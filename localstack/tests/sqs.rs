//! The gateway's SQS event source against the emulator at AWS_ENDPOINT_URL (`make test` starts
//! it): queues provisioned from a template, messages delivered to real function processes,
//! deleted when they succeed, kept (and redriven to the dead-letter queue) when they fail.
//!
//! The functions: `hello-lambda` (a `lambda_runtime` binary that echoes its event: every record
//! succeeds) and `tests/fixtures/sqs_function.py` (reports records whose body starts with "fail"
//! in `batchItemFailures`, crashes on "crash").

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use aws_sdk_sqs::types::QueueAttributeName;
use common::Local;
use localstack::gateway::{Gateway, start_dev};
use localstack::resolve::Resolver;
use localstack::template::Template;
use localstack::testing::{emulator_endpoint, provision_queues, sqs_client};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TEMPLATE: &str = r#"
Resources:
  Dead:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      # Failed records come back after 3 s (well past an invocation, cold start included, so a
      # record is never delivered twice at once); the second failure sends them to Dead.
      VisibilityTimeout: 3
      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dead.Arn, maxReceiveCount: 2 }
  Echoes:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 2
  Windowed:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 30
  Batch:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: batch } }
    Properties:
      Timeout: 10
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: 2 }
  Echo:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: echo } }
    Properties:
      Timeout: 10
      Events:
        Echoes:
          Type: SQS
          Properties:
            Queue: !GetAtt Echoes.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
        Windowed:
          Type: SQS
          Properties:
            Queue: !GetAtt Windowed.Arn
            BatchSize: 3
            MaximumBatchingWindowInSeconds: 5
"#;

const DEADLINE: Duration = Duration::from_secs(30);

struct Stack {
    gateway: Gateway,
    resolver: Resolver,
    sqs: aws_sdk_sqs::Client,
    local: Local,
}

/// The template's queues (suffixed for this test) and a gateway running its two functions.
async fn stack() -> Stack {
    let endpoint = emulator_endpoint(std::env::var("AWS_ENDPOINT_URL").ok()).unwrap();
    let template = Template::from_yaml("sqs-test.yaml", TEMPLATE).unwrap();
    let (local, mut config) = common::setup(
        "sqs",
        template.clone(),
        &[
            ("echo", env!("CARGO_BIN_EXE_hello-lambda").into()),
            (
                "batch",
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sqs_function.py"),
            ),
        ],
        DEADLINE,
    );
    config.endpoint_url = endpoint;
    let (gateway, provisioned) = start_dev(config).await.unwrap();
    assert_eq!(
        provisioned,
        ["Dead", "Jobs", "Echoes", "Windowed"]
            .map(|q| format!("queue {q}{}: created", local.suffix))
    );
    // The helper tests use finds them as they are, by the same names and URLs.
    let resolver = provision_queues(&template, &local.suffix).await;
    Stack {
        gateway,
        resolver,
        sqs: sqs_client().await,
        local,
    }
}

impl Stack {
    fn url(&self, queue: &str) -> String {
        self.resolver.queue_url(queue).unwrap()
    }

    async fn send(&self, queue: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(self.url(queue))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Messages on the queue, visible or in flight.
    async fn count(&self, queue: &str) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.url(queue))
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|k| {
            attributes
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// Waits until `check` holds of the function's log lines.
    async fn until_logged(&self, function: &str, what: &str, check: impl Fn(&[String]) -> bool) {
        self.local
            .until_logged(function, what, |lines| check(lines).then_some(()))
            .await
    }

    /// Bodies that reach the dead-letter queue `Dead`, until `expected` have (or the deadline).
    async fn dead_letters(&self, expected: usize) -> Vec<String> {
        let start = Instant::now();
        let mut bodies = Vec::new();
        while bodies.len() < expected && start.elapsed() < DEADLINE {
            let got = self
                .sqs
                .receive_message()
                .queue_url(self.url("Dead"))
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            bodies.extend(got.messages().iter().filter_map(|m| m.body.clone()));
        }
        bodies.sort();
        bodies
    }
}

fn batch_lines(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains(": batch of ")).collect()
}

#[tokio::test]
async fn a_message_that_succeeds_is_deleted() {
    let s = stack().await;
    s.send("Echoes", "hello").await;
    s.until_logged("Echo", "the batch to be settled", |lines| {
        batch_lines(lines)
            .iter()
            .any(|l| l.ends_with("batch of 1 records, 0 failed, 1 deleted"))
    })
    .await;
    assert_eq!(s.count("Echoes").await, 0, "the message was deleted");
    // One instance of the real binary served it.
    let echo = s.gateway.function("Echo").unwrap();
    assert_eq!(echo.instances().len(), 1);
    assert_eq!(echo.instances()[0].delivered(), 1);
}

#[tokio::test]
async fn a_batching_window_gathers_records_into_one_batch() {
    let s = stack().await;
    for body in ["w1", "w2", "w3"] {
        s.send("Windowed", body).await;
    }
    s.until_logged("Echo", "the batch to be settled", |lines| {
        !batch_lines(lines).is_empty()
    })
    .await;
    // Whether the first receive found one record or all three, the window (5 s) held the batch
    // open until it was full. Without ReportBatchItemFailures any answer is success.
    let lines = s.local.lines("Echo");
    assert_eq!(
        batch_lines(&lines),
        [&format!(
            "SQS Windowed{}: batch of 3 records, 0 failed, 3 deleted",
            s.local.suffix
        )],
        "{lines:#?}"
    );
    assert_eq!(s.count("Windowed").await, 0);
}

#[tokio::test]
async fn reported_failures_stay_on_the_queue_until_redriven_and_successes_are_deleted() {
    let s = stack().await;
    s.send("Jobs", "ok-1").await;
    s.send("Jobs", "fail-1").await;
    // fail-1 is delivered, reported, comes back after the visibility timeout, fails again,
    // and moto's redrive moves it to the dead-letter queue at the next receive.
    assert_eq!(s.dead_letters(1).await, ["fail-1"]);
    assert_eq!(s.count("Jobs").await, 0);
    let lines = s.local.lines("Batch");
    let deliveries: Vec<&String> = lines.iter().filter(|l| l.starts_with("batch ")).collect();
    let seen = |body: &str, receive: &str| {
        deliveries
            .iter()
            .any(|l| l.contains(&format!("[\"{body}\", \"{receive}\", \"aws:sqs\"]")))
    };
    assert!(seen("ok-1", "1") && !seen("ok-1", "2"), "{deliveries:#?}");
    assert!(
        seen("fail-1", "1") && seen("fail-1", "2"),
        "{deliveries:#?}"
    );
    // Settled as reported: ok-1 deleted once, fail-1 left twice.
    let settled = batch_lines(&lines);
    let total = |what: &str| -> usize {
        settled
            .iter()
            .filter_map(|l| {
                let (_, rest) = l.split_once(" records, ")?;
                let (failed, deleted) = rest.split_once(" failed, ")?;
                match what {
                    "failed" => failed.parse::<usize>().ok(),
                    _ => deleted.trim_end_matches(" deleted").parse::<usize>().ok(),
                }
            })
            .sum()
    };
    assert_eq!((total("failed"), total("deleted")), (2, 1), "{settled:#?}");
}

#[tokio::test]
async fn a_failed_invocation_deletes_nothing() {
    let s = stack().await;
    s.send("Jobs", "crash").await;
    s.until_logged("Batch", "the crashed invocation", |lines| {
        lines.iter().any(|l| {
            l.contains("batch of 1 records, invocation failed") && l.ends_with("nothing deleted")
        })
    })
    .await;
    // Not deleted: after two crashed receives it is in the dead-letter queue.
    assert_eq!(s.dead_letters(1).await, ["crash"]);
    assert_eq!(s.count("Jobs").await, 0);
}

#[tokio::test]
async fn the_gateway_stops_polling_when_dropped() {
    let s = stack().await;
    let (sqs, logs, url) = (s.sqs.clone(), s.local.logs.clone(), s.url("Echoes"));
    let source = format!("Echo{}", s.local.suffix);
    drop(s);
    sqs.send_message()
        .queue_url(&url)
        .message_body("after")
        .send()
        .await
        .unwrap();
    // Nothing deletes it: a receive of our own gets it (after the visibility timeout, if the
    // long poll the gateway had open when it stopped took it first).
    let body = common::receive_one(&sqs, &url, DEADLINE, "the message is gone").await;
    assert_eq!(body.as_deref(), Some("after"));
    assert!(
        !logs
            .lock()
            .unwrap()
            .iter()
            .any(|(s, line)| *s == source && line.contains("batch of")),
        "a stopped gateway delivered a batch"
    );
}
