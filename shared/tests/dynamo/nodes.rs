//! Node writes: add (TransactWriteItems: workflow `node_count < max_nodes`, parent
//! `child_count + 1`, node new), update (ConditionCheck the workflow, Put at the version read),
//! delete (TransactWriteItems in chunks of 98, each node at the child count read).

use crate::support::*;
use serde_json::json;
use shared::domain::{Node, NodeStatus, Settings, WorkflowStatus, ids};
use shared::ports::{Idempotency, NodeDeletion, Nodes, StoreError, Workflows};

fn plan(nodes: &[&Node]) -> Vec<NodeDeletion> {
    nodes
        .iter()
        .map(|n| NodeDeletion {
            id: n.id.clone(),
            child_count: n.child_count,
        })
        .collect()
}

/// `node` as the update use case writes it: edited, one version on.
fn edited(node: &Node, title: &str) -> Node {
    let mut next = node.clone();
    next.title = title.to_string();
    next.status = NodeStatus::Completed;
    next.metadata.insert("edited".into(), json!(true));
    next.version += 1;
    next.updated_at = now();
    next
}

#[tokio::test]
async fn add_node_counts_the_node_on_its_workflow_and_its_parent() {
    let e = env().await;
    let mut w = workflow("ann", "Growing");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;

    let child = new_node(&w, Some(&nodes[0]), "Child");
    e.store.add_node(&ed("ann"), &child, None).await.unwrap();
    let root = new_node(&w, None, "Second root");
    e.store.add_node(&ed("ann"), &root, None).await.unwrap();

    assert_eq!(e.node(&w.id, &child.id).await, Some(child.clone()));
    assert_eq!(e.node(&w.id, &root.id).await, Some(root.clone()));
    assert_eq!(e.node(&w.id, &nodes[0].id).await.unwrap().child_count, 1);
    let stored = e.get(&w.id).await.unwrap();
    assert_eq!(stored.node_count, 3);
    assert_eq!(e.nodes(&w.id).await.len(), 3);
}

#[tokio::test]
async fn add_node_under_a_missing_parent_is_rejected() {
    let e = env().await;
    let mut w = workflow("ann", "Orphans");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;
    let mut other = workflow("ann", "Other");
    let other_nodes = tree(&mut other, &[None]);
    e.create(&other, &other_nodes).await;

    let mut orphan = new_node(&w, None, "Orphan");
    orphan.parent_id = Some(ids::new_id());
    let result = e.store.add_node(&ed("ann"), &orphan, None).await;
    assert!(
        matches!(result, Err(StoreError::ParentMissing)),
        "{result:?}"
    );
    // A parent in another workflow is no parent here.
    let mut stray = new_node(&w, Some(&other_nodes[0]), "Stray");
    stray.workflow_id = w.id.clone();
    let result = e.store.add_node(&ed("ann"), &stray, None).await;
    assert!(
        matches!(result, Err(StoreError::ParentMissing)),
        "{result:?}"
    );

    assert_eq!(e.node(&w.id, &orphan.id).await, None);
    assert_eq!(e.node(&w.id, &stray.id).await, None);
    assert_eq!(e.get(&w.id).await, Some(w));
    assert_eq!(
        e.node(&other.id, &other_nodes[0].id).await,
        Some(other_nodes[0].clone())
    );
}

#[tokio::test]
async fn add_node_to_a_full_workflow_is_rejected() {
    let e = env().await;
    let mut w = workflow("ann", "Full");
    w.settings = Settings::with_defaults(object(json!({"max_nodes": 2})));
    let nodes = tree(&mut w, &[None, Some(0)]);
    e.create(&w, &nodes).await;

    let extra = new_node(&w, Some(&nodes[1]), "Too many");
    assert_eq!(
        workflow_rejected(e.store.add_node(&ed("ann"), &extra, None).await),
        Some(w.clone())
    );
    assert_eq!(e.node(&w.id, &extra.id).await, None);
    assert_eq!(e.node(&w.id, &nodes[1].id).await, Some(nodes[1].clone()));
    assert_eq!(e.get(&w.id).await, Some(w));
}

#[tokio::test]
async fn add_node_to_a_workflow_that_is_not_writable_is_rejected() {
    let e = env().await;
    let mut w = workflow("ann", "Guarded");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;

    let n = new_node(&w, Some(&nodes[0]), "Intruder");
    assert_eq!(
        workflow_rejected(e.store.add_node(&ed("bob"), &n, None).await),
        Some(w.clone())
    );
    let mut lost = new_node(&w, None, "Lost");
    lost.workflow_id = ids::new_id();
    assert_eq!(
        workflow_rejected(e.store.add_node(&ed("ann"), &lost, None).await),
        None
    );

    let deleted = e
        .store
        .change_workflow(&status_change(&w, WorkflowStatus::Deleted))
        .await
        .unwrap();
    assert_eq!(
        workflow_rejected(e.store.add_node(&ed("ann"), &n, None).await),
        Some(deleted)
    );
    assert_eq!(e.nodes(&w.id).await, nodes);
    assert!(e.partition(&lost.workflow_id).await.is_empty());
}

