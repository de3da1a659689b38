//! list an owner's workflows, newest first: Query on GSI1 backwards,
//! `GSI1PK = OWNER#<owner> AND GSI1SK BETWEEN ...`, status, tag and name words as a filter.

use crate::support::*;
use chrono::{DateTime, Duration, Utc};
use shared::domain::{Workflow, WorkflowStatus, ids};
use shared::ports::{Nodes, PageKey, StoreError, WorkflowFilter, Workflows};

/// Stores `names` for `owner`, one second apart from `start`, in scrambled order; returns them
/// newest first.
async fn seed(e: &Env, owner: &str, names: &[&str], start: DateTime<Utc>) -> Vec<Workflow> {
    let mut made: Vec<Workflow> = names
        .iter()
        .enumerate()
        .map(|(i, name)| workflow_at(owner, name, start + Duration::seconds(i as i64)))
        .collect();
    // Stored out of order: the list order must come from the index, not from insertion.
    for i in (0..made.len()).step_by(2).chain((1..made.len()).step_by(2)) {
        e.create(&made[i], &[]).await;
    }
    made.reverse();
    made
}

fn start() -> DateTime<Utc> {
    now() - Duration::hours(1)
}

#[tokio::test]
async fn list_workflows_returns_the_owners_workflows_newest_first() {
    let e = env().await;
    let ann = seed(&e, "ann", &["A1", "A2", "A3", "A4"], start()).await;
    let ann2 = seed(&e, "ann2", &["B1"], start()).await;
    let bob = seed(&e, "bob", &["C1", "C2"], start()).await;

    let all = WorkflowFilter::default();
    assert_eq!(e.list_all("ann", &all, 100).await, ann);
    assert_eq!(e.list_all("ann2", &all, 100).await, ann2);
    assert_eq!(e.list_all("bob", &all, 100).await, bob);
    assert_eq!(e.list_all("carol", &all, 100).await, []);
}

#[tokio::test]
async fn list_workflows_orders_by_creation_time_to_the_millisecond() {
    let e = env().await;
    let t = start();
    let older = workflow_at("ann", "Older", t);
    let newer = workflow_at("ann", "Newer", t + Duration::milliseconds(1));
    // Ids sort the other way round than creation times.
    let (older, newer) = if older.id > newer.id {
        (older, newer)
    } else {
        (
            Workflow {
                id: newer.id.clone(),
                ..older
            },
            Workflow {
                id: older.id.clone(),
                ..newer
            },
        )
    };
    e.create(&older, &[]).await;
    e.create(&newer, &[]).await;
    assert_eq!(
        e.list_all("ann", &WorkflowFilter::default(), 10).await,
        [newer, older]
    );
}

#[tokio::test]
async fn list_workflows_filters_by_status() {
    let e = env().await;
    let ws = seed(&e, "ann", &["One", "Two", "Three", "Four"], start()).await;
    let mut active = Vec::new();
    for w in [&ws[0], &ws[2]] {
        let change = status_change(w, WorkflowStatus::Active);
        active.push(e.store.change_workflow(&change).await.unwrap());
    }
    let filter = |status| WorkflowFilter {
        status: Some(status),
        ..WorkflowFilter::default()
    };
    assert_eq!(
        e.list_all("ann", &filter(WorkflowStatus::Active), 10).await,
        active
    );
    assert_eq!(
        e.list_all("ann", &filter(WorkflowStatus::Draft), 10).await,
        [ws[1].clone(), ws[3].clone()]
    );
    assert_eq!(
        e.list_all("ann", &filter(WorkflowStatus::Paused), 10).await,
        []
    );
}

#[tokio::test]
async fn list_workflows_filters_by_whole_tag() {
    let e = env().await;
    let t = start();
    let mut both = workflow_at("ann", "Both", t);
    both.tags = vec!["alpha".into(), "beta".into()];
    let mut longer = workflow_at("ann", "Longer", t + Duration::seconds(1));
    longer.tags = vec!["alphabet".into()];
    let none = workflow_at("ann", "None", t + Duration::seconds(2));
    let mut bobs = workflow_at("bob", "Bob's", t);
    bobs.tags = vec!["alpha".into()];
    for w in [&both, &longer, &none, &bobs] {
        e.create(w, &[]).await;
    }
    let tagged = |tag: &str| WorkflowFilter {
        tag: Some(tag.to_string()),
        ..WorkflowFilter::default()
    };
    assert_eq!(
        e.list_all("ann", &tagged("alpha"), 10).await,
        [both.clone()]
    );
    assert_eq!(e.list_all("ann", &tagged("beta"), 10).await, [both]);
    assert_eq!(e.list_all("ann", &tagged("alphabet"), 10).await, [longer]);
    assert_eq!(e.list_all("ann", &tagged("alph"), 10).await, []);
}

