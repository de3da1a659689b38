//! share / unshare a workflow: TransactWriteItems, an Update of `shares.<user>` on the workflow
//! (owner or admin, not deleted) with a Put or Delete of the share entry that lists it for the
//! user.

use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::domain::{Principal, Role, ShareAccess};
use shared::ports::{Shares, StoreError};

#[tokio::test]
async fn a_share_sets_the_map_and_lists_the_workflow_for_its_user() {
    let e = env().await;
    let w = workflow("ann", "Shared");
    e.create(&w, &[]).await;

    let got = e
        .store
        .put_share(&ed("ann"), &w, "bob", ShareAccess::Viewer)
        .await
        .unwrap();

    assert_eq!(got.shares.get("bob"), Some(&ShareAccess::Viewer));
    assert_eq!(e.get(&w.id).await.unwrap().shares, got.shares);
    assert_eq!(e.listed("bob").await, std::slice::from_ref(&w.id));

    e.store
        .delete_share(&ed("ann"), &w.id, "bob")
        .await
        .unwrap();
    assert!(e.get(&w.id).await.unwrap().shares.is_empty());
    assert!(e.listed("bob").await.is_empty());
}

/// Items written before sharing existed have no `shares` attribute: sharing one adds the map
/// first, then the share, and answers as for any other workflow.
#[tokio::test]
async fn a_workflow_stored_without_a_shares_map_can_be_shared() {
    let e = env().await;
    let w = workflow("ann", "Old");
    e.create(&w, &[]).await;
    e.client
        .update_item()
        .table_name(&e.table)
        .key("PK", s(&format!("WF#{}", w.id)))
        .key("SK", s("#WORKFLOW"))
        .update_expression("REMOVE shares")
        .send()
        .await
        .unwrap();
    assert!(!e.raw_workflow(&w.id).await.contains_key("shares"));

    let got = e
        .store
        .put_share(&ed("ann"), &w, "bob", ShareAccess::Editor)
        .await
        .unwrap();

    assert_eq!(got.shares.get("bob"), Some(&ShareAccess::Editor));
    assert_eq!(
        e.raw_workflow(&w.id).await["shares"],
        AttributeValue::M([("bob".to_string(), s("editor"))].into())
    );
    assert_eq!(e.listed("bob").await, std::slice::from_ref(&w.id));
}

#[tokio::test]
async fn only_the_owner_or_an_admin_shares_and_a_refusal_changes_nothing() {
    let e = env().await;
    let w = workflow("ann", "Mine");
    e.create(&w, &[]).await;

    let refused = e
        .store
        .put_share(&ed("eve"), &w, "eve", ShareAccess::Editor)
        .await;
    assert_eq!(workflow_rejected(refused), Some(w.clone()));
    assert!(e.listed("eve").await.is_empty());
    assert_eq!(e.get(&w.id).await, Some(w.clone()));

    let admin = Principal::user("root", Role::Admin);
    e.store
        .put_share(&admin, &w, "eve", ShareAccess::Viewer)
        .await
        .unwrap();
    assert_eq!(e.listed("eve").await, std::slice::from_ref(&w.id));
}

#[tokio::test]
async fn unsharing_a_share_that_does_not_exist_is_rejected() {
    let e = env().await;
    let w = workflow("ann", "Alone");
    e.create(&w, &[]).await;

    let result = e.store.delete_share(&ed("ann"), &w.id, "bob").await;

    assert!(matches!(result, Err(StoreError::WorkflowRejected(Some(_)))));
}
