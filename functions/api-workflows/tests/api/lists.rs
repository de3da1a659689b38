//! The workflow list: own workflows only, newest first, filters, cursors.

use crate::harness::*;
use serde_json::{Value, json};

fn names(r: &Reply) -> Vec<String> {
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn newest_first_with_filters() {
    let h = Harness::new().await;
    let mut created = Vec::new();
    for (name, tags) in [
        ("Alpha report", json!(["x"])),
        ("Beta Report", json!(["y"])),
        ("gamma notes", json!(["x", "y"])),
    ] {
        created.push(h.create(ALICE, json!({"name": name, "tags": tags})).await);
    }
    h.create_named(BOB, "Bob's report").await;
    let gamma = created[2]["id"].as_str().unwrap();
    h.post(
        &format!("/api/v3/workflows/{gamma}/status"),
        ALICE,
        json!({"status": "active"}),
    )
    .await
    .ok(200);

    let all = h.get("/api/v3/workflows", ALICE).await;
    all.ok(200);
    assert_eq!(names(&all), ["gamma notes", "Beta Report", "Alpha report"]);
    assert_eq!(all.body["next_cursor"], Value::Null);

    assert_eq!(
        names(&h.get("/api/v3/workflows?status=active", ALICE).await),
        ["gamma notes"]
    );
    assert_eq!(
        names(&h.get("/api/v3/workflows?tag=x", ALICE).await),
        ["gamma notes", "Alpha report"]
    );
    assert_eq!(
        names(&h.get("/api/v3/workflows?q=REPORT", ALICE).await),
        ["Beta Report", "Alpha report"]
    );
    assert_eq!(
        names(&h.get("/api/v3/workflows?q=rep%20alp", ALICE).await),
        ["Alpha report"]
    );
    assert_eq!(
        names(&h.get("/api/v3/workflows?q=port", ALICE).await),
        Vec::<String>::new()
    );

    let t1 = created[1]["created_at"].as_str().unwrap();
    let after = h
        .get(
            &format!("/api/v3/workflows?created_after={}", urlencode(t1)),
            ALICE,
        )
        .await;
    assert_eq!(names(&after), ["gamma notes"]);
    let before = h
        .get(
            &format!("/api/v3/workflows?created_before={}", urlencode(t1)),
            ALICE,
        )
        .await;
    assert_eq!(names(&before), ["Alpha report"]);
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn cursor_pages_through_everything_once() {
    let h = Harness::new().await;
    for i in 0..7 {
        h.create_named(ALICE, &format!("w{i}")).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v3/workflows?limit=3".to_string();
    for _ in 0..10 {
        let r = h.get(&uri, ALICE).await;
        seen.extend(names(r_ok(&r)));
        match r.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v3/workflows?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["w6", "w5", "w4", "w3", "w2", "w1", "w0"]);
}

fn r_ok(r: &Reply) -> &Reply {
    r.ok(200);
    r
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let h = Harness::new().await;
    h.create_named(ALICE, "w1").await;
    h.create_named(ALICE, "w2").await;
    for uri in [
        "/api/v3/workflows?limit=0",
        "/api/v3/workflows?limit=101",
        "/api/v3/workflows?limit=ten",
        "/api/v3/workflows?status=sleeping",
        "/api/v3/workflows?created_after=yesterday",
        "/api/v3/workflows?cursor=%%%",
        "/api/v3/workflows?cursor=eyJhIjoxfQ",
        "/api/v3/workflows?colour=red",
        "/api/v3/workflows?limit=1&limit=2",
    ] {
        let r = h.get(uri, ALICE).await;
        r.problem(400, "invalid-parameter");
    }
    h.get(
        "/api/v3/workflows?created_after=2026-02-01T00:00:00Z&created_before=2026-01-01T00:00:00Z",
        ALICE,
    )
    .await
    .problem(422, "validation-failed");
    // Alice's cursor is not Bob's.
    let page = h.get("/api/v3/workflows?limit=1", ALICE).await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let r = h
        .get(&format!("/api/v3/workflows?cursor={cursor}"), BOB)
        .await;
    r.problem(400, "invalid-parameter");
}
