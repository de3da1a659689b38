//! `/api/v3/notifications`: channels, preferences, the delivery log, channel tests, and the
//! admins' notices and templates. Deliveries themselves are the notifier's, tested there.

use crate::harness::*;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use shared::domain::notification::{Delivery, DeliveryStatus, Notification};
use shared::domain::notify::{ChannelKind, EventKind};
use std::collections::BTreeMap;

const CHANNELS: &str = "/api/v3/notifications/channels";
const PREFS: &str = "/api/v3/notifications/preferences";
const LOG: &str = "/api/v3/notifications";
const NOTICES: &str = "/api/v3/notifications/notices";
const TEMPLATE: &str = "/api/v3/notifications/templates/run_failed/email_html";
const WEBHOOK_URL: &str = "https://example.com/hooks/x";
const SLACK_URL: &str = "https://hooks.slack.com/services/T0/B0/xyz";

fn create_body(kind: &str, name: &str, target: &str) -> Value {
    json!({"kind": kind, "name": name, "target": target})
}

/// A new channel of `u`, as the creating answer shows it.
async fn channel(h: &Harness, u: &User, kind: &str, name: &str, target: &str) -> Value {
    h.post(CHANNELS, Some(&u.access), create_body(kind, name, target))
        .await
        .ok(201)
        .clone()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The channels `u` sees in the list.
async fn listed(h: &Harness, u: &User) -> Vec<Value> {
    h.get(CHANNELS, &u.access).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// The stored notification settings items (channels and preferences) of every user.
async fn config_items(h: &Harness) -> Vec<Value> {
    h.stored_items()
        .await
        .into_iter()
        .filter(|v| v["SK"].as_str().unwrap_or_default().starts_with("NCFG#"))
        .collect()
}

/// The stored system notices and channel tests.
async fn notice_items(h: &Harness) -> Vec<Value> {
    h.stored_items()
        .await
        .into_iter()
        .filter(|v| v["PK"].as_str().unwrap_or_default().starts_with("NOTICE#"))
        .collect()
}

/// The fields a validation problem names.
fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

fn channel_path(id: &str) -> String {
    format!("{CHANNELS}/{id}")
}

async fn patch(h: &Harness, u: &User, id: &str, body: Value) -> Reply {
    h.send("PATCH", &channel_path(id), Some(&u.access), Some(body))
        .await
}

/// A notification of `user_id` in the delivery log, as the raiser stores it.
async fn stored_notification(h: &Harness, user_id: &str, channel_id: &str) -> Notification {
    let now = Utc::now();
    let n = Notification {
        id: shared::domain::ids::new_id(),
        user_id: user_id.to_string(),
        event: EventKind::RunFailed,
        created_at: now,
        send_at: now,
        vars: serde_json::Map::from_iter([("workflow_name".to_string(), json!("Report"))]),
        deliveries: BTreeMap::from([(
            channel_id.to_string(),
            Delivery {
                channel_id: channel_id.to_string(),
                kind: ChannelKind::Email,
                status: DeliveryStatus::Pending,
                attempts: vec![],
                reason: None,
                lease_until: None,
            },
        )]),
        verification: false,
    };
    assert!(h.api.notify.put_notification(&n).await.unwrap());
    n
}

#[tokio::test]
async fn a_webhook_secret_is_shown_once_and_urls_are_shown_without_their_path() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let created = h
        .post(
            CHANNELS,
            Some(&alice.access),
            create_body("webhook", "Ops hook", WEBHOOK_URL),
        )
        .await;
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let created = created.ok(201).clone();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 20,
        "{secret}"
    );
    assert_eq!(created["kind"], "webhook");
    assert_eq!(created["name"], "Ops hook");
    assert_eq!(created["status"], "active");
    assert_eq!(created["target"], "https://example.com/…");
    let id = id_of(&created);

    let list = h.get(CHANNELS, &alice.access).await;
    assert_eq!(list.header("cache-control"), Some("no-store"));
    let items = list.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(items[0].get("secret").is_none());
    assert!(!list.text.contains(&secret));
    let one = h.get(&channel_path(&id), &alice.access).await;
    assert_eq!(one.ok(200)["name"], "Ops hook");
    assert!(one.body.get("secret").is_none());
    assert!(!one.text.contains(&secret));
    // Stored sealed, never in clear.
    let stored = serde_json::to_string(&config_items(&h).await).unwrap();
    assert!(!stored.contains(&secret), "the secret is stored sealed");
    assert!(!stored.contains(secret.trim_start_matches("whsec_")));

    let slack = channel(&h, &alice, "slack", "Team", SLACK_URL).await;
    assert!(slack.get("secret").is_none(), "only webhooks have a secret");
    assert_eq!(slack["target"], "https://hooks.slack.com/…");
    let shown = h.get(&channel_path(&id_of(&slack)), &alice.access).await;
    assert_eq!(shown.ok(200)["target"], "https://hooks.slack.com/…");
    assert!(!shown.text.contains("services") && !shown.text.contains("xyz"));
    let list = h.get(CHANNELS, &alice.access).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 2);
    assert!(!list.text.contains("/services/T0"));

    // Targets that are no URL are shown as they are.
    let mail = channel(&h, &alice, "email", "Mail", "alice@example.com").await;
    assert_eq!(mail["target"], "alice@example.com");

    // Without a credential: nothing.
    h.send("GET", CHANNELS, None, None)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn bad_channels_are_refused_naming_the_field_and_nothing_is_stored() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let kept = channel(&h, &alice, "email", "Mail", "alice@example.com").await;
    let before = listed(&h, &alice).await;
    let stored_before = config_items(&h).await;

    for (kind, target) in [
        ("webhook", "http://example.com/hooks/x"),
        ("webhook", "https://127.0.0.1/x"),
        ("webhook", "https://10.0.0.1/x"),
        ("slack", "https://localhost/x"),
        ("webhook", "https://192.168.1.10/x"),
        ("discord", "https://[::1]/x"),
        ("teams", "https://2130706433/x"),
        ("webhook", "https://user:pw@example.com/x"),
        ("webhook", "example.com/hooks/x"),
        ("email", "not-an-address"),
        ("email", "ann@localhost"),
        ("sms", "12345"),
        ("sms", "+0123456789"),
        ("push", "arn:aws:sns:us-east-1:123456789012:my-topic"),
        ("push", "https://example.com/push"),
    ] {
        let r = h
            .post(
                CHANNELS,
                Some(&alice.access),
                create_body(kind, "Bad", target),
            )
            .await;
        let body = r.problem(422, "validation-failed");
        assert_eq!(fields(body), ["target"], "{kind} {target}: {}", r.text);
    }
    // A push target that is an endpoint ARN is taken.
    let arn = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dwc-app/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let push = channel(&h, &alice, "push", "Phone", arn).await;
    h.send(
        "DELETE",
        &channel_path(&id_of(&push)),
        Some(&alice.access),
        None,
    )
    .await
    .ok(204);

    for name in ["", "   ", "a\u{7}b", &"x".repeat(101)] {
        let r = h
            .post(
                CHANNELS,
                Some(&alice.access),
                create_body("webhook", name, WEBHOOK_URL),
            )
            .await;
        assert_eq!(fields(r.problem(422, "validation-failed")), ["name"]);
    }
    // Both wrong: both named.
    let r = h
        .post(
            CHANNELS,
            Some(&alice.access),
            create_body("sms", " ", "12345"),
        )
        .await;
    let mut both = fields(r.problem(422, "validation-failed"));
    both.sort();
    assert_eq!(both, ["name", "target"]);

    // The body's shape: unknown fields and kinds are data errors (422), bad JSON a 400.
    let mut extra = create_body("webhook", "Hook", WEBHOOK_URL);
    extra["secret"] = json!("whsec_mine");
    let r = h.post(CHANNELS, Some(&alice.access), extra).await;
    let body = r.problem(422, "validation-failed");
    assert!(
        body["detail"].as_str().unwrap().contains("secret"),
        "{}",
        r.text
    );
    let r = h
        .post(
            CHANNELS,
            Some(&alice.access),
            create_body("pager", "Pager", WEBHOOK_URL),
        )
        .await;
    assert_eq!(fields(r.problem(422, "validation-failed")), ["kind"]);
    let r = h
        .post(
            CHANNELS,
            Some(&alice.access),
            json!({"kind": "webhook", "name": "Hook"}),
        )
        .await;
    r.problem(422, "validation-failed");
    h.send(
        "POST",
        CHANNELS,
        Some(&alice.access),
        Some(json!("not an object")),
    )
    .await
    .problem(422, "validation-failed");

    assert_eq!(listed(&h, &alice).await, before);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["id"], kept["id"]);
    assert_eq!(config_items(&h).await, stored_before, "nothing stored");
}