#[tokio::test]
async fn add_node_with_a_used_idempotency_key_returns_the_first_record() {
    let e = env().await;
    let mut w = workflow("ann", "Replayed");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;

    let first = new_node(&w, Some(&nodes[0]), "First");
    let first_record = record(
        "ann",
        "node-key",
        "hash-1",
        &json!({"id": first.id}).to_string(),
    );
    e.store
        .add_node(&ed("ann"), &first, Some(&first_record))
        .await
        .unwrap();
    assert_eq!(
        e.store
            .get_idempotency("ann", "node-key", now())
            .await
            .unwrap(),
        Some(first_record.clone())
    );

    let second = new_node(&w, Some(&nodes[0]), "Second");
    let second_record = record("ann", "node-key", "hash-2", "other");
    match e
        .store
        .add_node(&ed("ann"), &second, Some(&second_record))
        .await
    {
        Err(StoreError::IdempotencyKeyUsed(used)) => assert_eq!(*used, first_record),
        other => panic!("expected IdempotencyKeyUsed, got {other:?}"),
    }
    assert_eq!(e.node(&w.id, &second.id).await, None);
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 2);
    assert_eq!(e.node(&w.id, &nodes[0].id).await.unwrap().child_count, 1);
}

#[tokio::test]
async fn update_node_replaces_the_node_at_the_expected_version() {
    let e = env().await;
    let mut w = workflow("ann", "Edited");
    let nodes = tree(&mut w, &[None, Some(0)]);
    e.create(&w, &nodes).await;

    let next = edited(&nodes[1], "Better title");
    e.store.update_node(&ed("ann"), &next, 1).await.unwrap();
    assert_eq!(e.node(&w.id, &next.id).await, Some(next.clone()));

    let again = edited(&next, "Best title");
    e.store.update_node(&ed("ann"), &again, 2).await.unwrap();
    assert_eq!(e.node(&w.id, &next.id).await, Some(again));
    assert_eq!(e.get(&w.id).await, Some(w), "the workflow is not written");
}

#[tokio::test]
async fn update_node_at_a_stale_version_is_rejected_with_the_current_node() {
    let e = env().await;
    let mut w = workflow("ann", "Contended");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;
    let winner = edited(&nodes[0], "Winner");
    e.store.update_node(&ed("ann"), &winner, 1).await.unwrap();

    let loser = edited(&nodes[0], "Loser");
    let current = node_rejected(e.store.update_node(&ed("ann"), &loser, 1).await);
    assert_eq!(current, Some(winner.clone()));
    assert_eq!(e.node(&w.id, &winner.id).await, Some(winner));
}

#[tokio::test]
async fn update_node_of_a_missing_node_is_rejected_without_creating_it() {
    let e = env().await;
    let mut w = workflow("ann", "Sparse");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;
    let ghost = new_node(&w, None, "Ghost");
    assert_eq!(
        node_rejected(e.store.update_node(&ed("ann"), &ghost, 1).await),
        None
    );
    assert_eq!(e.node(&w.id, &ghost.id).await, None);
}

#[tokio::test]
async fn update_node_of_a_workflow_that_is_not_writable_is_rejected() {
    let e = env().await;
    let mut w = workflow("ann", "Guarded");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;

    let next = edited(&nodes[0], "Hijacked");
    assert_eq!(
        workflow_rejected(e.store.update_node(&ed("bob"), &next, 1).await),
        Some(w.clone())
    );
    assert_eq!(e.node(&w.id, &nodes[0].id).await, Some(nodes[0].clone()));

    let deleted = e
        .store
        .change_workflow(&status_change(&w, WorkflowStatus::Deleted))
        .await
        .unwrap();
    assert_eq!(
        workflow_rejected(e.store.update_node(&ed("ann"), &next, 1).await),
        Some(deleted)
    );
    assert_eq!(e.node(&w.id, &nodes[0].id).await, Some(nodes[0].clone()));
}

