//! A user's notification channels, the notifications raised for them and each delivery's
//! attempts, as stored and shown. The rules (which events, targets, quiet hours, templates,
//! retries) are in [`super::notify`].

use super::FieldError;
use super::notify::retry::Verdict;
use super::notify::templates::Format;
use super::notify::{ChannelKind, EventKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Channels one user may have.
pub const MAX_CHANNELS: usize = 20;
pub const MAX_CHANNEL_NAME_CHARS: usize = 100;
/// How long a notification and its delivery log are kept (the table's TTL).
pub const KEEP_DAYS: i64 = 30;
/// How long a confirmation code's notice and notification are kept (they carry the code).
pub const KEEP_CODE_DAYS: i64 = 1;
/// How long a send holds its delivery.
pub const LEASE_SECONDS: i64 = 60;
/// Longest subject and body of a system notice.
pub const MAX_NOTICE_SUBJECT_CHARS: usize = 150;
pub const MAX_NOTICE_BODY_CHARS: usize = 5_000;
/// How long an email or SMS channel's confirmation code holds, and how many wrong tries it
/// takes.
pub const CODE_TTL_MINUTES: i64 = 60;
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// Whether a channel is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    /// An email or SMS channel waiting for the code sent to it (`POST .../verify`): nothing
    /// but the code is sent to an address or number until its owner shows it is theirs.
    Unverified,
    Active,
    /// Turned off by its user.
    Disabled,
    /// A delivery failed for good (a 4xx, an unverified address): nothing more is sent until
    /// its user turns it on again (`PATCH {"enabled": true}`).
    Failed,
}

/// One place a user hears from the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub user_id: String,
    pub kind: ChannelKind,
    pub name: String,
    /// An email address, an E.164 phone number, an SNS platform endpoint ARN or an HTTPS URL.
    pub target: String,
    pub status: ChannelStatus,
    /// Why it was marked failed.
    #[serde(default)]
    pub failure: Option<String>,
    /// Webhooks: the signing secret, sealed under `data_key` (AES-256-GCM, bound to the
    /// channel), base64.
    #[serde(default)]
    pub sealed_secret: Option<String>,
    /// The KMS-encrypted data key of `sealed_secret`, base64.
    #[serde(default)]
    pub data_key: Option<String>,
    /// An unverified channel's confirmation code.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Webhooks: the secret before the last rotation, still signed with until `until`, so a
    /// receiver can switch over without refusing deliveries meanwhile.
    #[serde(default)]
    pub previous_secret: Option<PreviousSecret>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rotated-out signing secret, sealed as the current one is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub sealed_secret: String,
    pub data_key: String,
    pub until: DateTime<Utc>,
}

/// How long a rotated-out webhook secret still signs deliveries.
pub const PREVIOUS_SECRET_HOURS: i64 = 24;

/// The code sent to an email or SMS channel, as kept: its hash only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// SHA-256 of `<channel id>:<code>`, hex.
    pub code_sha256: String,
    pub expires_at: DateTime<Utc>,
    /// Wrong codes tried.
    pub attempts: u32,
}

/// `POST /api/v3/notifications/channels/{id}/verify`: the code the channel received, or
/// `{"resend": true}` for a new one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyChannelRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 16, example = "123456")]
    pub code: Option<String>,
    #[serde(default)]
    pub resend: Option<bool>,
}

/// A channel as its user sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub kind: ChannelKind,
    pub name: String,
    /// The target, with a URL's path and query hidden (they often hold a token).
    pub target: String,
    pub status: ChannelStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Webhooks only, and only in the answer that created the channel (or rotated its
    /// secret): the signing secret. It is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Channel {
    pub fn view(&self) -> ChannelView {
        ChannelView {
            id: self.id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            target: if self.kind.is_http() {
                redact_url(&self.target)
            } else {
                self.target.clone()
            },
            status: self.status,
            failure: self.failure.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            secret: None,
        }
    }
}

/// `https://host/…`: a URL's origin, the rest (path and query) hidden (Slack, Teams and
/// Discord URLs are themselves secrets).
fn redact_url(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let origin_end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let rest = &url[origin_end..];
    if rest.is_empty() || rest == "/" {
        url.to_string()
    } else {
        format!("{}/…", &url[..origin_end])
    }
}

/// `POST /api/v3/notifications/channels`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannelRequest {
    pub kind: ChannelKind,
    #[schema(min_length = 1, max_length = 100, example = "Ops webhook")]
    pub name: String,
    /// email: an address; sms: an E.164 number; push: an SNS platform endpoint ARN; webhook,
    /// slack, teams, discord: an HTTPS URL.
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "https://example.com/hooks/dwc"
    )]
    pub target: String,
}