#[tokio::test]
async fn channels_are_renamed_turned_off_and_on_and_webhook_secrets_rotated() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let hook = channel(&h, &alice, "webhook", "Hook", WEBHOOK_URL).await;
    let first_secret = hook["secret"].as_str().unwrap().to_string();
    let id = id_of(&hook);

    let renamed = patch(&h, &alice, &id, json!({"name": "  Renamed hook "})).await;
    assert_eq!(renamed.header("cache-control"), Some("no-store"));
    let renamed = renamed.ok(200).clone();
    assert_eq!(renamed["name"], "Renamed hook");
    assert!(renamed.get("secret").is_none());
    assert_eq!(renamed["created_at"], hook["created_at"]);
    assert_eq!(
        h.get(&channel_path(&id), &alice.access).await.ok(200)["name"],
        "Renamed hook"
    );

    let off = patch(&h, &alice, &id, json!({"enabled": false})).await;
    assert_eq!(off.ok(200)["status"], "disabled");
    assert_eq!(
        h.get(&channel_path(&id), &alice.access).await.ok(200)["status"],
        "disabled"
    );
    let on = patch(&h, &alice, &id, json!({"enabled": true})).await;
    assert_eq!(on.ok(200)["status"], "active");
    assert_eq!(
        h.get(&channel_path(&id), &alice.access).await.ok(200)["status"],
        "active"
    );

    let rotated = patch(&h, &alice, &id, json!({"rotate_secret": true})).await;
    let rotated = rotated.ok(200).clone();
    let second = rotated["secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_"));
    assert_ne!(second, first_secret);
    assert_eq!(rotated["name"], "Renamed hook");
    let after = h.get(&channel_path(&id), &alice.access).await;
    assert!(after.ok(200).get("secret").is_none());
    assert!(!after.text.contains(second));
    // rotate_secret false changes nothing and shows nothing.
    let same = patch(&h, &alice, &id, json!({"rotate_secret": false})).await;
    assert!(same.ok(200).get("secret").is_none());

    // Bad patches: nothing changes.
    let stored = config_items(&h).await;
    let r = patch(&h, &alice, &id, json!({"name": " "})).await;
    assert_eq!(fields(r.problem(422, "validation-failed")), ["name"]);
    patch(&h, &alice, &id, json!({"colour": "red"}))
        .await
        .problem(422, "validation-failed");
    let mail = channel(&h, &alice, "email", "Mail", "alice@example.com").await;
    let stored_with_mail = config_items(&h).await;
    assert_eq!(stored_with_mail.len(), stored.len() + 1);
    let r = patch(
        &h,
        &alice,
        &id_of(&mail),
        json!({"rotate_secret": true, "name": "Not renamed"}),
    )
    .await;
    assert_eq!(
        fields(r.problem(422, "validation-failed")),
        ["rotate_secret"]
    );
    assert_eq!(config_items(&h).await, stored_with_mail, "nothing changed");
    assert_eq!(
        h.get(&channel_path(&id_of(&mail)), &alice.access)
            .await
            .ok(200)["name"],
        "Mail"
    );

    // Unknown and malformed ids.
    let unknown = ulid::Ulid::new().to_string();
    patch(&h, &alice, &unknown, json!({"name": "x"}))
        .await
        .problem(404, "not-found");
    patch(&h, &alice, "not-an-id", json!({"name": "x"}))
        .await
        .problem(400, "invalid-parameter");
    h.get(&channel_path("not-an-id"), &alice.access)
        .await
        .problem(400, "invalid-parameter");
}

