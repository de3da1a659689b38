//! Sharing workflows as `viewer` or `editor`, account roles (viewer, editor, admin), account
//! status and token cutoff, and the scopes of API keys: what each caller may see and change.
//!
//! User ids here are ULIDs, as the identity service makes them: shares name users by id, and
//! API keys carry the user id.

use crate::harness::*;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use shared::domain::account::AccountStatus;
use shared::domain::{Role, Scope, ids};
use shared::testing::TestKeys;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// A new user id (the account is made on first use).
fn user() -> String {
    ids::new_id()
}

fn wf(id: &str) -> String {
    format!("/api/v3/workflows/{id}")
}

fn shares_uri(id: &str) -> String {
    format!("/api/v3/workflows/{id}/shares")
}

/// Every workflow, node, share and idempotency item, in key order, to compare before and after.
async fn snapshot(h: &Harness) -> Vec<Item> {
    let mut items = h.items().await;
    items.sort_by_key(|i| format!("{:?}{:?}", i["PK"], i["SK"]));
    items
}

/// The stored item with this key, if any.
async fn item(h: &Harness, pk: &str, sk: &str) -> Option<Item> {
    h.items().await.into_iter().find(|i| {
        i.get("PK") == Some(&AttributeValue::S(pk.into()))
            && i.get("SK") == Some(&AttributeValue::S(sk.into()))
    })
}

/// The `shares` map of the stored workflow item, as user id -> access.
async fn stored_shares(h: &Harness, id: &str) -> HashMap<String, String> {
    let w = item(h, &format!("WF#{id}"), "#WORKFLOW")
        .await
        .expect("the workflow item");
    match w.get("shares") {
        None => HashMap::new(),
        Some(AttributeValue::M(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_s().expect("access is a string").clone()))
            .collect(),
        Some(other) => panic!("shares is not a map: {other:?}"),
    }
}

/// The ids of a list response's items.
fn ids_of(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {list}"))
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect()
}

/// A workflow of `owner` with one root node: (workflow id, root node id).
async fn workflow_with_root(h: &Harness, owner: &str, name: &str) -> (String, String) {
    let created = h
        .create(
            owner,
            json!({"name": name, "tags": ["shared"], "nodes": [{"title": "Root"}]}),
        )
        .await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["nodes"][0]["id"].as_str().unwrap().to_string(),
    )
}

/// A share list body, items in user id order as the API returns them.
fn share_list(id: &str, shares: &[(&str, &str)]) -> Value {
    let mut items: Vec<(&str, &str)> = shares.to_vec();
    items.sort();
    json!({
        "workflow_id": id,
        "items": items.iter().map(|(u, a)| json!({"user_id": u, "access": a})).collect::<Vec<_>>(),
    })
}

async fn share(h: &Harness, actor: &str, id: &str, body: Value) -> Reply {
    h.post(&shares_uri(id), actor, body).await
}

async fn unshare(h: &Harness, actor: &str, id: &str, user_id: &str) -> Reply {
    h.send(
        "DELETE",
        &format!("{}/{user_id}", shares_uri(id)),
        Some(actor),
        None,
        &[],
    )
    .await
}

/// PATCH of a workflow at `version` (sent as `If-Match`).
async fn patch(h: &Harness, actor: &str, id: &str, version: u64, body: Value) -> Reply {
    let etag = format!("\"{version}\"");
    h.send(
        "PATCH",
        &wf(id),
        Some(actor),
        Some(body),
        &[("if-match", etag.as_str())],
    )
    .await
}

/// Every change a caller can attempt on workflow `id` (with root node `root`) at `version`:
/// (method, uri, body, If-Match).
fn write_attempts(
    id: &str,
    root: &str,
    version: u64,
) -> Vec<(&'static str, String, Option<Value>, Option<String>)> {
    let w = wf(id);
    let v = Some(format!("\"{version}\""));
    vec![
        (
            "PATCH",
            w.clone(),
            Some(json!({"name": "Changed"})),
            v.clone(),
        ),
        (
            "POST",
            format!("{w}/status"),
            Some(json!({"status": "active"})),
            v.clone(),
        ),
        (
            "POST",
            format!("{w}/nodes"),
            Some(json!({"title": "Added", "parent_id": root})),
            None,
        ),
        (
            "PATCH",
            format!("{w}/nodes/{root}"),
            Some(json!({"title": "Changed"})),
            Some("\"1\"".to_string()),
        ),
        (
            "DELETE",
            format!("{w}/nodes/{root}?cascade=true"),
            None,
            None,
        ),
        ("DELETE", w, None, v),
    ]
}