#[tokio::test]
async fn list_workflows_matches_name_words_as_word_prefixes() {
    let e = env().await;
    let ws = seed(
        &e,
        "ann",
        &[
            "Quarterly Report 2026",
            "Report on quarters",
            "Annual summary",
        ],
        start(),
    )
    .await;
    let (annual, quarters, quarterly) = (&ws[0], &ws[1], &ws[2]);
    let words = |words: &[&str]| WorkflowFilter {
        name_words: words.iter().map(|w| w.to_string()).collect(),
        ..WorkflowFilter::default()
    };
    let names = |found: Vec<Workflow>| found.into_iter().map(|w| w.name).collect::<Vec<_>>();

    assert_eq!(
        names(e.list_all("ann", &words(&["quart"]), 10).await),
        [quarters.name.as_str(), quarterly.name.as_str()]
    );
    assert_eq!(
        names(e.list_all("ann", &words(&["rep", "quarterly"]), 10).await),
        [quarterly.name.as_str()]
    );
    assert_eq!(
        names(e.list_all("ann", &words(&["2026"]), 10).await),
        [quarterly.name.as_str()]
    );
    assert_eq!(
        names(e.list_all("ann", &words(&["annual"]), 10).await),
        [annual.name.as_str()]
    );
    // Inside a word is not a match: "port" is in "report" but starts no word.
    assert_eq!(
        names(e.list_all("ann", &words(&["port"]), 10).await),
        Vec::<String>::new()
    );
    assert_eq!(
        names(e.list_all("ann", &words(&["annual", "report"]), 10).await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn list_workflows_bounds_creation_time_strictly() {
    let e = env().await;
    let t0 = truncate(start());
    let t1 = t0 + Duration::milliseconds(1);
    let t2 = t0 + Duration::milliseconds(2);
    let t3 = t0 + Duration::seconds(1);
    let w0 = workflow_at("ann", "w0", t0);
    let w1 = workflow_at("ann", "w1", t1);
    let w1b = workflow_at("ann", "w1b", t1);
    let w2 = workflow_at("ann", "w2", t2);
    let w3 = workflow_at("ann", "w3", t3);
    for w in [&w0, &w1, &w1b, &w2, &w3] {
        e.create(w, &[]).await;
    }
    let between = |after: Option<DateTime<Utc>>, before: Option<DateTime<Utc>>| WorkflowFilter {
        created_after: after,
        created_before: before,
        ..WorkflowFilter::default()
    };
    // Newest first; two workflows of one millisecond may come in either order.
    let check = |found: Vec<Workflow>, want: &[&Workflow]| {
        let times =
            |ws: &mut dyn Iterator<Item = &Workflow>| ws.map(|w| w.created_at).collect::<Vec<_>>();
        assert_eq!(times(&mut found.iter()), times(&mut want.iter().copied()));
        let mut found_ids: Vec<&str> = ids_of(&found);
        let mut want_ids: Vec<&str> = want.iter().map(|w| w.id.as_str()).collect();
        found_ids.sort();
        want_ids.sort();
        assert_eq!(found_ids, want_ids);
    };

    check(
        e.list_all("ann", &between(Some(t0), None), 10).await,
        &[&w3, &w2, &w1, &w1b],
    );
    check(
        e.list_all("ann", &between(Some(t1), None), 10).await,
        &[&w3, &w2],
    );
    check(
        e.list_all("ann", &between(None, Some(t2)), 10).await,
        &[&w1, &w1b, &w0],
    );
    check(
        e.list_all("ann", &between(None, Some(t1)), 10).await,
        &[&w0],
    );
    check(
        e.list_all("ann", &between(Some(t0), Some(t2)), 10).await,
        &[&w1, &w1b],
    );
    check(
        e.list_all("ann", &between(Some(t1), Some(t2)), 10).await,
        &[],
    );
    check(
        e.list_all("ann", &between(Some(t0), Some(t1)), 10).await,
        &[],
    );
    let after_t3 = t3 + Duration::milliseconds(1);
    check(
        e.list_all("ann", &between(Some(t2), Some(after_t3)), 10)
            .await,
        &[&w3],
    );
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    shared::domain::time::truncate_to_millis(t)
}

#[tokio::test]
async fn list_workflows_pages_through_every_workflow_once() {
    let e = env().await;
    let names: Vec<String> = (0..7).map(|i| format!("W{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ws = seed(&e, "ann", &names, start()).await;
    seed(&e, "bob", &["B0", "B1", "B2"], start()).await;

    for limit in [1, 3, 7, 8] {
        let listed = e.list_all("ann", &WorkflowFilter::default(), limit).await;
        assert_eq!(ids_of(&listed), ids_of(&ws), "limit {limit}");
    }

    // The first page holds `limit` workflows and says where the next one starts.
    let first = e
        .store
        .list_workflows("ann", &WorkflowFilter::default(), 3, None)
        .await
        .unwrap();
    assert_eq!(first.items, ws[..3]);
    let second = e
        .store
        .list_workflows("ann", &WorkflowFilter::default(), 3, first.next.as_ref())
        .await
        .unwrap();
    assert_eq!(second.items, ws[3..6]);
}

#[tokio::test]
async fn list_workflows_pages_through_a_filtered_list_once() {
    let e = env().await;
    let names: Vec<String> = (0..10).map(|i| format!("W{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ws = seed(&e, "ann", &names, start()).await;
    let mut active = Vec::new();
    for w in ws
        .iter()
        .filter(|w| ["W9", "W6", "W5", "W1"].contains(&w.name.as_str()))
    {
        let change = status_change(w, WorkflowStatus::Active);
        active.push(e.store.change_workflow(&change).await.unwrap());
    }
    let filter = WorkflowFilter {
        status: Some(WorkflowStatus::Active),
        ..WorkflowFilter::default()
    };
    for limit in [1, 2, 3, 10] {
        assert_eq!(
            e.list_all("ann", &filter, limit).await,
            active,
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn list_workflows_rejects_page_keys_it_did_not_hand_out_to_this_owner() {
    let e = env().await;
    let ann = seed(&e, "ann", &["A1", "A2", "A3"], start()).await;
    seed(&e, "bob", &["B1", "B2", "B3"], start()).await;
    let all = WorkflowFilter::default();
    let ann_key = e
        .store
        .list_workflows("ann", &all, 1, None)
        .await
        .unwrap()
        .next
        .expect("a next page");

    let mut w = workflow("ann", "With nodes");
    let nodes = tree(&mut w, &[None, Some(0), Some(0)]);
    e.create(&w, &nodes).await;
    let nodes_key = e
        .store
        .list_nodes(&w.id, 1, None)
        .await
        .unwrap()
        .1
        .next
        .unwrap();

    let edited = |edit: &dyn Fn(&mut PageKey)| {
        let mut key = ann_key.clone();
        edit(&mut key);
        key
    };
    let bad = [
        PageKey::default(),
        nodes_key,
        edited(&|k| {
            k.0.remove("GSI1SK");
        }),
        edited(&|k| {
            k.0.insert("extra".into(), "x".into());
        }),
        edited(&|k| {
            k.0.insert("SK".into(), format!("NODE#{}", ids::new_id()));
        }),
        edited(&|k| {
            k.0.insert("PK".into(), "IDEM#ann#key".into());
        }),
        edited(&|k| {
            k.0.insert("GSI1SK".into(), "#IDEMPOTENCY".into());
        }),
        edited(&|k| {
            k.0.insert("GSI1PK".into(), "OWNER#bob".into());
        }),
    ];
    for key in &bad {
        assert!(
            matches!(
                e.store.list_workflows("ann", &all, 1, Some(key)).await,
                Err(StoreError::BadPageKey)
            ),
            "{key:?}"
        );
    }
    // Another owner's key says nothing about this owner's list.
    assert!(matches!(
        e.store.list_workflows("bob", &all, 1, Some(&ann_key)).await,
        Err(StoreError::BadPageKey)
    ));
    // The key still works for the list it came from.
    let page = e
        .store
        .list_workflows("ann", &all, 1, Some(&ann_key))
        .await
        .unwrap();
    assert_eq!(page.items, ann[1..2]);
}
