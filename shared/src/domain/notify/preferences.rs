//! A user's notification preferences: which of their channels each event goes to, and the
//! hours not to disturb them; and when a notification may be sent.

use super::EventKind;
use crate::domain::FieldError;
use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Channels one event may go to.
pub const MAX_CHANNELS_PER_EVENT: usize = 20;
/// How far ahead a notification may be scheduled.
pub const MAX_SEND_AHEAD_DAYS: i64 = 7;

/// Which channels each event goes to, and when not to disturb.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// For each event, the ids of the channels it goes to (none: the event is not sent).
    #[serde(default)]
    pub events: BTreeMap<EventKind, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
}

/// A daily window in the user's time zone when notifications wait (security events and system
/// notices do not). It may wrap midnight (`22:00`-`07:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// "HH:MM", 24-hour, local time: the window's first minute.
    #[schema(example = "22:00")]
    pub start: String,
    /// "HH:MM", 24-hour, local time: the first minute after the window.
    #[schema(example = "07:00")]
    pub end: String,
    /// IANA zone, e.g. "Europe/Paris"
    #[schema(example = "Europe/Paris")]
    pub time_zone: String,
}

impl Preferences {
    /// The channel ids chosen for `event` (empty when none).
    pub fn channels_for(&self, event: EventKind) -> &[String] {
        self.events.get(&event).map_or(&[], Vec::as_slice)
    }
}

