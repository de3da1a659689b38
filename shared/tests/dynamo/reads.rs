//! Reads by key: a workflow (GetItem), several (BatchGetItem), a workflow with its nodes (Query
//! on its partition), one node with its workflow (BatchGetItem), a page of nodes (Query, and
//! GetItem + Query for later pages), an idempotency record (GetItem).

use crate::support::*;
use serde_json::json;
use shared::domain::{Node, NodeFields, WorkflowStatus, ids};
use shared::ports::{Idempotency, Nodes, PageKey, StoreError, WorkflowFilter, Workflows};
use std::collections::BTreeMap;

#[tokio::test]
async fn get_workflow_returns_the_stored_workflow_or_none() {
    let e = env().await;
    let w = workflow("ann", "Stored");
    e.create(&w, &[]).await;
    assert_eq!(e.store.get_workflow(&w.id).await.unwrap(), Some(w.clone()));
    assert_eq!(e.store.get_workflow(&ids::new_id()).await.unwrap(), None);

    // Deleting is soft: the workflow is still read, with its status.
    let deleted = e
        .store
        .change_workflow(&status_change(&w, WorkflowStatus::Deleted))
        .await
        .unwrap();
    assert_eq!(deleted.status, WorkflowStatus::Deleted);
    assert_eq!(e.store.get_workflow(&w.id).await.unwrap(), Some(deleted));
}

#[tokio::test]
async fn get_workflows_returns_the_stored_ones_and_leaves_out_missing_ids() {
    let e = env().await;
    let a = workflow("ann", "A");
    let b = workflow("ann", "B");
    let c = workflow("bob", "C");
    for w in [&a, &b, &c] {
        e.create(w, &[]).await;
    }
    let ids = vec![
        a.id.clone(),
        ids::new_id(),
        c.id.clone(),
        b.id.clone(),
        ids::new_id(),
    ];
    let mut got = e.store.get_workflows(&ids).await.unwrap();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, want);

    assert_eq!(e.store.get_workflows(&[]).await.unwrap(), []);
    assert_eq!(e.store.get_workflows(&[ids::new_id()]).await.unwrap(), []);
}

#[tokio::test]
async fn get_workflows_reads_the_largest_bulk_request_at_once() {
    let e = env().await;
    let a = workflow("ann", "A");
    e.create(&a, &[]).await;
    // 100 ids is the most a bulk request names (and the most one BatchGetItem reads).
    let mut ids: Vec<String> = (0..99).map(|_| ids::new_id()).collect();
    ids.insert(50, a.id.clone());
    assert_eq!(e.store.get_workflows(&ids).await.unwrap(), [a]);
}

#[tokio::test]
async fn get_tree_returns_the_workflow_and_its_nodes_in_creation_order() {
    let e = env().await;
    let mut w = workflow("ann", "Tree");
    // One batch of ids, so the nodes added later sort after the ones created first.
    let nodes = tree(&mut w, &[None, Some(0), Some(1), Some(2), None]);
    let mut created = nodes[..3].to_vec();
    created[2].child_count = 0;
    w.node_count = 3;
    e.create(&w, &created).await;
    for n in &nodes[3..] {
        let mut added = n.clone();
        added.child_count = 0;
        e.store.add_node(&ed("ann"), &added, None).await.unwrap();
    }
    w.node_count = 5;

    assert_eq!(e.store.get_tree(&w.id).await.unwrap(), Some((w, nodes)));
    assert_eq!(e.store.get_tree(&ids::new_id()).await.unwrap(), None);
}

#[tokio::test]
async fn get_tree_reads_every_page_of_a_tree_larger_than_one_query_page() {
    let e = env().await;
    let mut w = workflow("ann", "Heavy");
    let chain: Vec<Option<usize>> = (0..12).map(|i: usize| i.checked_sub(1)).collect();
    let mut nodes = tree(&mut w, &chain);
    for (i, n) in nodes.iter_mut().enumerate() {
        // Nearly the most content a node may have (100,000 characters): twelve of them are
        // more than one 1 MB Query page.
        let content = format!("Chapter {i}. ") + &"lorem ipsum dolor sit amet. ".repeat(3_500);
        let fields = NodeFields {
            content,
            ..n.fields()
        };
        let child_count = n.child_count;
        *n = Node::new(
            n.id.clone(),
            n.workflow_id.clone(),
            n.parent_id.clone(),
            fields,
            n.created_at,
        );
        n.child_count = child_count;
    }
    e.create(&w, &nodes).await;
    let first_page = e
        .client
        .query()
        .table_name(&e.table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s(&format!("WF#{}", w.id)))
        .send()
        .await
        .unwrap();
    assert!(
        first_page.last_evaluated_key.is_some(),
        "the emulator should page this partition (got {} items in one page)",
        first_page.count
    );

    assert_eq!(e.store.get_tree(&w.id).await.unwrap(), Some((w, nodes)));
}

