//! A test function for the gateway's WebSocket API (localstack/tests/websocket.rs), as small as
//! `hello-lambda`:
//!
//! - `$connect`: 401 without a `token` query parameter; else 200, echoing the first offered
//!   `Sec-WebSocket-Protocol` entry;
//! - `$disconnect`: logs `disconnected <id> <code> <reason>`;
//! - a message: answers `{"routeKey", "body", "connectionId"}` as the body; a body of `fail`
//!   fails the invocation.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        handle(&event.payload)
    }))
    .await
}

fn handle(event: &Value) -> Result<Value, Error> {
    let context = &event["requestContext"];
    let id = context["connectionId"].as_str().unwrap_or_default();
    let route = context["routeKey"].as_str().unwrap_or_default();
    println!("{route} {id} {}", context["eventType"]);
    match route {
        "$connect" => {
            if event["queryStringParameters"]["token"].as_str().is_none() {
                return Ok(json!({"statusCode": 401, "body": "{\"message\":\"no token\"}"}));
            }
            let mut headers = serde_json::Map::new();
            if let Some(offered) = event["headers"]["Sec-WebSocket-Protocol"].as_str()
                && let Some(first) = offered.split(',').next()
            {
                headers.insert("Sec-WebSocket-Protocol".into(), json!(first.trim()));
            }
            Ok(json!({"statusCode": 200, "headers": headers}))
        }
        "$disconnect" => {
            println!(
                "disconnected {id} {} {}",
                context["disconnectStatusCode"], context["disconnectReason"]
            );
            Ok(json!({"statusCode": 200}))
        }
        _ => {
            let body = event["body"].as_str().unwrap_or_default();
            if body == "fail" {
                return Err("asked to fail".into());
            }
            let answer = json!({"routeKey": route, "body": body, "connectionId": id});
            Ok(json!({"statusCode": 200, "body": answer.to_string()}))
        }
    }
}
