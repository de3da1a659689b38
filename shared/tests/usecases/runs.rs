//! The chain's fakes: [`MemoryWorkflowStore`] as [`Runs`] (the conditions of every write),
//! [`MemoryQueue`] and [`ScriptedGenerator`].

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use shared::domain::run::{
    ErrorKind, PlanRequest, Run, RunOptions, RunStatus, Step, StepError, StepStatus, plan_continue,
    steps_from_plan,
};
use shared::domain::workflow::Settings;
use shared::domain::{
    Node, NodeFields, NodeStatus, Principal, Priority, Role, ShareAccess, Workflow, WorkflowStatus,
    ids,
};
use shared::generators::Builtin;
use shared::ports::{
    Generation, IdempotencyRecord, Nodes, Runs, StepCommit, StepMessage, StoreError, TaskQueue,
    TextGenerator, Workflows,
};
use shared::testing::runs::{MemoryQueue, ScriptedGenerator, Sent};
use shared::testing::workflows::{MemoryWorkflowStore, Method};
use std::collections::BTreeMap;
use std::sync::Mutex;

// Support ---------------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .to_utc()
}

fn owner() -> Principal {
    Principal::user("owner", Role::Editor)
}

fn node(workflow_id: &str, parent_id: Option<&str>, status: NodeStatus) -> Node {
    Node::new(
        ids::new_id(),
        workflow_id.to_string(),
        parent_id.map(str::to_string),
        NodeFields {
            title: "Root".into(),
            content: String::new(),
            prompt: String::new(),
            priority: Priority::NORMAL,
            status,
            tags: vec![],
            metadata: Map::new(),
        },
        t0(),
    )
}

/// A store with one workflow of `owner` (at most `max_nodes` nodes) holding one root node.
async fn store_with_workflow(max_nodes: u64) -> (MemoryWorkflowStore, Workflow, Node) {
    let store = MemoryWorkflowStore::new();
    let id = ids::new_id();
    let mut settings = Map::new();
    settings.insert("max_nodes".into(), Value::from(max_nodes));
    let workflow = Workflow {
        id: id.clone(),
        owner_id: "owner".into(),
        name: "Saga".into(),
        description: String::new(),
        status: WorkflowStatus::Active,
        settings: Settings::with_defaults(settings),
        tags: vec![],
        node_count: 1,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
        shares: BTreeMap::new(),
    };
    let root = node(&id, None, NodeStatus::Completed);
    store
        .create_workflow(&workflow, std::slice::from_ref(&root), None)
        .await
        .unwrap();
    (store, workflow, root)
}

fn options() -> RunOptions {
    RunOptions {
        plan: PlanRequest::Continue {
            from_node_id: None,
            steps: 1,
        },
        model: None,
        priority: 3,
        max_attempts: 3,
        timeout_s: 3600,
        approval: false,
    }
}

/// A `continue` run of `n` new nodes under `from`: the run, its steps and the new nodes.
fn continue_run(
    workflow: &Workflow,
    from: &Node,
    n: u32,
    at: DateTime<Utc>,
) -> (Run, Vec<Step>, Vec<Node>) {
    let new_ids: Vec<String> = (0..n).map(|_| ids::new_id()).collect();
    let plan = plan_continue(Some(from), n, &new_ids);
    let run = Run::new(
        ids::new_id(),
        workflow.id.clone(),
        "owner".into(),
        &options(),
        n,
        at,
    );
    let step_ids: Vec<String> = (0..n).map(|_| ids::new_id()).collect();
    let steps = steps_from_plan(&run.id, &plan, &step_ids, false);
    let nodes = plan
        .iter()
        .map(|p| {
            let mut n = node(
                &workflow.id,
                p.parent_node_id.as_deref(),
                NodeStatus::Pending,
            );
            n.id = p.node_id.clone();
            n.title = p.title.clone();
            n
        })
        .collect();
    (run, steps, nodes)
}

/// A store holding a started run of `n` steps under the root.
async fn started(n: u32) -> (MemoryWorkflowStore, Run, Vec<Step>, Vec<Node>) {
    let (store, workflow, root) = store_with_workflow(100).await;
    let (run, steps, nodes) = continue_run(&workflow, &root, n, t0());
    store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    (store, run, steps, nodes)
}

