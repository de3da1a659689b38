//! Export and import: export -> import -> export is the same document up to ids and times.

use crate::harness::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The document with ids replaced by their position, and the export time removed.
fn normalised(doc: &Value) -> Value {
    let mut doc = doc.clone();
    doc.as_object_mut().unwrap().remove("exported_at");
    let index: HashMap<String, usize> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, n)| (n["id"].as_str().unwrap().to_string(), i))
        .collect();
    for n in doc["nodes"].as_array_mut().unwrap() {
        n["id"] = json!(index[n["id"].as_str().unwrap()]);
        if let Some(p) = n["parent_id"].as_str() {
            n["parent_id"] = json!(index[p]);
        }
    }
    doc
}

#[tokio::test]
async fn export_import_export_round_trips() {
    let h = Harness::new().await;
    let created = h
        .create(
            ALICE,
            json!({"name": "Saga", "description": "d", "tags": ["t"], "settings": {"model": "openai:m", "extra": {"k": [1, 2]}}, "nodes": [
                {"ref": "a", "title": "A", "content": "Alpha text.", "priority": 4, "metadata": {"x": 1}},
                {"ref": "b", "parent_ref": "a", "title": "B", "prompt": "continue", "status": "completed", "tags": ["n"]},
                {"parent_ref": "b", "title": "C"},
                {"title": "Root 2"}
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    h.post(
        &format!("/api/v3/workflows/{id}/status"),
        ALICE,
        json!({"status": "active"}),
    )
    .await
    .ok(200);
    let first = h
        .get(&format!("/api/v3/workflows/{id}/export"), ALICE)
        .await;
    let first = first.ok(200).clone();
    assert_eq!(first["format_version"], 1);
    assert_eq!(first["workflow"]["status"], "active");
    assert_eq!(first["nodes"].as_array().unwrap().len(), 4);

    let imported = h
        .post("/api/v3/workflows/import", ALICE, first.clone())
        .await;
    let imported = imported.ok(201).clone();
    let new_id = imported["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(imported["node_count"], 4);
    let second = h
        .get(&format!("/api/v3/workflows/{new_id}/export"), ALICE)
        .await;
    assert_eq!(normalised(second.ok(200)), normalised(&first));
    let old_ids: Vec<&Value> = first["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["id"])
        .collect();
    assert!(
        second.body["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !old_ids.contains(&&n["id"]))
    );
    // Each export and the import are in the audit trail, with the request that made them.
    let exported = h.audit.of("workflow.exported");
    let targets: Vec<&str> = exported.iter().map(|(_, d)| d.target.id.as_str()).collect();
    assert_eq!(targets, [id, new_id]);
    let (chain, d) = &exported[0];
    assert_eq!(
        *chain,
        shared::domain::audit::Chain::User(ALICE.to_string())
    );
    assert_eq!(d.detail["nodes"], 4);
    assert!(d.request_id.is_some() && d.source_ip.is_some(), "{d:?}");
    let imported = h.audit.of("workflow.imported");
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].1.target.id, new_id);
    assert_eq!(imported[0].1.actor.id, Some(ALICE.to_string()));
}

#[tokio::test]
async fn large_imports_span_several_transactions() {
    let h = Harness::new().await;
    let nodes: Vec<Value> = (0..150)
        .map(|i| if i == 0 { json!({"id": "n0", "title": "n0"}) } else { json!({"id": format!("n{i}"), "parent_id": format!("n{}", (i - 1) / 2), "title": format!("n{i}")}) })
        .collect();
    let doc = json!({"format_version": 1, "workflow": {"name": "Big", "status": "draft"}, "nodes": nodes});
    let r = h
        .send(
            "POST",
            "/api/v3/workflows/import",
            Some(ALICE),
            Some(doc.clone()),
            &[("idempotency-key", "big-1")],
        )
        .await;
    let id = r.ok(201)["id"].as_str().unwrap().to_string();
    let again = h
        .send(
            "POST",
            "/api/v3/workflows/import",
            Some(ALICE),
            Some(doc),
            &[("idempotency-key", "big-1")],
        )
        .await;
    assert_eq!(again.ok(201)["id"], id.as_str());
    let stats = h
        .get(&format!("/api/v3/workflows/{id}/statistics"), ALICE)
        .await;
    assert_eq!(stats.ok(200)["node_count"], 150);
    assert_eq!(stats.body["max_depth"], 8);
    let list = h.get("/api/v3/workflows", ALICE).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let export = h
        .get(&format!("/api/v3/workflows/{id}/export"), ALICE)
        .await;
    assert_eq!(export.ok(200)["nodes"].as_array().unwrap().len(), 150);
}

#[tokio::test]
async fn bad_documents_are_refused() {
    let h = Harness::new().await;
    let import = |doc: Value| h.post("/api/v3/workflows/import", ALICE, doc);
    let ok_workflow = json!({"name": "W", "status": "draft"});
    let r = import(json!({"format_version": 2, "workflow": ok_workflow, "nodes": []})).await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "format_version"
    );
    let r = import(
        json!({"format_version": 1, "workflow": {"name": "W", "status": "deleted"}, "nodes": []}),
    )
    .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "workflow.status"
    );
    let r = import(
        json!({"format_version": 1, "workflow": ok_workflow, "nodes": [
            {"id": "a", "parent_id": "b", "title": "a"}, {"id": "b", "parent_id": "a", "title": "b"}
        ]}),
    )
    .await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = import(json!({"format_version": 1, "workflow": ok_workflow, "nodes": [{"id": "a", "parent_id": "zz", "title": "a"}]})).await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "nodes[0].parent_id"
    );
    let r = import(json!({"format_version": 1, "workflow": ok_workflow, "nodes": [{"id": "a", "title": "a"}, {"id": "a", "title": "b"}]})).await;
    assert_eq!(
        r.problem(422, "validation-failed")["errors"][0]["field"],
        "nodes[1].id"
    );
    let r = import(json!({"format_version": 1, "workflow": {"name": "", "status": "draft", "secret": 1}, "nodes": []})).await;
    r.problem(422, "validation-failed");
    assert!(h.items().await.is_empty());
}
