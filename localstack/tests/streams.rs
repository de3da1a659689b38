//! The gateway's DynamoDB stream event source against the emulator at AWS_ENDPOINT_URL (`make
//! test` starts it): a table with a stream, made from a template, read into a real function
//! process (`stream-recorder-lambda`, see its docs) with Lambda's filtering, ordering, batch
//! item failures, retries and on-failure destination.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::Local;
use localstack::gateway::{Gateway, start_dev};
use localstack::provision::provision_tables_with_suffix;
use localstack::resolve::Resolver;
use localstack::template::Template;
use localstack::testing::{emulator_client, emulator_endpoint, provision_queues, sqs_client};
use serde_json::Value;
use std::time::Duration;

const TEMPLATE: &str = r#"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{ AttributeName: PK, AttributeType: S }]
      KeySchema: [{ AttributeName: PK, KeyType: HASH }]
      StreamSpecification: { StreamViewType: NEW_AND_OLD_IMAGES }
  Failures:
    Type: AWS::SQS::Queue
  Recorder:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: recorder } }
    Properties:
      Timeout: 5
      Events:
        TableStream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: LATEST
            BatchSize: 10
            MaximumRetryAttempts: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt Failures.Arn
            FilterCriteria:
              Filters:
                - Pattern: '{"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "WF#"}, {"prefix": "FAIL"}]}}}}'
"#;

const DEADLINE: Duration = Duration::from_secs(15);

struct Stack {
    _gateway: Gateway,
    dynamodb: aws_sdk_dynamodb::Client,
    resolver: Resolver,
    table: String,
    local: Local,
}

/// The template's table and queue (suffixed for this test) and a gateway reading the stream.
async fn stack() -> Stack {
    let endpoint = emulator_endpoint(std::env::var("AWS_ENDPOINT_URL").ok()).unwrap();
    let template = Template::from_yaml("streams-test.yaml", TEMPLATE).unwrap();
    let (local, mut config) = common::setup(
        "streams",
        template.clone(),
        &[(
            "recorder",
            env!("CARGO_BIN_EXE_stream-recorder-lambda").into(),
        )],
        DEADLINE,
    );
    let dynamodb = emulator_client().await;
    provision_tables_with_suffix(&dynamodb, &template, &local.suffix)
        .await
        .unwrap();
    config.endpoint_url = endpoint;
    let (gateway, _) = start_dev(config).await.unwrap();
    let resolver = provision_queues(&template, &local.suffix).await;
    Stack {
        _gateway: gateway,
        dynamodb,
        resolver,
        table: format!("Table{}", local.suffix),
        local,
    }
}

/// One delivered record: (SequenceNumber, PK, eventName, eventSourceARN).
type Delivered = (String, String, String, String);

impl Stack {
    async fn put(&self, pk: &str) {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("PK", AttributeValue::S(pk.into()))
            .send()
            .await
            .unwrap();
    }

    /// Every batch the function logged, in order.
    fn batches(&self) -> Vec<Vec<Delivered>> {
        self.local
            .lines("Recorder")
            .iter()
            .filter_map(|l| l.strip_prefix("batch "))
            .map(|json| {
                let records: Vec<Value> = serde_json::from_str(json).unwrap();
                records
                    .iter()
                    .map(|r| {
                        let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
                        (s(0), s(1), s(2), s(3))
                    })
                    .collect()
            })
            .collect()
    }

    /// The PKs delivered, in delivery order.
    fn delivered(&self) -> Vec<String> {
        self.batches()
            .into_iter()
            .flatten()
            .map(|(_, pk, _, _)| pk)
            .collect()
    }

    /// The PKs delivered, in delivery order, once `done` holds of them.
    async fn delivered_until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        common::wait_for(
            DEADLINE,
            || Some(self.delivered()).filter(|pks| done(pks)),
            || format!("timed out; delivered so far: {:?}", self.delivered()),
        )
        .await
    }
}

#[tokio::test]
async fn matching_changes_arrive_in_order_with_the_stream_arn_and_others_are_dropped() {
    let s = stack().await;
    for pk in ["WF#1", "USER#1", "WF#2", "SESSION#9", "WF#3"] {
        s.put(pk).await;
    }
    let pks = s
        .delivered_until(|pks| pks.iter().any(|p| p == "WF#3"))
        .await;
    assert_eq!(pks, ["WF#1", "WF#2", "WF#3"]);
    let records: Vec<Delivered> = s.batches().into_iter().flatten().collect();
    for (seq, _, event, arn) in &records {
        assert_eq!(event, "INSERT");
        assert!(
            arn.starts_with("arn:aws:dynamodb:")
                && arn.contains(&format!("table/{}/stream/", s.table)),
            "{arn}"
        );
        assert!(!seq.is_empty());
    }
    let seqs: Vec<u128> = records.iter().map(|r| r.0.parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // An update is a MODIFY.
    s.put("WF#1").await;
    s.delivered_until(|pks| pks.len() == 4).await;
    let last = s.batches().into_iter().flatten().last().unwrap();
    assert_eq!((last.1.as_str(), last.2.as_str()), ("WF#1", "MODIFY"));
}

#[tokio::test]
async fn a_reported_failure_is_retried_from_that_record() {
    let s = stack().await;
    for pk in ["WF#a", "FAILONCE#1", "WF#b"] {
        s.put(pk).await;
    }
    let pks = s
        .delivered_until(|pks| {
            pks.iter().filter(|p| *p == "FAILONCE#1").count() == 2
                && pks.iter().any(|p| p == "WF#b")
        })
        .await;
    // Records before the failed one are done; the failed one comes again, and what follows it.
    assert_eq!(pks.iter().filter(|p| *p == "WF#a").count(), 1, "{pks:?}");
    let second = pks.iter().rposition(|p| p == "FAILONCE#1").unwrap();
    let last_b = pks.iter().rposition(|p| p == "WF#b").unwrap();
    assert!(second < last_b, "{pks:?}");
}

#[tokio::test]
async fn a_batch_that_keeps_failing_goes_to_the_on_failure_queue_and_the_shard_moves_on() {
    let s = stack().await;
    s.put("FAILALWAYS#1").await;
    // Once, then one retry (MaximumRetryAttempts: 1), then given up.
    s.delivered_until(|pks| pks.iter().filter(|p| *p == "FAILALWAYS#1").count() == 2)
        .await;
    let sqs = sqs_client().await;
    let url = s.resolver.queue_url("Failures").unwrap();
    let body = common::receive_one(&sqs, &url, DEADLINE, "no on-failure record")
        .await
        .unwrap();
    let record: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    let info = &record["DDBStreamBatchInfo"];
    assert_eq!(info["batchSize"], 1);
    let delivered = s.batches().into_iter().flatten().next().unwrap();
    assert_eq!(info["startSequenceNumber"], delivered.0.as_str());
    assert_eq!(info["endSequenceNumber"], delivered.0.as_str());
    assert_eq!(info["streamArn"], delivered.3.as_str());
    // The shard moved on.
    s.put("WF#after").await;
    s.delivered_until(|pks| pks.iter().any(|p| p == "WF#after"))
        .await;
    assert_eq!(
        s.batches()
            .into_iter()
            .flatten()
            .filter(|r| r.1 == "FAILALWAYS#1")
            .count(),
        2
    );
}