#[tokio::test]
async fn get_node_returns_the_node_with_its_workflow() {
    let e = env().await;
    let mut w = workflow("ann", "Nodes");
    let nodes = tree(&mut w, &[None, Some(0)]);
    e.create(&w, &nodes).await;
    let mut other = workflow("ann", "Other");
    let other_nodes = tree(&mut other, &[None]);
    e.create(&other, &other_nodes).await;

    assert_eq!(
        e.store.get_node(&w.id, &nodes[1].id).await.unwrap(),
        (Some(w.clone()), Some(nodes[1].clone()))
    );
    assert_eq!(
        e.store.get_node(&w.id, &ids::new_id()).await.unwrap(),
        (Some(w.clone()), None)
    );
    assert_eq!(
        e.store.get_node(&w.id, &other_nodes[0].id).await.unwrap(),
        (Some(w.clone()), None),
        "a node is found only in its own workflow"
    );
    assert_eq!(
        e.store
            .get_node(&ids::new_id(), &nodes[0].id)
            .await
            .unwrap(),
        (None, None)
    );
}

#[tokio::test]
async fn list_nodes_pages_through_the_nodes_with_the_workflow_on_every_page() {
    let e = env().await;
    let mut w = workflow("ann", "Paged");
    let nodes = tree(&mut w, &[None, Some(0), Some(0), Some(1), Some(3)]);
    e.create(&w, &nodes).await;

    // The first page comes from one Query: the workflow item, then the first nodes.
    let (first_workflow, first) = e.store.list_nodes(&w.id, 2, None).await.unwrap();
    assert_eq!(first_workflow, Some(w.clone()));
    assert_eq!(first.items, nodes[..2]);
    let mut seen = first.items;
    let mut after = first.next.expect("more pages");
    for _ in 0..10 {
        let (page_workflow, page) = e.store.list_nodes(&w.id, 2, Some(&after)).await.unwrap();
        assert_eq!(page_workflow, Some(w.clone()));
        assert!(page.items.len() <= 2);
        seen.extend(page.items);
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, nodes, "every node once, in creation order");

    let (whole_workflow, whole) = e.store.list_nodes(&w.id, 100, None).await.unwrap();
    assert_eq!(
        (whole_workflow, whole.items, whole.next),
        (Some(w), nodes, None)
    );
}

#[tokio::test]
async fn list_nodes_of_a_missing_workflow_is_empty() {
    let e = env().await;
    let (workflow, page) = e.store.list_nodes(&ids::new_id(), 10, None).await.unwrap();
    assert_eq!((workflow, page.items, page.next), (None, vec![], None));
}

#[tokio::test]
async fn list_nodes_rejects_page_keys_it_did_not_hand_out_for_this_workflow() {
    let e = env().await;
    let mut a = workflow("ann", "A");
    let a_nodes = tree(&mut a, &[None, Some(0), Some(0)]);
    e.create(&a, &a_nodes).await;
    let mut b = workflow("ann", "B");
    let b_nodes = tree(&mut b, &[None, Some(0), Some(0)]);
    e.create(&b, &b_nodes).await;

    let a_key = e
        .store
        .list_nodes(&a.id, 1, None)
        .await
        .unwrap()
        .1
        .next
        .unwrap();
    let workflows_key = e
        .store
        .list_workflows("ann", &WorkflowFilter::default(), 1, None)
        .await
        .unwrap()
        .next
        .unwrap();
    let workflow_item_key = PageKey(BTreeMap::from([
        ("PK".to_string(), format!("WF#{}", b.id)),
        ("SK".to_string(), "#WORKFLOW".to_string()),
    ]));
    let mut extra = a_key.clone();
    extra.0.insert("GSI1PK".into(), "OWNER#ann".into());
    for bad in [
        a_key.clone(),
        workflows_key,
        workflow_item_key,
        PageKey::default(),
    ] {
        assert!(
            matches!(
                e.store.list_nodes(&b.id, 1, Some(&bad)).await,
                Err(StoreError::BadPageKey)
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        e.store.list_nodes(&a.id, 1, Some(&extra)).await,
        Err(StoreError::BadPageKey)
    ));
    // The key is good for its own workflow.
    let (_, page) = e.store.list_nodes(&a.id, 1, Some(&a_key)).await.unwrap();
    assert_eq!(page.items, a_nodes[1..2]);
}

#[tokio::test]
async fn get_idempotency_returns_the_owners_record_or_none() {
    let e = env().await;
    let w = workflow("ann", "Keyed");
    let r = record("ann", "key#1", "hash", &json!({"id": w.id}).to_string());
    e.store.create_workflow(&w, &[], Some(&r)).await.unwrap();

    assert_eq!(
        e.store
            .get_idempotency("ann", "key#1", now())
            .await
            .unwrap(),
        Some(r)
    );
    assert_eq!(
        e.store
            .get_idempotency("bob", "key#1", now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        e.store
            .get_idempotency("ann", "key#2", now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        e.store.get_idempotency("ann", "key", now()).await.unwrap(),
        None
    );
}

/// TTL deletes expired items late (AWS: "within a few days"; moto: never), so a record past
/// `expires_at` may still be stored; it is no longer the key's record.
#[tokio::test]
async fn get_idempotency_treats_an_expired_record_as_missing() {
    let e = env().await;
    let w = workflow("ann", "Long ago");
    let mut r = record("ann", "old-key", "hash", "old response");
    r.created_at -= chrono::Duration::hours(25);
    r.expires_at -= chrono::Duration::hours(25);
    e.store.create_workflow(&w, &[], Some(&r)).await.unwrap();
    assert!(
        e.raw("IDEM#ann#old-key", "#IDEMPOTENCY").await.is_some(),
        "not yet removed by TTL"
    );

    assert_eq!(
        e.store
            .get_idempotency("ann", "old-key", now())
            .await
            .unwrap(),
        None
    );
}
