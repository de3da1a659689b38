//! The notifier against the emulator (DynamoDB, SQS, KMS, SES, SNS) and a local webhook
//! receiver that fails on demand: notifications raised as the stream consumer raises them,
//! delivered through the real notifications queue by the notifier's handler, as Lambda's SQS
//! event source would call it. Each channel's payload and signature, retries with backoff
//! (honouring `Retry-After`), permanent failures stopping and marking the channel, escaping,
//! and preferences routing an event to exactly the chosen channels.
//!
//! Needs the emulator at `AWS_ENDPOINT_URL` (`make test` starts it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{Map, Value, json};
use shared::app::notify;
use shared::app::notify::raise::{self, Source};
use shared::aws::dynamo::{DynamoAccounts, DynamoStore};
use shared::aws::kms::KmsVault;
use shared::aws::notify::AwsSender;
use shared::aws::sqs::SqsNotifyQueue;
use shared::domain::notification::{
    ChannelStatus, ChannelView, CreateChannelRequest, DeliveryStatus, Notification,
};
use shared::domain::notify::retry::RetryPolicy;
use shared::domain::notify::retry::Verdict;
use shared::domain::notify::triggers::Trigger;
use shared::domain::notify::{ChannelKind, EventKind, Preferences};
use shared::ports::{Notifications, Outgoing, Sender, Sent};
use shared::testing::receiver::Receiver;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use worker::notifier::{NotifierDeps, handle};

const MAIL_FROM: &str = "notifications@example.com";
const NASTY: &str = "<script>alert(1)</script> *bold* _it_ @everyone";

struct Stack {
    store: DynamoStore,
    accounts: DynamoAccounts,
    queue: SqsNotifyQueue,
    sender: AwsSender,
    vault: KmsVault,
    sqs: aws_sdk_sqs::Client,
    url: String,
    sdk: aws_config::SdkConfig,
}

impl Stack {
    async fn new() -> Stack {
        let (client, table) = localstack::testing::fresh_table("notify").await;
        let sdk = localstack::testing::emulator_config().await;
        localstack::testing::ses_identity(MAIL_FROM).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let url = sqs
            .create_queue()
            .queue_name(format!("notify-{}", ulid::Ulid::new()))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let alias = localstack::testing::fresh_kms_alias("notify").await;
        Stack {
            store: DynamoStore::new(client.clone(), table.clone()),
            accounts: DynamoAccounts::new(client, table),
            queue: SqsNotifyQueue::new(sqs.clone(), url.clone()),
            sender: AwsSender::new(&sdk, MAIL_FROM, true),
            vault: KmsVault::new(&sdk, alias),
            sqs,
            url,
            sdk,
        }
    }

    /// The notifier's dependencies with `sender` in place of the real one.
    fn deps_with<'a>(&'a self, sender: &'a dyn Sender) -> NotifierDeps<'a> {
        NotifierDeps {
            store: &self.store,
            accounts: &self.accounts,
            queue: &self.queue,
            sender,
            vault: &self.vault,
            // Short waits, so a test sees several retries: 1 s, 2 s, 4 s at most.
            policy: RetryPolicy {
                max_attempts: 4,
                base: Duration::from_secs(1),
                rate: 2.0,
                cap: Duration::from_secs(4),
            },
        }
    }

