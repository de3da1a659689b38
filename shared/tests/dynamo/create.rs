//! create a workflow with nodes: TransactWriteItems, each item `attribute_not_exists(PK)`, the
//! idempotency record in the same transaction; more than one transaction holds in chunks,
//! revealed only when complete.

use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::domain::{Settings, WorkflowStatus};
use shared::ports::{Idempotency, Nodes, StoreError, WorkflowFilter, Workflows};
use std::sync::atomic::{AtomicBool, Ordering};

#[tokio::test]
async fn create_workflow_stores_the_workflow_and_its_nodes_in_one_partition() {
    let e = env().await;
    let mut w = workflow("ann", "Quarterly Report");
    w.description = String::new();
    w.tags = vec!["finance".into(), "q3".into()];
    w.settings = Settings::with_defaults(object(json!({
        "model": "gpt-test",
        "timeout_s": 60,
        "free": {"deep": [1, 2.5, null, "x"], "flag": true},
    })));
    let nodes = tree(&mut w, &[None, Some(0), Some(1), Some(0)]);

    e.store.create_workflow(&w, &nodes, None).await.unwrap();

    assert_eq!(e.get(&w.id).await, Some(w.clone()));
    let (got, got_nodes) = e.store.get_tree(&w.id).await.unwrap().unwrap();
    assert_eq!(got, w);
    assert_eq!(got_nodes, nodes);
    assert_eq!(got_nodes[0].child_count, 2);
    assert_eq!(e.partition(&w.id).await.len(), 1 + nodes.len());
    let item = e.raw_workflow(&w.id).await;
    assert_eq!(item["GSI1PK"], s("OWNER#ann"));
    assert_eq!(item["search_text"], stored_search_text("Quarterly Report"));
    assert!(!item.contains_key("import_pending") && !item.contains_key("expires_at"));
    assert_eq!(e.listed("ann").await, [w.id.clone()]);
}

#[tokio::test]
async fn create_workflow_without_nodes_stores_the_workflow() {
    let e = env().await;
    let w = workflow("ann", "Empty");
    e.store.create_workflow(&w, &[], None).await.unwrap();
    assert_eq!(
        e.store.get_tree(&w.id).await.unwrap(),
        Some((w.clone(), vec![]))
    );
    assert_eq!(e.listed("ann").await, [w.id]);
}

#[tokio::test]
async fn create_workflow_stores_its_idempotency_record() {
    let e = env().await;
    let mut w = workflow("ann", "Idempotent");
    let nodes = tree(&mut w, &[None]);
    let r = record("ann", "key-1", "hash-1", &json!({"id": w.id}).to_string());

    e.store.create_workflow(&w, &nodes, Some(&r)).await.unwrap();

    assert_eq!(e.get(&w.id).await, Some(w));
    assert_eq!(
        e.store
            .get_idempotency("ann", "key-1", now())
            .await
            .unwrap(),
        Some(r.clone())
    );
    let item = e.raw("IDEM#ann#key-1", "#IDEMPOTENCY").await.unwrap();
    // The table's TTL attribute, in epoch seconds, removes the record when it expires.
    assert_eq!(
        item["expires_at"],
        AttributeValue::N(r.expires_at.timestamp().to_string())
    );
}

#[tokio::test]
async fn create_workflow_with_a_used_idempotency_key_returns_the_first_record_and_writes_nothing() {
    let e = env().await;
    let mut first = workflow("ann", "First");
    let first_nodes = tree(&mut first, &[None]);
    let first_record = record("ann", "key-1", "hash-1", "first response");
    e.store
        .create_workflow(&first, &first_nodes, Some(&first_record))
        .await
        .unwrap();

    let mut second = workflow("ann", "Second");
    let second_nodes = tree(&mut second, &[None, Some(0)]);
    let second_record = record("ann", "key-1", "hash-2", "second response");
    match e
        .store
        .create_workflow(&second, &second_nodes, Some(&second_record))
        .await
    {
        Err(StoreError::IdempotencyKeyUsed(used)) => assert_eq!(*used, first_record),
        other => panic!("expected IdempotencyKeyUsed, got {other:?}"),
    }

    assert_eq!(e.get(&second.id).await, None);
    assert!(
        e.partition(&second.id).await.is_empty(),
        "nothing of it is written"
    );
    assert_eq!(e.listed("ann").await, [first.id.clone()]);
    assert_eq!(
        e.store
            .get_idempotency("ann", "key-1", now())
            .await
            .unwrap(),
        Some(first_record)
    );

    // Keys belong to their owner: another owner may use the same key.
    let mut other = workflow("bob", "Other owner");
    let other_record = record("bob", "key-1", "hash-1", "bob's response");
    other.node_count = 0;
    e.store
        .create_workflow(&other, &[], Some(&other_record))
        .await
        .unwrap();
    assert_eq!(e.get(&other.id).await, Some(other));
}

