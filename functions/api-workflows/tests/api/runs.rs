//! Runs over HTTP: starting one (plans, defaults, idempotency, a workflow that is not active,
//! bad bodies and prompt templates), reading them, and pause, resume, cancel and approve; who
//! may do what; and the workflow's status carried to its runs. The worker is not here: the
//! queue is the in-memory fake, so each test sees exactly what was queued.

use crate::harness::*;
use serde_json::{Value, json};
use shared::domain::ids;

fn user() -> String {
    ids::new_id()
}

fn runs_uri(id: &str) -> String {
    format!("/api/v3/workflows/{id}/runs")
}

/// An active workflow of `owner` (with `settings`), its id.
async fn active_workflow(h: &Harness, owner: &str, settings: Value) -> String {
    let w = h
        .create(owner, json!({"name": "Saga", "settings": settings}))
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let r = h
        .post(
            &format!("/api/v3/workflows/{id}/status"),
            owner,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(r.ok(200)["status"], "active");
    id
}

async fn start(h: &Harness, user: &str, id: &str, body: Value) -> Reply {
    h.post(&runs_uri(id), user, body).await
}

fn statuses(run: &Value) -> Vec<&str> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_continue_run_is_queued_with_its_chain_of_new_nodes() {
    let h = Harness::new().await;
    let alice = user();
    let id = active_workflow(&h, &alice, json!({"priority": 4})).await;
    let r = start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 3}, "model": "builtin"}),
    )
    .await;
    let run = r.ok(202).clone();
    assert_eq!(run["status"], "queued");
    assert_eq!(run["workflow_id"], id.as_str());
    assert_eq!(run["model"], "builtin");
    assert_eq!(run["priority"], 4, "the workflow's settings.priority");
    assert_eq!(run["steps_total"], 3);
    assert_eq!(statuses(&run), ["pending", "pending", "pending"]);
    // The steps write a chain: each node the child of the one before, all pending.
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[0]["parent_node_id"], Value::Null);
    for pair in steps.windows(2) {
        assert_eq!(pair[1]["parent_node_id"], pair[0]["node_id"]);
        assert_eq!(pair[1]["depends_on"], pair[0]["id"]);
    }
    let nodes = h
        .get(&format!("/api/v3/workflows/{id}/nodes"), &alice)
        .await;
    let nodes = nodes.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["status"] == "pending"));
    // Only the first step may run now: one message, on the high queue, grouped by owner.
    let sent = h.queue.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].priority, 4);
    assert_eq!(sent[0].owner_id, alice);
    assert_eq!(sent[0].message.step_id, steps[0]["id"].as_str().unwrap());
    assert_eq!(sent[0].message.attempt, 1);
    // Read back: the run alone, and in the list, newest first.
    let run_id = run["id"].as_str().unwrap();
    let got = h.get(&format!("{}/{run_id}", runs_uri(&id)), &alice).await;
    assert_eq!(got.ok(200), &run);
    let second = start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 1}}),
    )
    .await;
    let second_id = second.ok(202)["id"].as_str().unwrap().to_string();
    let list = h.get(&runs_uri(&id), &alice).await;
    let ids: Vec<&str> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second_id.as_str(), run_id]);
}