#[tokio::test]
async fn a_deleted_channel_is_gone_and_out_of_the_preferences() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let a = id_of(&channel(&h, &alice, "email", "Mail", "alice@example.com").await);
    let b = id_of(&channel(&h, &alice, "slack", "Team", SLACK_URL).await);
    h.send(
        "PUT",
        PREFS,
        Some(&alice.access),
        Some(json!({"events": {"run_failed": [a, b], "run_succeeded": [a]}})),
    )
    .await
    .ok(200);

    let del = h
        .send("DELETE", &channel_path(&a), Some(&alice.access), None)
        .await;
    assert_eq!(del.status, 204, "{}", del.text);
    assert!(del.text.is_empty());
    h.get(&channel_path(&a), &alice.access)
        .await
        .problem(404, "not-found");
    h.send("DELETE", &channel_path(&a), Some(&alice.access), None)
        .await
        .problem(404, "not-found");
    let left = listed(&h, &alice).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], b.as_str());
    // Out of every event; an event left with none is dropped.
    assert_eq!(
        *h.get(PREFS, &alice.access).await.ok(200),
        json!({"events": {"run_failed": [b]}})
    );
    // The preferences still save: they name only channels that exist.
    h.send(
        "PUT",
        PREFS,
        Some(&alice.access),
        Some(h.get(PREFS, &alice.access).await.body),
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn preferences_name_only_the_users_own_channels_and_sound_quiet_hours() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let bob = h.sign_up("bob").await;
    let fresh = h.get(PREFS, &alice.access).await;
    assert_eq!(fresh.header("cache-control"), Some("no-store"));
    assert_eq!(*fresh.ok(200), json!({"events": {}}));
    // Nothing stored until they are set.
    assert!(config_items(&h).await.is_empty());

    let a1 = id_of(&channel(&h, &alice, "email", "Mail", "alice@example.com").await);
    let a2 = id_of(&channel(&h, &alice, "webhook", "Hook", WEBHOOK_URL).await);
    let bobs = id_of(&channel(&h, &bob, "email", "Bob mail", "bob@example.com").await);
    let wanted = json!({
        "events": {"run_failed": [a1, a2], "new_login": [a1], "system_notice": []},
        "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Paris"},
    });
    let put = h
        .send("PUT", PREFS, Some(&alice.access), Some(wanted.clone()))
        .await;
    assert_eq!(*put.ok(200), wanted);
    assert_eq!(*h.get(PREFS, &alice.access).await.ok(200), wanted);
    // Bob's are his own.
    assert_eq!(
        *h.get(PREFS, &bob.access).await.ok(200),
        json!({"events": {}})
    );

    let unknown = ulid::Ulid::new().to_string();
    let stored = config_items(&h).await;
    for (body, field) in [
        (
            json!({"events": {"run_failed": [a1, unknown]}}),
            "events.run_failed[1]",
        ),
        (
            json!({"events": {"run_succeeded": [bobs]}}),
            "events.run_succeeded[0]",
        ),
        (
            json!({"events": {"run_failed": [a1, a1]}}),
            "events.run_failed[1]",
        ),
        (
            json!({"events": {}, "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Mars/Olympus"}}),
            "quiet_hours.time_zone",
        ),
        (
            json!({"events": {}, "quiet_hours": {"start": "08:00", "end": "08:00", "time_zone": "UTC"}}),
            "quiet_hours.end",
        ),
        (
            json!({"events": {}, "quiet_hours": {"start": "24:00", "end": "07:00", "time_zone": "UTC"}}),
            "quiet_hours.start",
        ),
        (
            json!({"events": {}, "quiet_hours": {"start": "22:00", "end": "7:00", "time_zone": "UTC"}}),
            "quiet_hours.end",
        ),
    ] {
        let r = h
            .send("PUT", PREFS, Some(&alice.access), Some(body.clone()))
            .await;
        assert_eq!(
            fields(r.problem(422, "validation-failed")),
            [field],
            "{body}"
        );
    }
    // Shapes serde refuses: an unknown event, an unknown member, a missing zone.
    let r = h
        .send(
            "PUT",
            PREFS,
            Some(&alice.access),
            Some(json!({"events": {"run_exploded": [a1]}})),
        )
        .await;
    let body = r.problem(422, "validation-failed");
    assert!(fields(body)[0].starts_with("events"), "{}", r.text);
    assert!(body["detail"].as_str().unwrap().contains("run_exploded"));
    for body in [
        json!({"events": {"run_exploded": [a1]}}),
        json!({"events": {}, "digest": true}),
        json!({"events": {}, "quiet_hours": {"start": "22:00", "end": "07:00"}}),
        json!({"events": {"run_failed": a1}}),
    ] {
        h.send("PUT", PREFS, Some(&alice.access), Some(body))
            .await
            .problem(422, "validation-failed");
    }
    assert_eq!(*h.get(PREFS, &alice.access).await.ok(200), wanted);
    assert_eq!(config_items(&h).await, stored, "nothing changed");

    // Replaced as a whole: no quiet hours, one event.
    let next = json!({"events": {"run_succeeded": [a2]}});
    h.send("PUT", PREFS, Some(&alice.access), Some(next.clone()))
        .await
        .ok(200);
    assert_eq!(*h.get(PREFS, &alice.access).await.ok(200), next);
}