    /// A channel of `user`'s, confirmed with the code it was sent when it needs one (email,
    /// SMS), as its owner would.
    async fn channel(&self, user: &str, kind: ChannelKind, target: &str) -> ChannelView {
        let created = notify::create_channel(
            &self.store,
            &self.vault,
            true,
            user,
            serde_json::from_value::<CreateChannelRequest>(
                json!({"kind": kind, "name": format!("my {}", kind.as_str()), "target": target}),
            )
            .unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let Some(notice) = created.verification else {
            return created.view;
        };
        assert_eq!(created.view.status, ChannelStatus::Unverified);
        let code: String = notice.body.chars().filter(char::is_ascii_digit).collect();
        notify::verify_channel(
            &self.store,
            user,
            &created.view.id,
            serde_json::from_value(json!({ "code": code })).unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .view
    }

    async fn prefer(&self, user: &str, events: Value) {
        let prefs: Preferences = serde_json::from_value(json!({ "events": events })).unwrap();
        notify::set_preferences(&self.store, user, prefs)
            .await
            .unwrap();
    }

    /// Raises `event` for `user` as the stream consumer does; the deliveries queued.
    async fn raise(&self, user: &str, event: EventKind, vars: Value) -> usize {
        let trigger = Trigger {
            user_id: user.into(),
            event,
            at: shared::domain::time::truncate_to_millis(chrono::Utc::now()),
            vars: serde_json::from_value::<Map<String, Value>>(vars).unwrap(),
        };
        let seed = ulid::Ulid::new().to_string();
        let source = Source {
            seed: &seed,
            not_before: None,
            only_channel: None,
            verification: false,
        };
        raise::raise(
            &self.store,
            &self.queue,
            &trigger,
            &source,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap()
    }

    /// Runs the notifier over the queue, as the event source does, until `done` holds or 60 s
    /// pass.
    async fn drain_until(&self, done: impl AsyncFn() -> bool) {
        self.drain_with(&self.sender, done).await;
    }

    /// [`Self::drain_until`] with `sender` sending.
    async fn drain_with(&self, sender: &dyn Sender, done: impl AsyncFn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let deps = self.deps_with(sender);
        while !done().await {
            assert!(Instant::now() < deadline, "not done within 60 s");
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                continue;
            }
            let mut event = SqsEvent::default();
            event.records = messages
                .iter()
                .map(|m| {
                    let mut r = SqsMessage::default();
                    r.message_id = m.message_id.clone();
                    r.body = m.body.clone();
                    r
                })
                .collect();
            let response = handle(&deps, event).await;
            for m in &messages {
                let failed = response
                    .batch_item_failures
                    .iter()
                    .any(|f| Some(&f.item_identifier) == m.message_id.as_ref());
                assert!(!failed, "the notifier reported a failure: {response:?}");
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .set_receipt_handle(m.receipt_handle.clone())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn notifications(&self, user: &str) -> Vec<Notification> {
        self.store
            .list_notifications(user, 100, None)
            .await
            .unwrap()
            .items
    }

    async fn delivery_status(&self, user: &str, channel: &str) -> Vec<DeliveryStatus> {
        self.notifications(user)
            .await
            .iter()
            .filter_map(|n| n.deliveries.get(channel).map(|d| d.status))
            .collect()
    }
}

fn user() -> String {
    format!("user-{}", ulid::Ulid::new())
}

fn run_vars() -> Value {
    json!({"workflow_id": "01JWORKFLOW0000000000000000", "workflow_name": NASTY,
           "run_id": "01JRUN000000000000000000000", "status": "failed", "steps_total": 3,
           "steps_succeeded": 2, "steps_failed": 1, "error": "the model timed out"})
}

/// The HMAC-SHA256 a receiver computes, with a library of its own (not the notifier's code).
fn expected_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

#[tokio::test]
async fn a_webhook_is_signed_and_verified_by_its_receiver_after_two_failures() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let hook = s
        .channel(&alice, ChannelKind::Webhook, &receiver.url("/hook"))
        .await;
    let secret = hook
        .secret
        .clone()
        .expect("the secret is shown at creation");
    s.prefer(&alice, json!({"run_failed": [hook.id]})).await;
    // Fails twice (a 503, then a 429 asking for 2 s), then takes it.
    receiver.fail_with_retry_after("/hook", &[(503, None), (429, Some(2))]);

    assert_eq!(s.raise(&alice, EventKind::RunFailed, run_vars()).await, 1);
    s.drain_until(async || receiver.received("/hook").len() >= 3)
        .await;
    s.drain_until(async || {
        s.delivery_status(&alice, &hook.id).await == [DeliveryStatus::Delivered]
    })
    .await;

    let got = receiver.received("/hook");
    assert_eq!(
        got.iter().map(|d| d.status).collect::<Vec<_>>(),
        [503, 429, 200]
    );
    // Retry-After is honoured: the third try waited at least the 2 s the receiver asked for.
    assert!(
        got[2].at.duration_since(got[1].at) >= Duration::from_millis(1900),
        "{:?}",
        got[2].at.duration_since(got[1].at)
    );
    for (i, d) in got.iter().enumerate() {
        let ts = d.header("x-dwc-timestamp").unwrap();
        assert_eq!(
            d.header("x-dwc-signature").unwrap(),
            expected_signature(&secret, ts, &d.body),
            "attempt {i}: the receiver cannot verify the signature"
        );
        assert_eq!(d.header("x-dwc-event"), Some("run_failed"));
        assert_eq!(d.header("x-dwc-attempt"), Some(&*(i + 1).to_string()));
        assert_eq!(d.header("content-type"), Some("application/json"));
        // A signature of another body (or by another secret) does not verify.
        assert_ne!(
            d.header("x-dwc-signature").unwrap(),
            expected_signature(&secret, ts, &d.body.replace("failed", "succeeded"))
        );
        assert_ne!(
            d.header("x-dwc-signature").unwrap(),
            expected_signature("whsec_other", ts, &d.body)
        );
    }
    // The body is JSON with the variables intact (JSON does the escaping).
    let body = got[2].json();
    assert_eq!(body["event"], "run_failed");
    assert_eq!(body["data"]["workflow_name"], NASTY);
    assert_eq!(body["data"]["steps_failed"], 1);

    // The delivery log shows each attempt's outcome.
    let log = s.notifications(&alice).await;
    assert_eq!(log.len(), 1);
    let delivery = &log[0].deliveries[&hook.id];
    let outcomes: Vec<(Value, Option<u16>, bool)> = delivery
        .attempts
        .iter()
        .map(|a| (json!(a.outcome), a.status_code, a.retry_at.is_some()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!("retry"), Some(503), true),
            (json!("retry"), Some(429), true),
            (json!("delivered"), Some(200), false),
        ]
    );
}

#[tokio::test]
async fn a_permanent_refusal_stops_at_once_and_marks_the_channel() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let gone = s
        .channel(&alice, ChannelKind::Webhook, &receiver.url("/gone"))
        .await;
    s.prefer(&alice, json!({"run_failed": [gone.id]})).await;
    receiver.fail("/gone", &[410, 410, 410]);

    s.raise(&alice, EventKind::RunFailed, run_vars()).await;
    s.drain_until(async || s.delivery_status(&alice, &gone.id).await == [DeliveryStatus::Failed])
        .await;
    assert_eq!(receiver.received("/gone").len(), 1, "no retry after a 410");
    let channel = notify::get_channel(&s.store, &alice, &gone.id)
        .await
        .unwrap();
    assert_eq!(channel.status, ChannelStatus::Failed);
    assert!(channel.failure.is_some());

    // The next notification skips the failed channel: nothing more reaches the receiver.
    s.raise(&alice, EventKind::RunFailed, run_vars()).await;
    let log = s.notifications(&alice).await;
    let newest = &log[0].deliveries[&gone.id];
    assert_eq!(newest.status, DeliveryStatus::Skipped);
    assert_eq!(receiver.received("/gone").len(), 1);

    // Turned on again, it is used again.
    notify::update_channel(
        &s.store,
        &s.vault,
        &alice,
        &gone.id,
        serde_json::from_value(json!({"enabled": true})).unwrap(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    s.raise(&alice, EventKind::RunFailed, run_vars()).await;
    s.drain_until(async || receiver.received("/gone").len() == 2)
        .await;
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let down = s
        .channel(&alice, ChannelKind::Slack, &receiver.url("/down"))
        .await;
    s.prefer(&alice, json!({"run_failed": [down.id]})).await;
    receiver.fail("/down", &[500, 502, 503, 504, 500]);
    s.raise(&alice, EventKind::RunFailed, run_vars()).await;
    s.drain_until(async || s.delivery_status(&alice, &down.id).await == [DeliveryStatus::Failed])
        .await;
    // max_attempts is 4: four tries, then it gives up; the channel stays on (the receiver
    // was down, it did not refuse).
    assert_eq!(receiver.received("/down").len(), 4);
    let channel = notify::get_channel(&s.store, &alice, &down.id)
        .await
        .unwrap();
    assert_eq!(channel.status, ChannelStatus::Active);
}

#[tokio::test]
async fn preferences_route_each_event_to_exactly_the_chosen_channels_in_their_formats() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let email_address = format!("alice-{}@example.com", ulid::Ulid::new()).to_lowercase();
    let phone = "+15555550123";
    let sns = aws_sdk_sns::Client::new(&s.sdk);
    let app = sns
        .create_platform_application()
        .name(format!("app-{}", ulid::Ulid::new()))
        .platform("GCM")
        .attributes("PlatformCredential", "test-key")
        .send()
        .await
        .unwrap()
        .platform_application_arn
        .unwrap();
    let endpoint = sns
        .create_platform_endpoint()
        .platform_application_arn(app)
        .token(format!("device-{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap()
        .endpoint_arn
        .unwrap();

    let email = s.channel(&alice, ChannelKind::Email, &email_address).await;
    let sms = s.channel(&alice, ChannelKind::Sms, phone).await;
    let push = s.channel(&alice, ChannelKind::Push, &endpoint).await;
    let slack = s
        .channel(&alice, ChannelKind::Slack, &receiver.url("/slack"))
        .await;
    let teams = s
        .channel(&alice, ChannelKind::Teams, &receiver.url("/teams"))
        .await;
    let discord = s
        .channel(&alice, ChannelKind::Discord, &receiver.url("/discord"))
        .await;
    let unused = s
        .channel(&alice, ChannelKind::Webhook, &receiver.url("/unused"))
        .await;
    s.prefer(
        &alice,
        json!({
            "run_failed": [email.id, sms.id, push.id, slack.id, teams.id, discord.id],
            "run_succeeded": [slack.id],
        }),
    )
    .await;

    // An event nobody chose raises nothing.
    assert_eq!(
        s.raise(
            &alice,
            EventKind::WorkflowShared,
            json!({"workflow_name": "x"})
        )
        .await,
        0
    );
    assert_eq!(s.raise(&alice, EventKind::RunFailed, run_vars()).await, 6);
    let all_delivered = async || {
        let log = s.notifications(&alice).await;
        log.len() == 1
            && log[0]
                .deliveries
                .values()
                .all(|d| d.status == DeliveryStatus::Delivered)
    };
    s.drain_until(all_delivered).await;
    let log = s.notifications(&alice).await;
    let mut chosen: Vec<&String> = log[0].deliveries.keys().collect();
    chosen.sort();
    let mut expected = vec![
        &email.id,
        &sms.id,
        &push.id,
        &slack.id,
        &teams.id,
        &discord.id,
    ];
    expected.sort();
    assert_eq!(chosen, expected);
    assert!(!log[0].deliveries.contains_key(&unused.id));
    assert!(receiver.received("/unused").is_empty());

    // Email: HTML with the name escaped (SES in the emulator keeps what it sent).
    let mails = localstack::testing::emails_to(&email_address).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (subject, html) = &mails[0];
    assert!(subject.contains("failed"), "{subject}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    // SMS and push (SNS in the emulator).
    let texts = localstack::testing::sns_messages_to(phone).await;
    assert!(texts.iter().any(|t| t.contains("failed")), "{texts:?}");
    let pushes = localstack::testing::sns_messages_to(&endpoint).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let push_message: Value = serde_json::from_str(&pushes[0]).unwrap();
    let gcm: Value = serde_json::from_str(push_message["GCM"].as_str().unwrap()).unwrap();
    assert!(gcm["notification"]["title"].as_str().is_some(), "{gcm}");
    assert_eq!(gcm["data"]["event"], "run_failed");

    // Slack: mrkdwn blocks; the name shows as text, not bold, not a tag, not a mention.
    let slack_body = receiver.received("/slack")[0].json();
    let text = slack_body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(slack_body["blocks"][0]["text"]["type"], "mrkdwn");
    assert!(text.contains("&lt;script&gt;"), "{text}");
    assert!(
        !text.contains("*bold*"),
        "formatting must be neutralised: {text}"
    );
    // Teams: an Adaptive Card.
    let teams_body = receiver.received("/teams")[0].json();
    assert_eq!(teams_body["type"], "message");
    let card = &teams_body["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    // Discord: content with no mentions allowed, @everyone broken.
    let discord_body = receiver.received("/discord")[0].json();
    assert_eq!(discord_body["allowed_mentions"]["parse"], json!([]));
    let content = discord_body["content"].as_str().unwrap();
    assert!(!content.contains("@everyone"), "{content}");
    assert!(content.contains(r"\*bold\*"), "{content}");

    // run_succeeded goes to Slack alone.
    assert_eq!(
        s.raise(&alice, EventKind::RunSucceeded, run_vars()).await,
        1
    );
    s.drain_until(async || receiver.received("/slack").len() == 2)
        .await;
    assert_eq!(receiver.received("/teams").len(), 1);
    assert_eq!(receiver.received("/discord").len(), 1);
    assert_eq!(
        localstack::testing::emails_to(&email_address).await.len(),
        1
    );
}

#[tokio::test]
async fn a_retried_raise_stores_one_notification_and_delivers_once() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let hook = s
        .channel(&alice, ChannelKind::Webhook, &receiver.url("/once"))
        .await;
    s.prefer(&alice, json!({"new_login": [hook.id]})).await;
    let trigger = Trigger {
        user_id: alice.clone(),
        event: EventKind::NewLogin,
        at: shared::domain::time::truncate_to_millis(chrono::Utc::now()),
        vars: Map::from_iter([("source_ip".to_string(), json!("203.0.113.9"))]),
    };
    let source = Source {
        seed: "stream-record-1",
        not_before: None,
        only_channel: None,
        verification: false,
    };
    // The stream batch is retried: the same record raises the same notification twice.
    for _ in 0..2 {
        raise::raise(
            &s.store,
            &s.queue,
            &trigger,
            &source,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    }
    s.drain_until(async || {
        s.delivery_status(&alice, &hook.id).await == [DeliveryStatus::Delivered]
    })
    .await;
    // Both queued messages were handled; the second found the delivery done.
    let left = s
        .sqs
        .receive_message()
        .queue_url(&s.url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(left.messages.unwrap_or_default().is_empty());
    assert_eq!(s.notifications(&alice).await.len(), 1);
    assert_eq!(receiver.received("/once").len(), 1);
}

#[tokio::test]
async fn a_notification_held_by_quiet_hours_waits_in_the_queue() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let hook = s
        .channel(&alice, ChannelKind::Webhook, &receiver.url("/quiet"))
        .await;
    // Quiet all day but one minute from now on: whatever the time, it is quiet now.
    let now = chrono::Utc::now();
    let start = (now + chrono::Duration::minutes(2))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let prefs: Preferences = serde_json::from_value(json!({
        "events": {"run_succeeded": [hook.id], "new_login": [hook.id]},
        "quiet_hours": {"start": start, "end": end, "time_zone": "UTC"},
    }))
    .unwrap();
    notify::set_preferences(&s.store, &alice, prefs)
        .await
        .unwrap();

    s.raise(&alice, EventKind::RunSucceeded, run_vars()).await;
    let log = s.notifications(&alice).await;
    assert!(log[0].send_at > now, "held until the quiet hours end");
    // A security event is not held.
    s.raise(
        &alice,
        EventKind::NewLogin,
        json!({"source_ip": "203.0.113.9"}),
    )
    .await;
    s.drain_until(async || receiver.received("/quiet").len() == 1)
        .await;
    assert_eq!(receiver.received("/quiet")[0].json()["event"], "new_login");
    // The held one is back on the queue, delayed, still pending.
    let statuses: BTreeMap<String, DeliveryStatus> = s
        .notifications(&alice)
        .await
        .iter()
        .map(|n| (n.event.as_str().to_string(), n.deliveries[&hook.id].status))
        .collect();
    assert_eq!(statuses["run_succeeded"], DeliveryStatus::Pending);
}

/// A sender whose every message is refused for good (an address the mail service rejects).
struct Refusing;

impl Sender for Refusing {
    fn send<'a>(
        &'a self,
        _: &'a Outgoing,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Sent> + Send + 'a>> {
        Box::pin(async {
            Sent {
                verdict: Verdict::Permanent,
                status_code: None,
                detail: Some("MessageRejected: refused".into()),
            }
        })
    }
}

#[tokio::test]
async fn a_refused_confirmation_code_leaves_the_channel_unconfirmed_and_off() {
    let s = Stack::new().await;
    let alice = user();
    let created = notify::create_channel(
        &s.store,
        &s.vault,
        true,
        &alice,
        serde_json::from_value(json!({"kind": "sms", "name": "phone", "target": "+15555550199"}))
            .unwrap(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let id = created.view.id.clone();
    // The code's notice, raised as the stream consumer raises it, and refused.
    raise::start_notice(
        &s.store,
        &s.queue,
        created.verification.as_ref().unwrap(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    s.drain_with(&Refusing, async || {
        s.delivery_status(&alice, &id).await == [DeliveryStatus::Failed]
    })
    .await;
    let channel = notify::get_channel(&s.store, &alice, &id).await.unwrap();
    assert_eq!(channel.status, ChannelStatus::Unverified, "{channel:?}");
    // It cannot be turned on without its code.
    let on = notify::update_channel(
        &s.store,
        &s.vault,
        &alice,
        &id,
        serde_json::from_value(json!({"enabled": true})).unwrap(),
        chrono::Utc::now(),
    )
    .await;
    assert!(
        matches!(on, Err(shared::app::AppError::Conflict { .. })),
        "{on:?}"
    );
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_both_signatures_for_a_day() {
    let s = Stack::new().await;
    let receiver = Receiver::start().await;
    let alice = user();
    let hook = s
        .channel(&alice, ChannelKind::Webhook, &receiver.url("/rotated"))
        .await;
    let old = hook.secret.clone().unwrap();
    let rotated = notify::update_channel(
        &s.store,
        &s.vault,
        &alice,
        &hook.id,
        serde_json::from_value(json!({"rotate_secret": true})).unwrap(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let new = rotated.secret.unwrap();
    assert_ne!(new, old);
    s.prefer(&alice, json!({"run_failed": [hook.id]})).await;
    s.raise(&alice, EventKind::RunFailed, run_vars()).await;
    s.drain_until(async || receiver.received("/rotated").len() == 1)
        .await;
    let d = &receiver.received("/rotated")[0];
    let ts = d.header("x-dwc-timestamp").unwrap();
    let given: Vec<&str> = d.header("x-dwc-signature").unwrap().split(',').collect();
    assert_eq!(
        given,
        [
            expected_signature(&new, ts, &d.body).as_str(),
            expected_signature(&old, ts, &d.body).as_str()
        ]
    );
}
