//! Real-time end to end: a WebSocket client (tokio-tungstenite) connects to the local WebSocket
//! API with an access token, subscribes to a workflow, and sees what happens to it over HTTP:
//! the table's stream runs ws-broadcast through the gateway's DynamoDB event source, which posts
//! through the gateway's Management API; the worker posts the live text of the node it writes.
//! Also: no token is refused before anything is written, another user's subscribe is refused,
//! and a connection that vanished without `$disconnect` is forgotten at the next fan-out.

use e2e::{Stack, WsClient};
use localstack::template::Template;
use serde_json::{Value, json};
use shared::testing::openai_server::{FakeOpenAi, Reply};
use std::time::{Duration, Instant};

const ALICE: &str = "alice";
const BOB: &str = "bob";
/// A change reaches a subscriber through the stream poller (every 100 ms), a ws-broadcast
/// invocation and a post: well within this even for cold processes.
const DEADLINE: Duration = Duration::from_secs(30);

async fn connected(s: &Stack, user: &str) -> WsClient {
    let token = s.token(user).await;
    s.ws_connect(&format!("?token={token}"))
        .await
        .unwrap_or_else(|status| panic!("{user}'s connection refused with {status}"))
}

fn id_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

fn is(kind: &'static str, detail: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| {
        m["type"] == kind
            && (detail.is_empty() || m["update_type"] == detail || m["event"] == detail)
    }
}