#[tokio::test]
async fn a_pending_plan_runs_the_pending_nodes_parents_first() {
    let h = Harness::new().await;
    let alice = user();
    let id = active_workflow(&h, &alice, json!({})).await;
    let node = |title: &str, parent: Option<&str>| json!({"title": title, "status": "pending", "parent_id": parent, "prompt": format!("Write {title}.")});
    let root = h
        .post(
            &format!("/api/v3/workflows/{id}/nodes"),
            &alice,
            node("Root", None),
        )
        .await;
    let root_id = root.ok(201)["id"].as_str().unwrap().to_string();
    for title in ["Left", "Right"] {
        h.post(
            &format!("/api/v3/workflows/{id}/nodes"),
            &alice,
            node(title, Some(&root_id)),
        )
        .await
        .ok(201);
    }
    let run = start(&h, &alice, &id, json!({"plan": {"mode": "pending"}})).await;
    let run = run.ok(202).clone();
    assert_eq!(run["steps_total"], 3);
    assert_eq!(run["steps"][0]["node_id"], root_id.as_str());
    assert_eq!(h.queue.take().len(), 1, "the children wait for the root");
    // Nothing left pending: a second pending run has nothing to do.
    let again = start(&h, &alice, &id, json!({"plan": {"mode": "pending"}})).await;
    assert_eq!(again.status, 422, "{}", again.text);
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_run_and_another_body_is_refused() {
    let h = Harness::new().await;
    let alice = user();
    let id = active_workflow(&h, &alice, json!({})).await;
    let body = json!({"plan": {"mode": "continue", "steps": 2}});
    let uri = runs_uri(&id);
    let send = |body: Value| {
        h.send(
            "POST",
            &uri,
            Some(&alice),
            Some(body),
            &[("idempotency-key", "start-1")],
        )
    };
    let first = send(body.clone()).await;
    let first_body = first.ok(202).clone();
    let replay = send(body.clone()).await;
    assert_eq!(replay.ok(202), &first_body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let other = send(json!({"plan": {"mode": "continue", "steps": 3}})).await;
    other.problem(422, "idempotency-key-reused");
    // One run, one chain of two nodes, one message.
    let list = h.get(&runs_uri(&id), &alice).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);
    let nodes = h
        .get(&format!("/api/v3/workflows/{id}/nodes"), &alice)
        .await;
    assert_eq!(nodes.ok(200)["items"].as_array().unwrap().len(), 2);
    assert_eq!(h.queue.take().len(), 1);
}

#[tokio::test]
async fn bad_starts_are_refused_and_change_nothing() {
    let h = Harness::new().await;
    let alice = user();
    let draft = h.create_named(&alice, "Draft").await;
    let r = start(
        &h,
        &alice,
        &draft,
        json!({"plan": {"mode": "continue", "steps": 1}}),
    )
    .await;
    r.problem(409, "workflow-not-active");
    let id = active_workflow(&h, &alice, json!({})).await;
    for (body, field) in [
        (
            json!({"plan": {"mode": "continue", "steps": 0}}),
            "plan.steps",
        ),
        (
            json!({"plan": {"mode": "continue", "steps": 51}}),
            "plan.steps",
        ),
        (
            json!({"plan": {"mode": "continue", "steps": 1}, "model": "gpt"}),
            "model",
        ),
        (
            json!({"plan": {"mode": "continue", "steps": 1}, "priority": 9}),
            "priority",
        ),
        (
            json!({"plan": {"mode": "continue", "steps": 1}, "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"plan": {"mode": "continue", "steps": 1, "from_node_id": ids::new_id()}}),
            "plan.from_node_id",
        ),
    ] {
        let r = start(&h, &alice, &id, body.clone()).await;
        let p = r.problem(422, "validation-failed");
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body} -> {}",
            r.text
        );
    }
    let r = start(&h, &alice, &id, json!({"plan": {"mode": "sideways"}})).await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text);
    let list = h.get(&runs_uri(&id), &alice).await;
    assert!(list.ok(200)["items"].as_array().unwrap().is_empty());
    assert!(h.queue.take().is_empty());
}

#[tokio::test]
async fn prompt_templates_are_checked_when_written() {
    let h = Harness::new().await;
    let alice = user();
    let r = h
        .post(
            "/api/v3/workflows",
            &alice,
            json!({"name": "T", "settings": {"prompt_template": "{{ node.titel }}"}}),
        )
        .await;
    let p = r.problem(422, "validation-failed");
    assert_eq!(
        p["errors"][0]["field"], "settings.prompt_template",
        "{}",
        r.text
    );
    let id = active_workflow(
        &h,
        &alice,
        json!({"prompt_template": "{{ workflow.name }}: {{ node.prompt }}", "system_prompt": "Be brief."}),
    )
    .await;
    start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 1}}),
    )
    .await
    .ok(202);
}

