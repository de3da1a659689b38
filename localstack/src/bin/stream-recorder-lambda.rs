//! A test function for the gateway's DynamoDB stream event source (localstack/tests/streams.rs):
//! logs each batch as `batch [[SequenceNumber, PK, eventName, eventSourceARN], ...]`, and
//! reports in `batchItemFailures` the records whose PK starts with `FAILONCE` (the first time
//! this instance sees them) or `FAILALWAYS`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Mutex;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let failed_once = Mutex::new(HashSet::new());
    let failed_once = &failed_once;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(handle(&event.payload, failed_once))
    }))
    .await
}

fn handle(event: &Value, failed_once: &Mutex<HashSet<String>>) -> Value {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    let seen: Vec<Value> = records
        .iter()
        .map(|r| {
            json!([
                r["dynamodb"]["SequenceNumber"],
                r["dynamodb"]["Keys"]["PK"]["S"],
                r["eventName"],
                r["eventSourceARN"]
            ])
        })
        .collect();
    println!("batch {}", Value::Array(seen));
    let mut failures = Vec::new();
    for r in &records {
        let pk = r["dynamodb"]["Keys"]["PK"]["S"]
            .as_str()
            .unwrap_or_default();
        let seq = r["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default();
        let fail = pk.starts_with("FAILALWAYS")
            || (pk.starts_with("FAILONCE")
                && failed_once
                    .lock()
                    .map(|mut s| s.insert(seq.to_string()))
                    .unwrap_or(false));
        if fail {
            failures.push(json!({"itemIdentifier": seq}));
        }
    }
    json!({"batchItemFailures": failures})
}
