//! The `ws-broadcast` handler against the emulator's table: stream records made of the items the
//! store really wrote (read back with GetItem, in the stream's DynamoDB JSON), connections and
//! subscriptions recorded as `ws-connect` records them, and a poster that records each frame and
//! answers 410 or 429 when told.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde_json::{Value, json};
use shared::app::broadcast::FanOut;
use shared::aws::dynamo::DynamoStore;
use shared::domain::realtime::Connection;
use shared::domain::run::RunStatus;
use shared::domain::{Node, NodeFields, Principal, Role, Workflow, WorkflowStatus, ids};
use shared::ports::{Connections, Runs, Workflows};
use shared::testing::realtime::RecordingPoster;
use shared::testing::runs::{active_workflow, chain};
use std::collections::HashMap;
use std::time::Duration;
use ws_broadcast::{Deps, Outcome, process};

struct Stack {
    client: aws_sdk_dynamodb::Client,
    table: String,
    deps: Deps<DynamoStore, RecordingPoster>,
    ann: Principal,
}

async fn stack() -> Stack {
    let (client, table) = localstack::testing::fresh_table("ws-broadcast").await;
    Stack {
        deps: Deps {
            connections: DynamoStore::new(client.clone(), table.clone()),
            poster: RecordingPoster::new(),
            fan_out: FanOut {
                backoff: Duration::from_millis(1),
                ..FanOut::default()
            },
        },
        client,
        table,
        ann: Principal::user("ann", Role::Editor),
    }
}

impl Stack {
    fn store(&self) -> &DynamoStore {
        &self.deps.connections
    }

    /// A connection of `user` that follows `workflows`.
    async fn connect(&self, user: &str, workflows: &[&str]) -> String {
        let id = format!("conn-{}", ids::new_id());
        let c = Connection::open(&id, &Principal::user(user, Role::Editor), Utc::now());
        self.store().add_connection(&c).await.unwrap();
        for w in workflows {
            assert!(self.store().subscribe(&c, w, 100).await.unwrap());
        }
        id
    }

    /// The stored item with these keys, as the stream shows an image (DynamoDB JSON).
    async fn image(&self, pk: &str, sk: &str) -> Value {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(pk.into()))
            .key("SK", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_else(|| panic!("no item {pk} {sk}"));
        dynamo_json(item)
    }

    /// The workflow's stored item as the stream shows it, and that image with `field` set to
    /// `value`: the old and new images of a MODIFY.
    async fn workflow_images(&self, w: &Workflow, field: &str, value: Value) -> (Value, Value) {
        let before = self.image(&format!("WF#{}", w.id), "#WORKFLOW").await;
        let mut after = before.clone();
        after[field] = value;
        (before, after)
    }

    /// Processes a batch of one MODIFY of the workflow's item: `field` set to `value`.
    async fn modify_workflow(&self, w: &Workflow, field: &str, value: Value) -> Outcome {
        let (before, after) = self.workflow_images(w, field, value).await;
        process(
            &self.deps,
            batch(vec![workflow_modify(1, w, before, after)]),
            Utc::now(),
        )
        .await
    }

    async fn workflow_with_node(&self) -> (Workflow, Node) {
        let mut w = active_workflow(&self.ann, "Live", Utc::now());
        w.node_count = 1;
        let n = Node::new(
            ids::new_id(),
            w.id.clone(),
            None,
            NodeFields::pending("Part one"),
            Utc::now(),
        );
        self.store()
            .create_workflow(&w, std::slice::from_ref(&n), None)
            .await
            .unwrap();
        (w, n)
    }
}

fn dynamo_json(item: HashMap<String, AttributeValue>) -> Value {
    serde_json::to_value(serde_dynamo::Item::from(item)).unwrap()
}

