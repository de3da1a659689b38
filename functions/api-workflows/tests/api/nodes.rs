//! Nodes: adding under a parent, limits, reading, paging, patching and deleting.

use crate::harness::*;
use serde_json::{Value, json};

async fn workflow(h: &Harness, settings: Value) -> String {
    h.create(ALICE, json!({"name": "Tree", "settings": settings}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn add_nodes_under_parents_and_read_them() {
    let h = Harness::new().await;
    let id = workflow(&h, json!({})).await;
    let nodes = format!("/api/v3/workflows/{id}/nodes");
    let root = h
        .post(
            &nodes,
            ALICE,
            json!({"title": "Root", "content": "Hello there. General Kenobi!", "tags": ["intro"]}),
        )
        .await;
    let root = root.ok(201).clone();
    assert_eq!(root["workflow_id"], id.as_str());
    assert_eq!(root["metrics"]["words"], 4);
    assert_eq!(root["version"], 1);
    let child = h
        .post(
            &nodes,
            ALICE,
            json!({"title": "Child", "parent_id": root["id"], "prompt": "Continue"}),
        )
        .await;
    let child = child.ok(201).clone();
    assert_eq!(child["parent_id"], root["id"]);

    let r = h
        .get(&format!("{nodes}/{}", root["id"].as_str().unwrap()), ALICE)
        .await;
    assert_eq!(r.ok(200)["child_count"], 1);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let w = h.get(&format!("/api/v3/workflows/{id}"), ALICE).await;
    assert_eq!(w.body["node_count"], 2);
    assert_eq!(
        w.body["version"], 1,
        "adding nodes does not change the workflow's own version"
    );

    let missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    h.get(&format!("{nodes}/{missing}"), ALICE)
        .await
        .problem(404, "not-found");
    let r = h
        .post(
            &nodes,
            ALICE,
            json!({"title": "Orphan", "parent_id": missing}),
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "parent_id"
    );
    let r = h
        .post(
            &nodes,
            ALICE,
            json!({"title": "Orphan", "parent_id": "nope"}),
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "parent_id"
    );
    let r = h
        .post(
            &nodes,
            ALICE,
            json!({"title": "", "priority": 3, "metrics": {}}),
        )
        .await;
    r.problem(422, "validation-failed");
    // A parent from another workflow is not a parent here.
    let other = workflow(&h, json!({})).await;
    let r = h
        .post(
            &format!("/api/v3/workflows/{other}/nodes"),
            ALICE,
            json!({"title": "x", "parent_id": root["id"]}),
        )
        .await;
    r.problem(422, "validation-failed");
    assert_eq!(
        h.get(&format!("/api/v3/workflows/{id}"), ALICE).await.body["node_count"],
        2
    );
}

#[tokio::test]
async fn max_nodes_is_enforced() {
    let h = Harness::new().await;
    let id = workflow(&h, json!({"max_nodes": 2})).await;
    let nodes = format!("/api/v3/workflows/{id}/nodes");
    h.post(&nodes, ALICE, json!({"title": "1"})).await.ok(201);
    h.post(&nodes, ALICE, json!({"title": "2"})).await.ok(201);
    let r = h.post(&nodes, ALICE, json!({"title": "3"})).await;
    assert_eq!(r.problem(409, "node-limit-reached")["max_nodes"], 2);
    let r = h.post("/api/v3/workflows", ALICE, json!({"name": "x", "settings": {"max_nodes": 1}, "nodes": [{"title": "a"}, {"title": "b"}]})).await;
    r.problem(422, "validation-failed");
}

#[tokio::test]
async fn node_idempotency_key() {
    let h = Harness::new().await;
    let id = workflow(&h, json!({})).await;
    let nodes = format!("/api/v3/workflows/{id}/nodes");
    let key = [("idempotency-key", "node-1")];
    let a = h
        .send(
            "POST",
            &nodes,
            Some(ALICE),
            Some(json!({"title": "Once"})),
            &key,
        )
        .await;
    let b = h
        .send(
            "POST",
            &nodes,
            Some(ALICE),
            Some(json!({"title": "Once"})),
            &key,
        )
        .await;
    assert_eq!(a.ok(201), b.ok(201));
    h.send(
        "POST",
        &nodes,
        Some(ALICE),
        Some(json!({"title": "Other"})),
        &key,
    )
    .await
    .problem(422, "idempotency-key-reused");
    assert_eq!(
        h.get(&format!("/api/v3/workflows/{id}"), ALICE).await.body["node_count"],
        1
    );
}

#[tokio::test]
async fn list_pages_in_creation_order_with_parent_ids() {
    let h = Harness::new().await;
    let created = h
        .create(ALICE, json!({"name": "T", "nodes": (0..5).map(|i| if i == 0 { json!({"ref": "r", "title": "n0"}) } else { json!({"parent_ref": "r", "title": format!("n{i}")}) }).collect::<Vec<_>>()}))
        .await;
    let id = created["id"].as_str().unwrap();
    let root_id = created["nodes"][0]["id"].clone();
    let mut titles = Vec::new();
    let mut uri = format!("/api/v3/workflows/{id}/nodes?limit=2");
    for _ in 0..10 {
        let r = h.get(&uri, ALICE).await;
        for n in r.ok(200)["items"].as_array().unwrap() {
            titles.push(n["title"].as_str().unwrap().to_string());
            if n["title"] != "n0" {
                assert_eq!(n["parent_id"], root_id);
            }
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v3/workflows/{id}/nodes?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(titles, ["n0", "n1", "n2", "n3", "n4"]);
    // A cursor of one workflow does not page another.
    let other = workflow(&h, json!({})).await;
    let first = h
        .get(&format!("/api/v3/workflows/{id}/nodes?limit=1"), ALICE)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    h.get(
        &format!("/api/v3/workflows/{other}/nodes?cursor={cursor}"),
        ALICE,
    )
    .await
    .problem(400, "invalid-parameter");
}

#[tokio::test]
async fn patch_a_node_recomputes_metrics_and_guards_the_version() {
    let h = Harness::new().await;
    let created = h.create(ALICE, json!({"name": "T", "nodes": [{"title": "N", "content": "one", "metadata": {"a": 1, "b": 2}}]})).await;
    let uri = format!(
        "/api/v3/workflows/{}/nodes/{}",
        created["id"].as_str().unwrap(),
        created["nodes"][0]["id"].as_str().unwrap()
    );
    h.send("PATCH", &uri, Some(ALICE), Some(json!({"title": "x"})), &[])
        .await
        .problem(428, "precondition-required");
    let patch = json!({"content": "Two words. Then three more words.", "status": "completed", "metadata": {"a": null, "c": 3}});
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(patch),
            &[("if-match", "\"1\"")],
        )
        .await;
    let n = r.ok(200);
    assert_eq!(n["metrics"]["words"], 6);
    assert_eq!(n["metrics"]["sentences"], 2);
    assert_eq!(n["status"], "completed");
    assert_eq!(n["metadata"], json!({"b": 2, "c": 3}));
    assert_eq!(n["version"], 2);
    assert_eq!(r.header("etag"), Some("\"2\""));
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"title": "stale"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.problem(409, "version-conflict")["current_version"], 2);
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"parent_id": null, "expected_version": 2})),
            &[],
        )
        .await;
    r.problem(422, "validation-failed");
    let r = h
        .send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"title": "", "expected_version": 2})),
            &[],
        )
        .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "title"
    );
    assert_eq!(h.get(&uri, ALICE).await.body["title"], "N");
}