#[tokio::test]
async fn another_users_channels_and_notifications_are_not_found() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let bob = h.sign_up("bob").await;
    let hook = channel(&h, &alice, "webhook", "Alice hook", WEBHOOK_URL).await;
    let id = id_of(&hook);
    let path = channel_path(&id);
    let shown = h.get(&path, &alice.access).await.ok(200).clone();
    let stored = config_items(&h).await;

    h.get(&path, &bob.access).await.problem(404, "not-found");
    for body in [
        json!({"name": "Bob's now"}),
        json!({"enabled": false}),
        json!({"rotate_secret": true}),
    ] {
        let r = h.send("PATCH", &path, Some(&bob.access), Some(body)).await;
        r.problem(404, "not-found");
        assert!(!r.text.contains("whsec_"));
    }
    h.send("DELETE", &path, Some(&bob.access), None)
        .await
        .problem(404, "not-found");
    h.send("POST", &format!("{path}/test"), Some(&bob.access), None)
        .await
        .problem(404, "not-found");
    assert!(listed(&h, &bob).await.is_empty());
    assert_eq!(*h.get(&path, &alice.access).await.ok(200), shown);
    assert_eq!(config_items(&h).await, stored, "Alice's channel unchanged");
    assert!(notice_items(&h).await.is_empty(), "no test was sent");

    // Alice's notification is hers alone.
    let n = stored_notification(&h, &alice.user_id, &id).await;
    let mine = h.get(&format!("{LOG}/{}", n.id), &alice.access).await;
    let mine = mine.ok(200);
    assert_eq!(mine["id"], n.id.as_str());
    assert_eq!(mine["event"], "run_failed");
    assert!(mine.get("user_id").is_none());
    assert_eq!(mine["deliveries"][&id]["status"], "pending");
    h.get(&format!("{LOG}/{}", n.id), &bob.access)
        .await
        .problem(404, "not-found");
    let theirs = h.get(LOG, &bob.access).await;
    assert!(theirs.ok(200)["items"].as_array().unwrap().is_empty());
    h.get(&format!("{LOG}/{}", ulid::Ulid::new()), &alice.access)
        .await
        .problem(404, "not-found");
    h.get(&format!("{LOG}/bogus"), &alice.access)
        .await
        .problem(400, "invalid-parameter");
}