/// Sends every attempt as `actor` and asserts each is a 403 `forbidden` problem whose detail
/// contains `why`.
async fn assert_all_forbidden(
    h: &Harness,
    actor: &str,
    attempts: Vec<(&'static str, String, Option<Value>, Option<String>)>,
    why: &str,
) {
    for (method, uri, body, if_match) in attempts {
        let headers: Vec<(&str, &str)> = if_match
            .as_deref()
            .map(|v| vec![("if-match", v)])
            .unwrap_or_default();
        let r = h.send(method, &uri, Some(actor), body, &headers).await;
        assert_eq!(r.status, 403, "{method} {uri}: {}", r.text);
        let problem = r.problem(403, "forbidden");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{method} {uri}: {}",
            r.text
        );
    }
}

// 1. Viewer shares ------------------------------------------------------------------------

#[tokio::test]
async fn a_viewer_share_lets_the_user_read_but_change_nothing() {
    let h = Harness::new().await;
    let (alice, bob, dora) = (user(), user(), user());
    h.account(&bob).await;
    h.account(&dora).await;
    let (id, root) = workflow_with_root(&h, &alice, "Shared plan").await;
    let bobs_own = h.create_named(&bob, "Bob's own").await;

    // By user id ...
    let r = share(&h, &alice, &id, json!({"user_id": bob, "access": "viewer"})).await;
    assert_eq!(r.ok(200), &share_list(&id, &[(&bob, "viewer")]));
    // ... and by email, as typed (ULIDs are upper case; stored emails lower case).
    let r = share(
        &h,
        &alice,
        &id,
        json!({"email": format!("{dora}@example.com"), "access": "viewer"}),
    )
    .await;
    let both = share_list(&id, &[(&bob, "viewer"), (&dora, "viewer")]);
    assert_eq!(r.ok(200), &both);

    // Stored: the map on the workflow, and one entry per user that puts it in their list.
    assert_eq!(
        stored_shares(&h, &id).await,
        HashMap::from([
            (bob.clone(), "viewer".to_string()),
            (dora.clone(), "viewer".to_string())
        ])
    );
    let entry = item(&h, &format!("SHARE#{id}"), &format!("USER#{bob}"))
        .await
        .expect("a share entry for Bob");
    assert_eq!(entry["share_access"], AttributeValue::S("viewer".into()));
    assert_eq!(entry["GSI1PK"], AttributeValue::S(format!("OWNER#{bob}")));
    assert!(
        item(&h, &format!("SHARE#{id}"), &format!("USER#{dora}"))
            .await
            .is_some()
    );

    // Bob reads it: the workflow, its nodes, its shares, and in his list beside his own.
    let r = h.get(&wf(&id), &bob).await;
    assert_eq!(r.ok(200)["name"], "Shared plan");
    assert_eq!(r.body["owner_id"], alice.as_str());
    assert_eq!(r.header("etag"), Some("\"1\""));
    let nodes = h.get(&format!("{}/nodes", wf(&id)), &bob).await;
    assert_eq!(ids_of(nodes.ok(200)), vec![root.clone()]);
    h.get(&format!("{}/statistics", wf(&id)), &bob)
        .await
        .ok(200);
    h.get(&format!("{}/export", wf(&id)), &bob).await.ok(200);
    assert_eq!(h.get(&shares_uri(&id), &bob).await.ok(200), &both);
    let list = ids_of(h.get("/api/v3/workflows", &bob).await.ok(200));
    assert!(list.contains(&id), "{list:?}");
    assert!(list.contains(&bobs_own), "{list:?}");
    assert_eq!(list.len(), 2, "{list:?}");
    let list = ids_of(h.get("/api/v3/workflows", &dora).await.ok(200));
    assert_eq!(list, vec![id.clone()]);

    // Every change is refused, and nothing changes.
    let before = snapshot(&h).await;
    assert_all_forbidden(
        &h,
        &bob,
        write_attempts(&id, &root, 1),
        "shared with you read-only",
    )
    .await;
    // Nor can he share it on, or take Dora's share away.
    share(&h, &bob, &id, json!({"user_id": dora, "access": "editor"}))
        .await
        .problem(403, "forbidden");
    unshare(&h, &bob, &id, &dora)
        .await
        .problem(403, "forbidden");
    let bulk = h
        .post(
            "/api/v3/workflows/bulk",
            &bob,
            json!({"action": "pause", "ids": [id]}),
        )
        .await;
    assert_eq!(bulk.ok(200)["results"][0]["outcome"], "not_found");
    assert_eq!(
        snapshot(&h).await,
        before,
        "a viewer's attempts changed the workflow"
    );
    let r = h.get(&wf(&id), &alice).await;
    assert_eq!(r.ok(200)["name"], "Shared plan");
    assert_eq!(r.body["version"], 1);
}

