//! The scheduler function against the emulator's table: a user's schedule fired (twice for
//! the same scheduled time, as a retried delivery would) starts one run; another scheduled
//! time starts another; a workflow that is not active skips the fire and the schedule says
//! why; the queue-depth job reports each dead-letter queue as an EMF metric.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{Duration, TimeZone, Utc};
use scheduler::{Deps, handle};
use serde_json::{Value, json};
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::aws::kms::KmsSealer;
use shared::domain::schedule::Schedule;
use shared::domain::{Principal, Role, Workflow, WorkflowStatus, ids};
use shared::ports::{Runs, Schedules, StepQueue, Workflows};
use shared::testing::runs::{MemoryDeadLetters, MemoryQueue, active_workflow};

type TestDeps = Deps<DynamoStore, DynamoAccounts, MemoryQueue, MemoryDeadLetters, KmsSealer>;

async fn deps() -> TestDeps {
    let (client, table) = localstack::testing::fresh_table("scheduler").await;
    Deps {
        store: DynamoStore::new(client.clone(), table.clone()),
        accounts: DynamoAccounts::new(client, table),
        queue: MemoryQueue::new(),
        dead_letters: MemoryDeadLetters::new(),
        sealer: KmsSealer::new(
            &localstack::testing::emulator_config().await,
            localstack::testing::fresh_hmac_alias("audit").await,
        ),
    }
}

/// Alice's workflow (in `status`) with a schedule of a one-step continue run.
async fn scheduled(d: &TestDeps, status: WorkflowStatus) -> (Workflow, Schedule) {
    let alice = ids::new_id();
    shared::testing::accounts::seed_signed_in(&d.accounts, &alice, Role::Editor).await;
    let now = Utc::now();
    let mut w = active_workflow(&Principal::user(&alice, Role::Editor), "Nightly", now);
    w.status = status;
    d.store.create_workflow(&w, &[], None).await.unwrap();
    let s = Schedule {
        id: ids::new_id(),
        workflow_id: w.id.clone(),
        owner_id: alice,
        expression: "rate(1 minute)".into(),
        timezone: "UTC".into(),
        run: json!({"plan": {"mode": "continue", "steps": 1}, "model": "builtin"}),
        enabled: true,
        created_at: now,
        updated_at: now,
        version: 1,
        last_fire: None,
    };
    assert!(d.store.create_schedule(&s, 20).await.unwrap());
    (w, s)
}

