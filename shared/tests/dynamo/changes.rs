//! change a workflow: UpdateItem conditional on owner, not deleted, version and/or source
//! status; bulk changes: TransactWriteItems of conditional updates, rejected ones reported.

use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, SecondsFormat};
use serde_json::json;
use shared::domain::{Settings, WorkflowStatus};
use shared::ports::{
    ChangeOutcome, Nodes, WorkflowChange, WorkflowFilter, WorkflowUpdate, Workflows,
};

fn edit(w: &shared::domain::Workflow, update: WorkflowUpdate) -> WorkflowChange {
    WorkflowChange {
        id: w.id.clone(),
        actor: ed(&w.owner_id),
        expected_version: Some(w.version),
        allowed_from: vec![],
        max_nodes: None,
        update,
        now: now() + Duration::seconds(1),
    }
}

#[tokio::test]
async fn change_workflow_writes_the_fields_bumps_the_version_and_returns_the_result() {
    let e = env().await;
    let w = workflow("ann", "Quarterly report");
    e.create(&w, &[]).await;
    let change = edit(
        &w,
        WorkflowUpdate {
            name: Some("Annual plan".into()),
            description: Some(String::new()),
            tags: Some(vec!["plans".into(), "2026".into()]),
            ..WorkflowUpdate::default()
        },
    );

    let written = e.store.change_workflow(&change).await.unwrap();

    let want = changed(&w, &change);
    assert_eq!(written, want);
    assert_eq!(written.version, 2);
    assert_eq!(e.get(&w.id).await, Some(want.clone()));
    // The name is searched by its new words only.
    let words = |word: &str| WorkflowFilter {
        name_words: vec![word.into()],
        ..WorkflowFilter::default()
    };
    assert_eq!(e.list_all("ann", &words("annual"), 10).await, [want]);
    assert_eq!(e.list_all("ann", &words("quarterly"), 10).await, []);
}

#[tokio::test]
async fn change_workflow_at_a_stale_version_is_rejected_with_the_current_workflow() {
    let e = env().await;
    let w = workflow("ann", "Versioned");
    e.create(&w, &[]).await;
    let first = edit(
        &w,
        WorkflowUpdate {
            name: Some("First edit".into()),
            ..WorkflowUpdate::default()
        },
    );
    let current = e.store.change_workflow(&first).await.unwrap();

    // A second writer that read version 1 loses.
    let stale = edit(
        &w,
        WorkflowUpdate {
            name: Some("Lost edit".into()),
            ..WorkflowUpdate::default()
        },
    );
    let rejected = workflow_rejected(e.store.change_workflow(&stale).await);
    assert_eq!(rejected, Some(current.clone()));
    assert_eq!(rejected.unwrap().version, 2);
    assert_eq!(e.get(&w.id).await, Some(current.clone()));

    // Without an expected version the change applies to whatever is stored.
    let blind = WorkflowChange {
        expected_version: None,
        ..stale
    };
    let written = e.store.change_workflow(&blind).await.unwrap();
    assert_eq!(written, changed(&current, &blind));
    assert_eq!(written.version, 3);
}

#[tokio::test]
async fn change_workflow_of_another_owner_is_rejected_and_changes_nothing() {
    let e = env().await;
    let w = workflow("ann", "Ann's");
    e.create(&w, &[]).await;
    let change = WorkflowChange {
        actor: ed("mallory"),
        ..edit(
            &w,
            WorkflowUpdate {
                name: Some("Mine now".into()),
                ..WorkflowUpdate::default()
            },
        )
    };
    assert_eq!(
        workflow_rejected(e.store.change_workflow(&change).await),
        Some(w.clone())
    );
    assert_eq!(e.get(&w.id).await, Some(w));
}

#[tokio::test]
async fn change_workflow_of_a_missing_workflow_is_rejected_without_creating_it() {
    let e = env().await;
    let w = workflow("ann", "Never stored");
    let change = status_change(&w, WorkflowStatus::Active);
    assert_eq!(
        workflow_rejected(e.store.change_workflow(&change).await),
        None
    );
    assert_eq!(e.raw(&format!("WF#{}", w.id), "#WORKFLOW").await, None);
}

