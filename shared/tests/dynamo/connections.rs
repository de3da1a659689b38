//! connections: WebSocket connections and their subscriptions, with the use cases of
//! `ws-connect` (`shared::app::realtime`) over the table: commands answered on the connection,
//! a workflow's followers in one Query, everything of a connection removed at disconnect.

use crate::support::*;
use chrono::Duration;
use serde_json::json;
use shared::app::realtime::{command, connect, disconnect};
use shared::domain::principal::Scope;
use shared::domain::realtime::{Connection, Reply};
use shared::domain::{Principal, Role, ids};
use shared::ports::Connections;

fn subscribe(id: &str) -> String {
    json!({"action": "subscribe_workflow", "workflow_id": id}).to_string()
}

fn code(reply: Reply) -> String {
    match reply {
        Reply::Error { code, .. } => code,
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test]
async fn a_connection_follows_the_workflows_its_user_may_read_until_it_closes() {
    let e = env().await;
    let mine = workflow("ann", "Mine");
    let theirs = workflow("bob", "Theirs");
    e.create(&mine, &[]).await;
    e.create(&theirs, &[]).await;
    let conn = format!("c-{}", ids::new_id());
    let t = now();
    connect(&e.store, &ed("ann"), &conn, t).await.unwrap();

    assert!(matches!(
        command(&e.store, &conn, r#"{"action":"ping"}"#, t).await,
        Reply::Pong { .. }
    ));
    assert_eq!(
        command(&e.store, &conn, &subscribe(&mine.id), t).await,
        Reply::Subscribed {
            workflow_id: mine.id.clone()
        }
    );
    // A repeat changes nothing.
    assert_eq!(
        command(&e.store, &conn, &subscribe(&mine.id), t).await,
        Reply::Subscribed {
            workflow_id: mine.id.clone()
        }
    );
    assert_eq!(
        e.store.subscribers(&mine.id, t).await.unwrap(),
        std::slice::from_ref(&conn)
    );
    assert_eq!(
        command(&e.store, &conn, r#"{"action":"get_stats"}"#, t).await,
        Reply::Stats {
            connections: 1,
            subscriptions: 1
        }
    );

    // Someone else's workflow, a missing one, and bad messages: an error reply each, and
    // nothing written.
    assert_eq!(
        code(command(&e.store, &conn, &subscribe(&theirs.id), t).await),
        "not_found"
    );
    assert_eq!(
        code(command(&e.store, &conn, &subscribe(&ids::new_id()), t).await),
        "not_found"
    );
    assert!(e.store.subscribers(&theirs.id, t).await.unwrap().is_empty());
    assert_eq!(
        code(command(&e.store, &conn, r#"{"action":"shout"}"#, t).await),
        "unknown_action"
    );
    assert_eq!(
        code(command(&e.store, &conn, "not json", t).await),
        "bad_request"
    );
    assert_eq!(
        command(&e.store, &conn, r#"{"action":"get_stats"}"#, t).await,
        Reply::Stats {
            connections: 1,
            subscriptions: 1
        }
    );

    // Unsubscribing, twice: the same answer, and the follower is gone.
    let unsubscribe = json!({"action": "unsubscribe_workflow", "workflow_id": mine.id}).to_string();
    for _ in 0..2 {
        assert_eq!(
            command(&e.store, &conn, &unsubscribe, t).await,
            Reply::Unsubscribed {
                workflow_id: mine.id.clone()
            }
        );
    }
    assert!(e.store.subscribers(&mine.id, t).await.unwrap().is_empty());

    // A second connection of the same user counts; closing one removes it with its
    // subscriptions, and a command on it is refused.
    let other = format!("c-{}", ids::new_id());
    connect(&e.store, &ed("ann"), &other, t).await.unwrap();
    command(&e.store, &other, &subscribe(&mine.id), t).await;
    assert_eq!(
        command(&e.store, &conn, r#"{"action":"get_stats"}"#, t).await,
        Reply::Stats {
            connections: 2,
            subscriptions: 0
        }
    );
    disconnect(&e.store, &other).await.unwrap();
    disconnect(&e.store, &other).await.unwrap();
    assert!(e.store.get_connection(&other, t).await.unwrap().is_none());
    assert!(e.store.subscribers(&mine.id, t).await.unwrap().is_empty());
    assert_eq!(
        code(command(&e.store, &other, r#"{"action":"ping"}"#, t).await),
        "unauthorized"
    );
}

#[tokio::test]
async fn a_connection_follows_at_most_its_limit_and_expires_after_two_hours() {
    let e = env().await;
    let t = now();
    let c = Connection::open(&format!("c-{}", ids::new_id()), &ed("ann"), t);
    e.store.add_connection(&c).await.unwrap();
    let (a, b, z) = (ids::new_id(), ids::new_id(), ids::new_id());
    assert!(e.store.subscribe(&c, &a, 2).await.unwrap());
    assert!(e.store.subscribe(&c, &b, 2).await.unwrap());
    assert!(
        !e.store.subscribe(&c, &z, 2).await.unwrap(),
        "over the limit"
    );
    assert!(e.store.subscribe(&c, &a, 2).await.unwrap(), "held already");
    assert!(e.store.subscribers(&z, t).await.unwrap().is_empty());
    assert_eq!(
        e.store.connection_stats("ann", &c.id, t).await.unwrap(),
        (1, 2)
    );
    assert!(e.store.unsubscribe(&c.id, &a).await.unwrap());
    assert!(!e.store.unsubscribe(&c.id, &a).await.unwrap());
    assert!(e.store.subscribe(&c, &z, 2).await.unwrap(), "room again");

    // Past API Gateway's two hours the connection and its subscriptions no longer count,
    // whether or not the table's TTL has removed them yet.
    let later = t + Duration::hours(2) + Duration::seconds(1);
    assert!(
        e.store
            .get_connection(&c.id, later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(e.store.subscribers(&b, later).await.unwrap().is_empty());
    assert_eq!(
        e.store
            .connection_stats("ann", &c.id, later)
            .await
            .unwrap()
            .0,
        0
    );
    // A subscription of a connection that is gone is still removed by itself.
    e.store.remove_connection(&c.id).await.unwrap();
    assert!(e.store.subscribers(&b, t).await.unwrap().is_empty());
    assert!(
        !e.store.subscribe(&c, &a, 2).await.unwrap(),
        "connection gone"
    );
}

#[tokio::test]
async fn an_api_key_without_read_scope_opens_no_connection() {
    let e = env().await;
    let t = now();
    let mut key = Principal::user("ann", Role::Editor);
    key.scopes = Some(vec![Scope::WorkflowsWrite]);
    let id = format!("c-{}", ids::new_id());
    assert!(connect(&e.store, &key, &id, t).await.is_err());
    assert!(e.store.get_connection(&id, t).await.unwrap().is_none());
    key.scopes = Some(vec![Scope::WorkflowsRead]);
    let c = connect(&e.store, &key, &id, t).await.unwrap();
    assert_eq!(e.store.get_connection(&id, t).await.unwrap(), Some(c));
}
