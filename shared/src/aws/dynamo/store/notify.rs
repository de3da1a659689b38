//! [`NotifyStore`] over the table: a user's channels, preferences and notifications in the
//! user's partition (deleted with the account), admins' templates and notices apart.
//!
//! | item | `PK` | `SK` | attributes |
//! | --- | --- | --- | --- |
//! | channel | `USER#<user>` | `NCFG#CHAN#<channel>` | the channel (its secret sealed) |
//! | preferences | `USER#<user>` | `NCFG#PREFS` | `preferences` |
//! | notification | `USER#<user>` | `NOTIF#<id, a ULID>` | the notification with its deliveries (a map by channel id), `expires_at` 30 days on |
//! | template override | `NTEMPLATES` | `<event>#<format>` | `source`, `updated_at`, `updated_by` |
//! | system notice | `NOTICE#<id>` | `#NOTICE` | the notice; its stream record starts the fan-out |
//!
//! Access patterns:
//! - settings (channels and preferences): Query `PK = USER#<user> AND begins_with(SK, NCFG#)`;
//! - a delivery: BatchGetItem of the notification and the channel;
//! - record an attempt: UpdateItem `list_append` to the delivery's attempts, conditional on
//!   its status being `pending` with the attempts seen (a duplicate message records nothing);
//! - the delivery log, newest first: Query `begins_with(SK, NOTIF#)` backwards, in pages;
//! - overrides: Query `PK = NTEMPLATES` (a handful of items).

use super::*;
use crate::domain::notification::{
    Attempt, Channel, ChannelStatus, DeliveryStatus, KEEP_CODE_DAYS, KEEP_DAYS, Notice,
    Notification, TemplateOverride,
};
use crate::domain::notify::templates::Format;
use crate::domain::notify::{EventKind, Preferences};

const CONFIG_PREFIX: &str = "NCFG#";
const CHANNEL_PREFIX: &str = "NCFG#CHAN#";
const PREFS_SK: &str = "NCFG#PREFS";
const NOTIFICATION_PREFIX: &str = "NOTIF#";
const TEMPLATES_PK: &str = "NTEMPLATES";

fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PK.into(), AttributeValue::S(pk)),
        (SK.into(), AttributeValue::S(sk)),
    ])
}

fn channel_key(user_id: &str, id: &str) -> Item {
    key(user_pk(user_id), format!("{CHANNEL_PREFIX}{id}"))
}

fn notification_key(user_id: &str, id: &str) -> Item {
    key(user_pk(user_id), format!("{NOTIFICATION_PREFIX}{id}"))
}

fn template_key(event: EventKind, format: Format) -> Item {
    key(
        TEMPLATES_PK.into(),
        format!("{}#{}", event.as_str(), format.as_str()),
    )
}

fn notice_key(id: &str) -> Item {
    key(format!("{NOTICE_PK_PREFIX}{id}"), "#NOTICE".into())
}

fn internal(what: &str) -> impl Fn(serde_dynamo::Error) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("{what} item: {e}"))
}

fn item_of<T: serde::Serialize>(what: &str, value: &T, key: Item) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(internal(what))?;
    item.extend(key);
    Ok(item)
}

fn channel_from(item: Item) -> Result<Channel, StoreError> {
    serde_dynamo::from_item(item).map_err(internal("channel"))
}

fn notification_from(mut item: Item) -> Result<Notification, StoreError> {
    let user = item
        .remove(PK)
        .and_then(|v| v.as_s().ok().cloned())
        .unwrap_or_default();
    let mut n: Notification = serde_dynamo::from_item(item).map_err(internal("notification"))?;
    n.user_id = user.strip_prefix("USER#").unwrap_or(&user).to_string();
    Ok(n)
}

/// PutItem of `item` if an item of its key exists already (`exists`) or does not; `Ok(false)`
/// when the condition failed.
async fn put_when(table: &Table, item: Item, exists: bool) -> Result<bool, StoreError> {
    let mut e = Expr::default();
    let pk = e.name(PK);
    let condition = if exists {
        format!("attribute_exists({pk})")
    } else {
        format!("attribute_not_exists({pk})")
    };
    table.put_if(item, Some(condition), e).await
}

/// `Duplicate` when a new item's key was taken.
fn new_or_duplicate(stored: bool) -> Result<(), StoreError> {
    if stored {
        Ok(())
    } else {
        Err(StoreError::Duplicate)
    }
}

/// Sets when `item` expires: a day after `from` when it carries a confirmation code, else
/// [`KEEP_DAYS`].
fn expire(item: &mut Item, from: DateTime<Utc>, carries_code: bool) {
    let days = if carries_code {
        KEEP_CODE_DAYS
    } else {
        KEEP_DAYS
    };
    let at = from.timestamp() + days * 86_400;
    item.insert(EXPIRES_AT.into(), AttributeValue::N(at.to_string()));
}