#[tokio::test]
async fn shared_workflows_in_a_list_follow_its_filters_pages_and_deletion() {
    let h = Harness::new().await;
    let (alice, bob) = (user(), user());
    h.account(&bob).await;
    let (tagged, _) = workflow_with_root(&h, &alice, "Tagged plan").await;
    let plain = h.create_named(&alice, "Plain plan").await;
    let own = h.create_named(&bob, "Bob's own").await;
    for id in [&tagged, &plain] {
        share(&h, &alice, id, json!({"user_id": bob, "access": "viewer"}))
            .await
            .ok(200);
    }

    let list = ids_of(h.get("/api/v3/workflows?tag=shared", &bob).await.ok(200));
    assert_eq!(list, vec![tagged.clone()]);
    let list = ids_of(h.get("/api/v3/workflows?q=plain", &bob).await.ok(200));
    assert_eq!(list, vec![plain.clone()]);

    // Newest first, one per page, own and shared alike.
    let mut seen = Vec::new();
    let mut uri = "/api/v3/workflows?limit=1".to_string();
    for _ in 0..10 {
        let page = h.get(&uri, &bob).await;
        seen.extend(ids_of(page.ok(200)));
        match page.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v3/workflows?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![own.clone(), plain.clone(), tagged.clone()]);

    // Deleted by its owner: gone for Bob too.
    h.send("DELETE", &wf(&plain), Some(&alice), None, &[])
        .await
        .ok(204);
    h.get(&wf(&plain), &bob).await.problem(404, "not-found");
    let list = ids_of(h.get("/api/v3/workflows", &bob).await.ok(200));
    assert_eq!(list, vec![own, tagged]);
}

// 2. Editor shares -----------------------------------------------------------------------

#[tokio::test]
async fn an_editor_share_lets_the_user_change_but_not_delete_or_reshare_until_unshared() {
    let h = Harness::new().await;
    let (alice, bob, carol) = (user(), user(), user());
    h.account(&bob).await;
    h.account(&carol).await;
    let (id, root) = workflow_with_root(&h, &alice, "Team plan").await;
    let r = share(&h, &alice, &id, json!({"user_id": bob, "access": "editor"})).await;
    assert_eq!(r.ok(200), &share_list(&id, &[(&bob, "editor")]));

    // Bob changes it and adds a node; Alice sees both.
    let r = patch(&h, &bob, &id, 1, json!({"name": "Team plan, revised"})).await;
    assert_eq!(r.ok(200)["name"], "Team plan, revised");
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.header("etag"), Some("\"2\""));
    let r = h
        .post(
            &format!("{}/nodes", wf(&id)),
            &bob,
            json!({"title": "Bob's step", "parent_id": root}),
        )
        .await;
    let node = r.ok(201)["id"].as_str().unwrap().to_string();
    let r = h.get(&wf(&id), &alice).await;
    assert_eq!(r.ok(200)["name"], "Team plan, revised");
    assert_eq!(r.body["node_count"], 2);
    h.get(&format!("{}/nodes/{node}", wf(&id)), &alice)
        .await
        .ok(200);

    // Deleting it and sharing it are the owner's alone.
    let before = snapshot(&h).await;
    let version = h.get(&wf(&id), &alice).await.ok(200)["version"]
        .as_u64()
        .unwrap();
    let etag = format!("\"{version}\"");
    let r = h
        .send(
            "DELETE",
            &wf(&id),
            Some(&bob),
            None,
            &[("if-match", etag.as_str())],
        )
        .await;
    r.problem(403, "forbidden");
    h.send("DELETE", &wf(&id), Some(&bob), None, &[])
        .await
        .problem(403, "forbidden");
    share(&h, &bob, &id, json!({"user_id": carol, "access": "viewer"}))
        .await
        .problem(403, "forbidden");
    share(&h, &bob, &id, json!({"user_id": bob, "access": "editor"}))
        .await
        .problem(403, "forbidden");
    unshare(&h, &bob, &id, &bob).await.problem(403, "forbidden");
    assert_eq!(snapshot(&h).await, before, "Bob's refused attempts wrote");
    h.get(&wf(&id), &carol).await.problem(404, "not-found");

    // Unsharing a user it is not shared with: 404, nothing written.
    unshare(&h, &alice, &id, &carol)
        .await
        .problem(404, "not-found");
    unshare(&h, &alice, &id, &user())
        .await
        .problem(404, "not-found");
    assert_eq!(snapshot(&h).await, before);

    // Alice unshares: Bob loses it at once.
    let r = unshare(&h, &alice, &id, &bob).await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get(&wf(&id), &bob).await.problem(404, "not-found");
    h.get(&shares_uri(&id), &bob)
        .await
        .problem(404, "not-found");
    patch(&h, &bob, &id, version, json!({"name": "Too late"}))
        .await
        .problem(404, "not-found");
    assert!(
        !ids_of(h.get("/api/v3/workflows", &bob).await.ok(200)).contains(&id),
        "an unshared workflow stayed in the list"
    );
    assert_eq!(
        h.get(&shares_uri(&id), &alice).await.ok(200),
        &share_list(&id, &[])
    );
    assert!(stored_shares(&h, &id).await.is_empty());
    assert!(
        item(&h, &format!("SHARE#{id}"), &format!("USER#{bob}"))
            .await
            .is_none(),
        "the share entry was left behind"
    );
    unshare(&h, &alice, &id, &bob)
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn sharing_again_changes_the_access() {
    let h = Harness::new().await;
    let (alice, bob) = (user(), user());
    h.account(&bob).await;
    let (id, _) = workflow_with_root(&h, &alice, "Plan").await;
    share(&h, &alice, &id, json!({"user_id": bob, "access": "editor"}))
        .await
        .ok(200);
    let r = share(&h, &alice, &id, json!({"user_id": bob, "access": "viewer"})).await;
    assert_eq!(r.ok(200), &share_list(&id, &[(&bob, "viewer")]));
    patch(&h, &bob, &id, 1, json!({"name": "Mine now"}))
        .await
        .problem(403, "forbidden");
    let entry = item(&h, &format!("SHARE#{id}"), &format!("USER#{bob}"))
        .await
        .unwrap();
    assert_eq!(entry["share_access"], AttributeValue::S("viewer".into()));
    assert_eq!(
        ids_of(h.get("/api/v3/workflows", &bob).await.ok(200)),
        vec![id]
    );
}

