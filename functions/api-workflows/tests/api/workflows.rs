//! Creating, reading, changing and deleting workflows; bad input; idempotency; concurrency.

use crate::harness::*;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::Body;
use serde_json::{Value, json};

#[tokio::test]
async fn create_then_get_with_etag_and_stored_item() {
    let h = Harness::new().await;
    let created = h
        .create(ALICE, json!({"name": "Quarterly report", "description": "Q3", "tags": ["finance"], "settings": {"model": "openai:m1", "max_nodes": 50}}))
        .await;
    assert_eq!(created["status"], "draft");
    assert_eq!(created["version"], 1);
    assert_eq!(created["owner_id"], ALICE);
    assert_eq!(
        created["settings"],
        json!({"model": "openai:m1", "max_nodes": 50})
    );
    assert_eq!(created["nodes"], json!([]));
    let id = created["id"].as_str().unwrap();

    let r = h.get(&format!("/api/v3/workflows/{id}"), ALICE).await;
    let body = r.ok(200);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(body["name"], "Quarterly report");
    assert_eq!(body["tags"], json!(["finance"]));
    assert!(body.get("nodes").is_none());

    let items = h.items().await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["PK"], AttributeValue::S(format!("WF#{id}")));
    assert_eq!(item["SK"], AttributeValue::S("#WORKFLOW".into()));
    assert_eq!(item["GSI1PK"], AttributeValue::S("OWNER#alice".into()));
}

#[tokio::test]
async fn create_with_a_tree_of_nodes_in_one_transaction() {
    let h = Harness::new().await;
    let created = h
        .create(
            ALICE,
            json!({"name": "Book", "nodes": [
                {"ref": "ch1", "title": "Chapter 1", "content": "It began. It went on."},
                {"ref": "s1", "parent_ref": "ch1", "title": "Scene 1", "priority": 5},
                {"parent_ref": "s1", "title": "Beat"}
            ]}),
        )
        .await;
    let nodes = created["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(created["node_count"], 3);
    assert_eq!(nodes[0]["parent_id"], Value::Null);
    assert_eq!(nodes[1]["parent_id"], nodes[0]["id"]);
    assert_eq!(nodes[2]["parent_id"], nodes[1]["id"]);
    assert_eq!(nodes[0]["metrics"]["words"], 5);
    assert_eq!(nodes[0]["metrics"]["sentences"], 2);
    assert_eq!(nodes[1]["priority"], 5);
    assert_eq!(nodes[0]["child_count"], 1);
    assert_eq!(h.items().await.len(), 4);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let h = Harness::new().await;
    let post = |body: Body| h.send_raw("POST", "/api/v3/workflows", Some(ALICE), body, &[]);

    post(Body::Text("{\"name\": ".into()))
        .await
        .problem(400, "invalid-json");
    post(Body::Text("{\"name\": \"a\"} trailing".into()))
        .await
        .problem(400, "invalid-json");
    post(Body::Empty).await.problem(400, "invalid-json");

    let r = post(Body::Text(
        json!({"name": "a", "colour": "red"}).to_string(),
    ))
    .await;
    assert!(
        r.problem(422, "validation-failed")["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`")
    );

    let r = post(Body::Text(json!({"name": 5}).to_string())).await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "name"
    );

    let r = post(Body::Text(
        json!({"name": "a", "nodes": [{"title": "t", "priority": 9}]}).to_string(),
    ))
    .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "nodes[0].priority"
    );

    let r = post(Body::Text(
        json!({"name": "n".repeat(256), "description": "d".repeat(1001), "tags": ["", "ok"]})
            .to_string(),
    ))
    .await;
    let fields: Vec<&str> = r.problem(422, "validation-failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "description", "tags[0]"]);

    let r = post(Body::Text(
        json!({"name": "a", "nodes": [{"title": "t", "content": "x".repeat(100_001)}]}).to_string(),
    ))
    .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "nodes[0].content"
    );

    let huge = json!({"name": "a", "description": "x".repeat(1024 * 1024)}).to_string();
    post(Body::Text(huge))
        .await
        .problem(413, "payload-too-large");

    let r = h
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            Some(json!({"name": "a"})),
            &[("content-type", "text/plain")],
        )
        .await;
    r.problem(415, "unsupported-media-type");

    h.get("/api/v3/workflows/not-an-id", ALICE)
        .await
        .problem(400, "invalid-parameter");
    h.send(
        "PATCH",
        "/api/v3/workflows/x",
        Some(ALICE),
        Some(json!({})),
        &[],
    )
    .await
    .problem(400, "invalid-parameter");

    assert!(h.items().await.is_empty());
}