fn channel_item(channel: &Channel) -> Result<Item, StoreError> {
    item_of(
        "channel",
        channel,
        channel_key(&channel.user_id, &channel.id),
    )
}

/// The preferences item's one attribute.
#[derive(serde::Serialize, serde::Deserialize)]
struct PrefsItem {
    preferences: Preferences,
}

impl NotifyConfig for DynamoStore {
    fn notify_settings<'a>(&'a self, user_id: &'a str) -> Fut<'a, NotifySettings> {
        Box::pin(async move {
            let mut out = NotifySettings::default();
            for item in self
                .table
                .query_all(&user_pk(user_id), CONFIG_PREFIX)
                .await?
            {
                match item.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str) {
                    Some(PREFS_SK) => {
                        let p: PrefsItem =
                            serde_dynamo::from_item(item).map_err(internal("preferences"))?;
                        out.preferences = Some(p.preferences);
                    }
                    _ => out.channels.push(channel_from(item)?),
                }
            }
            out.channels.sort_by_key(|c| c.created_at);
            Ok(out)
        })
    }

    fn put_channel<'a>(&'a self, channel: &'a Channel) -> Fut<'a, ()> {
        Box::pin(async move {
            new_or_duplicate(put_when(&self.table, channel_item(channel)?, false).await?)
        })
    }

    fn replace_channel<'a>(&'a self, channel: &'a Channel) -> Fut<'a, bool> {
        Box::pin(async move { put_when(&self.table, channel_item(channel)?, true).await })
    }

    fn delete_channel<'a>(&'a self, user_id: &'a str, id: &'a str) -> Fut<'a, bool> {
        Box::pin(self.table.delete(channel_key(user_id, id)))
    }

    fn set_channel_status<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        status: ChannelStatus,
        failure: Option<&'a str>,
        at: DateTime<Utc>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let status = serde_dynamo::to_attribute_value(status).map_err(internal("status"))?;
            let mut e = Expr::default();
            let failure = match failure {
                Some(f) => e.s(f),
                None => e.value(AttributeValue::Null(true)),
            };
            let update = format!(
                "SET {} = {}, {} = {failure}, {} = {}",
                e.name("status"),
                e.value(status),
                e.name("failure"),
                e.name("updated_at"),
                e.s(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            );
            let condition = format!("attribute_exists({})", e.name(PK));
            self.table
                .update_if(channel_key(user_id, id), update, condition, e)
                .await
                .map(|_| ())
        })
    }

    fn put_preferences<'a>(
        &'a self,
        user_id: &'a str,
        preferences: &'a Preferences,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let item = item_of(
                "preferences",
                &PrefsItem {
                    preferences: preferences.clone(),
                },
                key(user_pk(user_id), PREFS_SK.into()),
            )?;
            self.table
                .put_if(item, None, Expr::default())
                .await
                .map(|_| ())
        })
    }
}