#[tokio::test]
async fn change_workflow_of_a_deleted_workflow_is_rejected_with_the_deleted_workflow() {
    let e = env().await;
    let w = workflow("ann", "Doomed");
    e.create(&w, &[]).await;
    let deleted = e
        .store
        .change_workflow(&status_change(&w, WorkflowStatus::Deleted))
        .await
        .unwrap();

    let rename = edit(
        &deleted,
        WorkflowUpdate {
            name: Some("Revived".into()),
            ..WorkflowUpdate::default()
        },
    );
    let current = workflow_rejected(e.store.change_workflow(&rename).await).unwrap();
    assert_eq!(current, deleted);
    assert_eq!(current.status, WorkflowStatus::Deleted);
    assert_eq!(current.version, 2);
    // Not even a second delete goes through.
    let again = status_change(&deleted, WorkflowStatus::Deleted);
    assert_eq!(
        workflow_rejected(e.store.change_workflow(&again).await),
        Some(deleted.clone())
    );
    assert_eq!(e.get(&w.id).await, Some(deleted));
}

#[tokio::test]
async fn change_workflow_requires_one_of_the_allowed_source_statuses() {
    let e = env().await;
    let w = workflow("ann", "Draft");
    e.create(&w, &[]).await;

    // draft -> paused is not a transition: only active may become paused.
    let pause = status_change(&w, WorkflowStatus::Paused);
    assert_eq!(pause.allowed_from, [WorkflowStatus::Active]);
    assert_eq!(
        workflow_rejected(e.store.change_workflow(&pause).await),
        Some(w.clone())
    );

    let activate = status_change(&w, WorkflowStatus::Active);
    let active = e.store.change_workflow(&activate).await.unwrap();
    assert_eq!(active, changed(&w, &activate));
    let paused = e
        .store
        .change_workflow(&status_change(&active, WorkflowStatus::Paused))
        .await
        .unwrap();
    assert_eq!(paused.status, WorkflowStatus::Paused);
    assert_eq!(e.get(&w.id).await, Some(paused));
}

#[tokio::test]
async fn change_workflow_replaces_the_settings_as_given() {
    let e = env().await;
    let mut w = workflow("ann", "Configured");
    w.settings = Settings::with_defaults(object(json!({
        "model": "gpt-test",
        "timeout_s": 30,
        "nested": {"a": 1, "b": {"c": 2}},
        "keep": [1, 2],
        "drop": "me",
    })));
    e.create(&w, &[]).await;
    let patch = object(json!({
        "drop": null,
        "never_there": null,
        "model": "gpt-next",
        "nested": {"b": {"d": 3.5}, "e": null},
        "a.b": "a key with a dot",
        "new": {"deep": ["x", 1, true]},
    }));
    let change = edit(
        &w,
        WorkflowUpdate {
            settings: Some(w.settings.merged(&patch)),
            ..WorkflowUpdate::default()
        },
    );

    let written = e.store.change_workflow(&change).await.unwrap();

    let want = changed(&w, &change);
    assert_eq!(
        serde_json::to_value(&want.settings).unwrap(),
        json!({
            "max_nodes": 1000,
            "model": "gpt-next",
            "timeout_s": 30,
            "nested": {"b": {"d": 3.5}, "e": null},
            "keep": [1, 2],
            "a.b": "a key with a dot",
            "new": {"deep": ["x", 1, true]},
        })
    );
    assert_eq!(written, want);
    assert_eq!(e.get(&w.id).await, Some(want));
}