#[tokio::test]
async fn a_workflow_stored_before_sharing_existed_can_be_shared() {
    // Workflows written before the `shares` attribute was introduced have none.
    let h = Harness::new().await;
    let (alice, bob) = (user(), user());
    h.account(&bob).await;
    let (id, _) = workflow_with_root(&h, &alice, "Old plan").await;
    h.client
        .update_item()
        .table_name(&h.table)
        .key("PK", AttributeValue::S(format!("WF#{id}")))
        .key("SK", AttributeValue::S("#WORKFLOW".into()))
        .update_expression("REMOVE shares")
        .send()
        .await
        .unwrap();
    h.get(&wf(&id), &alice).await.ok(200);
    let r = share(&h, &alice, &id, json!({"user_id": bob, "access": "viewer"})).await;
    assert_eq!(r.ok(200), &share_list(&id, &[(&bob, "viewer")]));
    h.get(&wf(&id), &bob).await.ok(200);
}

// 3. Strangers and bad requests ----------------------------------------------------------

#[tokio::test]
async fn strangers_get_404_on_every_shares_route() {
    let h = Harness::new().await;
    let (alice, bob, carol) = (user(), user(), user());
    h.account(&bob).await;
    h.account(&carol).await;
    let (id, _) = workflow_with_root(&h, &alice, "Private").await;
    share(&h, &alice, &id, json!({"user_id": bob, "access": "viewer"}))
        .await
        .ok(200);
    let before = snapshot(&h).await;
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", shares_uri(&id), None),
        (
            "POST",
            shares_uri(&id),
            Some(json!({"user_id": carol, "access": "editor"})),
        ),
        (
            "POST",
            shares_uri(&id),
            Some(json!({"user_id": bob, "access": "editor"})),
        ),
        (
            "POST",
            shares_uri(&id),
            Some(json!({"email": format!("{bob}@example.com"), "access": "editor"})),
        ),
        ("DELETE", format!("{}/{bob}", shares_uri(&id)), None),
        ("DELETE", format!("{}/{carol}", shares_uri(&id)), None),
    ];
    for (method, uri, body) in attempts {
        let r = h.send(method, &uri, Some(&carol), body, &[]).await;
        assert_eq!(r.status, 404, "{method} {uri}: {}", r.text);
        r.problem(404, "not-found");
    }
    // The same as for a workflow that does not exist at all.
    let missing = ids::new_id();
    h.get(&shares_uri(&missing), &alice)
        .await
        .problem(404, "not-found");
    share(
        &h,
        &alice,
        &missing,
        json!({"user_id": bob, "access": "viewer"}),
    )
    .await
    .problem(404, "not-found");
    unshare(&h, &alice, &missing, &bob)
        .await
        .problem(404, "not-found");
    // Sharing by email with a workflow that does not exist, or one that is not the caller's,
    // tells nothing about the address: an account's and an unknown one's answers are equal.
    h.account(&bob).await;
    for workflow in [&missing, &id] {
        let mut answers: Vec<(u16, Value)> = Vec::new();
        for email in [
            format!("{bob}@example.com"),
            "nobody-at-all@example.com".into(),
        ] {
            let r = h
                .send(
                    "POST",
                    &shares_uri(workflow),
                    Some(&carol),
                    Some(json!({"email": email, "access": "viewer"})),
                    &[],
                )
                .await;
            answers.push((r.status, r.body));
        }
        assert_eq!(answers[0], answers[1], "{workflow}");
        assert_eq!(answers[0].0, 404, "{workflow}: {:?}", answers[0]);
    }
    assert_eq!(snapshot(&h).await, before, "a stranger's attempts wrote");
}