#[tokio::test]
async fn create_workflow_with_an_existing_id_is_rejected_with_the_stored_workflow() {
    let e = env().await;
    let mut w = workflow("ann", "Original");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;

    let mut again = w.clone();
    again.name = "Imposter".into();
    let current = workflow_rejected(e.store.create_workflow(&again, &[], None).await);
    assert_eq!(current, Some(w.clone()));
    assert_eq!(e.get(&w.id).await, Some(w));
}

#[tokio::test]
async fn create_workflow_with_99_nodes_fills_one_transaction() {
    let e = env().await;
    let mut w = workflow("ann", "Ninety-nine");
    let parents: Vec<Option<usize>> = (0..99).map(|i| (i > 0).then_some(0)).collect();
    let nodes = tree(&mut w, &parents);
    e.create(&w, &nodes).await;
    assert_eq!(
        e.store.get_tree(&w.id).await.unwrap(),
        Some((w.clone(), nodes))
    );
    assert_eq!(e.listed("ann").await, [w.id]);
}

/// A binary tree of `n` nodes, parents first.
fn binary_tree(n: usize) -> Vec<Option<usize>> {
    (0..n).map(|i| i.checked_sub(1).map(|p| p / 2)).collect()
}

#[tokio::test]
async fn create_workflow_with_more_than_99_nodes_is_revealed_only_when_complete() {
    let e = env().await;
    let mut w = workflow("ann", "Big import");
    let nodes = tree(&mut w, &binary_tree(250));
    let r = record("ann", "import-1", "hash", "created");

    // While the chunks are written, every read sees either no workflow or the whole of it.
    let done = AtomicBool::new(false);
    let create = async {
        let result = e.store.create_workflow(&w, &nodes, Some(&r)).await;
        done.store(true, Ordering::SeqCst);
        result
    };
    let observe = async {
        while !done.load(Ordering::SeqCst) {
            let seen = e.store.get_workflow(&w.id).await.unwrap();
            let listed = e
                .store
                .list_workflows("ann", &WorkflowFilter::default(), 10, None)
                .await
                .unwrap();
            let tree = e.store.get_tree(&w.id).await.unwrap();
            if let Some(seen) = seen {
                assert_eq!(seen, w, "a revealed workflow is the whole workflow");
                assert!(tree.is_some(), "revealed workflows stay revealed");
            }
            if let Some(listed) = listed.items.first() {
                assert_eq!(listed, &w);
                assert!(tree.is_some(), "revealed workflows stay revealed");
            }
            if let Some((_, tree_nodes)) = tree {
                assert_eq!(tree_nodes.len(), nodes.len(), "a visible tree is complete");
            }
        }
    };
    let (result, ()) = tokio::join!(create, observe);
    result.unwrap();

    assert_eq!(e.get(&w.id).await, Some(w.clone()));
    assert_eq!(
        e.store
            .get_workflows(std::slice::from_ref(&w.id))
            .await
            .unwrap(),
        [w.clone()]
    );
    assert_eq!(
        e.store.get_tree(&w.id).await.unwrap(),
        Some((w.clone(), nodes))
    );
    assert_eq!(e.listed("ann").await, [w.id.clone()]);
    assert_eq!(
        e.store
            .get_idempotency("ann", "import-1", now())
            .await
            .unwrap(),
        Some(r)
    );
    let item = e.raw_workflow(&w.id).await;
    assert!(!item.contains_key("import_pending"), "{item:?}");
    assert!(
        !item.contains_key("expires_at"),
        "a finished import must not expire"
    );
    assert_eq!(item["GSI1PK"], s("OWNER#ann"));
}

