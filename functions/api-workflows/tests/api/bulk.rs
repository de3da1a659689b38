//! Bulk actions report one result per id; partial success is visible.

use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn mixed_results_are_reported_per_id() {
    let h = Harness::new().await;
    let draft = h.create_named(ALICE, "draft").await;
    let active = h.create_named(ALICE, "active").await;
    h.post(
        &format!("/api/v3/workflows/{active}/status"),
        ALICE,
        json!({"status": "active"}),
    )
    .await
    .ok(200);
    let cancelled = h.create_named(ALICE, "cancelled").await;
    h.post(
        &format!("/api/v3/workflows/{cancelled}/status"),
        ALICE,
        json!({"status": "active"}),
    )
    .await
    .ok(200);
    h.post(
        &format!("/api/v3/workflows/{cancelled}/status"),
        ALICE,
        json!({"status": "cancelled"}),
    )
    .await
    .ok(200);
    let bobs = h.create_named(BOB, "bob's").await;
    let missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

    let r = h
        .post(
            "/api/v3/workflows/bulk",
            ALICE,
            json!({"action": "activate", "ids": [draft, active, cancelled, bobs, missing, "junk"]}),
        )
        .await;
    let body = r.ok(200);
    let outcomes: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "ok",
            "conflict",
            "conflict",
            "not_found",
            "not_found",
            "not_found"
        ]
    );
    assert_eq!(body["succeeded"], 1);
    assert_eq!(body["failed"], 5);
    assert_eq!(body["results"][0]["status"], "active");
    assert!(
        body["results"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("allowed: deleted")
    );
    assert_eq!(
        h.get(&format!("/api/v3/workflows/{draft}"), ALICE)
            .await
            .body["status"],
        "active"
    );
    assert_eq!(
        h.get(&format!("/api/v3/workflows/{bobs}"), BOB).await.body["status"],
        "draft"
    );

    let r = h
        .post(
            "/api/v3/workflows/bulk",
            ALICE,
            json!({"action": "delete", "ids": [draft, cancelled]}),
        )
        .await;
    assert_eq!(r.ok(200)["succeeded"], 2);
    h.get(&format!("/api/v3/workflows/{draft}"), ALICE)
        .await
        .problem(404, "not-found");
    let r = h
        .post(
            "/api/v3/workflows/bulk",
            ALICE,
            json!({"action": "pause", "ids": [active]}),
        )
        .await;
    assert_eq!(r.ok(200)["results"][0]["outcome"], "ok");
}

#[tokio::test]
async fn bad_bulk_requests() {
    let h = Harness::new().await;
    let id = h.create_named(ALICE, "w").await;
    h.post(
        "/api/v3/workflows/bulk",
        ALICE,
        json!({"action": "delete", "ids": []}),
    )
    .await
    .problem(422, "validation-failed");
    h.post(
        "/api/v3/workflows/bulk",
        ALICE,
        json!({"action": "delete", "ids": [id, id]}),
    )
    .await
    .problem(422, "validation-failed");
    let many: Vec<String> = (0..101).map(|_| id.clone()).collect();
    h.post(
        "/api/v3/workflows/bulk",
        ALICE,
        json!({"action": "delete", "ids": many}),
    )
    .await
    .problem(422, "validation-failed");
    h.post(
        "/api/v3/workflows/bulk",
        ALICE,
        json!({"action": "explode", "ids": [id]}),
    )
    .await
    .problem(422, "validation-failed");
    assert_eq!(
        h.get(&format!("/api/v3/workflows/{id}"), ALICE).await.body["status"],
        "draft"
    );
}