#[tokio::test]
async fn concurrent_node_patches_one_wins() {
    let h = Harness::new().await;
    let created = h
        .create(ALICE, json!({"name": "T", "nodes": [{"title": "N"}]}))
        .await;
    let uri = format!(
        "/api/v3/workflows/{}/nodes/{}",
        created["id"].as_str().unwrap(),
        created["nodes"][0]["id"].as_str().unwrap()
    );
    let (a, b) = tokio::join!(
        h.send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"title": "A"})),
            &[("if-match", "1")]
        ),
        h.send(
            "PATCH",
            &uri,
            Some(ALICE),
            Some(json!({"title": "B"})),
            &[("if-match", "1")]
        ),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
    let winner = if a.status == 200 { "A" } else { "B" };
    assert_eq!(h.get(&uri, ALICE).await.body["title"], winner);
}

#[tokio::test]
async fn delete_refuses_children_unless_cascade() {
    let h = Harness::new().await;
    let created = h
        .create(
            ALICE,
            json!({"name": "T", "nodes": [
                {"ref": "a", "title": "a"}, {"ref": "b", "parent_ref": "a", "title": "b"},
                {"parent_ref": "b", "title": "c"}, {"parent_ref": "a", "title": "d"}, {"title": "e"}
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let node = |i: usize| created["nodes"][i]["id"].as_str().unwrap().to_string();
    let uri = |n: &str| format!("/api/v3/workflows/{id}/nodes/{n}");
    let r = h
        .send("DELETE", &uri(&node(0)), Some(ALICE), None, &[])
        .await;
    assert_eq!(r.problem(409, "node-has-children")["child_count"], 2);
    let leaf = created["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["title"] == "d")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        h.send("DELETE", &uri(&leaf), Some(ALICE), None, &[])
            .await
            .status,
        204
    );
    h.get(&uri(&leaf), ALICE).await.problem(404, "not-found");
    let a = h.get(&uri(&node(0)), ALICE).await;
    assert_eq!(a.body["child_count"], 1);
    h.send("DELETE", &uri(&node(0)), Some(ALICE), None, &[])
        .await
        .problem(409, "node-has-children");
    h.send(
        "DELETE",
        &format!("{}?cascade=maybe", uri(&node(0))),
        Some(ALICE),
        None,
        &[],
    )
    .await
    .problem(400, "invalid-parameter");
    let r = h
        .send(
            "DELETE",
            &format!("{}?cascade=true", uri(&node(0))),
            Some(ALICE),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let w = h.get(&format!("/api/v3/workflows/{id}"), ALICE).await;
    assert_eq!(w.body["node_count"], 1);
    let list = h.get(&format!("/api/v3/workflows/{id}/nodes"), ALICE).await;
    let titles: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["e"]);
    h.send(
        "DELETE",
        &format!("{}?cascade=true", uri(&node(0))),
        Some(ALICE),
        None,
        &[],
    )
    .await
    .problem(404, "not-found");
}

#[tokio::test]
async fn deleting_a_child_updates_the_parent() {
    let h = Harness::new().await;
    let created = h.create(ALICE, json!({"name": "T", "nodes": [{"ref": "a", "title": "a"}, {"parent_ref": "a", "title": "b"}]})).await;
    let id = created["id"].as_str().unwrap();
    let (a, b) = (
        created["nodes"][0]["id"].as_str().unwrap(),
        created["nodes"][1]["id"].as_str().unwrap(),
    );
    assert_eq!(
        h.send(
            "DELETE",
            &format!("/api/v3/workflows/{id}/nodes/{b}"),
            Some(ALICE),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    assert_eq!(
        h.send(
            "DELETE",
            &format!("/api/v3/workflows/{id}/nodes/{a}"),
            Some(ALICE),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    assert_eq!(
        h.get(&format!("/api/v3/workflows/{id}"), ALICE).await.body["node_count"],
        0
    );
}
