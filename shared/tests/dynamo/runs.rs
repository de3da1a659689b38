//! runs: one item per run holding its steps; create (with a continue plan's new nodes) in one
//! transaction; claim a step with a conditional UpdateItem on `steps[i]`; commit a step's
//! outcome with its node in one transaction conditional on the claim and the run's version.

use crate::support::*;
use shared::domain::run::{self, PlanRequest, Run, RunOptions, RunStatus, Step, StepStatus, Usage};
use shared::domain::{Node, WorkflowStatus, ids};
use shared::ports::{Nodes, Runs, StepCommit, StoreError};
use std::time::Duration as StdDuration;

/// A run of a chain of `n` new nodes under a new root, with its steps and nodes.
fn chain(e_workflow: &shared::domain::Workflow, n: u32) -> (Run, Vec<Step>, Vec<Node>) {
    let new_ids = ids::new_ids(n as usize);
    let plan = run::plan_continue(None, n, &new_ids);
    let options = RunOptions {
        plan: PlanRequest::Continue {
            from_node_id: None,
            steps: n,
        },
        model: None,
        priority: 3,
        max_attempts: 3,
        timeout_s: 600,
        approval: false,
    };
    let r = Run::new(
        ids::new_id(),
        e_workflow.id.clone(),
        e_workflow.owner_id.clone(),
        &options,
        n,
        now(),
    );
    let steps = run::steps_from_plan(&r.id, &plan, &ids::new_ids(plan.len()), false);
    let nodes = plan
        .iter()
        .map(|p| {
            Node::new(
                p.node_id.clone(),
                e_workflow.id.clone(),
                p.parent_node_id.clone(),
                fields(&p.title),
                now(),
            )
        })
        .collect();
    (r, steps, nodes)
}

async fn started(n: u32) -> (Env, Run, Vec<Step>, Vec<Node>) {
    let e = env().await;
    let mut w = workflow("ann", "Chain");
    w.status = WorkflowStatus::Active;
    e.create(&w, &[]).await;
    let (r, steps, nodes) = chain(&w, n);
    e.store
        .create_run(&ed("ann"), &r, &steps, &nodes, w.settings.max_nodes(), None)
        .await
        .unwrap();
    (e, r, steps, nodes)
}

fn claimed(step: &Step) -> Step {
    let mut s = step.clone();
    s.start(now(), StdDuration::from_secs(60)).unwrap();
    s
}

#[tokio::test]
async fn a_run_is_stored_with_its_steps_and_nodes_and_listed_newest_first() {
    let (e, r, steps, nodes) = started(3).await;
    let (got, got_steps) = e
        .store
        .get_run(&r.workflow_id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, r);
    assert_eq!(got_steps, steps);
    let w = e.get(&r.workflow_id).await.unwrap();
    assert_eq!(w.node_count, 3);
    let (_, first) = e
        .store
        .get_node(&r.workflow_id, &nodes[0].id)
        .await
        .unwrap();
    assert_eq!(
        first.unwrap().child_count,
        1,
        "a chain: each new node has the next as child"
    );
    // Another workflow's id finds nothing.
    assert!(
        e.store
            .get_run(&ids::new_id(), &r.id)
            .await
            .unwrap()
            .is_none()
    );

    let (later, later_steps, later_nodes) = chain(&w, 1);
    e.store
        .create_run(
            &ed("ann"),
            &later,
            &later_steps,
            &later_nodes,
            w.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    let page = e.store.list_runs(&r.workflow_id, 1, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = e
        .store
        .list_runs(&r.workflow_id, 10, page.next.as_ref())
        .await
        .unwrap();
    let order: Vec<&str> = page
        .items
        .iter()
        .chain(&rest.items)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(order, [later.id.as_str(), r.id.as_str()]);
    assert!(matches!(
        e.store
            .list_runs(&ids::new_id(), 10, page.next.as_ref())
            .await,
        Err(StoreError::BadPageKey)
    ));
}

#[tokio::test]
async fn a_run_over_max_nodes_or_by_a_stranger_writes_nothing() {
    let e = env().await;
    let mut w = workflow("ann", "Small");
    w.status = WorkflowStatus::Active;
    w.settings.0.insert("max_nodes".into(), 2.into());
    e.create(&w, &[]).await;
    let (r, steps, nodes) = chain(&w, 3);
    let err = e
        .store
        .create_run(&ed("ann"), &r, &steps, &nodes, w.settings.max_nodes(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WorkflowRejected(Some(_))),
        "{err:?}"
    );
    let (r, steps, nodes) = chain(&w, 2);
    let err = e
        .store
        .create_run(&ed("eve"), &r, &steps, &nodes, w.settings.max_nodes(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WorkflowRejected(Some(_))),
        "{err:?}"
    );
    // A limit other than the stored one (changed since the caller read it) holds nothing.
    let err = e
        .store
        .create_run(&ed("ann"), &r, &steps, &nodes, 10, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::WorkflowRejected(Some(w)) if w.settings.max_nodes() == 2),
        "{err:?}"
    );
    assert!(e.store.get_run(&w.id, &r.id).await.unwrap().is_none());
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 0);
    // At the limit as read, it is written.
    e.store
        .create_run(&ed("ann"), &r, &steps, &nodes, 2, None)
        .await
        .unwrap();
    assert_eq!(e.get(&w.id).await.unwrap().node_count, 2);
}

