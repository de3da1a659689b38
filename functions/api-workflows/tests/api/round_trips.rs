//! DynamoDB requests per route, counted by an SDK interceptor (DESIGN.md §3 budget: one where a
//! single request can do it, two at most otherwise; a workflow with its nodes is one Query).
//! `cargo nextest run -p api-workflows round_trips --no-capture` prints the table.

use crate::harness::*;
use serde_json::json;

/// (label, method, uri, body, headers, expected DynamoDB requests)
type Case<'a> = (
    &'a str,
    &'a str,
    String,
    Option<serde_json::Value>,
    Vec<(&'a str, &'a str)>,
    usize,
);

#[tokio::test]
async fn every_route_meets_the_round_trip_budget() {
    let h = Harness::new().await;
    let created = h.create(ALICE, json!({"name": "W", "nodes": [{"ref": "r", "title": "root"}, {"parent_ref": "r", "title": "leaf"}]})).await;
    let id = created["id"].as_str().unwrap().to_string();
    let root = created["nodes"][0]["id"].as_str().unwrap().to_string();
    let leaf = created["nodes"][1]["id"].as_str().unwrap().to_string();
    let other = h.create_named(ALICE, "other").await;
    // Shares name users by ULID ids, as the identity service makes them.
    let bob_id = shared::domain::ids::new_id();
    h.account(&bob_id).await;
    h.counter.take();
    let w = format!("/api/v3/workflows/{id}");
    let export = h.get(&format!("{w}/export"), ALICE).await.body.clone();
    h.counter.take();
    let first_page = h.get(&format!("{w}/nodes?limit=1"), ALICE).await;
    let cursor = first_page.body["next_cursor"].as_str().unwrap().to_string();
    h.counter.take();

    let cases: Vec<Case> = vec![
        (
            "POST /workflows (with nodes)",
            "POST",
            "/api/v3/workflows".into(),
            Some(json!({"name": "n", "nodes": [{"title": "a"}]})),
            vec![],
            1,
        ),
        (
            "POST /workflows (Idempotency-Key replay)",
            "POST",
            "/api/v3/workflows".into(),
            Some(json!({"name": "k"})),
            vec![("idempotency-key", "k1")],
            1,
        ),
        (
            "GET /workflows",
            "GET",
            "/api/v3/workflows?q=w".into(),
            None,
            vec![],
            1,
        ),
        ("GET /workflows/{id}", "GET", w.clone(), None, vec![], 1),
        (
            "PATCH /workflows/{id}",
            "PATCH",
            w.clone(),
            Some(json!({"name": "W2"})),
            vec![("if-match", "1")],
            1,
        ),
        (
            "POST /workflows/{id}/status",
            "POST",
            format!("{w}/status"),
            Some(json!({"status": "active"})),
            vec![],
            1,
        ),
        (
            "GET /workflows/{id}/statistics",
            "GET",
            format!("{w}/statistics"),
            None,
            vec![],
            1,
        ),
        (
            "GET /workflows/{id}/export",
            "GET",
            format!("{w}/export"),
            None,
            vec![],
            1,
        ),
        (
            "POST /workflows/{id}/nodes",
            "POST",
            format!("{w}/nodes"),
            Some(json!({"title": "c", "parent_id": root})),
            vec![],
            1,
        ),
        (
            "GET /workflows/{id}/nodes (first page)",
            "GET",
            format!("{w}/nodes"),
            None,
            vec![],
            1,
        ),
        (
            "GET /workflows/{id}/nodes (next page)",
            "GET",
            format!("{w}/nodes?limit=1&cursor={cursor}"),
            None,
            vec![],
            2,
        ),
        (
            "GET /workflows/{id}/nodes/{node_id}",
            "GET",
            format!("{w}/nodes/{leaf}"),
            None,
            vec![],
            1,
        ),
        (
            "PATCH /workflows/{id}/nodes/{node_id}",
            "PATCH",
            format!("{w}/nodes/{leaf}"),
            Some(json!({"title": "l2"})),
            vec![("if-match", "1")],
            2,
        ),
        (
            "DELETE /workflows/{id}/nodes/{node_id}",
            "DELETE",
            format!("{w}/nodes/{leaf}"),
            None,
            vec![],
            2,
        ),
        (
            "DELETE /workflows/{id}/nodes/{node_id}?cascade=true",
            "DELETE",
            format!("{w}/nodes/{root}?cascade=true"),
            None,
            vec![],
            2,
        ),
        (
            "POST /workflows/bulk",
            "POST",
            "/api/v3/workflows/bulk".into(),
            Some(json!({"action": "activate", "ids": [other]})),
            vec![],
            2,
        ),
        (
            "POST /workflows/import (small)",
            "POST",
            "/api/v3/workflows/import".into(),
            Some(export),
            vec![],
            1,
        ),
        (
            "POST /workflows/{id}/shares",
            "POST",
            format!("{w}/shares"),
            Some(json!({"user_id": bob_id, "access": "viewer"})),
            vec![],
            2,
        ),
        (
            "GET /workflows/{id}/shares",
            "GET",
            format!("{w}/shares"),
            None,
            vec![],
            1,
        ),
        (
            "DELETE /workflows/{id}/shares/{user_id}",
            "DELETE",
            format!("{w}/shares/{bob_id}"),
            None,
            vec![],
            1,
        ),
        // The change, then the workflow's runs (one Query) to cancel those not over.
        (
            "DELETE /workflows/{id}",
            "DELETE",
            w.clone(),
            None,
            vec![],
            2,
        ),
    ];
    // The replay case needs the key used once before.
    h.send(
        "POST",
        "/api/v3/workflows",
        Some(ALICE),
        Some(json!({"name": "k"})),
        &[("idempotency-key", "k1")],
    )
    .await
    .ok(201);
    h.counter.take();

    let mut table = String::from(
        "| route | DynamoDB requests of the operation | of authentication and account lookups |\n| --- | --- | --- |\n",
    );
    for (label, method, uri, body, headers, expected) in cases {
        let r = h.send(method, &uri, Some(ALICE), body, &headers).await;
        assert!(r.status < 300, "{label}: {} {}", r.status, r.text);
        let ops = h.counter.take();
        let auth = h.auth_counter.take();
        // Every authenticated request reads the caller's account and session once (status,
        // role, token cutoff, session still there); sharing also looks the other user up.
        let mut expected_auth = vec!["BatchGetItem"];
        if label.starts_with("POST /workflows/{id}/shares") {
            expected_auth.push("GetItem");
        }
        assert_eq!(auth, expected_auth, "{label}: {auth:?}");
        table += &format!(
            "| {label} | {} ({}) | {} |\n",
            ops.len(),
            ops.join(", "),
            auth.len()
        );
        assert_eq!(ops.len(), expected, "{label}: {ops:?}");
        assert!(ops.len() <= 2, "{label} exceeds the budget: {ops:?}");
    }
    println!("{table}");
}