impl Notifications for DynamoStore {
    fn put_notification<'a>(&'a self, notification: &'a Notification) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut item = item_of(
                "notification",
                notification,
                notification_key(&notification.user_id, &notification.id),
            )?;
            expire(
                &mut item,
                notification.created_at,
                notification.verification,
            );
            put_when(&self.table, item, false).await
        })
    }

    fn delivery<'a>(
        &'a self,
        user_id: &'a str,
        notification_id: &'a str,
        channel_id: &'a str,
    ) -> Fut<'a, (Option<Notification>, Option<Channel>)> {
        Box::pin(async move {
            let items = self
                .table
                .batch_get(vec![
                    notification_key(user_id, notification_id),
                    channel_key(user_id, channel_id),
                ])
                .await?;
            let (mut notification, mut channel) = (None, None);
            for item in items {
                let sk = item.get(SK).and_then(|v| v.as_s().ok()).cloned();
                match sk {
                    Some(sk) if sk.starts_with(NOTIFICATION_PREFIX) => {
                        notification = Some(notification_from(item)?);
                    }
                    Some(_) => channel = Some(channel_from(item)?),
                    None => {}
                }
            }
            Ok((notification, channel))
        })
    }

    fn claim_delivery<'a>(
        &'a self,
        user_id: &'a str,
        notification_id: &'a str,
        channel_id: &'a str,
        seen: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut e = Expr::default();
            let status_path = e.path(&["deliveries", channel_id, "status"]);
            let attempts = e.path(&["deliveries", channel_id, "attempts"]);
            let lease = e.path(&["deliveries", channel_id, "lease_until"]);
            let pending = serde_dynamo::to_attribute_value(DeliveryStatus::Pending)
                .map_err(internal("status"))?;
            // Fixed-width times (milliseconds, Z) compare as text in time order.
            let update = format!("SET {lease} = {}", e.s(sort_time(until)));
            let condition = format!(
                "{status_path} = {} AND size({attempts}) = {} AND (attribute_not_exists({lease}) OR {lease} < {})",
                e.value(pending),
                e.n(seen),
                e.s(sort_time(now))
            );
            self.table
                .update_if(
                    notification_key(user_id, notification_id),
                    update,
                    condition,
                    e,
                )
                .await
        })
    }

    fn record_attempt<'a>(
        &'a self,
        user_id: &'a str,
        notification_id: &'a str,
        channel_id: &'a str,
        seen: usize,
        attempt: Option<&'a Attempt>,
        status: DeliveryStatus,
        reason: Option<&'a str>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut e = Expr::default();
            let status_path = e.path(&["deliveries", channel_id, "status"]);
            let attempts = e.path(&["deliveries", channel_id, "attempts"]);
            let mut sets = vec![format!(
                "{status_path} = {}",
                e.value(serde_dynamo::to_attribute_value(status).map_err(internal("status"))?)
            )];
            if let Some(a) = attempt {
                let a = serde_dynamo::to_attribute_value(a).map_err(internal("attempt"))?;
                sets.push(format!(
                    "{attempts} = list_append({attempts}, {})",
                    e.value(AttributeValue::L(vec![a]))
                ));
            }
            if let Some(r) = reason {
                let path = e.path(&["deliveries", channel_id, "reason"]);
                sets.push(format!("{path} = {}", e.s(r)));
            }
            let pending = serde_dynamo::to_attribute_value(DeliveryStatus::Pending)
                .map_err(internal("status"))?;
            let condition = format!(
                "{status_path} = {} AND size({attempts}) = {}",
                e.value(pending),
                e.n(seen)
            );
            let lease = e.path(&["deliveries", channel_id, "lease_until"]);
            self.table
                .update_if(
                    notification_key(user_id, notification_id),
                    format!("SET {} REMOVE {lease}", sets.join(", ")),
                    condition,
                    e,
                )
                .await
        })
    }

    fn get_notification<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> Fut<'a, Option<Notification>> {
        Box::pin(async move {
            self.table
                .get(notification_key(user_id, id), None)
                .await?
                .map(notification_from)
                .transpose()
        })
    }

    fn list_notifications<'a>(
        &'a self,
        user_id: &'a str,
        limit: usize,
        after: Option<PageKey>,
    ) -> Fut<'a, Page<Notification>> {
        Box::pin(async move {
            let pk = user_pk(user_id);
            if let Some(k) = &after {
                let ok = k.0.len() == 2
                    && k.0.get(PK) == Some(&pk)
                    && k.0
                        .get(SK)
                        .is_some_and(|s| s.starts_with(NOTIFICATION_PREFIX));
                if !ok {
                    return Err(StoreError::BadPageKey);
                }
            }
            let range = (
                NOTIFICATION_PREFIX.to_string(),
                format!("{NOTIFICATION_PREFIX}~"),
            );
            let (items, next) = self
                .query_between_keys(&pk, range, false, limit, None, after)
                .await?;
            Ok(Page {
                items: items
                    .into_iter()
                    .map(notification_from)
                    .collect::<Result<_, _>>()?,
                next,
            })
        })
    }
}

impl NotifyAdmin for DynamoStore {
    fn template_overrides(&self) -> Fut<'_, Vec<TemplateOverride>> {
        Box::pin(async move {
            self.table
                .query_all(TEMPLATES_PK, "")
                .await?
                .into_iter()
                .map(|i| serde_dynamo::from_item(i).map_err(internal("template")))
                .collect()
        })
    }

    fn put_template_override<'a>(&'a self, t: &'a TemplateOverride) -> Fut<'a, ()> {
        Box::pin(async move {
            let item = item_of("template", t, template_key(t.event, t.format))?;
            self.table
                .put_if(item, None, Expr::default())
                .await
                .map(|_| ())
        })
    }

    fn delete_template_override<'a>(&'a self, event: EventKind, format: Format) -> Fut<'a, bool> {
        Box::pin(self.table.delete(template_key(event, format)))
    }

    fn put_notice<'a>(&'a self, notice: &'a Notice) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut item = item_of("notice", notice, notice_key(&notice.id))?;
            expire(&mut item, notice.send_at, notice.verification);
            new_or_duplicate(put_when(&self.table, item, false).await?)
        })
    }

    fn get_notice<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Notice>> {
        Box::pin(async move {
            self.table
                .get(notice_key(id), None)
                .await?
                .map(notice_from)
                .transpose()
        })
    }
}

pub(crate) const NOTICE_PK_PREFIX: &str = "NOTICE#";

pub(crate) fn notice_from(item: Item) -> Result<Notice, StoreError> {
    serde_dynamo::from_item(item).map_err(internal("notice"))
}
