//! What subscribers are told of a change (`shared::domain::broadcast`): the kind of each
//! workflow and node change, run and step events in order, nothing for a change that changes
//! nothing, and frames that always fit API Gateway's 32 KB.

use chrono::Utc;
use serde_json::Value;
use shared::domain::broadcast::{
    Audience, MAX_FRAME_BYTES, Message, node_update, run_updates, workflow_update,
};
use shared::domain::run::{ErrorKind, RetryPolicy, Run, RunStatus, Step, StepError};
use shared::domain::{
    Node, NodeFields, NodeStatus, Principal, Role, Workflow, WorkflowStatus, ids,
};
use shared::testing::runs::{active_workflow, chain};

fn frame(m: &Message) -> Value {
    assert!(m.frame.len() <= MAX_FRAME_BYTES, "{} bytes", m.frame.len());
    serde_json::from_str(&m.frame).unwrap()
}

fn workflow() -> Workflow {
    let mut w = active_workflow(&Principal::user("ann", Role::Editor), "Chain", Utc::now());
    w.status = WorkflowStatus::Draft;
    w.shares
        .insert("bob".into(), shared::domain::ShareAccess::Viewer);
    w
}

#[test]
fn a_workflow_change_names_its_kind_and_keeps_shares_and_settings_out() {
    let w = workflow();
    let created = workflow_update(None, Some(&w)).unwrap();
    let f = frame(&created);
    assert_eq!(
        (f["type"].as_str(), f["update_type"].as_str()),
        (Some("workflow_update"), Some("created"))
    );
    assert_eq!(f["workflow"]["name"], "Chain");
    assert!(f["workflow"].get("shares").is_none() && f["workflow"].get("settings").is_none());
    assert_eq!(created.audience, Audience::Workflow(w.id.clone()));

    assert_eq!(workflow_update(Some(&w), Some(&w)), None, "no difference");
    let mut renamed = w.clone();
    renamed.name = "Renamed".into();
    assert_eq!(
        frame(&workflow_update(Some(&w), Some(&renamed)).unwrap())["update_type"],
        "updated"
    );
    let mut active = w.clone();
    active.status = WorkflowStatus::Active;
    assert_eq!(
        frame(&workflow_update(Some(&w), Some(&active)).unwrap())["update_type"],
        "status_changed"
    );
    let mut deleted = w.clone();
    deleted.status = WorkflowStatus::Deleted;
    assert_eq!(
        frame(&workflow_update(Some(&w), Some(&deleted)).unwrap())["update_type"],
        "deleted"
    );
    assert_eq!(
        frame(&workflow_update(Some(&w), None).unwrap())["update_type"],
        "deleted"
    );
}

fn node(w: &Workflow, content: &str) -> Node {
    let mut n = Node::new(
        ids::new_id(),
        w.id.clone(),
        None,
        NodeFields::pending("Part"),
        Utc::now(),
    );
    n.content = content.into();
    n
}

#[test]
fn a_node_change_carries_the_node_unless_it_would_not_fit_in_a_frame() {
    let w = workflow();
    let n = node(&w, "Some text.");
    let f = frame(&node_update(None, Some(&n)).unwrap());
    assert_eq!(
        (f["update_type"].as_str(), f["node"]["content"].as_str()),
        (Some("created"), Some("Some text."))
    );
    let mut done = n.clone();
    done.status = NodeStatus::Completed;
    assert_eq!(
        frame(&node_update(Some(&n), Some(&done)).unwrap())["update_type"],
        "status_changed"
    );
    assert_eq!(node_update(Some(&done), Some(&done)), None);
    let gone = frame(&node_update(Some(&done), None).unwrap());
    assert_eq!(
        (gone["update_type"].as_str(), gone["node_id"].as_str()),
        (Some("deleted"), Some(n.id.as_str()))
    );

    let long = node(&w, &"word ".repeat(10_000));
    let f = frame(&node_update(None, Some(&long)).unwrap());
    assert_eq!(
        (f["node"].clone(), f["truncated"].clone()),
        (Value::Null, Value::Bool(true))
    );
    assert_eq!(f["node_id"], long.id.as_str());
}

fn run_of(w: &Workflow, n: u32) -> (Run, Vec<Step>) {
    let (r, steps, _) = chain(w, n, None, 3, Utc::now());
    (r, steps)
}