#[tokio::test]
async fn idempotency_key_replays_or_refuses() {
    let h = Harness::new().await;
    let body = json!({"name": "Once"});
    let key = [("idempotency-key", "create-once-1")];
    let first = h
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            Some(body.clone()),
            &key,
        )
        .await;
    first.ok(201);
    let again = h
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = h
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            Some(json!({"name": "Twice"})),
            &key,
        )
        .await;
    other.problem(422, "idempotency-key-reused");
    // Keys are per user: Bob's identical key is his own.
    h.send("POST", "/api/v3/workflows", Some(BOB), Some(body), &key)
        .await
        .ok(201);
    let workflows = h
        .items()
        .await
        .into_iter()
        .filter(|i| i["SK"] == AttributeValue::S("#WORKFLOW".into()))
        .count();
    assert_eq!(workflows, 2);
    let bad = h
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            Some(json!({"name": "x"})),
            &[("idempotency-key", "has space")],
        )
        .await;
    bad.problem(400, "invalid-parameter");
}

#[tokio::test]
async fn patch_needs_the_version_and_exactly_one_of_two_writers_wins() {
    let h = Harness::new().await;
    let id = h.create_named(ALICE, "Draft").await;
    let uri = format!("/api/v3/workflows/{id}");

    let r = h
        .send("PATCH", &uri, Some(ALICE), Some(json!({"name": "x"})), &[])
        .await;
    r.problem(428, "precondition-required");

    let a = h.send(
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"name": "From A"})),
        &[("if-match", "\"1\"")],
    );
    let b = h.send(
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"description": "From B", "expected_version": 1})),
        &[],
    );
    let (a, b) = tokio::join!(a, b);
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
    let loser = if a.status == 409 { &a } else { &b };
    assert_eq!(loser.problem(409, "version-conflict")["current_version"], 2);
    let winner = if a.status == 200 { &a } else { &b };
    assert_eq!(winner.header("etag"), Some("\"2\""));

    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"settings": {"model": "openai:m2", "temperature": 0.3}})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(
        r.ok(200)["settings"],
        json!({"max_nodes": 1000, "model": "openai:m2", "temperature": 0.3})
    );
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"settings": {"temperature": null}, "tags": ["t"]})),
            &[("if-match", "3")],
        )
        .await;
    assert_eq!(
        r.ok(200)["settings"],
        json!({"max_nodes": 1000, "model": "openai:m2"})
    );
    assert_eq!(r.body["tags"], json!(["t"]));
    assert_eq!(r.body["version"], 4);

    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"settings": {"max_nodes": 0}})),
            &[("if-match", "4")],
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "settings.max_nodes"
    );
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"name": "x", "expected_version": 3})),
            &[("if-match", "4")],
        )
        .await;
    r.problem(422, "validation-failed");
    h.send(
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"name": "x"})),
        &[("if-match", "abc")],
    )
    .await
    .problem(400, "invalid-parameter");
    assert_eq!(h.get(&uri, ALICE).await.body["version"], 4);
}