/// The run routes, each after the one before (a run is started, read, paused, resumed,
/// cancelled), with the DynamoDB requests each sends in order. Starting a `pending` run and an
/// `Idempotency-Key` on a start read more (README "Storage"): the key is looked up before
/// planning, and a `pending` plan reads the runs not over, so no node is planned twice.
#[tokio::test]
async fn run_routes_meet_the_round_trip_budget() {
    let h = Harness::new().await;
    let created = h
        .create(ALICE, json!({"name": "R", "nodes": [{"title": "root"}]}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let w = format!("/api/v3/workflows/{id}");
    h.send(
        "POST",
        &format!("{w}/status"),
        Some(ALICE),
        Some(json!({"status": "active"})),
        &[],
    )
    .await
    .ok(200);
    h.counter.take();

    let step = |label: &str, ops: Vec<String>, expected: &[&str]| {
        assert_eq!(ops, expected, "{label}");
        assert!(ops.len() <= 2, "{label} exceeds the budget: {ops:?}");
        println!("| {label} | {} ({}) |", ops.len(), ops.join(", "));
    };
    let started = h
        .send(
            "POST",
            &format!("{w}/runs"),
            Some(ALICE),
            Some(json!({"plan": {"mode": "continue", "steps": 2}})),
            &[],
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    // The workflow with its nodes, then the run, its nodes and the node count in one write.
    step(
        "POST /workflows/{id}/runs (continue)",
        h.counter.take(),
        &["Query", "TransactWriteItems"],
    );
    let run = format!("{w}/runs/{}", started.body["id"].as_str().unwrap());
    assert_eq!(h.queue.sent().len(), 1, "the first step is queued");

    h.get(&format!("{w}/runs"), ALICE).await;
    step(
        "GET /workflows/{id}/runs",
        h.counter.take(),
        &["GetItem", "Query"],
    );
    h.get(&run, ALICE).await;
    step(
        "GET /workflows/{id}/runs/{run_id}",
        h.counter.take(),
        &["BatchGetItem"],
    );
    for action in ["pause", "resume", "cancel"] {
        let r = h
            .send("POST", &format!("{run}/{action}"), Some(ALICE), None, &[])
            .await;
        assert_eq!(r.status, 200, "{action}: {}", r.text);
        step(
            &format!("POST .../runs/{{run_id}}/{action}"),
            h.counter.take(),
            &["BatchGetItem", "UpdateItem"],
        );
    }
}
