//! Notifications end to end: a user adds a webhook over HTTP and chooses which events it
//! gets; a chain run finishing and a new sign-in reach a receiver on this machine through the
//! whole path (the table's stream into analytics-stream, the notifications queue polled by the
//! gateway into the notifier binary), each signed so that the receiver verifies it with the
//! secret it was shown once; the delivery log shows each attempt.

use e2e::{PASSWORD, Stack};
use localstack::template::Template;
use serde_json::{Value, json};
use shared::testing::receiver::{Delivery, Receiver};
use std::time::{Duration, Instant};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const DEADLINE: Duration = Duration::from_secs(90);

/// What a receiver does with the secret it was shown: recompute the HMAC-SHA256 of
/// `<timestamp>.<body>` and compare (its own library, not the notifier's code).
fn signature_holds(d: &Delivery, secret: &str) -> bool {
    let (Some(ts), Some(sig)) = (d.header("x-dwc-timestamp"), d.header("x-dwc-signature")) else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let expected: String = aws_lc_rs::hmac::sign(&key, format!("{ts}.{}", d.body).as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sig == format!("v1={expected}")
}

async fn until_received(receiver: &Receiver, path: &str, event: &str) -> Delivery {
    let start = Instant::now();
    loop {
        if let Some(d) = receiver
            .received(path)
            .into_iter()
            .find(|d| d.json()["event"] == event)
        {
            return d;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {event} reached the receiver within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_finished_run_and_a_new_sign_in_reach_the_users_webhook_signed() {
    let s = Stack::start_with(
        Template::load_default().expect("the template loads"),
        &[("NotifyAllowPrivateTargets", "true")],
    )
    .await;
    let receiver = Receiver::start().await;
    // The receiver refuses the first delivery with a 503: the notifier tries again.
    receiver.fail("/alice", &[503]);
    let created = s
        .post(
            "/api/v3/notifications/channels",
            ALICE,
            json!({"kind": "webhook", "name": "my receiver", "target": receiver.url("/alice")}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let secret = created.body["secret"].as_str().unwrap().to_string();
    let channel = created.body["id"].as_str().unwrap().to_string();
    let prefs = s
        .send(
            "PUT",
            "/api/v3/notifications/preferences",
            Some(ALICE),
            Some(json!({"events": {"run_succeeded": [channel], "new_login": [channel]}})),
            &[],
        )
        .await;
    assert_eq!(prefs.status, 200, "{}", prefs.text);

    let w = s
        .active_workflow(ALICE, "<script>alert(1)</script> *bold*", json!({}))
        .await;
    let run = s
        .post(
            &format!("{w}/runs"),
            ALICE,
            json!({"plan": {"mode": "continue", "steps": 2}}),
        )
        .await;
    assert_eq!(run.status, 202, "{}", run.text);
    let run_id = run.body["id"].as_str().unwrap().to_string();
    s.until_succeeded(&w, &run_id, ALICE, DEADLINE, Duration::from_millis(100))
        .await;

    let done = until_received(&receiver, "/alice", "run_succeeded").await;
    assert!(signature_holds(&done, &secret), "{done:?}");
    assert!(!signature_holds(&done, "whsec_someone_else"));
    assert_eq!(done.json()["data"]["run_id"], run_id.as_str());
    assert_eq!(done.json()["data"]["steps_succeeded"], 2);

    // A new sign-in is a security event: it is sent too.
    let alice = s.user(ALICE).await;
    let login = s.login(&alice.email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let signed_in = until_received(&receiver, "/alice", "new_login").await;
    assert!(signature_holds(&signed_in, &secret));
    assert!(
        signed_in.json()["data"]["source_ip"].is_string(),
        "{signed_in:?}"
    );

    // The first delivery to reach the receiver was refused with a 503 and tried again (the
    // sign-up's own sign-in may be it: the stream consumer reads the preferences when it
    // gets to the record). The same delivery came again, attempt 2, and was taken.
    let all = receiver.received("/alice");
    assert_eq!(all[0].status, 503);
    let refused = all[0].header("x-dwc-delivery").unwrap().to_string();
    let again = all
        .iter()
        .find(|d| d.header("x-dwc-delivery") == Some(&refused) && d.status == 200)
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(again.header("x-dwc-attempt"), Some("2"));
    assert!(signature_holds(again, &secret));

    // The delivery log shows both attempts of that delivery.
    let log = s.get("/api/v3/notifications", ALICE).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let items = log.body["items"].as_array().unwrap();
    let notification_id = refused.split('.').next().unwrap();
    let retried = items
        .iter()
        .find(|n| n["id"] == notification_id)
        .unwrap_or_else(|| panic!("{:#}", log.body));
    let attempts: Vec<(Value, Value)> = retried["deliveries"][&channel]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["outcome"].clone(), a["status_code"].clone()))
        .collect();
    assert_eq!(
        attempts,
        [
            (json!("retry"), json!(503)),
            (json!("delivered"), json!(200))
        ]
    );
    assert_eq!(retried["deliveries"][&channel]["status"], "delivered");
    let run_note = items
        .iter()
        .find(|n| n["event"] == "run_succeeded")
        .unwrap_or_else(|| panic!("{:#}", log.body));

    // Bob sees none of it.
    let id = run_note["id"].as_str().unwrap();
    let bob = s.get(&format!("/api/v3/notifications/{id}"), BOB).await;
    assert_eq!(bob.status, 404, "{}", bob.text);
    let bobs = s.get("/api/v3/notifications", BOB).await;
    assert_eq!(bobs.body["items"], json!([]));

    // A channel test goes out at once, as a system notice.
    let test = s
        .post(
            &format!("/api/v3/notifications/channels/{channel}/test"),
            ALICE,
            json!({}),
        )
        .await;
    assert_eq!(test.status, 202, "{}", test.text);
    let tested = until_received(&receiver, "/alice", "system_notice").await;
    assert!(signature_holds(&tested, &secret));

    // An email channel is confirmed with the code mailed to it (SES in the emulator).
    let address = format!("alice-{}@example.com", ulid::Ulid::new()).to_lowercase();
    let email = s
        .post(
            "/api/v3/notifications/channels",
            ALICE,
            json!({"kind": "email", "name": "inbox", "target": address}),
        )
        .await;
    assert_eq!(email.status, 201, "{}", email.text);
    assert_eq!(email.body["status"], "unverified");
    let email_id = email.body["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let code = loop {
        let mails = localstack::testing::emails_to(&address).await;
        if let Some((_, body)) = mails
            .iter()
            .find(|(subject, _)| subject.contains("Confirm"))
        {
            let after = body.split("code is").nth(1).unwrap_or_default();
            break after
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect::<String>();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no code was mailed to {address}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code.len(), 6, "{code}");
    let verified = s
        .post(
            &format!("/api/v3/notifications/channels/{email_id}/verify"),
            ALICE,
            json!({"code": code}),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.body["status"], "active");
}