#[tokio::test]
async fn viewers_read_runs_editors_control_them_strangers_see_nothing() {
    let h = Harness::new().await;
    let (alice, viewer, stranger) = (user(), user(), user());
    h.account(&viewer).await;
    let id = active_workflow(&h, &alice, json!({})).await;
    h.post(
        &format!("/api/v3/workflows/{id}/shares"),
        &alice,
        json!({"user_id": viewer, "access": "viewer"}),
    )
    .await
    .ok(200);
    let run = start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 1}}),
    )
    .await;
    let run_id = run.ok(202)["id"].as_str().unwrap().to_string();
    let one = format!("{}/{run_id}", runs_uri(&id));
    h.get(&one, &viewer).await.ok(200);
    h.get(&runs_uri(&id), &viewer).await.ok(200);
    start(
        &h,
        &viewer,
        &id,
        json!({"plan": {"mode": "continue", "steps": 1}}),
    )
    .await
    .problem(403, "forbidden");
    h.post(&format!("{one}/pause"), &viewer, json!({}))
        .await
        .problem(403, "forbidden");
    h.get(&one, &stranger).await.problem(404, "not-found");
    h.post(&format!("{one}/cancel"), &stranger, json!({}))
        .await
        .problem(404, "not-found");
    h.get(&format!("{}/{}", runs_uri(&id), ids::new_id()), &alice)
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn pause_resume_and_cancel_follow_the_status_machine() {
    let h = Harness::new().await;
    let alice = user();
    let id = active_workflow(&h, &alice, json!({})).await;
    let run = start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 2}}),
    )
    .await;
    let one = format!("{}/{}", runs_uri(&id), run.ok(202)["id"].as_str().unwrap());
    h.queue.take();
    let paused = h.post(&format!("{one}/pause"), &alice, json!({})).await;
    assert_eq!(paused.ok(200)["status"], "paused");
    let again = h.post(&format!("{one}/pause"), &alice, json!({})).await;
    let p = again.problem(409, "illegal-transition");
    assert!(
        p["detail"].as_str().unwrap().contains("running"),
        "{}",
        again.text
    );
    let resumed = h.post(&format!("{one}/resume"), &alice, json!({})).await;
    assert_eq!(resumed.ok(200)["status"], "running");
    assert_eq!(
        h.queue.take().len(),
        1,
        "resuming queues the ready step again"
    );
    let cancelled = h.post(&format!("{one}/cancel"), &alice, json!({})).await;
    let cancelled = cancelled.ok(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(statuses(cancelled), ["skipped", "skipped"]);
    h.post(&format!("{one}/retry"), &alice, json!({}))
        .await
        .problem(409, "illegal-transition");
    assert!(h.queue.take().is_empty());
}

#[tokio::test]
async fn approval_runs_wait_for_each_approve() {
    let h = Harness::new().await;
    let alice = user();
    let id = active_workflow(&h, &alice, json!({})).await;
    let run = start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 2}, "approval": true}),
    )
    .await;
    let run = run.ok(202).clone();
    assert_eq!(statuses(&run), ["waiting_approval", "waiting_approval"]);
    assert!(h.queue.take().is_empty(), "nothing runs before an approve");
    let one = format!("{}/{}", runs_uri(&id), run["id"].as_str().unwrap());
    let second = run["steps"][1]["id"].as_str().unwrap();
    // The second step's parent is not written yet.
    h.post(&format!("{one}/steps/{second}/approve"), &alice, json!({}))
        .await
        .problem(409, "step-not-approvable");
    let first = run["steps"][0]["id"].as_str().unwrap();
    let approved = h
        .post(&format!("{one}/steps/{first}/approve"), &alice, json!({}))
        .await;
    assert_eq!(statuses(approved.ok(200)), ["pending", "waiting_approval"]);
    let sent = h.queue.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.step_id, first);
    h.post(
        &format!("{one}/steps/{}/approve", ids::new_id()),
        &alice,
        json!({}),
    )
    .await
    .problem(404, "not-found");
}

#[tokio::test]
async fn pausing_or_cancelling_the_workflow_carries_to_its_runs() {
    let h = Harness::new().await;
    let alice = user();
    let id = active_workflow(&h, &alice, json!({})).await;
    let run = start(
        &h,
        &alice,
        &id,
        json!({"plan": {"mode": "continue", "steps": 2}}),
    )
    .await;
    let one = format!("{}/{}", runs_uri(&id), run.ok(202)["id"].as_str().unwrap());
    let status_uri = format!("/api/v3/workflows/{id}/status");
    let status = |s: &'static str| h.post(&status_uri, &alice, json!({"status": s}));
    status("paused").await.ok(200);
    assert_eq!(h.get(&one, &alice).await.ok(200)["status"], "paused");
    // A run of a paused workflow does not resume.
    h.post(&format!("{one}/resume"), &alice, json!({}))
        .await
        .problem(409, "workflow-not-active");
    status("cancelled").await.ok(200);
    let run = h.get(&one, &alice).await;
    assert_eq!(run.ok(200)["status"], "cancelled");
    assert_eq!(statuses(run.ok(200)), ["skipped", "skipped"]);
}