fn events(messages: &[Message]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            let f = frame(m);
            (
                f["type"].as_str().unwrap().to_string(),
                f["event"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_runs_changes_become_run_and_step_events_in_order() {
    let w = workflow();
    let now = Utc::now();
    let (queued, steps) = run_of(&w, 2);
    assert!(
        run_updates(None, Some((&queued, &steps)), now).is_empty(),
        "a queued run says nothing yet"
    );

    // Started, with its first step claimed.
    let mut running = queued.clone();
    running.transition(RunStatus::Running, now).unwrap();
    let mut claimed = steps.clone();
    claimed[0]
        .start(now, std::time::Duration::from_secs(60))
        .unwrap();
    let m = run_updates(Some((&queued, &steps)), Some((&running, &claimed)), now);
    assert_eq!(
        events(&m),
        [
            ("run_update".into(), "started".into()),
            ("step_update".into(), "started".into())
        ]
    );

    // The attempt fails and a retry waits 2 s: `retrying`, with the delay.
    let mut retrying = claimed.clone();
    let policy = RetryPolicy::default();
    retrying[0]
        .fail(
            now,
            StepError::new(ErrorKind::Throttled, "slow down"),
            &policy,
            0.5,
        )
        .unwrap();
    let m = run_updates(Some((&running, &claimed)), Some((&running, &retrying)), now);
    assert_eq!(events(&m), [("step_update".into(), "retrying".into())]);
    let f = frame(&m[0]);
    assert_eq!(f["attempt"], 1);
    assert!(f["delay_s"].as_i64().is_some(), "{f}");
    assert_eq!(f["last_error"]["kind"], "throttled");

    // Nothing moved: nothing to say.
    assert!(
        run_updates(
            Some((&running, &retrying)),
            Some((&running, &retrying)),
            now
        )
        .is_empty()
    );

    // Paused, resumed, cancelled (the steps left are skipped).
    let mut paused = running.clone();
    paused.transition(RunStatus::Paused, now).unwrap();
    assert_eq!(
        events(&run_updates(
            Some((&running, &retrying)),
            Some((&paused, &retrying)),
            now
        )),
        [("run_update".into(), "paused".into())]
    );
    let mut resumed = paused.clone();
    resumed.transition(RunStatus::Running, now).unwrap();
    assert_eq!(
        events(&run_updates(
            Some((&paused, &retrying)),
            Some((&resumed, &retrying)),
            now
        )),
        [("run_update".into(), "resumed".into())]
    );
    let mut cancelled = resumed.clone();
    cancelled.transition(RunStatus::Cancelled, now).unwrap();
    let mut skipped = retrying.clone();
    for s in &mut skipped {
        s.skip(now).unwrap();
    }
    assert_eq!(
        events(&run_updates(
            Some((&resumed, &retrying)),
            Some((&cancelled, &skipped)),
            now
        )),
        [
            ("step_update".into(), "cancelled".into()),
            ("step_update".into(), "cancelled".into()),
            ("run_update".into(), "cancelled".into()),
        ]
    );
}

#[test]
fn live_text_longer_than_a_delta_is_split_at_characters_with_running_offsets() {
    use shared::domain::broadcast::{MAX_DELTA_BYTES, node_deltas};
    // Four-byte characters, quotes and control characters (six bytes escaped): a split by
    // characters or by raw bytes would overflow a frame or break a character.
    for unit in ["\u{1F600}", "\"", "\u{1}", "é"] {
        let text = unit.repeat(3 * MAX_DELTA_BYTES / unit.len());
        let messages = node_deltas("w1", "n1", "r1", 2, 5, 100, &text);
        assert!(messages.len() >= 2, "{unit:?}: split");
        let frames: Vec<Value> = messages.iter().map(frame).collect();
        let mut joined = String::new();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f["seq"], 5 + i as u64);
            assert_eq!(f["offset"], 100 + joined.chars().count() as u64, "{unit:?}");
            assert!(f.get("truncated").is_none(), "{unit:?}: never truncated");
            joined.push_str(f["text"].as_str().unwrap());
        }
        assert_eq!(joined, text, "{unit:?}");
        assert!(
            messages
                .iter()
                .all(|m| m.audience == Audience::Workflow("w1".into()))
        );
        assert!(
            frames
                .iter()
                .all(|f| f["attempt"] == 2 && f["node_id"] == "n1")
        );
    }
}

#[test]
fn a_run_notifies_its_owner_once_when_it_ends_and_a_share_notifies_only_the_new_user() {
    use shared::domain::broadcast::{run_notification, share_notifications};
    let w = workflow();
    let now = Utc::now();
    let (queued, _) = run_of(&w, 1);
    let mut running = queued.clone();
    running.transition(RunStatus::Running, now).unwrap();
    assert!(run_notification(Some(&queued), Some(&running)).is_none());
    let mut failed = running.clone();
    failed.transition(RunStatus::Failed, now).unwrap();
    let m = run_notification(Some(&running), Some(&failed)).unwrap();
    assert_eq!(m.audience, Audience::User(w.owner_id.clone()));
    assert_eq!(frame(&m)["event"], "run_failed");
    assert!(
        run_notification(Some(&failed), Some(&failed)).is_none(),
        "a repeat of the same status says nothing"
    );

    // bob already had access; carl is new.
    let mut shared_more = w.clone();
    shared_more
        .shares
        .insert("carl".into(), shared::domain::ShareAccess::Editor);
    let m = share_notifications(Some(&w), Some(&shared_more));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].audience, Audience::User("carl".into()));
    assert_eq!(frame(&m[0])["access"], "editor");
    assert!(share_notifications(Some(&w), Some(&w)).is_empty());
}

#[test]
fn revoking_a_share_or_deleting_the_workflow_names_the_readers_who_lost_it() {
    use shared::domain::broadcast::{Change, revoked_readers};
    let w = workflow(); // shared with bob
    let mut unshared = w.clone();
    unshared.shares.clear();
    let change = |old: &Workflow, new: Option<&Workflow>| Change::Workflow {
        old: Some(old.clone()),
        new: new.cloned(),
    };
    assert_eq!(
        revoked_readers(&change(&w, Some(&unshared))),
        [("bob".to_string(), w.id.clone())]
    );
    let mut deleted = w.clone();
    deleted.status = WorkflowStatus::Deleted;
    assert_eq!(revoked_readers(&change(&w, Some(&deleted))).len(), 1);
    assert_eq!(revoked_readers(&change(&w, None)).len(), 1);
    let mut renamed = w.clone();
    renamed.name = "Renamed".into();
    assert!(revoked_readers(&change(&w, Some(&renamed))).is_empty());
}