/// `step` started as attempt `attempts + 1` at `now`, leased for a minute.
fn claimed(step: &Step, now: DateTime<Utc>) -> Step {
    let mut s = step.clone();
    s.start(now, std::time::Duration::from_secs(60)).unwrap();
    s
}

fn record(key: &str, at: DateTime<Utc>) -> IdempotencyRecord {
    IdempotencyRecord {
        owner_id: "owner".into(),
        key: key.into(),
        request_hash: "h".into(),
        status: 201,
        body: "{}".into(),
        location: "w/r".into(),
        created_at: at,
        expires_at: at + Duration::hours(24),
    }
}

/// A commit of `step` (claimed at `attempt`) that succeeded, writing `node` with `content`.
fn success(run: &Run, step: &Step, attempt: u32, node: &Node, content: &str) -> StepCommit {
    let mut s = step.clone();
    s.succeed(t0(), Default::default()).unwrap();
    let mut n = node.clone();
    n.content = content.into();
    n.status = NodeStatus::Completed;
    n.version += 1;
    let mut r = run.clone();
    r.updated_at = t0() + Duration::seconds(5);
    StepCommit {
        step: s,
        attempt,
        node: Some(n),
        run: r,
        run_version: run.version,
    }
}

// create_run ------------------------------------------------------------------------------

#[tokio::test]
async fn create_run_stores_the_run_its_steps_and_new_nodes() {
    let (store, workflow, root) = store_with_workflow(100).await;
    let (run, steps, nodes) = continue_run(&workflow, &root, 3, t0());
    let mut reversed = steps.clone();
    reversed.reverse();
    store
        .create_run(
            &owner(),
            &run,
            &reversed,
            &nodes,
            workflow.settings.max_nodes(),
            Some(&record("k", t0())),
        )
        .await
        .unwrap();

    let (got, got_steps) = store.get_run(&workflow.id, &run.id).await.unwrap().unwrap();
    assert_eq!(got, run);
    assert_eq!(got_steps, steps, "steps in plan order");
    assert_eq!(store.run(&workflow.id, &run.id), Some((run.clone(), steps)));
    assert_eq!(store.runs(), std::slice::from_ref(&run));
    assert_eq!(store.get_run("other", &run.id).await.unwrap(), None);
    assert_eq!(store.workflow(&workflow.id).unwrap().node_count, 4);
    // The chain: root -> n0 -> n1 -> n2, each with one child but the last.
    let counts: Vec<u64> = [&root, &nodes[0], &nodes[1], &nodes[2]]
        .iter()
        .map(|n| store.node(&workflow.id, &n.id).unwrap().child_count)
        .collect();
    assert_eq!(counts, [1, 1, 1, 0]);
    assert!(store.idempotency_record("owner", "k").is_some());
}

#[tokio::test]
async fn create_run_over_max_nodes_is_rejected_and_writes_nothing() {
    let (store, workflow, root) = store_with_workflow(3).await;
    let (run, steps, nodes) = continue_run(&workflow, &root, 3, t0());
    let before = store.snapshot();
    let err = store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            Some(&record("k", t0())),
        )
        .await
        .unwrap_err();
    match err {
        StoreError::WorkflowRejected(Some(w)) => {
            assert_eq!((w.id, w.node_count), (workflow.id.clone(), 1))
        }
        other => panic!("expected WorkflowRejected, got {other:?}"),
    }
    assert_eq!(store.snapshot(), before);

    // A limit other than the stored one (changed since it was read) holds nothing.
    let (run, steps, nodes) = continue_run(&workflow, &root, 2, t0());
    let err = store
        .create_run(&owner(), &run, &steps, &nodes, 100, None)
        .await;
    assert!(
        matches!(err, Err(StoreError::WorkflowRejected(Some(_)))),
        "{err:?}"
    );
    assert_eq!(store.snapshot(), before);

    // Exactly at the limit is fine.
    store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.workflow(&workflow.id).unwrap().node_count, 3);
}