/// Every channel id named must be one of `channel_ids`, no id twice for one event, at most
/// [`MAX_CHANNELS_PER_EVENT`] per event; quiet hours well-formed (start != end) with a known
/// zone. Field paths like `events.run_failed[1]`, `quiet_hours.start`.
pub fn check_preferences(p: &Preferences, channel_ids: &[&str]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    for (event, ids) in &p.events {
        if ids.len() > MAX_CHANNELS_PER_EVENT {
            errors.push(FieldError::new(
                format!("events.{event}"),
                format!("at most {MAX_CHANNELS_PER_EVENT} channels per event"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            let field = format!("events.{event}[{i}]");
            if !channel_ids.contains(&id.as_str()) {
                errors.push(FieldError::new(field, "is not one of your channels"));
            } else if !seen.insert(id.as_str()) {
                errors.push(FieldError::new(
                    field,
                    "names a channel already listed for this event",
                ));
            }
        }
    }
    if let Some(q) = &p.quiet_hours {
        let start = parse_hhmm(&q.start);
        let end = parse_hhmm(&q.end);
        if start.is_none() {
            errors.push(FieldError::new(
                "quiet_hours.start",
                "must be a time HH:MM (00:00-23:59)",
            ));
        }
        if end.is_none() {
            errors.push(FieldError::new(
                "quiet_hours.end",
                "must be a time HH:MM (00:00-23:59)",
            ));
        }
        if start.is_some() && start == end {
            errors.push(FieldError::new("quiet_hours.end", "must differ from start"));
        }
        if zone(&q.time_zone).is_none() {
            errors.push(FieldError::new(
                "quiet_hours.time_zone",
                "must be an IANA time zone such as Europe/Paris",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `HH:MM`, two digits each, 00:00 to 23:59.
fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let h = u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0');
    let m = u32::from(b[3] - b'0') * 10 + u32::from(b[4] - b'0');
    NaiveTime::from_hms_opt(h, m, 0)
}

fn zone(name: &str) -> Option<Tz> {
    (name.len() <= 64)
        .then(|| name.parse::<Tz>().ok())
        .flatten()
}

/// When a notification raised at `at` may be sent: `at` itself, or the end of the user's quiet
/// hours when `at` falls inside them (windows may wrap midnight, e.g. 22:00-07:00). DST-safe: a
/// local end time that does not exist that day (skipped by a clock change) resolves to the next
/// valid instant, and one that exists twice to the first. Security events and system notices
/// are never held; quiet hours that do not parse hold nothing.
pub fn release_time(
    event: EventKind,
    quiet: Option<&QuietHours>,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    if event.is_security() || event == EventKind::SystemNotice {
        return at;
    }
    let Some(q) = quiet else { return at };
    let (Some(start), Some(end), Some(tz)) =
        (parse_hhmm(&q.start), parse_hhmm(&q.end), zone(&q.time_zone))
    else {
        return at;
    };
    if start == end {
        return at;
    }
    let local = at.with_timezone(&tz);
    let now = local.time();
    let (inside, end_date) = if start < end {
        (start <= now && now < end, local.date_naive())
    } else if now >= start {
        (true, local.date_naive() + Duration::days(1))
    } else {
        (now < end, local.date_naive())
    };
    if !inside {
        return at;
    }
    let release = first_instant_at_or_after(tz, end_date.and_time(end));
    release.map_or(at, |r| r.max(at))
}

/// The first instant whose local time in `tz` is `local`, or, when the clocks skip it, the
/// first valid local minute after it (the end of the gap).
fn first_instant_at_or_after(tz: Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    // Gaps are an hour in most zones, and up to a day where a zone moved across the date line.
    for minutes in 0..=(48 * 60) {
        match tz.from_local_datetime(&(local + Duration::minutes(minutes))) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    None
}

/// `send_at` must be at most [`MAX_SEND_AHEAD_DAYS`] days after `now` (a time in the past, or
/// none, means now). Field `send_at`.
pub fn check_send_at(
    send_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldError> {
    match send_at {
        None => Ok(now),
        Some(t) if t <= now => Ok(now),
        Some(t) if t > now + Duration::days(MAX_SEND_AHEAD_DAYS) => Err(FieldError::new(
            "send_at",
            format!("must be at most {MAX_SEND_AHEAD_DAYS} days ahead"),
        )),
        Some(t) => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn paris(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
            time_zone: "Europe/Paris".into(),
        }
    }

    #[test]
    fn quiet_hours_across_midnight_hold_until_the_morning() {
        let q = paris("22:00", "07:00");
        let e = EventKind::RunFailed;
        // Winter: Paris is UTC+1. 23:30 local -> 07:00 local next day = 06:00 UTC.
        assert_eq!(
            release_time(e, Some(&q), utc("2025-01-15T22:30:00Z")),
            utc("2025-01-16T06:00:00Z")
        );
        // 02:00 local, after midnight -> 07:00 the same day.
        assert_eq!(
            release_time(e, Some(&q), utc("2025-01-16T01:00:00Z")),
            utc("2025-01-16T06:00:00Z")
        );
        // The window's first minute is inside, its end is outside.
        assert_eq!(
            release_time(e, Some(&q), utc("2025-01-15T21:00:00Z")),
            utc("2025-01-16T06:00:00Z")
        );
        let end = utc("2025-01-16T06:00:00Z");
        assert_eq!(release_time(e, Some(&q), end), end);
        // Outside the window: at once.
        let noon = utc("2025-01-15T11:00:00Z");
        assert_eq!(release_time(e, Some(&q), noon), noon);
        assert_eq!(release_time(e, None, noon), noon);
        // Summer: Paris is UTC+2.
        assert_eq!(
            release_time(e, Some(&q), utc("2025-07-01T21:00:00Z")),
            utc("2025-07-02T05:00:00Z")
        );
        // A window within one day.
        let lunch = paris("12:00", "14:00");
        assert_eq!(
            release_time(e, Some(&lunch), noon),
            utc("2025-01-15T13:00:00Z")
        );
        assert_eq!(
            release_time(e, Some(&lunch), utc("2025-01-15T21:00:00Z")),
            utc("2025-01-15T21:00:00Z")
        );
    }

    #[test]
    fn quiet_hours_in_the_weeks_the_clocks_change() {
        let e = EventKind::ScheduleSkipped;
        // 2025-03-30 in Paris: 02:00 CET becomes 03:00 CEST.
        let q = paris("22:00", "07:00");
        // 23:00 CET on the 29th -> 07:00 CEST on the 30th = 05:00 UTC (not 06:00).
        assert_eq!(
            release_time(e, Some(&q), utc("2025-03-29T22:00:00Z")),
            utc("2025-03-30T05:00:00Z")
        );
        // An end inside the skipped hour resolves to the end of the gap, 03:00 CEST.
        let q = paris("01:00", "02:30");
        assert_eq!(
            release_time(e, Some(&q), utc("2025-03-30T00:15:00Z")),
            utc("2025-03-30T01:00:00Z")
        );
        // 2025-10-26: 03:00 CEST becomes 02:00 CET. 23:00 CEST on the 25th -> 07:00 CET = 06:00 UTC.
        let q = paris("22:00", "07:00");
        assert_eq!(
            release_time(e, Some(&q), utc("2025-10-25T21:00:00Z")),
            utc("2025-10-26T06:00:00Z")
        );
        // An end that exists twice resolves to its first occurrence (02:30 CEST = 00:30 UTC).
        let q = paris("01:00", "02:30");
        assert_eq!(
            release_time(e, Some(&q), utc("2025-10-25T23:15:00Z")),
            utc("2025-10-26T00:30:00Z")
        );
        // Other zones behave the same.
        let ny = QuietHours {
            start: "22:00".into(),
            end: "07:00".into(),
            time_zone: "America/New_York".into(),
        };
        let at = chrono_tz::America::New_York
            .with_ymd_and_hms(2025, 3, 8, 23, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(release_time(e, Some(&ny), at), utc("2025-03-09T11:00:00Z"));
    }

    #[test]
    fn security_events_and_notices_are_never_held() {
        let q = paris("00:00", "23:59");
        let at = utc("2025-01-15T12:00:00Z");
        for e in EventKind::ALL {
            let held = release_time(e, Some(&q), at) != at;
            assert_eq!(
                held,
                !(e.is_security() || e == EventKind::SystemNotice),
                "{e}"
            );
        }
    }

    #[test]
    fn send_at_is_at_most_a_week_ahead() {
        let now = utc("2025-01-15T12:00:00Z");
        assert_eq!(check_send_at(None, now), Ok(now));
        assert_eq!(check_send_at(Some(now - Duration::hours(1)), now), Ok(now));
        let later = now + Duration::days(7);
        assert_eq!(check_send_at(Some(later), now), Ok(later));
        let e = check_send_at(Some(now + Duration::days(8)), now).unwrap_err();
        assert_eq!(e.field, "send_at");
    }

    #[test]
    fn preferences_name_only_the_users_channels() {
        let mut p = Preferences::default();
        p.events.insert(
            EventKind::RunFailed,
            vec!["ch1".into(), "nope".into(), "ch1".into()],
        );
        p.events.insert(EventKind::NewLogin, vec!["ch2".into()]);
        p.quiet_hours = Some(QuietHours {
            start: "7:00".into(),
            end: "24:00".into(),
            time_zone: "Mars/Olympus".into(),
        });
        let e = check_preferences(&p, &["ch1", "ch2"]).unwrap_err();
        let fields: Vec<_> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "events.run_failed[1]",
                "events.run_failed[2]",
                "quiet_hours.start",
                "quiet_hours.end",
                "quiet_hours.time_zone"
            ]
        );
        assert_eq!(p.channels_for(EventKind::NewLogin), ["ch2".to_string()]);
        assert!(p.channels_for(EventKind::KeyCreated).is_empty());

        p.events.insert(EventKind::RunFailed, vec!["ch1".into()]);
        p.quiet_hours = Some(paris("22:00", "22:00"));
        let e = check_preferences(&p, &["ch1", "ch2"]).unwrap_err();
        assert_eq!(
            e,
            vec![FieldError::new("quiet_hours.end", "must differ from start")]
        );
        p.quiet_hours = Some(paris("22:00", "07:00"));
        assert_eq!(check_preferences(&p, &["ch1", "ch2"]), Ok(()));

        let many: Vec<String> = (0..21).map(|i| format!("c{i}")).collect();
        let ids: Vec<&str> = many.iter().map(String::as_str).collect();
        p.events.insert(EventKind::RunFailed, many.clone());
        p.events.remove(&EventKind::NewLogin);
        let e = check_preferences(&p, &ids).unwrap_err();
        assert_eq!(e[0].field, "events.run_failed");
    }

    #[test]
    fn preferences_read_and_write_as_json() {
        let p: Preferences = serde_json::from_value(serde_json::json!({
            "events": {"run_failed": ["a"], "new_login": ["a", "b"]},
            "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Paris"}
        }))
        .unwrap();
        assert_eq!(p.channels_for(EventKind::NewLogin).len(), 2);
        let back: Preferences = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(
            serde_json::from_value::<Preferences>(serde_json::json!({"events": {"nope": []}}))
                .is_err()
        );
        assert!(serde_json::from_value::<Preferences>(serde_json::json!({"extra": 1})).is_err());
        assert_eq!(
            serde_json::to_value(Preferences::default()).unwrap(),
            serde_json::json!({"events": {}})
        );
    }
}