/// `PATCH /api/v3/notifications/channels/{id}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannelRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// `true` turns a disabled or failed channel on again; `false` turns it off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Webhooks: `true` makes a new signing secret, shown once in the answer.
    #[serde(default)]
    pub rotate_secret: Option<bool>,
}

pub fn check_name(name: &str, field: &str) -> Result<(), FieldError> {
    let n = name.trim().chars().count();
    if name.trim().is_empty() || n > MAX_CHANNEL_NAME_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_CHANNEL_NAME_CHARS} characters, not blank"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its time (`send_at`, quiet hours) or for its next attempt.
    Pending,
    Delivered,
    /// Failed for good, or out of attempts.
    Failed,
    /// Not sent: its channel was deleted, turned off or had failed before.
    Skipped,
}

/// One try at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// `delivered`, `retry` (429, 5xx, a timeout) or `permanent` (other 4xx, a refused address).
    pub outcome: AttemptOutcome,
    /// The receiver's HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The error or the receiver's answer, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A retry's time, when one is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    Permanent,
}

impl From<&Verdict> for AttemptOutcome {
    fn from(v: &Verdict) -> Self {
        match v {
            Verdict::Delivered => AttemptOutcome::Delivered,
            Verdict::Retry { .. } => AttemptOutcome::Retry,
            Verdict::Permanent => AttemptOutcome::Permanent,
        }
    }
}

/// One channel's delivery of a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub channel_id: String,
    pub kind: ChannelKind,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Why it was skipped or gave up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While a send is under way: until when it holds the delivery (a copy of its message
    /// sends nothing meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
}

/// One notification to one user, on the channels its preferences chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: String,
    #[serde(skip_serializing)]
    #[serde(default)]
    pub user_id: String,
    pub event: EventKind,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
    /// When it may be sent (`send_at`, or the end of the user's quiet hours).
    pub send_at: DateTime<Utc>,
    /// The template variables.
    #[schema(value_type = Object)]
    pub vars: Map<String, Value>,
    /// By channel id.
    pub deliveries: BTreeMap<String, Delivery>,
    /// A channel's confirmation code, which goes to the channel while it is unverified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verification: bool,
}

/// A delivery's message on the notifications queue: which notification, to which channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub user_id: String,
    pub notification_id: String,
    pub channel_id: String,
}

/// The notifications queue's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueMessage {
    Deliver(DeliveryMessage),
    /// Raise a system notice for the next page of accounts (`after`: the page key, opaque).
    Notice {
        notice_id: String,
        #[serde(default)]
        after: Option<String>,
    },
}

/// `POST /api/v3/notifications/notices` (admins): a system notice to every account.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    #[schema(min_length = 1, max_length = 150)]
    pub subject: String,
    #[schema(min_length = 1, max_length = 5000)]
    pub body: String,
    /// When to send it: at most 7 days ahead; now when absent.
    #[serde(default)]
    pub send_at: Option<DateTime<Utc>>,
}

/// A system notice as stored: the fan-out reads it page by page of accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notice {
    pub id: String,
    /// A test of one channel (`POST /channels/{id}/test`): only this user's channel gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// A channel's confirmation code: sent to that channel even though it is unverified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verification: bool,
    pub subject: String,
    pub body: String,
    pub send_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// An admin's template in place of a shipped one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateOverride {
    pub event: EventKind,
    pub format: Format,
    pub source: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// `PUT /api/v3/notifications/templates/{event}/{format}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// minijinja; the event's variables (see `GET` of the template) are escaped for the format.
    #[schema(min_length = 1, max_length = 10000)]
    pub source: String,
}

/// `GET /api/v3/notifications/templates/{event}/{format}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateView {
    pub event: EventKind,
    pub format: Format,
    pub source: String,
    /// `true` when an admin's template replaces the shipped one.
    pub overridden: bool,
    /// The variables this event's templates get, with sample values.
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_path() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("https://example.com/"), "https://example.com/");
        assert_eq!(redact_url("https://example.com"), "https://example.com");
        assert_eq!(
            redact_url("https://example.com?token=secret"),
            "https://example.com/…"
        );
        assert_eq!(
            redact_url("https://example.com:8443?sig=x"),
            "https://example.com:8443/…"
        );
    }

    #[test]
    fn names_are_bounded() {
        assert!(check_name("Ops", "name").is_ok());
        assert!(check_name(" ", "name").is_err());
        assert!(check_name(&"x".repeat(101), "name").is_err());
        assert!(check_name("a\u{7}b", "name").is_err());
    }
}