#[tokio::test]
async fn create_workflow_in_chunks_that_fails_midway_stays_invisible() {
    let e = env().await;
    let mut w = workflow("ann", "Broken import");
    let mut nodes = tree(&mut w, &binary_tree(250));
    // The second chunk repeats a node of the first: its put finds the node there.
    nodes[180] = nodes[10].clone();
    let r = record("ann", "import-1", "hash", "created");

    let existing = node_rejected(e.store.create_workflow(&w, &nodes, Some(&r)).await);
    assert_eq!(existing, Some(nodes[10].clone()));

    assert_eq!(e.get(&w.id).await, None);
    assert_eq!(
        e.store
            .get_workflows(std::slice::from_ref(&w.id))
            .await
            .unwrap(),
        []
    );
    assert_eq!(e.store.get_tree(&w.id).await.unwrap(), None);
    assert!(e.listed("ann").await.is_empty());
    let (workflow, _) = e.store.get_node(&w.id, &nodes[0].id).await.unwrap();
    assert_eq!(workflow, None);
    let (workflow, _) = e.store.list_nodes(&w.id, 10, None).await.unwrap();
    assert_eq!(workflow, None);
    assert_eq!(
        e.store
            .get_idempotency("ann", "import-1", now())
            .await
            .unwrap(),
        None,
        "the key stays free for a retry"
    );
    // The hidden workflow expires through the table's TTL.
    let item = e.raw_workflow(&w.id).await;
    assert_eq!(item["import_pending"], AttributeValue::Bool(true));
    assert_eq!(
        item["expires_at"],
        AttributeValue::N((w.created_at.timestamp() + 24 * 3600).to_string())
    );
    assert!(!item.contains_key("GSI1PK"));
}

#[tokio::test]
async fn create_workflow_in_chunks_with_a_used_idempotency_key_returns_the_first_record() {
    let e = env().await;
    let first = workflow("ann", "First");
    let first_record = record("ann", "import-1", "hash-1", "first");
    e.store
        .create_workflow(&first, &[], Some(&first_record))
        .await
        .unwrap();

    let mut w = workflow("ann", "Big import");
    let nodes = tree(&mut w, &binary_tree(150));
    let r = record("ann", "import-1", "hash-2", "second");
    match e.store.create_workflow(&w, &nodes, Some(&r)).await {
        Err(StoreError::IdempotencyKeyUsed(used)) => assert_eq!(*used, first_record),
        other => panic!("expected IdempotencyKeyUsed, got {other:?}"),
    }
    assert_eq!(e.get(&w.id).await, None);
    assert_eq!(e.store.get_tree(&w.id).await.unwrap(), None);
    assert_eq!(e.listed("ann").await, [first.id]);
}

#[tokio::test]
async fn create_workflow_in_chunks_with_an_existing_id_is_rejected_with_the_stored_workflow() {
    let e = env().await;
    let w = workflow("ann", "Original");
    e.create(&w, &[]).await;

    let mut again = w.clone();
    again.status = WorkflowStatus::Active;
    let nodes = tree(&mut again, &binary_tree(120));
    let current = workflow_rejected(e.store.create_workflow(&again, &nodes, None).await);
    assert_eq!(current, Some(w.clone()));
    assert_eq!(e.get(&w.id).await, Some(w));
}

/// Keys are kept 24 hours (DESIGN.md §6); TTL removes expired records late, and until it does
/// an expired record must not hold the key.
#[tokio::test]
async fn create_workflow_may_reuse_an_idempotency_key_that_expired() {
    let e = env().await;
    let first = workflow("ann", "Long ago");
    let mut old = record("ann", "key-1", "hash-1", "old response");
    old.created_at -= chrono::Duration::hours(25);
    old.expires_at -= chrono::Duration::hours(25);
    e.store
        .create_workflow(&first, &[], Some(&old))
        .await
        .unwrap();

    let w = workflow("ann", "Today");
    let fresh = record("ann", "key-1", "hash-2", "new response");
    let result = e.store.create_workflow(&w, &[], Some(&fresh)).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(e.get(&w.id).await, Some(w));
    assert_eq!(
        e.store
            .get_idempotency("ann", "key-1", now())
            .await
            .unwrap(),
        Some(fresh)
    );
}
