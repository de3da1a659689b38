//! Over HTTP too, another user's workflow does not exist for you.

use e2e::Stack;
use serde_json::json;

#[tokio::test]
async fn bob_cannot_see_or_touch_alices_workflow() {
    let s = Stack::start().await;
    let created = s
        .post(
            "/api/v3/workflows",
            "alice",
            json!({"name": "Private", "nodes": [{"title": "n"}]}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap();
    let node = created.body["nodes"][0]["id"].as_str().unwrap();
    let w = format!("/api/v3/workflows/{id}");
    for (method, path, body) in [
        ("GET", w.clone(), None),
        (
            "PATCH",
            w.clone(),
            Some(json!({"name": "x", "expected_version": 1})),
        ),
        ("DELETE", w.clone(), None),
        (
            "POST",
            format!("{w}/status"),
            Some(json!({"status": "active"})),
        ),
        ("GET", format!("{w}/statistics"), None),
        ("GET", format!("{w}/export"), None),
        ("GET", format!("{w}/nodes"), None),
        ("POST", format!("{w}/nodes"), Some(json!({"title": "x"}))),
        ("GET", format!("{w}/nodes/{node}"), None),
        (
            "PATCH",
            format!("{w}/nodes/{node}"),
            Some(json!({"title": "x", "expected_version": 1})),
        ),
        ("DELETE", format!("{w}/nodes/{node}"), None),
    ] {
        let r = s.send(method, &path, Some("bob"), body, &[]).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
    }
    assert_eq!(
        s.get("/api/v3/workflows", "bob").await.body["items"],
        json!([])
    );
    let still = s.get(&w, "alice").await;
    assert_eq!(
        (
            still.status,
            still.body["version"].as_u64(),
            still.body["node_count"].as_u64()
        ),
        (200, Some(1), Some(1))
    );
}