#[tokio::test]
async fn a_step_is_claimed_once_and_a_lease_must_have_ended_to_take_it_over() {
    let (e, r, steps, _) = started(1).await;
    let first = claimed(&steps[0]);
    assert!(
        e.store
            .claim_step(&first, StepStatus::Pending, 0, now())
            .await
            .unwrap()
    );
    assert!(
        !e.store
            .claim_step(&first, StepStatus::Pending, 0, now())
            .await
            .unwrap()
    );
    // Taking over the running attempt: only once its lease has ended.
    let lease = first.lease_until.unwrap();
    let mut second = first.clone();
    second.status = StepStatus::Pending;
    let mut second = second.clone();
    second.start(lease, StdDuration::from_secs(60)).unwrap();
    let early = lease - chrono::Duration::seconds(1);
    assert!(
        !e.store
            .claim_step(&second, StepStatus::Running, 1, early)
            .await
            .unwrap()
    );
    assert!(
        e.store
            .claim_step(&second, StepStatus::Running, 1, lease)
            .await
            .unwrap()
    );
    let (_, stored) = e
        .store
        .get_run(&r.workflow_id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored[0].attempts, 2);
}

#[tokio::test]
async fn a_commit_holds_only_for_the_claiming_attempt_at_the_runs_version() {
    let (e, r, steps, nodes) = started(2).await;
    let first = claimed(&steps[0]);
    assert!(
        e.store
            .claim_step(&first, StepStatus::Pending, 0, now())
            .await
            .unwrap()
    );
    let mut done = first.clone();
    done.succeed(now(), Usage::default()).unwrap();
    let mut node = nodes[0].clone();
    node.content = "Written by the model.".into();
    node.version += 1;
    let mut progressed = r.clone();
    progressed.status = RunStatus::Running;
    let commit = StepCommit {
        step: done.clone(),
        attempt: 1,
        node: Some(node.clone()),
        run: progressed.clone(),
        run_version: r.version,
    };
    // A stale run version: the run moved on, the claim still holds.
    let stale = StepCommit {
        run_version: r.version + 5,
        ..commit.clone()
    };
    assert!(matches!(
        e.store.commit_step(&stale).await,
        Err(StoreError::Conflict)
    ));
    assert!(e.store.commit_step(&commit).await.unwrap());
    let (got, got_steps) = e
        .store
        .get_run(&r.workflow_id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.version, got.status),
        (r.version + 1, RunStatus::Running)
    );
    assert_eq!(got_steps[0].status, StepStatus::Succeeded);
    let (_, stored) = e.store.get_node(&r.workflow_id, &node.id).await.unwrap();
    let stored = stored.unwrap();
    assert_eq!(stored.content, "Written by the model.");
    assert_eq!(stored.child_count, 1, "the store's child count stays");
    // The same attempt again: its claim is over, nothing is written.
    let again = StepCommit {
        run_version: r.version + 1,
        ..commit
    };
    assert!(!e.store.commit_step(&again).await.unwrap());
    assert_eq!(
        e.store
            .get_run(&r.workflow_id, &r.id)
            .await
            .unwrap()
            .unwrap()
            .0
            .version,
        r.version + 1
    );
}

#[tokio::test]
async fn update_run_writes_at_the_expected_version_only() {
    let (e, r, steps, _) = started(1).await;
    let mut paused = r.clone();
    paused.transition(RunStatus::Paused, now()).unwrap();
    assert!(matches!(
        e.store.update_run(&paused, r.version + 1, &[]).await,
        Err(StoreError::Conflict)
    ));
    let mut skipped = steps[0].clone();
    skipped.skip(now()).unwrap();
    // A step not in the status given: nothing written.
    assert!(matches!(
        e.store
            .update_run(
                &paused,
                r.version,
                &[(skipped.clone(), StepStatus::Running)]
            )
            .await,
        Err(StoreError::Conflict)
    ));
    e.store
        .update_run(&paused, r.version, &[(skipped, StepStatus::Pending)])
        .await
        .unwrap();
    let (got, got_steps) = e
        .store
        .get_run(&r.workflow_id, &r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.status, got.version),
        (RunStatus::Paused, r.version + 1)
    );
    assert_eq!(got_steps[0].status, StepStatus::Skipped);
}