#[tokio::test]
async fn the_delivery_log_pages_newest_first_and_refuses_bad_parameters() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let bob = h.sign_up("bob").await;
    let empty = h.get(LOG, &alice.access).await;
    assert_eq!(empty.header("cache-control"), Some("no-store"));
    assert_eq!(*empty.ok(200), json!({"items": [], "next_cursor": null}));
    for q in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "cursor=bogus",
        "cursor=",
        "colour=red",
    ] {
        h.get(&format!("{LOG}?{q}"), &alice.access)
            .await
            .problem(400, "invalid-parameter");
    }
    h.get(&format!("{LOG}?limit=100"), &alice.access)
        .await
        .ok(200);
    h.get(&format!("{LOG}?limit=1"), &alice.access)
        .await
        .ok(200);

    let channel_id = shared::domain::ids::new_id();
    let older = stored_notification(&h, &alice.user_id, &channel_id).await;
    let newer = stored_notification(&h, &alice.user_id, &channel_id).await;
    let page = h.get(&format!("{LOG}?limit=1"), &alice.access).await;
    let page = page.ok(200).clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], newer.id.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = h
        .get(&format!("{LOG}?limit=1&cursor={cursor}"), &alice.access)
        .await;
    assert_eq!(rest.ok(200)["items"][0]["id"], older.id.as_str());
    // Alice's cursor is no cursor of Bob's list.
    h.get(&format!("{LOG}?cursor={cursor}"), &bob.access)
        .await
        .problem(400, "invalid-parameter");
}

#[tokio::test]
async fn a_channel_test_is_a_notice_to_that_channel_alone() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let hook = channel(&h, &alice, "webhook", "Hook", WEBHOOK_URL).await;
    let id = id_of(&hook);
    let r = h
        .send(
            "POST",
            &format!("{}/test", channel_path(&id)),
            Some(&alice.access),
            None,
        )
        .await;
    let notice = r.ok(202)["notice"].clone();
    assert_eq!(notice["user_id"], alice.user_id.as_str());
    assert_eq!(notice["channel_id"], id.as_str());
    assert_eq!(notice["created_by"], alice.user_id.as_str());
    assert!(!notice["subject"].as_str().unwrap().is_empty());
    let stored = notice_items(&h).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], notice["id"]);
    assert_eq!(stored[0]["user_id"], alice.user_id.as_str());
    assert_eq!(stored[0]["channel_id"], id.as_str());

    // A disabled channel can still be tested (it says so in the log).
    patch(&h, &alice, &id, json!({"enabled": false}))
        .await
        .ok(200);
    h.send(
        "POST",
        &format!("{}/test", channel_path(&id)),
        Some(&alice.access),
        None,
    )
    .await
    .ok(202);

    let unknown = ulid::Ulid::new().to_string();
    h.send(
        "POST",
        &format!("{}/test", channel_path(&unknown)),
        Some(&alice.access),
        None,
    )
    .await
    .problem(404, "not-found");
    h.send(
        "POST",
        &format!("{CHANNELS}/bogus/test"),
        Some(&alice.access),
        None,
    )
    .await
    .problem(400, "invalid-parameter");
    assert_eq!(notice_items(&h).await.len(), 2);
}