#[tokio::test]
async fn bad_share_requests_are_422_and_write_nothing() {
    let h = Harness::new().await;
    let (alice, bob, suspended) = (user(), user(), user());
    h.account(&bob).await;
    h.set_account(&suspended, |a| a.status = AccountStatus::Suspended)
        .await;
    let (id, _) = workflow_with_root(&h, &alice, "Plan").await;
    let before = snapshot(&h).await;
    let bob_email = format!("{bob}@example.com");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown email",
            json!({"email": "nobody@example.com", "access": "viewer"}),
            "email",
        ),
        (
            "not an email",
            json!({"email": "not-an-email", "access": "viewer"}),
            "email",
        ),
        (
            "unknown user id",
            json!({"user_id": ids::new_id(), "access": "viewer"}),
            "user_id",
        ),
        (
            "malformed user id",
            json!({"user_id": "bob", "access": "viewer"}),
            "user_id",
        ),
        (
            "both email and user_id",
            json!({"email": bob_email, "user_id": bob, "access": "viewer"}),
            "email",
        ),
        ("neither", json!({"access": "viewer"}), "email"),
        (
            "unknown access",
            json!({"user_id": bob, "access": "owner"}),
            "access",
        ),
        ("no access", json!({"user_id": bob}), ""),
        (
            "unknown field",
            json!({"user_id": bob, "access": "viewer", "role": "admin"}),
            "",
        ),
        (
            "the owner by id",
            json!({"user_id": alice, "access": "editor"}),
            "user_id",
        ),
        (
            "the owner by email",
            json!({"email": format!("{alice}@example.com"), "access": "editor"}),
            "email",
        ),
        (
            "a suspended user",
            json!({"user_id": suspended, "access": "viewer"}),
            "user_id",
        ),
    ];
    for (name, body, field) in cases {
        let r = share(&h, &alice, &id, body).await;
        assert_eq!(r.status, 422, "{name}: {}", r.text);
        let problem = r.problem(422, "validation-failed");
        if !field.is_empty() {
            assert_eq!(problem["errors"][0]["field"], field, "{name}: {}", r.text);
        }
    }
    h.send(
        "POST",
        &shares_uri(&id),
        Some(&alice),
        Some(json!(["not", "an", "object"])),
        &[],
    )
    .await
    .problem(422, "validation-failed");
    h.send_raw(
        "POST",
        &shares_uri(&id),
        Some(&alice),
        lambda_http::Body::Text("{".into()),
        &[],
    )
    .await
    .problem(400, "invalid-json");
    // A user id in the path must be an id.
    let r = h
        .send(
            "DELETE",
            &format!("{}/bob", shares_uri(&id)),
            Some(&alice),
            None,
            &[],
        )
        .await;
    r.problem(400, "invalid-parameter");
    assert_eq!(snapshot(&h).await, before, "a refused share wrote");
    assert_eq!(
        h.get(&shares_uri(&id), &alice).await.ok(200),
        &share_list(&id, &[])
    );
}

// 4. Roles, status and token cutoff ------------------------------------------------------