#[tokio::test]
async fn create_run_needs_a_writer_of_a_live_workflow() {
    let (store, workflow, root) = store_with_workflow(100).await;
    let (run, steps, nodes) = continue_run(&workflow, &root, 1, t0());
    store.edit_workflow(&workflow.id, |w| {
        w.shares.insert("viewer".into(), ShareAccess::Viewer);
        w.shares.insert("editor".into(), ShareAccess::Editor);
    });
    let shared = store.snapshot();
    for who in ["stranger", "viewer"] {
        let p = Principal::user(who, Role::Editor);
        let err = store
            .create_run(
                &p,
                &run,
                &steps,
                &nodes,
                workflow.settings.max_nodes(),
                None,
            )
            .await;
        assert!(
            matches!(err, Err(StoreError::WorkflowRejected(Some(_)))),
            "{who}: {err:?}"
        );
    }
    assert_eq!(store.snapshot(), shared);
    store
        .create_run(
            &Principal::user("admin", Role::Admin),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    let (run, steps, nodes) = continue_run(&workflow, &root, 1, t0());
    store
        .create_run(
            &Principal::user("editor", Role::Editor),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();

    let (run, steps, nodes) = continue_run(&workflow, &root, 1, t0());
    store.edit_workflow(&workflow.id, |w| w.status = WorkflowStatus::Deleted);
    let err = store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::WorkflowRejected(Some(_)))),
        "{err:?}"
    );
    let mut missing = run.clone();
    missing.workflow_id = "missing".into();
    let err = store
        .create_run(
            &owner(),
            &missing,
            &steps,
            &[],
            workflow.settings.max_nodes(),
            None,
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::WorkflowRejected(None))),
        "{err:?}"
    );
}

#[tokio::test]
async fn create_run_with_a_used_idempotency_key_writes_nothing() {
    let (store, workflow, root) = store_with_workflow(100).await;
    let (run, steps, nodes) = continue_run(&workflow, &root, 1, t0());
    store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            Some(&record("k", t0())),
        )
        .await
        .unwrap();
    let before = store.snapshot();
    let (again, steps2, nodes2) = continue_run(&workflow, &root, 1, t0());
    let at = t0() + Duration::hours(1);
    let err = store
        .create_run(
            &owner(),
            &again,
            &steps2,
            &nodes2,
            workflow.settings.max_nodes(),
            Some(&record("k", at)),
        )
        .await;
    assert!(matches!(err, Err(StoreError::IdempotencyKeyUsed(r)) if r.created_at == t0()));
    assert_eq!(store.snapshot(), before);
    // Once the record expired, the key is free again.
    let later = t0() + Duration::hours(25);
    store
        .create_run(
            &owner(),
            &again,
            &steps2,
            &nodes2,
            workflow.settings.max_nodes(),
            Some(&record("k", later)),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn create_run_checks_parents_and_node_ids() {
    let (store, workflow, root) = store_with_workflow(100).await;
    let before = store.snapshot();
    let (run, steps, mut nodes) = continue_run(&workflow, &root, 2, t0());
    nodes[0].parent_id = Some("gone".into());
    let err = store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await;
    assert!(matches!(err, Err(StoreError::ParentMissing)), "{err:?}");
    let (run, steps, mut nodes) = continue_run(&workflow, &root, 1, t0());
    nodes[0].id = root.id.clone();
    nodes[0].parent_id = None;
    let err = store
        .create_run(
            &owner(),
            &run,
            &steps,
            &nodes,
            workflow.settings.max_nodes(),
            None,
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::NodeRejected(Some(_)))),
        "{err:?}"
    );
    assert_eq!(store.snapshot(), before);
}

// get_run, list_runs ----------------------------------------------------------------------