#[tokio::test]
async fn only_admins_send_notices_and_at_most_a_week_ahead() {
    let h = Harness::new().await;
    let user = h.sign_up("user").await;
    let admin = h.admin("boss").await;
    let notice = json!({"subject": "Maintenance", "body": "Down on Sunday 02:00-03:00 UTC."});

    h.post(NOTICES, Some(&user.access), notice.clone())
        .await
        .problem(403, "forbidden");
    assert!(notice_items(&h).await.is_empty(), "nothing stored");
    h.send("POST", NOTICES, None, Some(notice.clone()))
        .await
        .problem(401, "unauthorized");

    let r = h.post(NOTICES, Some(&admin.access), notice.clone()).await;
    let sent = r.ok(202)["notice"].clone();
    assert_eq!(sent["subject"], "Maintenance");
    assert_eq!(sent["created_by"], admin.user_id.as_str());
    assert!(sent.get("user_id").is_none() && sent.get("channel_id").is_none());
    let stored = notice_items(&h).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], sent["id"]);

    let in_six_days = (Utc::now() + Duration::days(6)).to_rfc3339();
    let later = h
        .post(
            NOTICES,
            Some(&admin.access),
            json!({"subject": "Later", "body": "b", "send_at": in_six_days}),
        )
        .await;
    let later = later.ok(202)["notice"].clone();
    assert_eq!(
        later["send_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        in_six_days.parse::<chrono::DateTime<Utc>>().unwrap()
    );

    let in_eight_days = (Utc::now() + Duration::days(8)).to_rfc3339();
    for (body, field) in [
        (
            json!({"subject": "Late", "body": "b", "send_at": in_eight_days}),
            "send_at",
        ),
        (json!({"subject": "  ", "body": "b"}), "subject"),
        (json!({"subject": "s", "body": ""}), "body"),
        (json!({"subject": "x".repeat(151), "body": "b"}), "subject"),
    ] {
        let r = h.post(NOTICES, Some(&admin.access), body.clone()).await;
        assert_eq!(
            fields(r.problem(422, "validation-failed")),
            [field],
            "{body}"
        );
    }
    h.post(
        NOTICES,
        Some(&admin.access),
        json!({"subject": "s", "body": "b", "to": "everyone"}),
    )
    .await
    .problem(422, "validation-failed");
    assert_eq!(notice_items(&h).await.len(), 2, "only the good ones stored");
}

