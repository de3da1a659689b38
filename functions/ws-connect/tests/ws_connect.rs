//! The `ws-connect` handler against the emulator's table, with API Gateway WebSocket events as
//! API Gateway sends them: `$connect` authenticates before anything is written, `$default`
//! answers every message on the connection, `$disconnect` forgets the connection.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::{Value, json};
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::domain::{Principal, Role, ids};
use shared::http::{Authenticator, KeyRing};
use shared::ports::{Connections, Workflows};
use shared::testing::TestKeys;
use shared::testing::accounts::seed_signed_in;
use shared::testing::runs::active_workflow;
use std::sync::Arc;
use ws_connect::{Deps, handle};

struct Stack {
    deps: Deps<DynamoStore>,
    keys: TestKeys,
}

async fn stack() -> Stack {
    let (client, table) = localstack::testing::fresh_table("ws-connect").await;
    let accounts = Arc::new(DynamoAccounts::new(client.clone(), table.clone()));
    let keys = TestKeys::generate("k1");
    for (user, role) in [("ann", Role::Editor), ("bob", Role::Editor)] {
        seed_signed_in(accounts.as_ref(), user, role).await;
    }
    Stack {
        deps: Deps {
            store: DynamoStore::new(client, table),
            auth: Authenticator {
                keys: KeyRing::fixed(keys.verifier()),
                accounts,
            },
        },
        keys,
    }
}

/// An API Gateway WebSocket event of `route` on connection `id`.
fn event(route: &str, id: &str, extra: Value) -> ApiGatewayWebsocketProxyRequest {
    let mut e = json!({
        "requestContext": {
            "routeKey": route,
            "eventType": match route { "$connect" => "CONNECT", "$disconnect" => "DISCONNECT", _ => "MESSAGE" },
            "connectionId": id,
            "connectedAt": 0,
            "requestTimeEpoch": 0,
            "apiId": "local",
            "stage": "ws",
        },
        "isBase64Encoded": false,
    });
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(extra.clone());
    }
    serde_json::from_value(e).unwrap()
}

fn body(r: &ApiGatewayProxyResponse) -> Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("no text body: {other:?}"),
    }
}

impl Stack {
    async fn send(&self, e: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        handle(&self.deps, e, chrono::Utc::now()).await
    }

    async fn message(&self, id: &str, message: Value) -> Value {
        let r = self
            .send(event("$default", id, json!({"body": message.to_string()})))
            .await;
        assert_eq!(r.status_code, 200);
        body(&r)
    }

    async fn is_open(&self, id: &str) -> bool {
        self.deps
            .store
            .get_connection(id, chrono::Utc::now())
            .await
            .unwrap()
            .is_some()
    }
}

#[tokio::test]
async fn connect_refuses_a_missing_or_bad_credential_before_writing_anything() {
    let s = stack().await;
    let id = format!("c-{}", ids::new_id());
    let refused = [
        json!({}),
        json!({"queryStringParameters": {"token": ""}}),
        json!({"queryStringParameters": {"token": "not-a-token"}}),
        json!({"queryStringParameters": {"token": TestKeys::generate("other").token("ann")}}),
        json!({"headers": {"Sec-WebSocket-Protocol": "chat, v2"}}),
        json!({"queryStringParameters": {"token": "dwc_ann.key.secret"}}),
    ];
    for extra in refused {
        let r = s.send(event("$connect", &id, extra.clone())).await;
        assert_eq!(r.status_code, 401, "{extra}: {:?}", r.body);
        assert!(!s.is_open(&id).await, "{extra}");
    }
}

#[tokio::test]
async fn a_connection_opened_with_a_token_answers_every_command_on_itself() {
    let s = stack().await;
    let now = chrono::Utc::now();
    let mine = active_workflow(&Principal::user("ann", Role::Editor), "Mine", now);
    let theirs = active_workflow(&Principal::user("bob", Role::Editor), "Theirs", now);
    for w in [&mine, &theirs] {
        s.deps.store.create_workflow(w, &[], None).await.unwrap();
    }
    let id = format!("c-{}", ids::new_id());
    let r = s
        .send(event(
            "$connect",
            &id,
            json!({"queryStringParameters": {"token": s.keys.token("ann")}}),
        ))
        .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    assert!(r.headers.get("sec-websocket-protocol").is_none());
    assert!(s.is_open(&id).await);

    assert_eq!(
        s.message(
            &id,
            json!({"action": "subscribe_workflow", "workflow_id": mine.id})
        )
        .await,
        json!({"type": "subscribed", "workflow_id": mine.id})
    );
    assert_eq!(
        s.deps
            .store
            .subscribers(&mine.id, chrono::Utc::now())
            .await
            .unwrap(),
        std::slice::from_ref(&id)
    );
    let refused = s
        .message(
            &id,
            json!({"action": "subscribe_workflow", "workflow_id": theirs.id}),
        )
        .await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    assert_eq!(
        s.message(&id, json!({"action": "ping"})).await["type"],
        "pong"
    );
    assert_eq!(
        s.message(&id, json!({"action": "get_stats"})).await,
        json!({"type": "stats", "connections": 1, "subscriptions": 1})
    );
    for bad in [
        json!("hello"),
        json!({"action": "dance"}),
        json!({"no": "action"}),
    ] {
        let reply = s.message(&id, bad.clone()).await;
        assert_eq!(reply["type"], "error", "{bad}: {reply}");
    }
    // A message with no body at all is answered too.
    let r = s.send(event("$default", &id, json!({}))).await;
    assert_eq!(
        (r.status_code, body(&r)["code"].clone()),
        (200, json!("bad_request"))
    );

    let r = s.send(event("$disconnect", &id, json!({}))).await;
    assert_eq!(r.status_code, 200);
    assert!(!s.is_open(&id).await);
    assert!(
        s.deps
            .store
            .subscribers(&mine.id, chrono::Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.message(&id, json!({"action": "ping"})).await["code"],
        "unauthorized"
    );
}

#[tokio::test]
async fn a_browser_gives_its_token_as_a_subprotocol_and_gets_it_echoed() {
    let s = stack().await;
    let id = format!("c-{}", ids::new_id());
    let token = s.keys.token("bob");
    let r = s
        .send(event(
            "$connect",
            &id,
            json!({"headers": {"Sec-WebSocket-Protocol": format!("json, {token}")}}),
        ))
        .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    assert_eq!(
        r.headers
            .get("sec-websocket-protocol")
            .unwrap()
            .to_str()
            .unwrap(),
        token
    );
    let stored = s
        .deps
        .store
        .get_connection(&id, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.user_id, "bob");
}
