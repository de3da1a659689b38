//! The admin's dead-letter routes against the template's queues in the emulator (each test its
//! own): a list peeks and hides nothing, a redrive moves messages to the step queue and out of
//! the dead-letter queue, and anyone but an admin (or an unknown queue, or a bad body) changes
//! nothing.

use crate::harness::*;
use serde_json::{Value, json};
use shared::domain::{Role, Scope, ids};
use shared::ports::StepQueue;

const BASE: &str = "/api/v3/admin/dead-letters";

fn step_body(n: u32) -> String {
    json!({
        "workflow_id": ids::new_id(),
        "run_id": ids::new_id(),
        "step_id": ids::new_id(),
        "attempt": n,
    })
    .to_string()
}

/// A new user made an admin.
async fn admin(h: &Harness) -> String {
    let admin = ids::new_id();
    h.set_account(&admin, |a| a.role = Role::Admin).await;
    admin
}

fn queues(h: &Harness) -> &Queues {
    h.queues.as_ref().unwrap()
}

/// The bodies of every message of `url`, sorted (the queue is left empty).
async fn drained_bodies(h: &Harness, url: &str) -> Vec<String> {
    let mut bodies: Vec<String> = queues(h)
        .drain(url)
        .await
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test]
async fn an_admin_lists_a_dead_letter_queue_without_hiding_its_messages() {
    let h = Harness::with_queues().await;
    let admin = admin(&h).await;
    let q = queues(&h);
    let step = step_body(5);
    q.put_dead(StepQueue::Critical, &step, "owner-1").await;
    q.put_dead(StepQueue::Critical, "not a step", "owner-2")
        .await;

    let r = h.get(&format!("{BASE}/critical"), &admin).await;
    let body = r.ok(200).clone();
    assert_eq!(body["queue"], "critical");
    assert_eq!(body["approximate_messages"], 2, "{}", r.text);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{}", r.text);
    let parsed: Value = serde_json::from_str(&step).unwrap();
    assert!(
        messages.iter().any(|m| m["body"] == parsed),
        "the step message, parsed: {}",
        r.text
    );
    assert!(
        messages.iter().any(|m| m["body"] == "not a step"),
        "any other body as text: {}",
        r.text
    );
    for m in messages {
        assert!(!m["message_id"].as_str().unwrap().is_empty());
        assert!(m["approximate_receive_count"].as_u64().unwrap() >= 1);
        assert!(m["sent_at"].as_str().is_some(), "{}", r.text);
    }

    // Peeked, not taken: the messages are visible again at once, and a limit is honoured.
    let again = h.get(&format!("{BASE}/critical?limit=1"), &admin).await;
    assert_eq!(again.ok(200)["messages"].as_array().unwrap().len(), 1);
    assert_eq!(again.body["approximate_messages"], 2, "{}", again.text);
    // The other queues are their own.
    let other = h.get(&format!("{BASE}/low"), &admin).await;
    assert_eq!(other.ok(200)["messages"], json!([]));
    assert_eq!(other.body["approximate_messages"], 0);
    // Nothing went to the step queue.
    assert!(q.drain(&q.sources.critical).await.is_empty());
}

#[tokio::test]
async fn a_redrive_moves_messages_back_to_their_step_queue() {
    let h = Harness::with_queues().await;
    let admin = admin(&h).await;
    let q = queues(&h);
    let mut sent = vec![step_body(1), step_body(2), "raw body".to_string()];
    for (i, body) in sent.iter().enumerate() {
        q.put_dead(StepQueue::High, body, &format!("owner-{i}"))
            .await;
    }

    let r = h
        .post(&format!("{BASE}/high/redrive"), &admin, json!({}))
        .await;
    assert_eq!(
        r.ok(200),
        &json!({"moved": 3, "remaining_approx": 0}),
        "{}",
        r.text
    );
    let mut moved = q.drain(&q.sources.high).await;
    moved.sort();
    sent.sort();
    assert_eq!(
        moved.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>(),
        sent,
        "the bodies as they were"
    );
    let mut groups: Vec<_> = moved.iter().map(|(_, g)| g.clone().unwrap()).collect();
    groups.sort();
    assert_eq!(groups, ["owner-0", "owner-1", "owner-2"], "the groups kept");
    assert!(q.drain(&q.dead_letters.high).await.is_empty());
    assert!(q.drain(&q.sources.critical).await.is_empty());
    // The redrive is in the system's audit chain, with the admin who asked for it.
    let noted = h.audit.of("dlq.redriven");
    assert_eq!(noted.len(), 1, "{:?}", h.audit.notes());
    let (chain, d) = &noted[0];
    assert_eq!(*chain, shared::domain::audit::Chain::System);
    assert_eq!(d.target.id, "high");
    assert_eq!(d.detail["moved"], 3);
    assert_eq!(d.actor.kind, shared::domain::audit::ActorKind::User);
}

