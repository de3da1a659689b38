//! Every route of the workflows API through the gateway, with its errors.

use e2e::Stack;
use serde_json::{Value, json};

const ALICE: &str = "alice";

#[tokio::test]
async fn every_workflows_route_over_http() {
    let s = Stack::start().await;

    // Public routes.
    let health = s.send("GET", "/health", None, None, &[]).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let doc = s.send("GET", "/api/v3/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["paths"].as_object().unwrap().len(), 26);

    // Create with a tree, read, list.
    let created = s
        .post(
            "/api/v3/workflows",
            ALICE,
            json!({"name": "Novel", "tags": ["book"], "nodes": [
                {"ref": "c1", "title": "Chapter 1", "content": "It was a dark night. Rain fell."},
                {"parent_ref": "c1", "title": "Scene 1"}
            ]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let id = created.body["id"].as_str().unwrap().to_string();
    let chapter = created.body["nodes"][0]["id"].as_str().unwrap().to_string();
    let w = format!("/api/v3/workflows/{id}");

    let got = s.get(&w, ALICE).await;
    assert_eq!((got.status, got.header("etag")), (200, Some("\"1\"")));
    let list = s.get("/api/v3/workflows?tag=book&q=nov", ALICE).await;
    assert_eq!(list.body["items"][0]["id"], id.as_str());

    // Change it.
    let patched = s
        .send(
            "PATCH",
            &w,
            Some(ALICE),
            Some(json!({"description": "A long one"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (patched.status, patched.header("etag")),
        (200, Some("\"2\""))
    );
    let stale = s
        .send(
            "PATCH",
            &w,
            Some(ALICE),
            Some(json!({"description": "x"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (stale.status, stale.body["current_version"].as_u64()),
        (409, Some(2))
    );
    assert_eq!(
        stale.header("content-type"),
        Some("application/problem+json")
    );
    let active = s
        .post(&format!("{w}/status"), ALICE, json!({"status": "active"}))
        .await;
    assert_eq!(active.body["status"], "active");
    let illegal = s
        .post(&format!("{w}/status"), ALICE, json!({"status": "draft"}))
        .await;
    assert_eq!(
        (illegal.status, illegal.body["allowed"].clone()),
        (409, json!(["paused", "completed", "cancelled", "deleted"]))
    );

    // Nodes.
    let nodes = format!("{w}/nodes");
    let added = s
        .post(
            &nodes,
            ALICE,
            json!({"title": "Scene 2", "parent_id": chapter, "content": "More words here."}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let scene2 = added.body["id"].as_str().unwrap().to_string();
    let page = s.get(&format!("{nodes}?limit=2"), ALICE).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let next = page.body["next_cursor"].as_str().unwrap();
    let page2 = s
        .get(&format!("{nodes}?limit=2&cursor={next}"), ALICE)
        .await;
    assert_eq!(page2.body["items"][0]["id"], scene2.as_str());
    let one = s.get(&format!("{nodes}/{scene2}"), ALICE).await;
    assert_eq!(
        (one.status, one.body["metrics"]["words"].as_u64()),
        (200, Some(3))
    );
    let node_patch = s
        .send(
            "PATCH",
            &format!("{nodes}/{scene2}"),
            Some(ALICE),
            Some(json!({"status": "completed"})),
            &[("if-match", "1")],
        )
        .await;
    assert_eq!(node_patch.body["version"], 2);
    let refuse = s
        .send(
            "DELETE",
            &format!("{nodes}/{chapter}"),
            Some(ALICE),
            None,
            &[],
        )
        .await;
    assert_eq!(refuse.status, 409);

    // Statistics, export, import.
    let stats = s.get(&format!("{w}/statistics"), ALICE).await;
    assert_eq!(
        (
            stats.body["node_count"].as_u64(),
            stats.body["max_depth"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let export = s.get(&format!("{w}/export"), ALICE).await;
    assert_eq!(export.body["nodes"].as_array().unwrap().len(), 3);
    let imported = s
        .send(
            "POST",
            "/api/v3/workflows/import",
            Some(ALICE),
            Some(export.body.clone()),
            &[("idempotency-key", "imp-1")],
        )
        .await;
    assert_eq!(imported.status, 201, "{}", imported.text);
    let replay = s
        .send(
            "POST",
            "/api/v3/workflows/import",
            Some(ALICE),
            Some(export.body.clone()),
            &[("idempotency-key", "imp-1")],
        )
        .await;
    assert_eq!(
        (replay.status, replay.body["id"].clone()),
        (201, imported.body["id"].clone())
    );
    let copy = imported.body["id"].as_str().unwrap();

    // Delete: cascade a subtree, bulk, and the workflow itself.
    let cascade = s
        .send(
            "DELETE",
            &format!("{nodes}/{chapter}?cascade=true"),
            Some(ALICE),
            None,
            &[],
        )
        .await;
    assert_eq!(cascade.status, 204, "{}", cascade.text);
    assert_eq!(s.get(&w, ALICE).await.body["node_count"], 0);
    let bulk = s
        .post(
            "/api/v3/workflows/bulk",
            ALICE,
            json!({"action": "pause", "ids": [id, copy]}),
        )
        .await;
    let outcomes: Vec<&str> = bulk.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["ok", "ok"],
        "the imported copy kept the active status"
    );
    let again = s
        .post(
            "/api/v3/workflows/bulk",
            ALICE,
            json!({"action": "pause", "ids": [id]}),
        )
        .await;
    assert_eq!(again.body["results"][0]["outcome"], "conflict");
    let deleted = s.send("DELETE", &w, Some(ALICE), None, &[]).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(s.get(&w, ALICE).await.status, 404);
}

#[tokio::test]
async fn errors_over_http() {
    let s = Stack::start().await;
    let unauthenticated = s.send("GET", "/api/v3/workflows", None, None, &[]).await;
    assert_eq!(unauthenticated.status, 401);
    assert!(unauthenticated.header("www-authenticate").is_some());
    let bad_id = s.get("/api/v3/workflows/not-an-id", ALICE).await;
    assert_eq!(
        (bad_id.status, bad_id.body["type"].as_str()),
        (400, Some("urn:dwc:problem:invalid-parameter"))
    );
    let invalid = s
        .post("/api/v3/workflows", ALICE, json!({"name": ""}))
        .await;
    assert_eq!(
        (invalid.status, invalid.body["errors"][0]["field"].as_str()),
        (422, Some("name"))
    );
    let raw = s
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(raw.status, 400);
    // Routes the template does not declare never reach a function (API Gateway's 404).
    let unknown = s.get("/api/v3/nowhere", ALICE).await;
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (404, json!({"message": "Not Found"}))
    );
    let wrong_method = s
        .send(
            "PUT",
            "/api/v3/workflows",
            Some(ALICE),
            Some(Value::Null),
            &[],
        )
        .await;
    assert_eq!(wrong_method.status, 404);
}