#[tokio::test]
async fn the_viewer_role_reads_but_changes_nothing() {
    let h = Harness::new().await;
    let (vera, alice) = (user(), user());
    let (own, root) = workflow_with_root(&h, &vera, "Vera's plan").await;
    let (shared, shared_root) = workflow_with_root(&h, &alice, "Alice's plan").await;
    share(
        &h,
        &alice,
        &shared,
        json!({"user_id": vera, "access": "editor"}),
    )
    .await
    .ok(200);
    h.set_account(&vera, |a| a.role = Role::Viewer).await;

    // Reading works: her own, the list, one shared with her even as editor.
    assert_eq!(h.get(&wf(&own), &vera).await.ok(200)["name"], "Vera's plan");
    h.get(&format!("{}/nodes", wf(&own)), &vera).await.ok(200);
    h.get(&wf(&shared), &vera).await.ok(200);
    let mut list = ids_of(h.get("/api/v3/workflows", &vera).await.ok(200));
    list.sort();
    let mut expected = vec![own.clone(), shared.clone()];
    expected.sort();
    assert_eq!(list, expected);

    let before = snapshot(&h).await;
    let why = "viewer role";
    h.post("/api/v3/workflows", &vera, json!({"name": "New"}))
        .await
        .problem(403, "forbidden");
    assert_all_forbidden(&h, &vera, write_attempts(&own, &root, 1), why).await;
    assert_all_forbidden(&h, &vera, write_attempts(&shared, &shared_root, 1), why).await;
    for action in ["delete", "pause", "activate"] {
        h.post(
            "/api/v3/workflows/bulk",
            &vera,
            json!({"action": action, "ids": [own]}),
        )
        .await
        .problem(403, "forbidden");
    }
    share(
        &h,
        &vera,
        &own,
        json!({"user_id": alice, "access": "viewer"}),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(snapshot(&h).await, before, "a viewer changed something");

    // Made an editor again, she can write again.
    h.set_account(&vera, |a| a.role = Role::Editor).await;
    patch(&h, &vera, &own, 1, json!({"name": "Vera's plan, v2"}))
        .await
        .ok(200);
}

#[tokio::test]
async fn the_viewer_role_cannot_import() {
    let h = Harness::new().await;
    let vera = user();
    let (own, _) = workflow_with_root(&h, &vera, "Vera's plan").await;
    h.set_account(&vera, |a| a.role = Role::Viewer).await;
    let document = h
        .get(&format!("{}/export", wf(&own)), &vera)
        .await
        .ok(200)
        .clone();
    let before = snapshot(&h).await;
    let r = h.post("/api/v3/workflows/import", &vera, document).await;
    assert_eq!(r.status, 403, "a viewer imported a workflow: {}", r.text);
    let problem = r.problem(403, "forbidden");
    assert!(
        problem["detail"].as_str().unwrap().contains("viewer role"),
        "{}",
        r.text
    );
    assert_eq!(snapshot(&h).await, before, "a viewer's import wrote");
}

#[tokio::test]
async fn an_admin_reads_changes_and_shares_anyones_workflow() {
    let h = Harness::new().await;
    let (alice, admin, bob) = (user(), user(), user());
    h.account(&bob).await;
    h.set_account(&admin, |a| a.role = Role::Admin).await;
    let (id, root) = workflow_with_root(&h, &alice, "Alice's plan").await;

    assert_eq!(
        h.get(&wf(&id), &admin).await.ok(200)["owner_id"],
        alice.as_str()
    );
    h.get(&format!("{}/nodes/{root}", wf(&id)), &admin)
        .await
        .ok(200);
    let r = patch(&h, &admin, &id, 1, json!({"name": "Fixed by an admin"})).await;
    assert_eq!(r.ok(200)["name"], "Fixed by an admin");
    assert_eq!(r.body["owner_id"], alice.as_str(), "the owner stays");
    assert_eq!(
        h.get(&wf(&id), &alice).await.ok(200)["name"],
        "Fixed by an admin"
    );

    let r = share(&h, &admin, &id, json!({"user_id": bob, "access": "viewer"})).await;
    assert_eq!(r.ok(200), &share_list(&id, &[(&bob, "viewer")]));
    h.get(&wf(&id), &bob).await.ok(200);
    let r = unshare(&h, &admin, &id, &bob).await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get(&wf(&id), &bob).await.problem(404, "not-found");
}

#[tokio::test]
async fn a_suspended_account_is_refused_at_once_and_nothing_is_written() {
    let h = Harness::new().await;
    let (alice, bob) = (user(), user());
    h.account(&bob).await;
    let (id, root) = workflow_with_root(&h, &alice, "Plan").await;
    let earlier_token = h.keys.token(&alice);
    h.send_bearer("GET", &wf(&id), &earlier_token, None)
        .await
        .ok(200);
    h.set_account(&alice, |a| a.status = AccountStatus::Suspended)
        .await;

    let before = snapshot(&h).await;
    let w = wf(&id);
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v3/workflows".into(), None),
        (
            "POST",
            "/api/v3/workflows".into(),
            Some(json!({"name": "x"})),
        ),
        ("GET", w.clone(), None),
        (
            "PATCH",
            w.clone(),
            Some(json!({"name": "x", "expected_version": 1})),
        ),
        ("DELETE", w.clone(), None),
        ("GET", format!("{w}/nodes"), None),
        (
            "POST",
            format!("{w}/nodes"),
            Some(json!({"title": "x", "parent_id": root})),
        ),
        ("GET", format!("{w}/shares"), None),
        (
            "POST",
            format!("{w}/shares"),
            Some(json!({"user_id": bob, "access": "viewer"})),
        ),
        (
            "POST",
            "/api/v3/workflows/bulk".into(),
            Some(json!({"action": "delete", "ids": [id]})),
        ),
    ];
    for (method, uri, body) in attempts {
        // A token issued before the suspension, and a fresh one.
        let r = h
            .send_bearer(method, &uri, &earlier_token, body.clone())
            .await;
        assert_eq!(r.status, 401, "{method} {uri}: {}", r.text);
        r.problem(401, "unauthorized");
        let r = h.send(method, &uri, Some(&alice), body, &[]).await;
        assert_eq!(r.status, 401, "{method} {uri}: {}", r.text);
        r.problem(401, "unauthorized");
    }
    assert_eq!(
        snapshot(&h).await,
        before,
        "a suspended account wrote something"
    );

    h.set_account(&alice, |a| a.status = AccountStatus::Active)
        .await;
    h.get(&wf(&id), &alice).await.ok(200);
}

