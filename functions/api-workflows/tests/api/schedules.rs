//! Schedules over HTTP: created with their EventBridge Scheduler trigger and next fire times,
//! refused with 422 naming the bad expression, time zone or run body (and then nothing is
//! stored or triggered), changed at the version read, deleted; who may do what; and a
//! Scheduler that cannot be reached leaving nothing behind.

use crate::harness::*;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::domain::ids;
use shared::testing::schedules::TriggerCall;

fn schedules_uri(id: &str) -> String {
    format!("/api/v3/workflows/{id}/schedules")
}

const RUN: &str = r#"{"plan": {"mode": "continue", "steps": 1}, "model": "builtin"}"#;

fn body(expression: &str, timezone: &str) -> Value {
    json!({"expression": expression, "timezone": timezone, "run": serde_json::from_str::<Value>(RUN).unwrap()})
}

fn times(v: &Value) -> Vec<DateTime<Utc>> {
    v["next_fire_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_schedule_is_created_with_its_trigger_and_next_fire_times_then_changed_and_deleted() {
    let h = Harness::new().await;
    let alice = ids::new_id();
    let w = h.create_named(&alice, "Nightly").await;
    let r = h
        .post(&schedules_uri(&w), &alice, body("rate(1 minute)", "UTC"))
        .await;
    let created = r.ok(201).clone();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["version"], 1);
    assert_eq!(created["owner_id"], alice.as_str());
    let next = times(&created);
    assert_eq!(next.len(), 5);
    assert!(
        next.windows(2)
            .all(|p| p[1] - p[0] == chrono::Duration::minutes(1))
    );
    match &h.triggers.calls()[..] {
        [
            TriggerCall::Put {
                schedule,
                create: true,
            },
        ] => {
            assert_eq!(schedule.id, id);
            assert_eq!(schedule.expression, "rate(1 minute)");
        }
        other => panic!("one trigger created, not {other:?}"),
    }

    // Read back, alone and in the list; a cron in Berlin fires at 09:00 there.
    let got = h.get(&format!("{}/{id}", schedules_uri(&w)), &alice).await;
    assert_eq!(got.ok(200)["expression"], "rate(1 minute)");
    assert_eq!(got.header("etag"), Some("\"1\""));
    let list = h.get(&schedules_uri(&w), &alice).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);

    // A change needs the version read.
    let uri = format!("{}/{id}", schedules_uri(&w));
    let change = json!({"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Berlin"});
    let r = h
        .send("PATCH", &uri, Some(&alice), Some(change.clone()), &[])
        .await;
    r.problem(428, "precondition-required");
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(&alice),
            Some(change.clone()),
            &[("if-match", "\"7\"")],
        )
        .await;
    r.problem(409, "version-conflict");
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(&alice),
            Some(change),
            &[("if-match", "\"1\"")],
        )
        .await;
    let changed = r.ok(200).clone();
    assert_eq!(changed["version"], 2);
    for t in times(&changed) {
        let local = t.with_timezone(&chrono_tz_berlin());
        assert_eq!(local.format("%H:%M").to_string(), "09:00", "{t}");
    }
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(&alice),
            Some(json!({"enabled": false, "expected_version": 2})),
            &[],
        )
        .await;
    let off = r.ok(200).clone();
    assert_eq!(off["enabled"], false);
    assert!(times(&off).is_empty(), "a disabled schedule does not fire");
    let calls = h.triggers.calls();
    assert!(
        matches!(&calls[2], TriggerCall::Put { schedule, create: false } if !schedule.enabled),
        "{calls:?}"
    );

    let r = h.send("DELETE", &uri, Some(&alice), None, &[]).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        h.triggers.calls().last(),
        Some(&TriggerCall::Delete { id: id.clone() })
    );
    h.get(&uri, &alice).await.problem(404, "not-found");
    let r = h.send("DELETE", &uri, Some(&alice), None, &[]).await;
    r.problem(404, "not-found");
}

fn chrono_tz_berlin() -> chrono::FixedOffset {
    // Winter or summer: the test's dates are whatever now is, so compute the offset per date
    // through the schedule's own library.
    let now = Utc::now();
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    use chrono::Offset;
    now.with_timezone(&tz).offset().fix()
}

#[tokio::test]
async fn bad_expressions_time_zones_and_run_bodies_are_422s_naming_the_problem_and_store_nothing() {
    let h = Harness::new().await;
    let alice = ids::new_id();
    let w = h.create_named(&alice, "Nightly").await;
    for (b, field, words) in [
        (body("cron(0 9 * * * *)", "UTC"), "expression", "?"),
        (body("rate(0 minutes)", "UTC"), "expression", "rate"),
        (body("every day", "UTC"), "expression", "cron"),
        (body("rate(1 hour)", "Mars/Base"), "timezone", "Mars/Base"),
        (
            json!({"expression": "rate(1 hour)", "run": {"plan": {"mode": "continue", "steps": 99}}}),
            "run.plan.steps",
            "",
        ),
        (
            json!({"expression": "rate(1 hour)", "run": {"plan": {"mode": "sideways"}}}),
            "run",
            "",
        ),
    ] {
        let r = h.post(&schedules_uri(&w), &alice, b.clone()).await;
        let p = r.problem(422, "validation-failed");
        let e = &p["errors"][0];
        assert_eq!(e["field"], field, "{b}: {p}");
        assert!(e["message"].as_str().unwrap().contains(words), "{b}: {p}");
    }
    let r = h
        .post(
            &schedules_uri(&w),
            &alice,
            json!({"expression": "rate(1 hour)"}),
        )
        .await;
    let p = r.problem(422, "validation-failed");
    assert!(p["detail"].as_str().unwrap().contains("run"), "{p}");
    assert!(h.triggers.calls().is_empty());
    let list = h.get(&schedules_uri(&w), &alice).await;
    assert!(list.ok(200)["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn only_those_who_may_change_the_workflow_schedule_it_and_an_unreachable_scheduler_leaves_nothing()
 {
    let h = Harness::new().await;
    let (alice, bob) = (ids::new_id(), ids::new_id());
    let w = h.create_named(&alice, "Nightly").await;
    // Bob: not his workflow.
    let r = h
        .post(&schedules_uri(&w), &bob, body("rate(1 hour)", "UTC"))
        .await;
    r.problem(404, "not-found");
    h.get(&schedules_uri(&w), &bob)
        .await
        .problem(404, "not-found");
    // Shared with Bob as a viewer: he sees the schedules, he cannot add one.
    h.account(&bob).await;
    let r = h
        .post(
            &format!("/api/v3/workflows/{w}/shares"),
            &alice,
            json!({"user_id": bob, "access": "viewer"}),
        )
        .await;
    assert!(r.status < 300, "{}", r.text);
    h.get(&schedules_uri(&w), &bob).await.ok(200);
    let r = h
        .post(&schedules_uri(&w), &bob, body("rate(1 hour)", "UTC"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // EventBridge Scheduler unreachable: 503, and the schedule is not kept.
    h.triggers.fail_next("scheduler down");
    let r = h
        .post(&schedules_uri(&w), &alice, body("rate(1 hour)", "UTC"))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    let list = h.get(&schedules_uri(&w), &alice).await;
    assert!(list.ok(200)["items"].as_array().unwrap().is_empty());
}