/// A stream record as Lambda delivers it.
fn record(
    seq: u64,
    name: &str,
    pk: &str,
    sk: &str,
    old: Option<Value>,
    new: Option<Value>,
) -> Value {
    let mut change = json!({
        "ApproximateCreationDateTime": 1_764_547_200.0,
        "Keys": {"PK": {"S": pk}, "SK": {"S": sk}},
        "SequenceNumber": format!("{seq:021}"),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = old {
        change["OldImage"] = old;
    }
    if let Some(new) = new {
        change["NewImage"] = new;
    }
    json!({
        "eventID": format!("e{seq}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-11-30T00:00:00.000",
    })
}

/// A MODIFY of the workflow's item from `old` to `new`, as Lambda delivers it.
fn workflow_modify(seq: u64, w: &Workflow, old: Value, new: Value) -> Value {
    record(
        seq,
        "MODIFY",
        &format!("WF#{}", w.id),
        "#WORKFLOW",
        Some(old),
        Some(new),
    )
}

fn batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            let detail = f
                .get("update_type")
                .or_else(|| f.get("event"))
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{}:{detail}", f["type"].as_str().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_workflows_changes_reach_its_subscribers_in_stream_order_and_no_one_else() {
    let s = stack().await;
    let (w, n) = s.workflow_with_node().await;
    let follower = s.connect("ann", &[&w.id]).await;
    let other = s.connect("bob", &["some-other-workflow"]).await;
    let wf_pk = format!("WF#{}", w.id);
    let (before, paused) = s
        .workflow_images(&w, "status", json!({"S": "paused"}))
        .await;
    let node_image = s.image(&wf_pk, &format!("NODE#{}", n.id)).await;

    let out = process(
        &s.deps,
        batch(vec![
            workflow_modify(1, &w, before.clone(), paused),
            record(
                2,
                "INSERT",
                &wf_pk,
                &format!("NODE#{}", n.id),
                None,
                Some(node_image.clone()),
            ),
            // A MODIFY whose images do not differ says nothing.
            workflow_modify(3, &w, before.clone(), before),
            record(
                4,
                "REMOVE",
                &wf_pk,
                &format!("NODE#{}", n.id),
                Some(node_image),
                None,
            ),
        ]),
        Utc::now(),
    )
    .await;

    let frames = s.deps.poster.frames_to(&follower);
    assert_eq!(
        kinds(&frames),
        [
            "workflow_update:status_changed",
            "node_update:created",
            "node_update:deleted"
        ]
    );
    assert_eq!(frames[0]["workflow"]["status"], "paused");
    assert_eq!(frames[1]["node"]["id"], n.id.as_str());
    assert!(frames.iter().all(|f| f["workflow_id"] == w.id.as_str()));
    assert!(s.deps.poster.frames_to(&other).is_empty());
    assert!(out.response_failures.is_empty());
    assert_eq!((out.records, out.skipped, out.delivery.sent), (4, 0, 3));
}

#[tokio::test]
async fn a_connection_that_is_gone_is_forgotten_with_its_subscriptions_and_the_others_still_served()
{
    let s = stack().await;
    let (w, _) = s.workflow_with_node().await;
    let vanished = s.connect("ann", &[&w.id]).await;
    let present = s.connect("ann", &[&w.id]).await;
    s.deps.poster.gone(&vanished);

    let out = s.modify_workflow(&w, "name", json!({"S": "Renamed"})).await;

    assert_eq!(
        kinds(&s.deps.poster.frames_to(&present)),
        ["workflow_update:updated"]
    );
    assert_eq!(out.delivery.gone, 1);
    assert!(
        s.store()
            .get_connection(&vanished, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.store().subscribers(&w.id, Utc::now()).await.unwrap(),
        std::slice::from_ref(&present)
    );
}

#[tokio::test]
async fn a_throttled_post_is_retried_until_it_is_delivered_once() {
    let s = stack().await;
    let (w, _) = s.workflow_with_node().await;
    let c = s.connect("ann", &[&w.id]).await;
    s.deps.poster.throttle(&c, 2);

    let out = s.modify_workflow(&w, "name", json!({"S": "Renamed"})).await;

    assert_eq!(s.deps.poster.frames_to(&c).len(), 1);
    assert_eq!(s.deps.poster.attempts(), 3);
    assert_eq!((out.delivery.sent, out.delivery.failed), (1, 0));
}

#[tokio::test]
async fn run_and_step_events_go_to_subscribers_and_a_finished_run_notifies_every_connection_of_its_owner()
 {
    let s = stack().await;
    let (w, _) = s.workflow_with_node().await;
    let (run, steps, nodes) = chain(&w, 1, None, 3, Utc::now());
    s.store()
        .create_run(&s.ann, &run, &steps, &nodes, 1000, None)
        .await
        .unwrap();
    let follower = s.connect("bob", &[&w.id]).await;
    let phone = s.connect("ann", &[]).await;
    let laptop = s.connect("ann", &[]).await;
    let stranger = s.connect("carl", &[]).await;
    let run_pk = format!("RUN#{}", run.id);
    let queued = s.image(&run_pk, "#RUN").await;
    let mut succeeded = queued.clone();
    succeeded["status"] = json!({"S": "succeeded"});
    succeeded["steps_succeeded"] = json!({"N": "1"});

    process(
        &s.deps,
        batch(vec![record(
            1,
            "MODIFY",
            &run_pk,
            "#RUN",
            Some(queued),
            Some(succeeded),
        )]),
        Utc::now(),
    )
    .await;

    assert_eq!(
        kinds(&s.deps.poster.frames_to(&follower)),
        ["run_update:succeeded"]
    );
    for c in [&phone, &laptop] {
        let frames = s.deps.poster.frames_to(c);
        assert_eq!(kinds(&frames), ["notification:run_succeeded"], "{c}");
        assert_eq!(frames[0]["run_id"], run.id.as_str());
        assert_eq!(frames[0]["status"], json!(RunStatus::Succeeded));
    }
    assert!(s.deps.poster.frames_to(&stranger).is_empty());
}

#[tokio::test]
async fn sharing_a_workflow_notifies_the_user_it_is_shared_with() {
    let s = stack().await;
    let (w, _) = s.workflow_with_node().await;
    let bob = s.connect("bob", &[]).await;

    let out = s
        .modify_workflow(&w, "shares", json!({"M": {"bob": {"S": "viewer"}}}))
        .await;
    assert_eq!(out.delivery.connections, 1);

    let frames = s.deps.poster.frames_to(&bob);
    assert_eq!(kinds(&frames), ["notification:workflow_shared"]);
    assert_eq!(frames[0]["access"], "viewer");
    assert_eq!(frames[0]["name"], w.name.as_str());
}

#[tokio::test]
async fn an_unreadable_record_is_skipped_and_the_rest_of_the_batch_delivered() {
    let s = stack().await;
    let (w, _) = s.workflow_with_node().await;
    let c = s.connect("ann", &[&w.id]).await;
    let (before, deleted) = s
        .workflow_images(&w, "status", json!({"S": WorkflowStatus::Deleted.as_str()}))
        .await;

    let out = process(
        &s.deps,
        batch(vec![
            json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1"}}),
            record(
                2,
                "MODIFY",
                &format!("WF#{}", w.id),
                "#WORKFLOW",
                Some(json!({"status": {"S": 1}})),
                None,
            ),
            workflow_modify(3, &w, before, deleted),
        ]),
        Utc::now(),
    )
    .await;

    assert_eq!(out.skipped, 2);
    assert!(
        out.response_failures.is_empty(),
        "a bad record never blocks the shard"
    );
    assert_eq!(
        kinds(&s.deps.poster.frames_to(&c)),
        ["workflow_update:deleted"]
    );
}

#[tokio::test]
async fn when_the_followers_cannot_be_read_the_batch_is_reported_failed_and_nothing_is_sent() {
    let s = stack().await;
    let (w, _) = s.workflow_with_node().await;
    let (before, renamed) = s.workflow_images(&w, "name", json!({"S": "Renamed"})).await;
    let broken = Deps {
        connections: DynamoStore::new(s.client.clone(), "no-such-table"),
        poster: RecordingPoster::new(),
        fan_out: FanOut::default(),
    };

    let out = process(
        &broken,
        batch(vec![
            workflow_modify(7, &w, before.clone(), renamed),
            workflow_modify(8, &w, before.clone(), before),
        ]),
        Utc::now(),
    )
    .await;

    assert_eq!(
        out.response_failures,
        [format!("{:021}", 7), format!("{:021}", 8)]
    );
    assert!(broken.poster.delivered().is_empty());
}