#[tokio::test]
async fn change_workflow_lowering_max_nodes_requires_the_nodes_to_fit() {
    let e = env().await;
    let mut w = workflow("ann", "Limited");
    let nodes = tree(&mut w, &[None, Some(0), Some(0)]);
    e.create(&w, &nodes).await;
    let limit = |max: u64| WorkflowChange {
        max_nodes: Some(max),
        ..edit(
            &w,
            WorkflowUpdate {
                settings: Some(w.settings.merged(&object(json!({"max_nodes": max})))),
                ..WorkflowUpdate::default()
            },
        )
    };

    assert_eq!(
        workflow_rejected(e.store.change_workflow(&limit(2)).await),
        Some(w.clone())
    );
    assert_eq!(e.get(&w.id).await.unwrap().settings.max_nodes(), 1000);

    let written = e.store.change_workflow(&limit(3)).await.unwrap();
    assert_eq!(written.settings.max_nodes(), 3);
    assert_eq!(written.node_count, 3);
    // Now full: no fourth node.
    let more = new_node(&w, Some(&nodes[0]), "Fourth");
    let full = workflow_rejected(e.store.add_node(&ed("ann"), &more, None).await).unwrap();
    assert_eq!(full, written);
}

#[tokio::test]
async fn change_workflow_to_deleted_takes_it_out_of_the_owners_list() {
    let e = env().await;
    let keep = workflow("ann", "Keep");
    let w = workflow("ann", "Delete me");
    e.create(&keep, &[]).await;
    e.create(&w, &[]).await;
    let delete = status_change(&w, WorkflowStatus::Deleted);

    let deleted = e.store.change_workflow(&delete).await.unwrap();

    assert_eq!(deleted, changed(&w, &delete));
    assert_eq!(e.listed("ann").await, [keep.id]);
    let only_deleted = WorkflowFilter {
        status: Some(WorkflowStatus::Deleted),
        ..WorkflowFilter::default()
    };
    assert_eq!(e.list_all("ann", &only_deleted, 10).await, []);
    let item = e.raw_workflow(&w.id).await;
    assert!(
        !item.contains_key("GSI1PK") && !item.contains_key("GSI1SK"),
        "{item:?}"
    );
    assert_eq!(
        item["deleted_at"],
        AttributeValue::S(delete.now.to_rfc3339_opts(SecondsFormat::Millis, true))
    );
    assert_eq!(e.get(&w.id).await, Some(deleted));
}

#[tokio::test]
async fn change_workflows_applies_every_change_that_holds_and_reports_each() {
    let e = env().await;
    let ws: Vec<_> = (0..4).map(|i| workflow("ann", &format!("W{i}"))).collect();
    for w in &ws {
        e.create(w, &[]).await;
    }
    let mut stale = status_change(&ws[1], WorkflowStatus::Active);
    stale.expected_version = Some(7);
    let mut bobs = status_change(&ws[3], WorkflowStatus::Active);
    bobs.actor = ed("bob");
    let missing = status_change(&workflow("ann", "Missing"), WorkflowStatus::Active);
    let changes = vec![
        status_change(&ws[0], WorkflowStatus::Active),
        stale,
        status_change(&ws[2], WorkflowStatus::Active),
        missing,
        bobs,
    ];

    let outcomes = e.store.change_workflows(&changes).await.unwrap();

    assert_eq!(outcomes.len(), changes.len());
    let done: Vec<bool> = outcomes
        .iter()
        .map(|o| matches!(o, ChangeOutcome::Done))
        .collect();
    assert_eq!(done, [true, false, true, false, false], "{outcomes:?}");
    assert_eq!(e.get(&ws[0].id).await, Some(changed(&ws[0], &changes[0])));
    assert_eq!(e.get(&ws[1].id).await, Some(ws[1].clone()));
    assert_eq!(e.get(&ws[2].id).await, Some(changed(&ws[2], &changes[2])));
    assert_eq!(e.get(&ws[3].id).await, Some(ws[3].clone()));
    assert_eq!(e.get(&changes[3].id).await, None);

    assert!(e.store.change_workflows(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn change_workflows_with_every_change_rejected_changes_nothing() {
    let e = env().await;
    let w = workflow("ann", "Draft");
    e.create(&w, &[]).await;
    let changes = [
        status_change(&w, WorkflowStatus::Paused),
        status_change(&workflow("ann", "Missing"), WorkflowStatus::Deleted),
    ];
    let outcomes = e.store.change_workflows(&changes).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ChangeOutcome::Rejected)),
        "{outcomes:?}"
    );
    assert_eq!(e.get(&w.id).await, Some(w));
}
