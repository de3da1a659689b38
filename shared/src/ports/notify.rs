//! Notifications: a user's channels and preferences, the notifications and their deliveries,
//! admins' templates and notices ([`NotifyStore`]), the queue that carries deliveries
//! ([`NotifyQueue`]) and what sends them ([`Sender`]).

use super::{Fut, Page, PageKey};
use crate::domain::notification::{
    Attempt, Channel, ChannelStatus, DeliveryStatus, Notice, Notification, QueueMessage,
    TemplateOverride,
};
use crate::domain::notify::EventKind;
use crate::domain::notify::Preferences;
use crate::domain::notify::retry::Verdict;
use crate::domain::notify::templates::Format;
use chrono::{DateTime, Utc};

/// A user's channels and preferences (one Query).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifySettings {
    pub channels: Vec<Channel>,
    pub preferences: Option<Preferences>,
}

/// The channels and preferences of users.
pub trait NotifyConfig: Send + Sync {
    fn notify_settings<'a>(&'a self, user_id: &'a str) -> Fut<'a, NotifySettings>;
    /// Stores a new channel.
    fn put_channel<'a>(&'a self, channel: &'a Channel) -> Fut<'a, ()>;
    /// Replaces a channel that exists (`Ok(false)` when it is gone).
    fn replace_channel<'a>(&'a self, channel: &'a Channel) -> Fut<'a, bool>;
    /// `Ok(false)` when there was none.
    fn delete_channel<'a>(&'a self, user_id: &'a str, id: &'a str) -> Fut<'a, bool>;
    /// Sets a channel's status (and why), if it still exists.
    fn set_channel_status<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        status: ChannelStatus,
        failure: Option<&'a str>,
        at: DateTime<Utc>,
    ) -> Fut<'a, ()>;
    fn put_preferences<'a>(&'a self, user_id: &'a str, preferences: &'a Preferences)
    -> Fut<'a, ()>;
}

/// Notifications and their delivery logs.
pub trait Notifications: Send + Sync {
    /// Stores a new notification; `Ok(false)` when one of its id exists (a retried raise).
    fn put_notification<'a>(&'a self, notification: &'a Notification) -> Fut<'a, bool>;
    /// A notification and the channel of one of its deliveries (one BatchGetItem).
    fn delivery<'a>(
        &'a self,
        user_id: &'a str,
        notification_id: &'a str,
        channel_id: &'a str,
    ) -> Fut<'a, (Option<Notification>, Option<Channel>)>;
    /// Holds a delivery for one send until `until`, if it is still pending with `seen`
    /// attempts and no other send holds it (`Ok(false)` otherwise).
    fn claim_delivery<'a>(
        &'a self,
        user_id: &'a str,
        notification_id: &'a str,
        channel_id: &'a str,
        seen: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Fut<'a, bool>;
    /// Adds `attempt` (if any) to a delivery, sets its status and lets go of its hold, if it is
    /// still pending with `seen` attempts (`Ok(false)`: someone else recorded it first).
    #[allow(clippy::too_many_arguments)]
    fn record_attempt<'a>(
        &'a self,
        user_id: &'a str,
        notification_id: &'a str,
        channel_id: &'a str,
        seen: usize,
        attempt: Option<&'a Attempt>,
        status: DeliveryStatus,
        reason: Option<&'a str>,
    ) -> Fut<'a, bool>;
    fn get_notification<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> Fut<'a, Option<Notification>>;
    /// A user's notifications, newest first.
    fn list_notifications<'a>(
        &'a self,
        user_id: &'a str,
        limit: usize,
        after: Option<PageKey>,
    ) -> Fut<'a, Page<Notification>>;
}

/// Admins' templates and system notices.
pub trait NotifyAdmin: Send + Sync {
    /// Every override (few: one per event and format at most).
    fn template_overrides(&self) -> Fut<'_, Vec<TemplateOverride>>;
    fn put_template_override<'a>(&'a self, t: &'a TemplateOverride) -> Fut<'a, ()>;
    /// `Ok(false)` when there was none.
    fn delete_template_override<'a>(&'a self, event: EventKind, format: Format) -> Fut<'a, bool>;
    fn put_notice<'a>(&'a self, notice: &'a Notice) -> Fut<'a, ()>;
    fn get_notice<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Notice>>;
}

pub trait NotifyStore: NotifyConfig + Notifications + NotifyAdmin {}
impl<T: NotifyConfig + Notifications + NotifyAdmin> NotifyStore for T {}

/// The notifications queue.
pub trait NotifyQueue: Send + Sync {
    /// Sends each message, visible after its delay (seconds, at most 900).
    fn send<'a>(&'a self, messages: &'a [(QueueMessage, u32)]) -> Fut<'a, ()>;
}

/// One message ready to go out on a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Email {
        to: String,
        subject: String,
        html: String,
        text: String,
    },
    Sms {
        to: String,
        text: String,
    },
    /// An SNS `MessageStructure=json` message to a platform endpoint.
    Push {
        endpoint_arn: String,
        message: String,
    },
    /// A JSON POST (webhooks, Slack, Teams, Discord).
    Http {
        url: String,
        headers: Vec<(String, String)>,
        body: String,
    },
}

/// What one send did.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub verdict: Verdict,
    pub status_code: Option<u16>,
    pub detail: Option<String>,
}

/// Sends one message (SES, SNS, an HTTPS POST). Never fails as such: every outcome is a
/// [`Verdict`].
pub trait Sender: Send + Sync {
    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> std::pin::Pin<Box<dyn Future<Output = Sent> + Send + 'a>>;
}