#[tokio::test]
async fn a_redrive_moves_at_most_max_messages_and_takes_no_body() {
    let h = Harness::with_queues().await;
    let admin = admin(&h).await;
    let q = queues(&h);
    for i in 0..12 {
        q.put_dead(StepQueue::Low, &step_body(i), "owner").await;
    }

    let r = h
        .post(
            &format!("{BASE}/low/redrive"),
            &admin,
            json!({"max_messages": 11}),
        )
        .await;
    assert_eq!(r.ok(200)["moved"], 11, "{}", r.text);
    assert_eq!(r.body["remaining_approx"], 1);
    assert_eq!(q.drain(&q.sources.low).await.len(), 11);

    // No body at all: the default (100), so the rest.
    let r = h
        .send(
            "POST",
            &format!("{BASE}/low/redrive"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        r.ok(200),
        &json!({"moved": 1, "remaining_approx": 0}),
        "{}",
        r.text
    );
    assert_eq!(q.drain(&q.sources.low).await.len(), 1);

    // An empty queue: nothing to move (a `null` body is the defaults too).
    let r = h
        .post(&format!("{BASE}/normal/redrive"), &admin, json!(null))
        .await;
    assert_eq!(r.ok(200), &json!({"moved": 0, "remaining_approx": 0}));
}

#[tokio::test]
async fn only_admins_use_the_dead_letter_routes_and_a_refusal_changes_nothing() {
    let h = Harness::with_queues().await;
    let q = queues(&h);
    let body = step_body(3);
    q.put_dead(StepQueue::Normal, &body, "owner").await;
    let editor = ids::new_id();
    let viewer = ids::new_id();
    h.set_account(&viewer, |a| a.role = Role::Viewer).await;
    // An admin's API key without the admin scope is no admin either.
    let admin = admin(&h).await;
    let key = h
        .api_key(&admin, &[Scope::WorkflowsRead, Scope::WorkflowsWrite])
        .await;

    for user in [&editor, &viewer] {
        h.get(&format!("{BASE}/normal"), user)
            .await
            .problem(403, "forbidden");
        h.post(&format!("{BASE}/normal/redrive"), user, json!({}))
            .await
            .problem(403, "forbidden");
        // Whether a queue exists is no business of theirs either.
        h.get(&format!("{BASE}/nope"), user)
            .await
            .problem(403, "forbidden");
    }
    h.send_bearer("GET", &format!("{BASE}/normal"), &key, None)
        .await
        .problem(403, "forbidden");
    h.send_bearer(
        "POST",
        &format!("{BASE}/normal/redrive"),
        &key,
        Some(json!({})),
    )
    .await
    .problem(403, "forbidden");
    // No credential at all.
    h.send("GET", &format!("{BASE}/normal"), None, None, &[])
        .await
        .problem(401, "unauthorized");

    assert!(q.drain(&q.sources.normal).await.is_empty(), "nothing moved");
    assert_eq!(drained_bodies(&h, &q.dead_letters.normal).await, [body]);
}

#[tokio::test]
async fn an_unknown_queue_is_404_and_a_bad_body_422_and_nothing_moves() {
    let h = Harness::with_queues().await;
    let admin = admin(&h).await;
    let q = queues(&h);
    let body = step_body(1);
    q.put_dead(StepQueue::Critical, &body, "owner").await;

    h.get(&format!("{BASE}/urgent"), &admin)
        .await
        .problem(404, "not-found");
    h.post(&format!("{BASE}/Critical/redrive"), &admin, json!({}))
        .await
        .problem(404, "not-found");
    for bad in [
        json!({"max_messages": 0}),
        json!({"max_messages": 1001}),
        json!({"max_messages": "ten"}),
        json!({"max_messages": -1}),
        json!({"limit": 5}),
        json!([]),
    ] {
        let r = h
            .post(&format!("{BASE}/critical/redrive"), &admin, bad.clone())
            .await;
        r.problem(422, "validation-failed");
    }
    for limit in ["0", "11", "x"] {
        h.get(&format!("{BASE}/critical?limit={limit}"), &admin)
            .await
            .problem(400, "invalid-parameter");
    }

    assert!(
        q.drain(&q.sources.critical).await.is_empty(),
        "nothing moved"
    );
    assert_eq!(drained_bodies(&h, &q.dead_letters.critical).await, [body]);
}

#[tokio::test]
async fn a_redrive_keeps_string_and_number_attributes() {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let h = Harness::with_queues().await;
    let admin = admin(&h).await;
    let q = queues(&h);
    let attribute = |data_type: &str, value: &str| {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .unwrap()
    };
    q.sqs
        .send_message()
        .queue_url(&q.dead_letters.normal)
        .message_body(step_body(1))
        .message_group_id("owner")
        .message_attributes("trace", attribute("String", "abc"))
        .message_attributes("hops", attribute("Number", "2"))
        .send()
        .await
        .unwrap();

    let r = h
        .post(&format!("{BASE}/normal/redrive"), &admin, json!({}))
        .await;
    assert_eq!(r.ok(200)["moved"], 1, "{}", r.text);
    let got = q
        .sqs
        .receive_message()
        .queue_url(&q.sources.normal)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 1);
    let attributes = got[0].message_attributes().unwrap();
    assert_eq!(attributes["trace"].string_value(), Some("abc"));
    assert_eq!(attributes["hops"].data_type(), "Number");
    assert_eq!(attributes["hops"].string_value(), Some("2"));
}