fn fire(s: &Schedule, at: chrono::DateTime<Utc>) -> Value {
    json!({
        "kind": "user_schedule",
        "workflow_id": s.workflow_id,
        "schedule_id": s.id,
        "scheduled_time": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

#[tokio::test]
async fn a_fire_starts_one_run_per_scheduled_time_even_when_delivered_twice() {
    let d = deps().await;
    let (w, s) = scheduled(&d, WorkflowStatus::Active).await;
    let t1 = Utc
        .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .unwrap();
    let first = handle(&d, fire(&s, t1), Utc::now()).await.unwrap();
    let run_id = first["started"].as_str().unwrap().to_string();
    assert_eq!(first["replayed"], false);
    let again = handle(&d, fire(&s, t1), Utc::now()).await.unwrap();
    assert_eq!(again["started"], run_id.as_str(), "{again}");
    assert_eq!(again["replayed"], true);
    let runs = d.store.list_runs(&w.id, 10, None).await.unwrap().items;
    assert_eq!(runs.len(), 1, "one run for one scheduled time");
    assert_eq!(runs[0].owner_id, s.owner_id);
    assert_eq!(d.queue.sent().len(), 1, "its step was queued once");

    let t2 = t1 + Duration::minutes(1);
    let next = handle(&d, fire(&s, t2), Utc::now()).await.unwrap();
    assert_ne!(next["started"], run_id.as_str());
    assert_eq!(
        d.store
            .list_runs(&w.id, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let stored = d.store.get_schedule(&w.id, &s.id).await.unwrap().unwrap();
    let last = stored.last_fire.unwrap();
    assert_eq!(last.scheduled_time, t2);
    assert_eq!(last.run_id.as_deref(), next["started"].as_str());
    // A late duplicate of the first fire does not overwrite the record of the later one.
    handle(&d, fire(&s, t1), Utc::now()).await.unwrap();
    let stored = d.store.get_schedule(&w.id, &s.id).await.unwrap().unwrap();
    assert_eq!(stored.last_fire.unwrap().scheduled_time, t2);
}

#[tokio::test]
async fn a_workflow_that_is_not_active_skips_the_fire_and_the_schedule_says_why() {
    let d = deps().await;
    let (w, s) = scheduled(&d, WorkflowStatus::Paused).await;
    let t = Utc
        .with_ymd_and_hms(2026, 12, 1, 11, 0, 0)
        .single()
        .unwrap();
    let out = handle(&d, fire(&s, t), Utc::now()).await.unwrap();
    assert_eq!(
        out["skipped"], "the workflow is paused, not active",
        "{out}"
    );
    assert!(
        d.store
            .list_runs(&w.id, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(d.queue.sent().is_empty());
    let stored = d.store.get_schedule(&w.id, &s.id).await.unwrap().unwrap();
    let last = stored.last_fire.unwrap();
    assert_eq!((last.scheduled_time, last.run_id), (t, None));
    assert_eq!(
        last.skipped.as_deref(),
        Some("the workflow is paused, not active")
    );

    // A schedule deleted after its trigger fired: nothing to do, nothing recorded.
    d.store.delete_schedule(&w.id, &s.id).await.unwrap();
    let out = handle(&d, fire(&s, t), Utc::now()).await.unwrap();
    assert_eq!(out["skipped"], "the schedule no longer exists");
}

#[tokio::test]
async fn the_queue_depth_job_reports_each_dead_letter_queue_and_bad_events_fail() {
    let d = deps().await;
    d.dead_letters.push(StepQueue::High, "{}", Some("g"));
    d.dead_letters.push(StepQueue::High, "{}", Some("g"));
    let capture = shared::emf::Capture::start();
    let out = handle(&d, json!({"kind": "queue_depths"}), Utc::now())
        .await
        .unwrap();
    assert_eq!(out["dead_letter_messages"]["high"], 2, "{out}");
    assert_eq!(out["dead_letter_messages"]["critical"], 0);
    let records = capture.with_metric("DeadLetterMessages");
    assert_eq!(records.len(), 4, "one per queue");
    assert!(
        records
            .iter()
            .any(|r| r["Queue"] == "high" && r["DeadLetterMessages"] == 2.0),
        "{records:?}"
    );
    for bad in [
        json!({}),
        json!({"kind": "launch"}),
        json!({"kind": "user_schedule"}),
    ] {
        assert!(handle(&d, bad.clone(), Utc::now()).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_sweep_sends_lost_step_messages_again_and_leaves_the_rest() {
    use shared::domain::run::StepStatus;
    let d = deps().await;
    let alice = Principal::user(ids::new_id(), Role::Editor);
    let long_ago = Utc::now() - Duration::hours(1);
    let w = active_workflow(&alice, "Swept", long_ago);
    d.store.create_workflow(&w, &[], None).await.unwrap();
    // A run started an hour ago whose first message was lost: nothing happened since.
    let (quiet, quiet_steps, nodes) = shared::testing::runs::chain(&w, 2, None, 3, long_ago);
    d.store
        .create_run(
            &alice,
            &quiet,
            &quiet_steps,
            &nodes,
            w.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    // A run whose running attempt's lease ended 30 minutes ago (its worker and message gone).
    let (lost, lost_steps, nodes) = shared::testing::runs::chain(&w, 1, None, 3, long_ago);
    d.store
        .create_run(
            &alice,
            &lost,
            &lost_steps,
            &nodes,
            w.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    let mut step = lost_steps[0].clone();
    step.start(long_ago, std::time::Duration::from_secs(1800))
        .unwrap();
    assert!(
        d.store
            .claim_step(&step, StepStatus::Pending, 0, long_ago)
            .await
            .unwrap()
    );
    // A run just started: its message is surely still in flight.
    let (fresh, fresh_steps, nodes) = shared::testing::runs::chain(&w, 1, None, 3, Utc::now());
    d.store
        .create_run(
            &alice,
            &fresh,
            &fresh_steps,
            &nodes,
            w.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    // A cancelled run is not in the index at all.
    let (over, over_steps, nodes) = shared::testing::runs::chain(&w, 1, None, 3, long_ago);
    d.store
        .create_run(
            &alice,
            &over,
            &over_steps,
            &nodes,
            w.settings.max_nodes(),
            None,
        )
        .await
        .unwrap();
    let mut cancelled = over.clone();
    cancelled
        .transition(shared::domain::run::RunStatus::Cancelled, long_ago)
        .unwrap();
    d.store
        .update_run(&cancelled, over.version, &[])
        .await
        .unwrap();

    let active: Vec<String> = d
        .store
        .active_runs(100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(active.len(), 3, "{active:?}");
    assert!(!active.contains(&over.id), "an ended run leaves the index");

    let out = handle(&d, json!({"kind": "sweep"}), Utc::now())
        .await
        .unwrap();
    assert_eq!(out["runs"], 3, "{out}");
    assert_eq!(out["resent"], 2, "{out}");
    let sent: Vec<(String, String)> = d
        .queue
        .sent()
        .into_iter()
        .map(|m| (m.message.run_id, m.message.step_id))
        .collect();
    assert!(
        sent.contains(&(quiet.id.clone(), quiet_steps[0].id.clone())),
        "{sent:?}"
    );
    assert!(
        sent.contains(&(lost.id.clone(), lost_steps[0].id.clone())),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|(r, _)| r == &fresh.id));
}

#[tokio::test]
async fn the_seal_job_seals_each_chain_with_new_events_once() {
    use shared::domain::audit::{Actor, Chain, Draft, Outcome, Target};
    use shared::ports::AuditLog;
    let deps = deps().await;
    let draft = |i: u32| Draft {
        id: ids::new_id(),
        at: Utc::now(),
        actor: Actor::system(),
        action: "run.succeeded".into(),
        target: Target::new("run", "r1"),
        outcome: Outcome::Success,
        source_ip: None,
        user_agent: None,
        request_id: None,
        detail: serde_json::Map::from_iter([("i".to_string(), json!(i))]),
    };
    let (alice, bob) = (Chain::User("alice".into()), Chain::User("bob".into()));
    for chain in [&alice, &bob] {
        assert!(
            deps.store
                .append(chain, None, &[draft(1), draft(2)])
                .await
                .unwrap()
        );
    }
    let seal = json!({"kind": "seal_audit"});
    let now = Utc::now();
    assert_eq!(
        handle(&deps, seal.clone(), now).await.unwrap(),
        json!({"sealed": 2})
    );
    assert_eq!(
        handle(&deps, seal.clone(), now).await.unwrap(),
        json!({"sealed": 0})
    );
    deps.store.append(&bob, None, &[draft(3)]).await.unwrap();
    assert_eq!(
        handle(&deps, seal, now).await.unwrap(),
        json!({"sealed": 1})
    );
    let latest = deps.store.latest_seal(&bob).await.unwrap().unwrap();
    assert_eq!(
        (latest.seq, latest.hash),
        (3, deps.store.head(&bob).await.unwrap().unwrap().hash)
    );
    assert_eq!(
        deps.store.latest_seal(&alice).await.unwrap().unwrap().seq,
        2
    );
}

#[tokio::test]
async fn the_report_job_makes_yesterdays_report_by_default_or_the_days_it_is_given() {
    use shared::domain::audit::{Actor, Chain, Draft, Outcome, Target};
    use shared::ports::{AuditLog, AuditReports};
    let deps = deps().await;
    let now = Utc::now();
    let yesterday = now - Duration::days(1);
    let at = |t: chrono::DateTime<Utc>, action: &str| Draft {
        id: ids::new_id(),
        at: t,
        actor: Actor::user("root"),
        action: action.into(),
        target: Target::new("account", "bob"),
        outcome: Outcome::Success,
        source_ip: None,
        user_agent: None,
        request_id: None,
        detail: serde_json::Map::new(),
    };
    let bob = Chain::User("bob".into());
    let drafts = [
        at(yesterday, "account.suspended"),
        at(now, "account.reactivated"),
    ];
    assert!(
        deps.store
            .append(&bob, Some("rec-1"), &drafts)
            .await
            .unwrap()
    );
    // The same stream record again: counted once.
    assert!(
        !deps
            .store
            .append(&bob, Some("rec-1"), &drafts)
            .await
            .unwrap()
    );
    let made = handle(&deps, json!({"kind": "compliance_report"}), now)
        .await
        .unwrap();
    assert_eq!(made["events"], 1, "{made}");
    let report = deps
        .store
        .report(yesterday.date_naive())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.figures.by_action["account.suspended"], 1);
    assert_eq!(
        report.figures.privilege_changes[0].action,
        "account.suspended"
    );
    assert!(!report.mac.is_empty());
    let today = json!({"kind": "compliance_report", "date": now.date_naive()});
    assert_eq!(handle(&deps, today, now).await.unwrap()["events"], 1);
    assert_eq!(deps.store.reports(10).await.unwrap().len(), 2);
}