#[tokio::test]
async fn a_subscriber_sees_changes_and_a_chain_being_written_live() {
    // The model writes its answer in 8 pieces over about 1.6 s: several live-text batches.
    let model = FakeOpenAi::start().await;
    let text = "The first part of the chain, written while you watch it arrive.";
    model.push(Reply::slow(text, 8, Duration::from_millis(200)));
    let url = model.url();
    let s = Stack::start_with(
        Template::load_default().expect("the template loads"),
        &[
            ("DefaultModel", "openai:fake"),
            ("GeneratorUrl", url.as_str()),
        ],
    )
    .await;
    let w = s.active_workflow(ALICE, "Live", json!({})).await;
    let workflow_id = id_of(&w).to_string();
    let mut c = connected(&s, ALICE).await;
    let subscribed = c
        .command(
            json!({"action": "subscribe_workflow", "workflow_id": workflow_id}),
            "subscribed",
        )
        .await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    let pong = c.command(json!({"action": "ping"}), "pong").await;
    assert_eq!(pong["type"], "pong");

    // The workflow changed over HTTP reaches the subscriber.
    let changed_at = Instant::now();
    patch(&s, &w, json!({"description": "Watched live"})).await;
    let update = c
        .until(
            "workflow_update",
            DEADLINE,
            is("workflow_update", "updated"),
        )
        .await;
    let latency = changed_at.elapsed();
    assert_eq!(update["workflow_id"], workflow_id.as_str());
    eprintln!(
        "stream-to-client latency (HTTP answer to WebSocket message): {} ms",
        latency.as_millis()
    );

    // A node added over HTTP.
    let node = s
        .post(
            &format!("{w}/nodes"),
            ALICE,
            json!({"title": "Opening", "content": "Once upon a time."}),
        )
        .await;
    assert_eq!(node.status, 201, "{}", node.text);
    let created = c
        .until("node_update", DEADLINE, is("node_update", "created"))
        .await;
    assert_eq!(created["node"]["id"], node.body["id"]);
    assert_eq!(created["node"]["content"], "Once upon a time.");

    // A run: its events and the live text, in order, then the owner's notification.
    let started = s
        .post(
            &format!("{w}/runs"),
            ALICE,
            json!({"plan": {"mode": "continue", "steps": 1}}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let run_id = started.body["id"].as_str().expect("a run id").to_string();
    let from = c.received.len();
    c.until("run_succeeded", DEADLINE, is("run_update", "succeeded"))
        .await;
    c.until(
        "notification",
        DEADLINE,
        is("notification", "run_succeeded"),
    )
    .await;
    let seen: Vec<&Value> = c.received[from..]
        .iter()
        .filter(|m| m["run_id"] == run_id.as_str())
        .collect();
    let first = |p: &dyn Fn(&Value) -> bool| seen.iter().position(|m| p(m));
    let run_started = first(&is("run_update", "started")).expect("run_update started");
    let step_started = first(&is("step_update", "started")).expect("step_update started");
    let first_delta = first(&is("node_delta", "")).expect("node_delta");
    let step_done = first(&is("step_update", "succeeded")).expect("step_update succeeded");
    let run_done = first(&is("run_update", "succeeded")).expect("run_update succeeded");
    assert!(
        run_started < step_started
            && step_started < first_delta
            && first_delta < step_done
            && step_done < run_done,
        "in order: {seen:#?}"
    );
    let deltas: Vec<&&Value> = seen.iter().filter(|m| m["type"] == "node_delta").collect();
    assert!(deltas.len() >= 2, "several live batches: {deltas:#?}");
    let live: String = deltas
        .iter()
        .map(|d| d["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(live, text, "the live text adds up to the document");
    c.close().await;
}

#[tokio::test]
async fn refusals_no_token_is_401_and_another_users_workflow_is_not_found() {
    let s = Stack::start().await;
    assert_eq!(s.ws_connect("").await.err(), Some(401));
    assert_eq!(s.ws_connect("?token=not-a-token").await.err(), Some(401));
    let w = s.active_workflow(ALICE, "Private", json!({})).await;
    let mut bob = connected(&s, BOB).await;
    let refused = bob
        .command(
            json!({"action": "subscribe_workflow", "workflow_id": id_of(&w)}),
            "subscribed",
        )
        .await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{refused}"
    );
    let stats = bob.command(json!({"action": "get_stats"}), "stats").await;
    assert_eq!(
        (
            stats["connections"].as_u64(),
            stats["subscriptions"].as_u64()
        ),
        (Some(1), Some(0))
    );
    // Malformed messages are answered, and the connection stays open.
    let bad = bob.command(json!({"action": "fly"}), "error").await;
    assert_eq!(bad["code"], "unknown_action");
    let pong = bob.command(json!({"action": "ping"}), "pong").await;
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn a_connection_that_vanished_without_disconnect_is_forgotten_at_the_next_fan_out() {
    let s = Stack::start().await;
    let w = s.active_workflow(ALICE, "Followed", json!({})).await;
    let workflow_id = id_of(&w).to_string();
    // A live subscriber, and one whose client vanished without API Gateway calling $disconnect:
    // its items are in the table, but API Gateway no longer has the connection.
    let mut live = connected(&s, ALICE).await;
    live.command(
        json!({"action": "subscribe_workflow", "workflow_id": workflow_id}),
        "subscribed",
    )
    .await;
    let table = format!("WorkflowTable{}", s.suffix);
    let client = localstack::testing::emulator_client().await;
    let ghost = "GhostConnId=";
    let expires = (chrono::Utc::now() + chrono::Duration::hours(2)).timestamp();
    put(
        &client,
        &table,
        json!({
            "PK": format!("CONN#{ghost}"), "SK": "#CONN", "type": "connection", "id": ghost,
            "user_id": "someone", "role": "viewer", "scopes": [], "subscriptions": 1,
            "connected_at": chrono::Utc::now().to_rfc3339(), "expires_at": expires,
            "GSI1PK": "USERCONNS#someone", "GSI1SK": format!("CONN#{ghost}"),
        }),
    )
    .await;
    put(
        &client,
        &table,
        json!({
            "PK": format!("SUBS#{workflow_id}"), "SK": format!("CONN#{ghost}"),
            "type": "subscription", "connection_id": ghost, "workflow_id": workflow_id,
            "user_id": "someone", "expires_at": expires,
            "GSI1PK": format!("CONNSUBS#{ghost}"), "GSI1SK": format!("SUB#{workflow_id}"),
        }),
    )
    .await;

    patch(&s, &w, json!({"name": "Renamed"})).await;
    live.until(
        "workflow_update",
        DEADLINE,
        is("workflow_update", "updated"),
    )
    .await;
    // The fan-out that served the live connection found the ghost gone (410) and forgot it.
    let start = Instant::now();
    loop {
        let left = count(&client, &table, &format!("CONN#{ghost}")).await
            + count(&client, &table, &format!("SUBS#{workflow_id}")).await;
        // What is left is the live connection's subscription.
        if left == 1 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the ghost's items are still there ({left} items)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Changes Alice's workflow `w` with `body` at the version she reads first.
async fn patch(s: &Stack, w: &str, mut body: Value) {
    let current = s.get(w, ALICE).await;
    assert_eq!(current.status, 200, "{}", current.text);
    body["expected_version"] = current.body["version"].clone();
    let patched = s.send("PATCH", w, Some(ALICE), Some(body), &[]).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
}

/// Puts an item given as plain JSON (strings, numbers, lists of strings).
async fn put(client: &aws_sdk_dynamodb::Client, table: &str, item: Value) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let value = |v: &Value| match v {
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Array(a) if a.is_empty() => AttributeValue::L(vec![]),
        Value::Array(a) => AttributeValue::Ss(
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect(),
        ),
        other => AttributeValue::S(other.as_str().unwrap_or_default().to_string()),
    };
    let item = item
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), value(v)))
        .collect();
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("the item is put");
}

/// The items of partition `pk`.
async fn count(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> i32 {
    use aws_sdk_dynamodb::types::AttributeValue;
    client
        .query()
        .table_name(table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("the query answers")
        .count
}