#[tokio::test]
async fn only_admins_change_templates_and_a_template_must_render() {
    let h = Harness::new().await;
    let user = h.sign_up("user").await;
    let admin = h.admin("boss").await;
    let good = "<p>{{ workflow_name }} failed: {{ error }}</p>";

    h.get(TEMPLATE, &user.access)
        .await
        .problem(403, "forbidden");
    h.send(
        "PUT",
        TEMPLATE,
        Some(&user.access),
        Some(json!({"source": good})),
    )
    .await
    .problem(403, "forbidden");
    h.send("DELETE", TEMPLATE, Some(&user.access), None)
        .await
        .problem(403, "forbidden");

    let shipped = h.get(TEMPLATE, &admin.access).await.ok(200).clone();
    assert_eq!(shipped["event"], "run_failed");
    assert_eq!(shipped["format"], "email_html");
    assert_eq!(shipped["overridden"], false);
    let shipped_source = shipped["source"].as_str().unwrap().to_string();
    assert!(!shipped_source.is_empty());
    assert_eq!(shipped["variables"]["workflow_name"], "Quarterly report");
    assert!(shipped["variables"]["error"].is_string());

    for bad in ["{{ unclosed", "{% if %}", "{% for x in %}{% endfor %}", ""] {
        let r = h
            .send(
                "PUT",
                TEMPLATE,
                Some(&admin.access),
                Some(json!({"source": bad})),
            )
            .await;
        assert_eq!(
            fields(r.problem(422, "validation-failed")),
            ["source"],
            "{bad:?}"
        );
    }
    h.send(
        "PUT",
        TEMPLATE,
        Some(&admin.access),
        Some(json!({"source": good, "format": "sms"})),
    )
    .await
    .problem(422, "validation-failed");
    assert_eq!(
        h.get(TEMPLATE, &admin.access).await.ok(200)["overridden"],
        false
    );

    let put = h
        .send(
            "PUT",
            TEMPLATE,
            Some(&admin.access),
            Some(json!({"source": good})),
        )
        .await;
    let put = put.ok(200);
    assert_eq!(put["overridden"], true);
    assert_eq!(put["source"], good);
    let now = h.get(TEMPLATE, &admin.access).await.ok(200).clone();
    assert_eq!(now["overridden"], true);
    assert_eq!(now["source"], good);
    // Only that format of that event.
    let other = h
        .get(
            "/api/v3/notifications/templates/run_failed/email_text",
            &admin.access,
        )
        .await;
    assert_eq!(other.ok(200)["overridden"], false);

    let del = h.send("DELETE", TEMPLATE, Some(&admin.access), None).await;
    assert_eq!(del.status, 204, "{}", del.text);
    let back = h.get(TEMPLATE, &admin.access).await.ok(200).clone();
    assert_eq!(back["overridden"], false);
    assert_eq!(back["source"], shipped_source.as_str());
    h.send("DELETE", TEMPLATE, Some(&admin.access), None)
        .await
        .problem(404, "not-found");

    for path in [
        "/api/v3/notifications/templates/run_exploded/email_html",
        "/api/v3/notifications/templates/run_failed/fax",
        "/api/v3/notifications/templates/RunFailed/email_html",
    ] {
        h.get(path, &admin.access)
            .await
            .problem(400, "invalid-parameter");
        h.send(
            "PUT",
            path,
            Some(&admin.access),
            Some(json!({"source": good})),
        )
        .await
        .problem(400, "invalid-parameter");
        h.send("DELETE", path, Some(&admin.access), None)
            .await
            .problem(400, "invalid-parameter");
    }
}

#[tokio::test]
async fn a_user_has_at_most_twenty_channels() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    for i in 0..20 {
        channel(
            &h,
            &alice,
            "email",
            &format!("Mail {i}"),
            &format!("alice+{i}@example.com"),
        )
        .await;
    }
    let r = h
        .post(
            CHANNELS,
            Some(&alice.access),
            create_body("email", "One more", "alice+20@example.com"),
        )
        .await;
    let body = r.problem(409, "too-many-channels");
    assert!(body["detail"].as_str().unwrap().contains("20"));
    let list = listed(&h, &alice).await;
    assert_eq!(list.len(), 20);
    assert!(list.iter().all(|c| c["name"] != "One more"));
    // Another user is not held by Alice's.
    let bob = h.sign_up("bob").await;
    channel(&h, &bob, "email", "Mail", "bob@example.com").await;
    // Room again after a delete.
    h.send(
        "DELETE",
        &channel_path(&id_of(&list[0])),
        Some(&alice.access),
        None,
    )
    .await
    .ok(204);
    channel(&h, &alice, "email", "One more", "alice+20@example.com").await;
}