#[tokio::test]
async fn tokens_issued_before_tokens_valid_after_are_refused() {
    let h = Harness::new().await;
    let alice = user();
    let id = h.create_named(&alice, "Plan").await;
    let old = h.keys.token(&alice);
    h.send_bearer("GET", &wf(&id), &old, None).await.ok(200);
    // Later than the old token's issue time by less than a second: the cutoff is compared to
    // the millisecond.
    let cutoff = chrono::Utc::now() + chrono::Duration::milliseconds(500);
    h.set_account(&alice, |a| a.tokens_valid_after = cutoff)
        .await;

    let r = h.send_bearer("GET", &wf(&id), &old, None).await;
    r.problem(401, "unauthorized");
    let r = h
        .send_bearer(
            "POST",
            "/api/v3/workflows",
            &old,
            Some(json!({"name": "x"})),
        )
        .await;
    r.problem(401, "unauthorized");
    h.get("/api/v3/workflows", &alice)
        .await
        .problem(401, "unauthorized");
    assert_eq!(h.items().await.len(), 1, "a revoked token wrote");

    // A token issued at the cutoff is good.
    let mut claims = TestKeys::claims(&alice);
    claims["iat"] = json!(cutoff.timestamp_millis() as f64 / 1000.0);
    let fresh = h.keys.sign(&claims);
    h.send_bearer("GET", &wf(&id), &fresh, None).await.ok(200);
}

// 5. API keys ----------------------------------------------------------------------------

#[tokio::test]
async fn a_read_only_key_reads_but_cannot_write() {
    let h = Harness::new().await;
    let u = user();
    let (id, root) = workflow_with_root(&h, &u, "Plan").await;
    let key = h.api_key(&u, &[Scope::WorkflowsRead]).await;

    let list = h.send_bearer("GET", "/api/v3/workflows", &key, None).await;
    assert_eq!(ids_of(list.ok(200)), vec![id.clone()]);
    let r = h.send_bearer("GET", &wf(&id), &key, None).await;
    assert_eq!(r.ok(200)["name"], "Plan");
    h.send_bearer("GET", &format!("{}/nodes/{root}", wf(&id)), &key, None)
        .await
        .ok(200);

    let before = snapshot(&h).await;
    let r = h
        .send_bearer(
            "POST",
            "/api/v3/workflows",
            &key,
            Some(json!({"name": "New"})),
        )
        .await;
    let problem = r.problem(403, "forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("workflows:write"),
        "{}",
        r.text
    );
    h.send_bearer(
        "PATCH",
        &wf(&id),
        &key,
        Some(json!({"name": "x", "expected_version": 1})),
    )
    .await
    .problem(403, "forbidden");
    h.send_bearer(
        "POST",
        &format!("{}/nodes", wf(&id)),
        &key,
        Some(json!({"title": "x", "parent_id": root})),
    )
    .await
    .problem(403, "forbidden");
    h.send_bearer("DELETE", &wf(&id), &key, None)
        .await
        .problem(403, "forbidden");
    assert_eq!(snapshot(&h).await, before, "a read-only key wrote");
}

#[tokio::test]
async fn a_read_only_key_cannot_import() {
    let h = Harness::new().await;
    let u = user();
    let (id, _) = workflow_with_root(&h, &u, "Plan").await;
    let key = h.api_key(&u, &[Scope::WorkflowsRead]).await;
    let document = h
        .send_bearer("GET", &format!("{}/export", wf(&id)), &key, None)
        .await
        .ok(200)
        .clone();
    let before = snapshot(&h).await;
    let r = h
        .send_bearer("POST", "/api/v3/workflows/import", &key, Some(document))
        .await;
    assert_eq!(r.status, 403, "a read-only key imported: {}", r.text);
    let problem = r.problem(403, "forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("workflows:write"),
        "{}",
        r.text
    );
    assert_eq!(snapshot(&h).await, before, "a read-only key's import wrote");
}