#[tokio::test]
async fn max_nodes_cannot_go_below_the_node_count() {
    let h = Harness::new().await;
    let created = h
        .create(
            ALICE,
            json!({"name": "W", "nodes": [{"title": "a"}, {"title": "b"}]}),
        )
        .await;
    let uri = format!("/api/v3/workflows/{}", created["id"].as_str().unwrap());
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"settings": {"max_nodes": 1}})),
            &[("if-match", "1")],
        )
        .await;
    assert_eq!(r.problem(409, "max-nodes-below-count")["node_count"], 2);
    h.send(
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"settings": {"max_nodes": 2}})),
        &[("if-match", "1")],
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn status_transitions_follow_the_machine() {
    let h = Harness::new().await;
    let id = h.create_named(ALICE, "Flow").await;
    let uri = format!("/api/v3/workflows/{id}/status");
    let r = h.post(&uri, ALICE, json!({"status": "active"})).await;
    assert_eq!(r.ok(200)["status"], "active");
    assert_eq!(r.header("etag"), Some("\"2\""));
    let r = h.post(&uri, ALICE, json!({"status": "draft"})).await;
    let p = r.problem(409, "illegal-transition");
    assert_eq!(
        p["allowed"],
        json!(["paused", "completed", "cancelled", "deleted"])
    );
    assert_eq!(p["current_status"], "active");
    h.post(&uri, ALICE, json!({"status": "paused"}))
        .await
        .ok(200);
    let r = h
        .send(
            "POST",
            &uri,
            Some(ALICE),
            Some(json!({"status": "active"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.problem(409, "version-conflict")["current_version"], 3);
    h.post(&uri, ALICE, json!({"status": "running"}))
        .await
        .problem(422, "validation-failed");
    h.post(&uri, ALICE, json!({"status": "cancelled"}))
        .await
        .ok(200);
    let r = h.post(&uri, ALICE, json!({"status": "active"})).await;
    assert_eq!(
        r.problem(409, "illegal-transition")["allowed"],
        json!(["deleted"])
    );
}

#[tokio::test]
async fn delete_is_soft_and_hides_the_workflow_everywhere() {
    let h = Harness::new().await;
    let id = h.create_named(ALICE, "Doomed").await;
    let keep = h.create_named(ALICE, "Kept").await;
    let uri = format!("/api/v3/workflows/{id}");
    let r = h.send("DELETE", &uri, Some(ALICE), None, &[]).await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get(&uri, ALICE).await.problem(404, "not-found");
    h.send("DELETE", &uri, Some(ALICE), None, &[])
        .await
        .problem(404, "not-found");
    h.post(&format!("{uri}/status"), ALICE, json!({"status": "active"}))
        .await
        .problem(404, "not-found");
    h.get(&format!("{uri}/statistics"), ALICE)
        .await
        .problem(404, "not-found");
    h.post(&format!("{uri}/nodes"), ALICE, json!({"title": "t"}))
        .await
        .problem(404, "not-found");
    let list = h.get("/api/v3/workflows", ALICE).await;
    let ids: Vec<&str> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [keep.as_str()]);
    // The item stays, marked deleted and out of the owner index.
    let items = h.items().await;
    let item = items
        .iter()
        .find(|i| i["PK"] == AttributeValue::S(format!("WF#{id}")))
        .unwrap();
    assert_eq!(item["status"], AttributeValue::S("deleted".into()));
    assert!(!item.contains_key("GSI1PK"));
    // A stale If-Match on delete is a conflict.
    let r = h
        .send(
            "DELETE",
            &format!("/api/v3/workflows/{keep}"),
            Some(ALICE),
            None,
            &[("if-match", "\"7\"")],
        )
        .await;
    r.problem(409, "version-conflict");
}

#[tokio::test]
async fn statistics_of_a_tree() {
    let h = Harness::new().await;
    let created = h
        .create(
            ALICE,
            json!({"name": "Stats", "nodes": [
                {"ref": "a", "title": "A", "content": "word ".repeat(150)},
                {"ref": "b", "parent_ref": "a", "title": "B", "content": "word ".repeat(150)},
                {"parent_ref": "b", "title": "C", "content": "One two three."},
                {"parent_ref": "a", "title": "D"},
                {"title": "E"}
            ]}),
        )
        .await;
    let r = h
        .get(
            &format!(
                "/api/v3/workflows/{}/statistics",
                created["id"].as_str().unwrap()
            ),
            ALICE,
        )
        .await;
    let s = r.ok(200);
    assert_eq!(s["node_count"], 5);
    assert_eq!(s["total_words"], 303);
    assert_eq!(s["max_depth"], 3);
    assert_eq!(s["root_count"], 2);
    assert_eq!(s["leaf_count"], 3);
    assert_eq!(s["reading_minutes"], 1.6);
    let mean: f64 = created["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["quality"]["overall"].as_f64().unwrap())
        .sum::<f64>()
        / 5.0;
    assert_eq!(
        s["average_quality"].as_f64().unwrap(),
        (mean * 10.0).round() / 10.0
    );
}

#[tokio::test]
async fn another_user_sees_nothing_of_alices_workflow() {
    let h = Harness::new().await;
    let created = h.create(ALICE, json!({"name": "Private", "nodes": [{"ref": "r", "title": "Root"}, {"parent_ref": "r", "title": "Leaf"}]})).await;
    let id = created["id"].as_str().unwrap();
    let root = created["nodes"][0]["id"].as_str().unwrap();
    let leaf = created["nodes"][1]["id"].as_str().unwrap();
    let w = format!("/api/v3/workflows/{id}");
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", w.clone(), None),
        (
            "PATCH",
            w.clone(),
            Some(json!({"name": "mine", "expected_version": 1})),
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
        (
            "POST",
            format!("{w}/nodes"),
            Some(json!({"title": "intruder", "parent_id": root})),
        ),
        ("GET", format!("{w}/nodes/{leaf}"), None),
        (
            "PATCH",
            format!("{w}/nodes/{leaf}"),
            Some(json!({"title": "x", "expected_version": 1})),
        ),
        ("DELETE", format!("{w}/nodes/{leaf}"), None),
        ("DELETE", format!("{w}/nodes/{root}?cascade=true"), None),
    ];
    let before = h.items().await;
    for (method, uri, body) in attempts {
        let r = h.send(method, &uri, Some(BOB), body, &[]).await;
        assert_eq!(r.status, 404, "{method} {uri}: {}", r.text);
        r.problem(404, "not-found");
    }
    let list = h.get("/api/v3/workflows", BOB).await;
    assert_eq!(list.ok(200)["items"], json!([]));
    let bulk = h
        .post(
            "/api/v3/workflows/bulk",
            BOB,
            json!({"action": "delete", "ids": [id]}),
        )
        .await;
    assert_eq!(bulk.ok(200)["results"][0]["outcome"], "not_found");
    let mut after = h.items().await;
    let mut before = before;
    let key = |i: &std::collections::HashMap<String, AttributeValue>| {
        format!("{:?}{:?}", i["PK"], i["SK"])
    };
    before.sort_by_key(key);
    after.sort_by_key(key);
    assert_eq!(before, after, "Bob's attempts changed Alice's data");
}

#[tokio::test]
async fn values_dynamodb_cannot_store_are_422_not_500() {
    let h = Harness::new().await;
    let r = h
        .post(
            "/api/v3/workflows",
            ALICE,
            json!({"name": "x", "settings": {"huge": 1e200}}),
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "settings.huge"
    );
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({"k": deep});
    }
    let r = h
        .post(
            "/api/v3/workflows",
            ALICE,
            json!({"name": "x", "nodes": [{"title": "t", "metadata": deep}]}),
        )
        .await;
    r.problem(422, "validation-failed");
    // An empty key inside a nested object: DynamoDB takes none, and the SDK cannot read such
    // an item back (a fuzzer's find: every later read of the workflow was a 500).
    let r = h
        .post(
            "/api/v3/workflows",
            ALICE,
            json!({"name": "x", "settings": {"a": {"": 1}}}),
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "settings.a"
    );
    assert!(h.items().await.is_empty());
}

#[tokio::test]
async fn settings_patches_are_checked_against_the_stored_settings() {
    let h = Harness::new().await;
    let id = h.create_named(ALICE, "Grows").await;
    let uri = format!("/api/v3/workflows/{id}");
    let half = "x".repeat(9 * 1024);
    h.send(
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"settings": {"a": half}})),
        &[("if-match", "1")],
    )
    .await
    .ok(200);
    // Each patch alone is small; together they would pass the 16 KiB limit.
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"settings": {"b": half}})),
            &[("if-match", "2")],
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "settings"
    );
    // Replacing a key is fine.
    h.send(
        "PATCH",
        &uri,
        Some(ALICE),
        Some(json!({"settings": {"a": "small", "b": half}})),
        &[("if-match", "2")],
    )
    .await
    .ok(200);
    // A stale version is caught before the merge.
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"settings": {"c": 1}})),
            &[("if-match", "2")],
        )
        .await;
    assert_eq!(r.problem(409, "version-conflict")["current_version"], 3);
}

#[tokio::test]
async fn a_replay_of_a_response_too_large_to_keep_reads_the_workflow_again() {
    let h = Harness::new().await;
    let big = "word ".repeat(8000);
    let body = json!({"name": "Big", "nodes": [{"title": "a", "content": big}, {"title": "b", "content": big}]});
    let key = [("idempotency-key", "big-create")];
    let first = h
        .send(
            "POST",
            "/api/v3/workflows",
            Some(ALICE),
            Some(body.clone()),
            &key,
        )
        .await;
    assert!(first.text.len() > 64 * 1024);
    first.ok(201);
    let again = h
        .send("POST", "/api/v3/workflows", Some(ALICE), Some(body), &key)
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.ok(201), &first.body);
    let workflows = h
        .items()
        .await
        .into_iter()
        .filter(|i| i["SK"] == AttributeValue::S("#WORKFLOW".into()))
        .count();
    assert_eq!(workflows, 1);
}
