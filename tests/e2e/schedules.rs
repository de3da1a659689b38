//! Schedules end to end: a schedule created over HTTP becomes an EventBridge Scheduler schedule
//! in the emulator; the gateway fires it (moto never does) on a virtual clock; the scheduler
//! function starts one run per fire; the worker writes each run's document; the schedule shows
//! its last fire and the analytics count the runs.

use chrono::{Duration as Span, Utc};
use e2e::Stack;
use localstack::gateway::schedules::Origin;
use serde_json::json;
use std::time::{Duration, Instant};

const ALICE: &str = "alice";
const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_rate_schedule_starts_a_run_at_each_fire_of_the_clock() {
    let t0 = Utc::now();
    let s = Stack::start_with_clock(t0).await;
    let w = s.active_workflow(ALICE, "Every minute", json!({})).await;
    let created = s
        .post(
            &format!("{w}/schedules"),
            ALICE,
            json!({"expression": "rate(1 minute)", "run": {"plan": {"mode": "continue", "steps": 1}}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let schedule = format!("{w}/schedules/{}", created.body["id"].as_str().unwrap());
    assert_eq!(created.body["next_fire_times"].as_array().unwrap().len(), 5);

    // Three minutes pass: the gateway fires the Scheduler schedule at the scheduler function.
    let fired: Vec<_> = s
        .gateway
        .schedules()
        .advance_to(t0 + Span::seconds(190))
        .await
        .into_iter()
        .filter(|d| d.origin == Origin::Scheduler)
        .collect();
    assert_eq!(fired.len(), 3, "{fired:#?}");
    for d in &fired {
        let answer: serde_json::Value =
            serde_json::from_str(d.outcome.as_ref().expect("the fire was delivered")).unwrap();
        assert!(answer["started"].is_string(), "{answer}");
        assert!(d.payload.contains("scheduled_time"), "{}", d.payload);
    }
    let runs = s.get(&format!("{w}/runs"), ALICE).await;
    let items = runs.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{}", runs.text);
    for run in &items {
        s.until_succeeded(
            &w,
            run["id"].as_str().unwrap(),
            ALICE,
            DEADLINE,
            Duration::from_millis(100),
        )
        .await;
    }
    let shown = s.get(&schedule, ALICE).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(
        shown.body["last_fire"]["run_id"].is_string(),
        "{}",
        shown.text
    );

    // The same minute again (the clock does not go back) fires nothing more.
    let again = s
        .gateway
        .schedules()
        .advance_to(t0 + Span::seconds(190))
        .await;
    assert!(again.iter().all(|d| d.origin != Origin::Scheduler));

    // Analytics count the scheduled runs once they finished.
    let started = Instant::now();
    loop {
        let r = s.get("/api/v3/analytics/overview?range=1h", ALICE).await;
        if r.body["runs_succeeded"] == 3 {
            assert_eq!(r.body["runs_started"], 3, "{}", r.text);
            break;
        }
        assert!(started.elapsed() < DEADLINE, "not counted: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Deleted: its Scheduler schedule is gone too, and the clock fires nothing for it.
    let deleted = s.send("DELETE", &schedule, Some(ALICE), None, &[]).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let later = s
        .gateway
        .schedules()
        .advance_to(t0 + Span::seconds(400))
        .await;
    assert!(
        later.iter().all(|d| d.origin != Origin::Scheduler),
        "{later:#?}"
    );
}