#[tokio::test]
async fn runs_are_listed_newest_first_in_pages() {
    let (store, workflow, root) = store_with_workflow(100).await;
    let mut made = Vec::new();
    for i in 0..5 {
        // Two runs at the same time: the id decides.
        let at = t0() + Duration::seconds(i / 2);
        let (run, steps, _) = continue_run(&workflow, &root, 1, at);
        store
            .create_run(
                &owner(),
                &run,
                &steps,
                &[],
                workflow.settings.max_nodes(),
                None,
            )
            .await
            .unwrap();
        made.push(run);
    }
    made.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_runs(&workflow.id, 2, after.as_ref())
            .await
            .unwrap();
        seen.extend(page.items);
        match page.next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    assert_eq!(seen, made);
    assert!(
        store
            .list_runs("other", 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A key of another list, or of another workflow's runs, is refused.
    let first = store.list_runs(&workflow.id, 1, None).await.unwrap();
    let key = first.next.unwrap();
    let err = store.list_runs("other", 1, Some(&key)).await;
    assert!(matches!(err, Err(StoreError::BadPageKey)), "{err:?}");
    store.put_node(node(&workflow.id, Some(&root.id), NodeStatus::Pending));
    let (_, nodes) = store.list_nodes(&workflow.id, 1, None).await.unwrap();
    let node_key = nodes.next.unwrap();
    let err = store.list_runs(&workflow.id, 1, Some(&node_key)).await;
    assert!(matches!(err, Err(StoreError::BadPageKey)), "{err:?}");
    let err = store.list_nodes(&workflow.id, 1, Some(&key)).await;
    assert!(matches!(err, Err(StoreError::BadPageKey)), "{err:?}");
}

// update_run ------------------------------------------------------------------------------

#[tokio::test]
async fn update_run_writes_at_the_expected_version_only() {
    let (store, run, steps, _) = started(2).await;
    let mut running = run.clone();
    running.transition(RunStatus::Running, t0()).unwrap();
    let mut skipped = steps[1].clone();
    skipped.skip(t0()).unwrap();

    // A stale version: nothing written.
    let before = store.snapshot();
    let err = store
        .update_run(
            &running,
            run.version + 1,
            &[(skipped.clone(), StepStatus::Pending)],
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict)), "{err:?}");
    assert_eq!(store.snapshot(), before);

    // A step that is no longer in the status read: nothing written either.
    let err = store
        .update_run(
            &running,
            run.version,
            &[(skipped.clone(), StepStatus::Running)],
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict)), "{err:?}");
    assert_eq!(store.snapshot(), before);

    store
        .update_run(
            &running,
            run.version,
            &[(skipped.clone(), StepStatus::Pending)],
        )
        .await
        .unwrap();
    let (got, got_steps) = store.run(&run.workflow_id, &run.id).unwrap();
    assert_eq!(
        (got.status, got.version),
        (RunStatus::Running, run.version + 1)
    );
    assert_eq!(got_steps[1], skipped);
    assert_eq!(got_steps[0], steps[0]);

    // The old version lost.
    let err = store.update_run(&running, run.version, &[]).await;
    assert!(matches!(err, Err(StoreError::Conflict)), "{err:?}");
}

// claim_step ------------------------------------------------------------------------------

#[tokio::test]
async fn a_step_is_claimed_once() {
    let (store, run, steps, _) = started(1).await;
    let first = claimed(&steps[0], t0());
    assert!(claim(&store, &first, StepStatus::Pending, 0, t0()).await);
    let before = store.snapshot();
    let second = claimed(&steps[0], t0() + Duration::seconds(1));
    assert!(
        !store
            .claim_step(&second, StepStatus::Pending, 0, t0())
            .await
            .unwrap()
    );
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.step(&run.id, &steps[0].id), Some(first));
}

#[tokio::test]
async fn a_lease_or_a_scheduled_retry_must_have_passed() {
    let (store, run, steps, _) = started(1).await;
    let first = claimed(&steps[0], t0());
    assert!(claim(&store, &first, StepStatus::Pending, 0, t0()).await);
    let lease = first.lease_until.unwrap();

    // Taking over a running attempt: only once its lease ended.
    let mut expired = first.clone();
    expired.status = StepStatus::Pending;
    expired.lease_until = None;
    let at = |t: DateTime<Utc>| store.claim_step(&expired, StepStatus::Running, 1, t);
    assert!(!at(lease - Duration::milliseconds(1)).await.unwrap());
    assert!(
        !store
            .claim_step(&expired, StepStatus::Running, 0, lease)
            .await
            .unwrap(),
        "attempts"
    );
    assert!(at(lease).await.unwrap());

    // A scheduled retry: only once it is due.
    let due = t0() + Duration::minutes(5);
    store.edit_step(&run.id, &steps[0].id, |s| s.lease_until = Some(due));
    let retry = claimed(&expired, due);
    let claim = |t: DateTime<Utc>| store.claim_step(&retry, StepStatus::Pending, 1, t);
    assert!(!claim(due - Duration::seconds(1)).await.unwrap());
    assert!(claim(due).await.unwrap());
    assert_eq!(store.step(&run.id, &steps[0].id).unwrap().attempts, 2);
}

// commit_step -----------------------------------------------------------------------------