/// The code in the newest confirmation notice of channel `id` (what the notifier sends it).
async fn sent_code(h: &Harness, id: &str) -> String {
    let notices = notice_items(h).await;
    let notice = notices
        .iter()
        .filter(|n| n["channel_id"] == id && n["verification"] == true)
        .max_by_key(|n| n["created_at"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no code was sent to {id}: {notices:#?}"));
    notice["body"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// `u` sends `body` to channel `id`'s verify route.
async fn verify(h: &Harness, u: &User, id: &str, body: Value) -> Reply {
    h.post(&format!("{CHANNELS}/{id}/verify"), Some(&u.access), body)
        .await
}

#[tokio::test]
async fn email_and_sms_channels_are_used_only_once_confirmed_with_their_code() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    for (kind, target) in [("email", "ops@example.com"), ("sms", "+15555550100")] {
        let created = channel(&h, &alice, kind, "mine", target).await;
        assert_eq!(created["status"], "unverified", "{created}");
        let id = id_of(&created);
        let code = sent_code(&h, &id).await;
        assert_eq!(code.len(), 6, "{code}");
        // It cannot be turned on without the code.
        let on = patch(&h, &alice, &id, json!({"enabled": true})).await;
        assert_eq!(on.status, 409, "{}", on.text);
        // A wrong code is refused and changes nothing.
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let r = verify(&h, &alice, &id, json!({"code": wrong})).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(fields(&r.body), ["code"]);
        let shown = h.get(&channel_path(&id), &alice.access).await;
        assert_eq!(shown.ok(200)["status"], "unverified");
        // The right one confirms it.
        let ok = verify(&h, &alice, &id, json!({"code": code})).await;
        assert_eq!(ok.ok(200)["status"], "active");
        let again = verify(&h, &alice, &id, json!({"code": code})).await;
        assert_eq!(again.status, 409, "{}", again.text);
    }
    // Webhooks need no code.
    let hook = channel(&h, &alice, "webhook", "hook", WEBHOOK_URL).await;
    assert_eq!(hook["status"], "active");
    let r = verify(&h, &alice, &id_of(&hook), json!({"code": "123456"})).await;
    assert_eq!(r.status, 409, "{}", r.text);
}

#[tokio::test]
async fn five_wrong_codes_use_a_code_up_and_a_new_one_can_be_sent() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let bob = h.sign_up("bob").await;
    let created = channel(&h, &alice, "email", "mine", "someone@example.com").await;
    let id = id_of(&created);
    let code = sent_code(&h, &id).await;
    // Bob cannot confirm Alice's channel, even with its code.
    let r = verify(&h, &bob, &id, json!({"code": code})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for _ in 0..5 {
        let r = verify(&h, &alice, &id, json!({"code": wrong})).await;
        assert_eq!(r.status, 422, "{}", r.text);
    }
    let late = verify(&h, &alice, &id, json!({"code": code})).await;
    assert_eq!(late.status, 409, "{}", late.text);
    // No code at all is a 422 naming it.
    let none = verify(&h, &alice, &id, json!({})).await;
    assert_eq!(fields(&none.body), ["code"]);
    let resent = verify(&h, &alice, &id, json!({"resend": true})).await;
    assert_eq!(resent.ok(202)["status"], "unverified");
    let fresh = sent_code(&h, &id).await;
    let ok = verify(&h, &alice, &id, json!({"code": fresh})).await;
    assert_eq!(ok.ok(200)["status"], "active");
}

#[tokio::test]
async fn the_delivery_log_does_not_repeat_a_confirmation_code() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let created = channel(&h, &alice, "email", "mine", "victim@example.com").await;
    let mut n = stored_notification(&h, &alice.user_id, &id_of(&created)).await;
    n.id = shared::domain::ids::new_id();
    n.event = EventKind::SystemNotice;
    n.verification = true;
    n.vars.insert("body".into(), json!("Your code is 424242."));
    h.api.notify.put_notification(&n).await.unwrap();
    for path in [LOG.to_string(), format!("{LOG}/{}", n.id)] {
        let r = h.get(&path, &alice.access).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(!r.text.contains("424242"), "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn api_keys_of_any_scope_cannot_use_notification_settings_or_the_log() {
    let h = Harness::new().await;
    let alice = h.sign_up("alice").await;
    let hook = channel(&h, &alice, "webhook", "hook", WEBHOOK_URL).await;
    let id = id_of(&hook);
    for scopes in [
        vec!["workflows:read"],
        vec!["workflows:read", "workflows:write"],
    ] {
        let key = h.api_key(&alice, &scopes).await;
        let tries: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", CHANNELS.to_string(), None),
            (
                "POST",
                CHANNELS.to_string(),
                Some(create_body("webhook", "x", WEBHOOK_URL)),
            ),
            ("GET", channel_path(&id), None),
            ("PATCH", channel_path(&id), Some(json!({"enabled": false}))),
            ("DELETE", channel_path(&id), None),
            ("POST", format!("{CHANNELS}/{id}/test"), Some(json!({}))),
            (
                "POST",
                format!("{CHANNELS}/{id}/verify"),
                Some(json!({"code": "123456"})),
            ),
            ("GET", PREFS.to_string(), None),
            ("PUT", PREFS.to_string(), Some(json!({"events": {}}))),
            ("GET", LOG.to_string(), None),
        ];
        for (method, path, body) in tries {
            let r = h.send(method, &path, Some(&key), body).await;
            assert_eq!(r.status, 403, "{method} {path} with {scopes:?}: {}", r.text);
        }
    }
    // Nothing changed: the channel is there, on, and the only one.
    let items = listed(&h, &alice).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "active");
}
