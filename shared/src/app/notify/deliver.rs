//! Delivering one notification to one channel, from a message of the notifications queue.
//!
//! The message names the delivery; the notification and the channel are read (one
//! BatchGetItem), the message rendered with the event's template for the channel's format and
//! sent. Every attempt is recorded in the delivery log, conditional on the delivery still
//! being pending with the attempts seen, so a duplicate message records (and retries) nothing.
//! A 429, 5xx or timeout is tried again after an exponential backoff with full jitter (a
//! `Retry-After` is a floor) by queueing the message again with that delay; other 4xx and
//! refused addresses stop at once and mark the channel failed, so nothing more is sent to it
//! until its user turns it on again. A delivery that is not due yet (`send_at`, quiet hours)
//! is queued again to its time, 15 minutes at a time.
//!
//! Only store and queue failures are errors: the message then stays on the queue (and goes to
//! the dead-letter queue after its receives).

use super::{effective_template, signing_secrets};
use crate::app::notify::raise::{self, Source, delay_until};
use crate::domain::notification::{
    Attempt, AttemptOutcome, Channel, ChannelStatus, DeliveryMessage, DeliveryStatus,
    LEASE_SECONDS, Notification, QueueMessage, TemplateOverride,
};
use crate::domain::notify::ChannelKind;
use crate::domain::notify::retry::{RetryPolicy, Verdict};
use crate::domain::notify::templates::{self, Format};
use crate::ports::{
    AccountFilter, Accounts, KeyVault, NotifyQueue, NotifyStore, Outgoing, Sender, StoreError,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// What the notifier needs.
pub struct Notifier<'a> {
    pub store: &'a dyn NotifyStore,
    pub queue: &'a dyn NotifyQueue,
    pub sender: &'a dyn Sender,
    pub vault: &'a dyn KeyVault,
    pub accounts: &'a dyn Accounts,
    pub policy: RetryPolicy,
    /// The admins' templates (read once per batch).
    pub overrides: &'a [TemplateOverride],
}

/// What became of one queued message.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Delivered,
    /// Queued again after this many seconds.
    Retrying(u32),
    /// Failed for good (and the channel marked, when the receiver refused it).
    Failed(String),
    Skipped(String),
    /// Not due yet: queued again.
    Deferred(u32),
    /// Nothing to do (done before, or the notification expired).
    Dropped(&'static str),
    /// A page of a notice's fan-out: notifications raised.
    Fanned(usize),
}

/// Accounts reached per fan-out message.
pub const NOTICE_PAGE: u32 = 50;

/// Handles one message of the notifications queue. `random` in [0, 1) draws the jitter.
pub async fn handle(
    n: &Notifier<'_>,
    message: &QueueMessage,
    now: DateTime<Utc>,
    random: f64,
) -> Result<Done, StoreError> {
    match message {
        QueueMessage::Deliver(m) => deliver(n, m, now, random).await,
        QueueMessage::Notice { notice_id, after } => {
            fan_out(n, notice_id, after.as_deref(), now).await
        }
    }
}

