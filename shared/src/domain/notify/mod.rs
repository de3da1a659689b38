//! User notifications: which events a user is told of, on which of their channels (email via
//! SES, SMS via SNS, mobile push via SNS platform endpoints, signed webhooks, and the incoming
//! webhooks of Slack, Microsoft Teams and Discord), when (quiet hours, a chosen send time), how
//! each channel's message reads ([`templates`]), what raises one ([`triggers`]) and how a failed
//! delivery is tried again ([`retry`]).
//!
//! Pure: the notifier function does the sending, and passes the clock and randomness in.

mod preferences;
pub mod retry;
mod target;
pub mod templates;
pub mod triggers;

pub use preferences::{
    MAX_CHANNELS_PER_EVENT, MAX_SEND_AHEAD_DAYS, Preferences, QuietHours, check_preferences,
    check_send_at, release_time,
};
pub use target::{MAX_EMAIL_CHARS, MAX_URL_CHARS, check_target, is_public_ip};

use serde::{Deserialize, Serialize};

/// `ALL`, `as_str`, `parse` and `Display` of a fieldless enum, from its variants and their
/// names (serde's `snake_case` names of the same variants; the tests hold them equal).
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named;

/// What a notification is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run the user started finished successfully.
    RunSucceeded,
    /// A run the user started failed.
    RunFailed,
    /// A step of the user's run waits for their approve.
    StepWaitingApproval,
    /// Someone shared a workflow with the user (or changed their access).
    WorkflowShared,
    /// Someone signed in to the account.
    NewLogin,
    /// The account's password was changed or reset.
    PasswordChanged,
    /// Two-factor authentication was enabled, disabled or reset.
    MfaChanged,
    /// An API key was created for the account.
    KeyCreated,
    /// A fire of one of the user's schedules started no run.
    ScheduleSkipped,
    /// A message of the operators (maintenance, terms).
    SystemNotice,
}

named!(EventKind {
    RunSucceeded => "run_succeeded",
    RunFailed => "run_failed",
    StepWaitingApproval => "step_waiting_approval",
    WorkflowShared => "workflow_shared",
    NewLogin => "new_login",
    PasswordChanged => "password_changed",
    MfaChanged => "mfa_changed",
    KeyCreated => "key_created",
    ScheduleSkipped => "schedule_skipped",
    SystemNotice => "system_notice",
});

impl EventKind {
    /// `new_login`, `password_changed`, `mfa_changed`, `key_created`: what the account's owner
    /// must hear of at once (an attacker's doing, maybe), never held by quiet hours.
    pub fn is_security(self) -> bool {
        matches!(
            self,
            Self::NewLogin | Self::PasswordChanged | Self::MfaChanged | Self::KeyCreated
        )
    }
}

/// How a notification reaches the user.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// An address, through SES.
    Email,
    /// An E.164 phone number, through SNS.
    Sms,
    /// An SNS platform endpoint ARN (APNs, FCM, ...).
    Push,
    /// An HTTPS URL that receives signed JSON.
    Webhook,
    /// A Slack incoming webhook URL.
    Slack,
    /// A Microsoft Teams incoming webhook (or Workflows) URL.
    Teams,
    /// A Discord webhook URL.
    Discord,
}

named!(ChannelKind {
    Email => "email",
    Sms => "sms",
    Push => "push",
    Webhook => "webhook",
    Slack => "slack",
    Teams => "teams",
    Discord => "discord",
});

impl ChannelKind {
    /// `webhook`, `slack`, `teams`, `discord`: delivered by an HTTPS POST to the target URL.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::Webhook | Self::Slack | Self::Teams | Self::Discord
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for e in EventKind::ALL {
            assert_eq!(EventKind::parse(e.as_str()), Some(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        for c in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(EventKind::parse("RunFailed"), None);
        assert_eq!(ChannelKind::parse(""), None);
    }

    #[test]
    fn security_events_and_http_channels() {
        let security: Vec<_> = EventKind::ALL
            .into_iter()
            .filter(|e| e.is_security())
            .map(EventKind::as_str)
            .collect();
        assert_eq!(
            security,
            [
                "new_login",
                "password_changed",
                "mfa_changed",
                "key_created"
            ]
        );
        let http: Vec<_> = ChannelKind::ALL
            .into_iter()
            .filter(|c| c.is_http())
            .map(ChannelKind::as_str)
            .collect();
        assert_eq!(http, ["webhook", "slack", "teams", "discord"]);
    }
}