#[tokio::test]
async fn a_commit_writes_the_step_the_node_and_the_run() {
    let (store, run, steps, nodes) = started(2).await;
    let first = claimed(&steps[0], t0());
    assert!(claim(&store, &first, StepStatus::Pending, 0, t0()).await);
    let mut commit = success(&run, &first, 1, &nodes[0], "Once upon a time.");
    commit.node.as_mut().unwrap().child_count = 99;
    assert!(store.commit_step(&commit).await.unwrap());

    let (got, got_steps) = store.run(&run.workflow_id, &run.id).unwrap();
    assert_eq!(got.version, run.version + 1);
    assert_eq!(got.updated_at, commit.run.updated_at);
    assert_eq!(got_steps[0], commit.step);
    let n = store.node(&run.workflow_id, &nodes[0].id).unwrap();
    assert_eq!((n.content.as_str(), n.version), ("Once upon a time.", 2));
    assert_eq!(n.child_count, 1, "the stored child count stays");

    // The same attempt again: the step is no longer running.
    let before = store.snapshot();
    assert!(!store.commit_step(&commit).await.unwrap());
    assert_eq!(store.snapshot(), before);
}

#[tokio::test]
async fn a_commit_after_another_attempt_claimed_writes_nothing() {
    let (store, run, steps, nodes) = started(1).await;
    let first = claimed(&steps[0], t0());
    assert!(claim(&store, &first, StepStatus::Pending, 0, t0()).await);
    // The lease ends; another worker takes the step over as attempt 2.
    let lease = first.lease_until.unwrap();
    let mut second = first.clone();
    second.status = StepStatus::Pending;
    let second = claimed(&second, lease);
    assert!(claim(&store, &second, StepStatus::Running, 1, lease).await);

    let before = store.snapshot();
    let late = success(&run, &first, 1, &nodes[0], "late");
    assert!(!store.commit_step(&late).await.unwrap());
    assert_eq!(store.snapshot(), before);
    // Attempt 2 still commits.
    assert!(
        store
            .commit_step(&success(&run, &second, 2, &nodes[0], "x"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_commit_against_a_stale_run_version_conflicts_and_writes_nothing() {
    let (store, run, steps, nodes) = started(2).await;
    let a = claimed(&steps[0], t0());
    let b = claimed(&steps[1], t0());
    assert!(claim(&store, &a, StepStatus::Pending, 0, t0()).await);
    assert!(claim(&store, &b, StepStatus::Pending, 0, t0()).await);
    // Both read the run at its version; `b` commits first.
    assert!(
        store
            .commit_step(&success(&run, &b, 1, &nodes[1], "b"))
            .await
            .unwrap()
    );

    let before = store.snapshot();
    let stale = success(&run, &a, 1, &nodes[0], "a");
    let err = store.commit_step(&stale).await;
    assert!(matches!(err, Err(StoreError::Conflict)), "{err:?}");
    assert_eq!(store.snapshot(), before);

    // Read again, commit once more.
    let (fresh, _) = store.run(&run.workflow_id, &run.id).unwrap();
    assert!(
        store
            .commit_step(&success(&fresh, &a, 1, &nodes[0], "a"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.run(&run.workflow_id, &run.id).unwrap().0.version,
        run.version + 2
    );
}

#[tokio::test]
async fn a_commit_of_a_missing_node_writes_nothing() {
    let (store, run, steps, nodes) = started(1).await;
    let a = claimed(&steps[0], t0());
    assert!(claim(&store, &a, StepStatus::Pending, 0, t0()).await);
    let mut commit = success(&run, &a, 1, &nodes[0], "a");
    commit.node.as_mut().unwrap().id = ids::new_id();
    let before = store.snapshot();
    let err = store.commit_step(&commit).await;
    assert!(
        matches!(err, Err(StoreError::NodeRejected(None))),
        "{err:?}"
    );
    assert_eq!(store.snapshot(), before);
}

#[tokio::test]
async fn a_hook_races_a_commit() {
    let (store, run, steps, nodes) = started(1).await;
    let a = claimed(&steps[0], t0());
    assert!(claim(&store, &a, StepStatus::Pending, 0, t0()).await);
    let (run_id, step_id) = (run.id.clone(), a.id.clone());
    store.before(Method::CommitStep, move |s| {
        s.edit_step(&run_id, &step_id, |st| st.attempts = 2);
    });
    assert!(
        !store
            .commit_step(&success(&run, &a, 1, &nodes[0], "a"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn fail_next_fails_the_run_methods_too() {
    let (store, run, steps, _) = started(1).await;
    let before = store.snapshot();
    store.fail_next("throttled");
    let err = store.get_run(&run.workflow_id, &run.id).await;
    assert!(matches!(err, Err(StoreError::Unavailable(r)) if r == "throttled"));
    store.fail_next("throttled");
    let err = store
        .claim_step(&claimed(&steps[0], t0()), StepStatus::Pending, 0, t0())
        .await;
    assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    store.fail_next("throttled");
    assert!(store.list_runs(&run.workflow_id, 5, None).await.is_err());
    assert_eq!(store.snapshot(), before);
}

// MemoryQueue -----------------------------------------------------------------------------

fn message(step_id: &str) -> StepMessage {
    StepMessage {
        workflow_id: "w".into(),
        run_id: "r".into(),
        step_id: step_id.into(),
        attempt: 1,
        node_id: None,
        parent_node_id: None,
    }
}

#[tokio::test]
async fn the_queue_records_what_it_is_sent() {
    let q = MemoryQueue::new();
    q.enqueue(3, "alice", &message("a"), 0).await.unwrap();
    q.enqueue(5, "bob", &message("b"), 900).await.unwrap();
    q.fail_next("down");
    assert!(matches!(
        q.enqueue(3, "alice", &message("c"), 0).await,
        Err(StoreError::Unavailable(r)) if r == "down"
    ));
    assert!(matches!(
        q.enqueue(0, "alice", &message("c"), 0).await,
        Err(StoreError::Internal(_))
    ));
    assert!(matches!(
        q.enqueue(3, "alice", &message("c"), 901).await,
        Err(StoreError::Internal(_))
    ));
    let expected = vec![
        Sent {
            priority: 3,
            owner_id: "alice".into(),
            message: message("a"),
            delay_s: 0,
        },
        Sent {
            priority: 5,
            owner_id: "bob".into(),
            message: message("b"),
            delay_s: 900,
        },
    ];
    assert_eq!(q.sent(), expected);
    assert_eq!(q.take(), expected);
    assert!(q.sent().is_empty());
}

// ScriptedGenerator -----------------------------------------------------------------------

fn generation(prompt: &str) -> Generation {
    Generation {
        model: "test".into(),
        system: None,
        prompt: prompt.into(),
        max_tokens: 50,
        temperature: 0.7,
        timeout: std::time::Duration::from_secs(5),
    }
}

#[tokio::test]
async fn the_generator_follows_its_script_then_writes_as_builtin() {
    let g = ScriptedGenerator::new();
    g.push_ok("one two three four five six seven")
        .push_err(ErrorKind::Throttled, "slow down")
        .push_hang();
    let pieces = Mutex::new(Vec::<String>::new());
    let on_delta = |p: &str| pieces.lock().unwrap().push(p.to_string());

    let ok = g.generate(&generation("say it"), &on_delta).await.unwrap();
    assert_eq!(ok.text, "one two three four five six seven");
    assert_eq!(
        (ok.input_tokens, ok.output_tokens, ok.finish_reason.as_str()),
        (2, 7, "stop")
    );
    let streamed = std::mem::take(&mut *pieces.lock().unwrap());
    assert!(streamed.len() > 1 && streamed.len() <= 3, "{streamed:?}");
    assert_eq!(streamed.concat(), ok.text);

    let err = g
        .generate(&generation("again"), &on_delta)
        .await
        .unwrap_err();
    assert_eq!(err, StepError::new(ErrorKind::Throttled, "slow down"));
    assert!(err.retryable);

    let hung = tokio::time::timeout(
        std::time::Duration::from_millis(20),
        g.generate(&generation("hang"), &on_delta),
    )
    .await;
    assert!(hung.is_err(), "the call never finishes");

    let builtin = g
        .generate(&generation("fallback"), &on_delta)
        .await
        .unwrap();
    let expected = Builtin
        .generate(&generation("fallback"), &|_| {})
        .await
        .unwrap();
    assert_eq!(builtin, expected);
    assert_eq!(g.calls(), 4);
    let prompts: Vec<String> = g.requests().into_iter().map(|r| r.prompt).collect();
    assert_eq!(prompts, ["say it", "again", "hang", "fallback"]);
}

/// Claims `step` as `claim_step` does; whether it held.
async fn claim(
    store: &MemoryWorkflowStore,
    step: &Step,
    from: StepStatus,
    attempts: u32,
    now: DateTime<Utc>,
) -> bool {
    store.claim_step(step, from, attempts, now).await.unwrap()
}
