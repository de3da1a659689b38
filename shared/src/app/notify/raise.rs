//! Raising notifications: what the table's stream says happened ([`Trigger`]s from item
//! changes and audit notes, system notices) becomes a notification to a user, with one delivery
//! per channel their preferences chose, each queued for the notifier.
//!
//! A raise is idempotent: the notification's id is derived from its source (the stream
//! record's id), so a retried batch finds it stored and only queues its deliveries again, which
//! the notifier drops as done (a delivery records an attempt only while pending).

use crate::domain::ids;
use crate::domain::notification::{
    Channel, ChannelStatus, Delivery, DeliveryMessage, DeliveryStatus, Notice, Notification,
    QueueMessage,
};
use crate::domain::notify::triggers::Trigger;
use crate::domain::notify::{ChannelKind, EventKind, release_time};
use crate::ports::{Notifications, NotifyConfig, NotifyQueue, StoreError, Workflows};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The delay of a queued message (SQS: at most 900 s); a later time is reached in hops.
pub fn delay_until(at: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    u32::try_from((at - now).num_seconds().clamp(0, 900)).unwrap_or(900)
}

/// Which of `channels` get `event`: those the preferences chose (a system notice with no
/// choice made goes to the user's email channels).
fn chosen<'a>(
    channels: &'a [Channel],
    preferences: Option<&crate::domain::notify::Preferences>,
    event: EventKind,
    only: Option<&str>,
) -> Vec<&'a Channel> {
    if let Some(id) = only {
        return channels.iter().filter(|c| c.id == id).collect();
    }
    let ids = preferences.map(|p| p.channels_for(event)).unwrap_or(&[]);
    if ids.is_empty() && event == EventKind::SystemNotice {
        return channels
            .iter()
            .filter(|c| c.kind == ChannelKind::Email)
            .collect();
    }
    ids.iter()
        .filter_map(|id| channels.iter().find(|c| &c.id == id))
        .collect()
}

/// A raise's source, for its id and its timing.
pub struct Source<'a> {
    /// Unique per source event and the same on every retry (a stream record's id, a notice's).
    pub seed: &'a str,
    /// Not before this (a notice's `send_at`).
    pub not_before: Option<DateTime<Utc>>,
    /// Only this channel (a channel test), whatever the preferences.
    pub only_channel: Option<&'a str>,
    /// A confirmation code: goes to its (unverified) channel.
    pub verification: bool,
}

/// Raises `trigger`: stores its notification (unless stored by an earlier try) and queues its
/// pending deliveries. `Ok(0)` when the user chose no channel for it. With `workflows`, a
/// trigger that names its workflow by id only (runs, steps) also gets its name, read once the
/// notification is sure to be stored.
pub async fn raise(
    store: &(impl NotifyConfig + Notifications + ?Sized),
    queue: &dyn NotifyQueue,
    trigger: &Trigger,
    source: &Source<'_>,
    workflows: Option<&dyn Workflows>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let settings = store.notify_settings(&trigger.user_id).await?;
    let channels = chosen(
        &settings.channels,
        settings.preferences.as_ref(),
        trigger.event,
        source.only_channel,
    );
    if channels.is_empty() && trigger.event != EventKind::SystemNotice {
        return Ok(0);
    }
    let quiet = settings
        .preferences
        .as_ref()
        .and_then(|p| p.quiet_hours.as_ref());
    let earliest = source.not_before.unwrap_or(now).max(now);
    let send_at = release_time(trigger.event, quiet, earliest);
    let deliveries: BTreeMap<String, Delivery> = channels
        .iter()
        .map(|c| {
            let (status, reason) = match c.status {
                ChannelStatus::Active => (DeliveryStatus::Pending, None),
                ChannelStatus::Unverified if source.verification => (DeliveryStatus::Pending, None),
                ChannelStatus::Unverified => (
                    DeliveryStatus::Skipped,
                    Some("the channel is not confirmed yet"),
                ),
                ChannelStatus::Disabled => {
                    (DeliveryStatus::Skipped, Some("the channel is turned off"))
                }
                ChannelStatus::Failed => (
                    DeliveryStatus::Skipped,
                    Some("the channel failed before; turn it on again to use it"),
                ),
            };
            let delivery = Delivery {
                channel_id: c.id.clone(),
                kind: c.kind,
                status,
                attempts: Vec::new(),
                reason: reason.map(str::to_string),
                lease_until: None,
            };
            (c.id.clone(), delivery)
        })
        .collect();
    let notification = Notification {
        // One record can raise several notifications of one event for one user (steps of a
        // run becoming approvable together): their variables tell them apart.
        id: ids::derived_id(
            trigger.at,
            &format!(
                "{}|{}|{}|{}",
                source.seed,
                trigger.user_id,
                trigger.event.as_str(),
                serde_json::Value::Object(trigger.vars.clone())
            ),
        ),
        user_id: trigger.user_id.clone(),
        event: trigger.event,
        created_at: trigger.at,
        send_at,
        vars: with_workflow_name(&trigger.vars, workflows).await?,
        deliveries,
        verification: source.verification,
    };
    store.put_notification(&notification).await?;
    let delay = delay_until(send_at, now);
    let messages: Vec<(QueueMessage, u32)> = notification
        .deliveries
        .values()
        .filter(|d| d.status == DeliveryStatus::Pending)
        .map(|d| {
            let m = DeliveryMessage {
                user_id: notification.user_id.clone(),
                notification_id: notification.id.clone(),
                channel_id: d.channel_id.clone(),
            };
            (QueueMessage::Deliver(m), delay)
        })
        .collect();
    if !messages.is_empty() {
        queue.send(&messages).await?;
    }
    Ok(messages.len())
}

/// `vars` with `workflow_name` added when they name a workflow by id only and `workflows`
/// is given (a workflow gone since adds nothing).
async fn with_workflow_name(
    vars: &Map<String, Value>,
    workflows: Option<&dyn Workflows>,
) -> Result<Map<String, Value>, StoreError> {
    let mut vars = vars.clone();
    if let (Some(workflows), Some(id)) =
        (workflows, vars.get("workflow_id").and_then(Value::as_str))
        && !vars.contains_key("workflow_name")
        && let Some(w) = workflows.get_workflow(id).await?
    {
        vars.insert("workflow_name".into(), w.name.into());
    }
    Ok(vars)
}

/// A notice's notification for one user.
pub fn notice_trigger(notice: &Notice, user_id: &str) -> Trigger {
    let mut vars = Map::new();
    vars.insert("subject".into(), Value::String(notice.subject.clone()));
    vars.insert("body".into(), Value::String(notice.body.clone()));
    Trigger {
        user_id: user_id.to_string(),
        event: EventKind::SystemNotice,
        at: notice.created_at,
        vars,
    }
}

/// A notice raised by its stream record: a channel test goes to its one channel at once; a
/// notice to everyone starts its fan-out (one queued message per page of accounts).
pub async fn start_notice(
    store: &(impl NotifyConfig + Notifications + ?Sized),
    queue: &dyn NotifyQueue,
    notice: &Notice,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match (&notice.user_id, &notice.channel_id) {
        (Some(user), Some(channel)) => {
            let source = Source {
                seed: &notice.id,
                not_before: Some(notice.send_at),
                only_channel: Some(channel),
                verification: notice.verification,
            };
            raise(
                store,
                queue,
                &notice_trigger(notice, user),
                &source,
                None,
                now,
            )
            .await?;
        }
        _ => {
            let first = QueueMessage::Notice {
                notice_id: notice.id.clone(),
                after: None,
            };
            queue.send(&[(first, 0)]).await?;
        }
    }
    Ok(())
}