#[tokio::test]
async fn an_editors_key_with_the_write_scope_creates_as_its_owner() {
    let h = Harness::new().await;
    let u = user();
    let key = h
        .api_key(&u, &[Scope::WorkflowsRead, Scope::WorkflowsWrite])
        .await;
    let r = h
        .send_bearer(
            "POST",
            "/api/v3/workflows",
            &key,
            Some(json!({"name": "Made by a key"})),
        )
        .await;
    let created = r.ok(201);
    assert_eq!(created["owner_id"], u.as_str());
    let id = created["id"].as_str().unwrap().to_string();
    let r = h
        .send_bearer(
            "PATCH",
            &wf(&id),
            &key,
            Some(json!({"name": "Changed by a key", "expected_version": 1})),
        )
        .await;
    assert_eq!(r.ok(200)["version"], 2);
    // The same workflow as its owner sees it with a token.
    assert_eq!(
        h.get(&wf(&id), &u).await.ok(200)["name"],
        "Changed by a key"
    );
}

#[tokio::test]
async fn a_key_never_acts_beyond_its_owners_role() {
    let h = Harness::new().await;
    let (vera, eddie, alice) = (user(), user(), user());
    let all = [Scope::WorkflowsRead, Scope::WorkflowsWrite, Scope::Admin];
    let veras_key = h.api_key(&vera, &all).await;
    h.set_account(&vera, |a| a.role = Role::Viewer).await;
    let before = snapshot(&h).await;
    h.send_bearer(
        "POST",
        "/api/v3/workflows",
        &veras_key,
        Some(json!({"name": "x"})),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(snapshot(&h).await, before, "a viewer's key wrote");
    h.send_bearer("GET", "/api/v3/workflows", &veras_key, None)
        .await
        .ok(200);

    // An editor's key given `admin` is still not an admin's.
    let id = h.create_named(&alice, "Alice's").await;
    let eddies_key = h.api_key(&eddie, &all).await;
    h.send_bearer("GET", &wf(&id), &eddies_key, None)
        .await
        .problem(404, "not-found");
    h.send_bearer(
        "PATCH",
        &wf(&id),
        &eddies_key,
        Some(json!({"name": "x", "expected_version": 1})),
    )
    .await
    .problem(404, "not-found");
}

#[tokio::test]
async fn a_key_without_the_read_scope_reads_nothing() {
    let h = Harness::new().await;
    let u = user();
    let id = h.create_named(&u, "Secret plan").await;
    let key = h.api_key(&u, &[Scope::WorkflowsWrite]).await;
    h.send_bearer("GET", &wf(&id), &key, None)
        .await
        .problem(404, "not-found");
    let r = h.send_bearer("GET", "/api/v3/workflows", &key, None).await;
    assert!(
        r.status == 403 || (r.status == 200 && r.body["items"] == json!([])),
        "a key without workflows:read listed workflows: {} {}",
        r.status,
        r.text
    );
    assert!(!r.text.contains("Secret plan"), "{}", r.text);
}

#[tokio::test]
async fn bad_expired_and_suspended_keys_are_refused() {
    let h = Harness::new().await;
    let u = user();
    let scopes = [Scope::WorkflowsRead, Scope::WorkflowsWrite];
    let key = h.api_key(&u, &scopes).await;
    let (user_part, rest) = key.split_once('.').unwrap();
    let (key_id, _secret) = rest.split_once('.').unwrap();
    let other = user();
    h.account(&other).await;
    let expired = h
        .api_key_until(
            &u,
            &scopes,
            Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .await;
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong secret",
            format!("{user_part}.{key_id}.not-the-secret"),
        ),
        ("empty secret", format!("{user_part}.{key_id}.")),
        ("unknown key id", format!("{user_part}.{}.x", ids::new_id())),
        ("another user's id", format!("dwc_{other}.{key_id}.x")),
        ("malformed user id", format!("dwc_alice.{key_id}.x")),
        ("no parts", "dwc_".to_string()),
        ("expired", expired),
    ];
    for (name, credential) in cases {
        for (method, uri, body) in [
            ("GET", "/api/v3/workflows", None),
            ("POST", "/api/v3/workflows", Some(json!({"name": "x"}))),
        ] {
            let r = h.send_bearer(method, uri, &credential, body).await;
            assert_eq!(r.status, 401, "{name} {method}: {}", r.text);
            r.problem(401, "unauthorized");
            assert!(!r.text.contains(&credential), "{name}: the key was echoed");
        }
    }
    assert!(h.items().await.is_empty(), "a refused key wrote");

    // A key that expires later works until then; the good key works.
    let later = h
        .api_key_until(
            &u,
            &scopes,
            Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await;
    h.send_bearer("GET", "/api/v3/workflows", &later, None)
        .await
        .ok(200);
    h.send_bearer("GET", "/api/v3/workflows", &key, None)
        .await
        .ok(200);

    // Suspending the owner stops every key at once.
    h.set_account(&u, |a| a.status = AccountStatus::Suspended)
        .await;
    for k in [&key, &later] {
        h.send_bearer("GET", "/api/v3/workflows", k, None)
            .await
            .problem(401, "unauthorized");
    }
}