/// One page of accounts of a notice to everyone; the next page is queued.
async fn fan_out(
    n: &Notifier<'_>,
    notice_id: &str,
    after: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Done, StoreError> {
    let Some(notice) = n.store.get_notice(notice_id).await? else {
        return Ok(Done::Dropped("the notice is gone"));
    };
    // A notice for later waits as this one message, not as one per account.
    if notice.send_at > now {
        let delay = delay_until(notice.send_at, now);
        let again = QueueMessage::Notice {
            notice_id: notice.id.clone(),
            after: after.map(str::to_string),
        };
        n.queue.send(&[(again, delay)]).await?;
        return Ok(Done::Deferred(delay));
    }
    let after = match after {
        Some(c) => Some(crate::http::cursor::decode(c).ok_or(StoreError::BadPageKey)?),
        None => None,
    };
    let page = n
        .accounts
        .list_accounts(&AccountFilter::default(), NOTICE_PAGE, after.as_ref())
        .await?;
    let mut raised = 0;
    for account in &page.items {
        let trigger = raise::notice_trigger(&notice, &account.user_id);
        let source = Source {
            seed: &notice.id,
            not_before: Some(notice.send_at),
            only_channel: None,
            verification: false,
        };
        raised += raise::raise(n.store, n.queue, &trigger, &source, None, now).await?;
    }
    if let Some(next) = page.next {
        let message = QueueMessage::Notice {
            notice_id: notice.id.clone(),
            after: Some(crate::http::cursor::encode(&next)),
        };
        n.queue.send(&[(message, 0)]).await?;
    }
    Ok(Done::Fanned(raised))
}

async fn deliver(
    n: &Notifier<'_>,
    m: &DeliveryMessage,
    now: DateTime<Utc>,
    random: f64,
) -> Result<Done, StoreError> {
    let (notification, channel) = n
        .store
        .delivery(&m.user_id, &m.notification_id, &m.channel_id)
        .await?;
    let Some(notification) = notification else {
        return Ok(Done::Dropped("the notification is gone"));
    };
    let Some(delivery) = notification.deliveries.get(&m.channel_id) else {
        return Ok(Done::Dropped("no such delivery"));
    };
    if delivery.status != DeliveryStatus::Pending {
        return Ok(Done::Dropped("the delivery is done"));
    }
    let seen = delivery.attempts.len();
    let skip = |reason: &str| {
        let reason = reason.to_string();
        async move {
            n.store
                .record_attempt(
                    &m.user_id,
                    &m.notification_id,
                    &m.channel_id,
                    seen,
                    None,
                    DeliveryStatus::Skipped,
                    Some(&reason),
                )
                .await?;
            Ok(Done::Skipped(reason))
        }
    };
    let channel = match channel {
        None => return skip("the channel was deleted").await,
        Some(c)
            if c.status != ChannelStatus::Active
                && !(c.status == ChannelStatus::Unverified && notification.verification) =>
        {
            return skip("the channel is turned off, failed or not confirmed").await;
        }
        Some(c) => c,
    };
    // Not due yet: back on the queue until its time. A retry's time is the queue's delay.
    if notification.send_at > now {
        let delay = delay_until(notification.send_at, now);
        n.queue
            .send(&[(QueueMessage::Deliver(m.clone()), delay)])
            .await?;
        return Ok(Done::Deferred(delay));
    }
    // Hold the delivery for this send: a copy of the message (SQS delivers at least once; a
    // retried raise queues it again) finds it held, or done, and sends nothing.
    let until = now + chrono::Duration::seconds(LEASE_SECONDS);
    if !n
        .store
        .claim_delivery(
            &m.user_id,
            &m.notification_id,
            &m.channel_id,
            seen,
            now,
            until,
        )
        .await?
    {
        return Ok(Done::Dropped("another copy of the message is sending it"));
    }
    let attempt_no = u32::try_from(seen + 1).unwrap_or(u32::MAX);
    // A refusal by the receiver marks the channel; a template that does not render does not.
    let (sent, receiver_refused) = match outgoing(n, &channel, &notification, attempt_no, now).await
    {
        Ok(out) => {
            let sent = n.sender.send(&out).await;
            let refused = sent.verdict == Verdict::Permanent;
            (sent, refused)
        }
        Err((verdict, detail)) => (
            crate::ports::Sent {
                verdict,
                status_code: None,
                detail: Some(detail),
            },
            false,
        ),
    };
    let mut attempt = Attempt {
        at: now,
        outcome: AttemptOutcome::from(&sent.verdict),
        status_code: sent.status_code,
        detail: sent.detail.clone(),
        retry_at: None,
    };
    let (status, reason, done) = match &sent.verdict {
        Verdict::Delivered => (DeliveryStatus::Delivered, None, Done::Delivered),
        Verdict::Retry { .. } if n.policy.exhausted(attempt_no) => {
            let why = format!("gave up after {attempt_no} attempts");
            (DeliveryStatus::Failed, Some(why.clone()), Done::Failed(why))
        }
        Verdict::Retry { retry_after } => {
            let delay = n.policy.delay(attempt_no, *retry_after, random);
            let delay_s = u32::try_from(delay.as_secs()).unwrap_or(900).min(900);
            attempt.retry_at = Some(now + chrono::Duration::seconds(i64::from(delay_s)));
            (DeliveryStatus::Pending, None, Done::Retrying(delay_s))
        }
        Verdict::Permanent => {
            let why = sent
                .detail
                .clone()
                .unwrap_or_else(|| "the receiver refused it".into());
            (DeliveryStatus::Failed, Some(why.clone()), Done::Failed(why))
        }
    };
    let recorded = n
        .store
        .record_attempt(
            &m.user_id,
            &m.notification_id,
            &m.channel_id,
            seen,
            Some(&attempt),
            status,
            reason.as_deref(),
        )
        .await?;
    if !recorded {
        return Ok(Done::Dropped(
            "another delivery of this message recorded first",
        ));
    }
    match &done {
        Done::Retrying(delay) => {
            n.queue
                .send(&[(QueueMessage::Deliver(m.clone()), *delay)])
                .await?;
        }
        // A channel never confirmed is not marked: it stays unverified (only its code
        // turns it on).
        Done::Failed(why) if receiver_refused && channel.status == ChannelStatus::Active => {
            n.store
                .set_channel_status(
                    &m.user_id,
                    &m.channel_id,
                    ChannelStatus::Failed,
                    Some(why),
                    now,
                )
                .await?;
        }
        _ => {}
    }
    Ok(done)
}

/// The variables every template gets besides the event's own.
fn variables(notification: &Notification) -> Map<String, Value> {
    let mut vars = notification.vars.clone();
    vars.insert(
        "event".into(),
        Value::String(notification.event.as_str().into()),
    );
    vars.entry("at").or_insert_with(|| {
        Value::String(
            notification
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    });
    vars
}

/// The message `channel` gets for `notification`; when there is none, the verdict and why (a
/// template that does not render fails; the key service unavailable is tried again).
async fn outgoing(
    n: &Notifier<'_>,
    channel: &Channel,
    notification: &Notification,
    attempt: u32,
    now: DateTime<Utc>,
) -> Result<Outgoing, (Verdict, String)> {
    let vars = variables(notification);
    let render = |format: Format| {
        templates::render(
            effective_template(n.overrides, notification.event, format),
            format,
            &vars,
        )
        .map_err(|e| {
            (
                Verdict::Permanent,
                format!("the {} template: {e}", format.as_str()),
            )
        })
    };
    let json_post = |body: Value| Outgoing::Http {
        url: channel.target.clone(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string(),
    };
    Ok(match channel.kind {
        ChannelKind::Email => Outgoing::Email {
            to: channel.target.clone(),
            subject: render(Format::EmailSubject)?,
            html: render(Format::EmailHtml)?,
            text: render(Format::EmailText)?,
        },
        ChannelKind::Sms => Outgoing::Sms {
            to: channel.target.clone(),
            text: render(Format::Sms)?,
        },
        ChannelKind::Push => {
            let rendered = render(Format::Push)?;
            let (title, body) = templates::split_title(&rendered);
            Outgoing::Push {
                endpoint_arn: channel.target.clone(),
                message: templates::push_message(title, body, notification.event),
            }
        }
        ChannelKind::Slack => json_post(templates::slack_payload(&render(Format::Slack)?)),
        ChannelKind::Teams => {
            let rendered = render(Format::Teams)?;
            let (title, text) = templates::split_title(&rendered);
            json_post(templates::teams_payload(title, text))
        }
        ChannelKind::Discord => json_post(templates::discord_payload(&render(Format::Discord)?)),
        ChannelKind::Webhook => {
            let secrets = signing_secrets(n.vault, channel, now).await.map_err(|e| {
                let verdict = match e {
                    crate::app::AppError::Unavailable(_) => Verdict::Retry { retry_after: None },
                    _ => Verdict::Permanent,
                };
                tracing::error!(error = %e, channel_id = %channel.id, "a webhook's signing secret did not open");
                (verdict, "the signing secret could not be opened".to_string())
            })?;
            let body = templates::webhook_body(
                &notification.id,
                notification.event,
                notification.created_at,
                &vars,
            );
            let timestamp = now.timestamp();
            Outgoing::Http {
                url: channel.target.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-dwc-event".into(), notification.event.as_str().into()),
                    (
                        "x-dwc-delivery".into(),
                        format!("{}.{}", notification.id, channel.id),
                    ),
                    ("x-dwc-attempt".into(), attempt.to_string()),
                    ("x-dwc-timestamp".into(), timestamp.to_string()),
                    // Several while a rotated-out secret still signs: the new one first.
                    (
                        "x-dwc-signature".into(),
                        secrets
                            .iter()
                            .map(|s| templates::signature(s, timestamp, &body))
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                ],
                body,
            }
        }
    })
}