/// The store maintains `child_count`: replacing a node with an edit of what was read before
/// a child was added must not lose that child.
#[tokio::test]
async fn update_node_keeps_a_child_added_after_the_node_was_read() {
    let e = env().await;
    let mut w = workflow("ann", "Racing");
    let nodes = tree(&mut w, &[None]);
    e.create(&w, &nodes).await;
    let read = e.node(&w.id, &nodes[0].id).await.unwrap();

    let child = new_node(&w, Some(&nodes[0]), "Child");
    e.store.add_node(&ed("ann"), &child, None).await.unwrap();
    let result = e
        .store
        .update_node(&ed("ann"), &edited(&read, "Edited"), read.version)
        .await;

    let stored = e.node(&w.id, &nodes[0].id).await.unwrap();
    assert_eq!(
        stored.child_count, 1,
        "the stored node lost its child (update answered {result:?})"
    );
    assert!(
        matches!(result, Ok(()) | Err(StoreError::NodeRejected(Some(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn delete_nodes_removes_a_subtree_and_updates_the_counts() {
    let e = env().await;
    let mut w = workflow("ann", "Pruned");
    // 0 -> 1 -> (2, 3); 0 -> 4
    let nodes = tree(&mut w, &[None, Some(0), Some(1), Some(1), Some(0)]);
    e.create(&w, &nodes).await;

    let subtree = plan(&[&nodes[3], &nodes[2], &nodes[1]]);
    e.store
        .delete_nodes(&ed("ann"), &w.id, &subtree, Some(&nodes[0].id))
        .await
        .unwrap();

    let left = e.nodes(&w.id).await;
    assert_eq!(
        node_ids(&left),
        [nodes[0].id.as_str(), nodes[4].id.as_str()]
    );
    assert_eq!(left[0].child_count, 1);
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 2);

    // A root has no parent to count down.
    let roots = plan(&[&nodes[4], &left[0]]);
    e.store
        .delete_nodes(&ed("ann"), &w.id, &roots, None)
        .await
        .unwrap();
    assert_eq!(e.nodes(&w.id).await, []);
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 0);
}

#[tokio::test]
async fn delete_nodes_rejects_a_node_that_gained_a_child_and_deletes_nothing() {
    let e = env().await;
    let mut w = workflow("ann", "Busy");
    let nodes = tree(&mut w, &[None, Some(0), Some(1), Some(1)]);
    e.create(&w, &nodes).await;
    let subtree = plan(&[&nodes[3], &nodes[2], &nodes[1]]);

    let late = new_node(&w, Some(&nodes[1]), "Late child");
    e.store.add_node(&ed("ann"), &late, None).await.unwrap();
    let current = node_rejected(
        e.store
            .delete_nodes(&ed("ann"), &w.id, &subtree, Some(&nodes[0].id))
            .await,
    )
    .expect("the current node");

    assert_eq!(current.id, nodes[1].id);
    assert_eq!(current.child_count, 3);
    assert_eq!(e.nodes(&w.id).await.len(), 5, "nothing deleted");
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 5);
    assert_eq!(e.node(&w.id, &nodes[0].id).await.unwrap().child_count, 1);
}

#[tokio::test]
async fn delete_nodes_of_a_missing_node_or_not_writable_workflow_is_rejected() {
    let e = env().await;
    let mut w = workflow("ann", "Guarded");
    let nodes = tree(&mut w, &[None, Some(0)]);
    e.create(&w, &nodes).await;
    let leaf = plan(&[&nodes[1]]);

    let ghost = [NodeDeletion {
        id: ids::new_id(),
        child_count: 0,
    }];
    assert_eq!(
        node_rejected(e.store.delete_nodes(&ed("ann"), &w.id, &ghost, None).await),
        None
    );
    assert_eq!(
        workflow_rejected(
            e.store
                .delete_nodes(&ed("bob"), &w.id, &leaf, Some(&nodes[0].id))
                .await
        ),
        Some(w.clone())
    );
    assert_eq!(e.nodes(&w.id).await, nodes);
    assert_eq!(e.get(&w.id).await, Some(w));
}

#[tokio::test]
async fn delete_nodes_of_a_large_subtree_runs_in_several_chunks() {
    let e = env().await;
    let mut w = workflow("ann", "Large");
    // 0 (kept) -> 1 -> 200 leaves
    let parents: Vec<Option<usize>> = (0..202)
        .map(|i| match i {
            0 => None,
            1 => Some(0),
            _ => Some(1),
        })
        .collect();
    let nodes = tree(&mut w, &parents);
    e.create(&w, &nodes).await;
    assert_eq!(e.nodes(&w.id).await.len(), 202);

    let mut doomed: Vec<&Node> = nodes[2..].iter().rev().collect();
    doomed.push(&nodes[1]);
    e.store
        .delete_nodes(&ed("ann"), &w.id, &plan(&doomed), Some(&nodes[0].id))
        .await
        .unwrap();

    let left = e.nodes(&w.id).await;
    assert_eq!(node_ids(&left), [nodes[0].id.as_str()]);
    assert_eq!(left[0].child_count, 0, "the parent counts down once");
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 1);
}
