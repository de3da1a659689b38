//! How a notification reads on each channel: minijinja templates per event and format, shipped
//! as defaults and replaceable by admins, rendered with every printed value escaped for its
//! format; and the bodies the notifier sends (chat apps' JSON, the signed webhook body, the SNS
//! push message).
//!
//! Escaping is done by the environment's formatter, for every value printed, including values
//! marked safe: a template cannot print a variable unescaped (the `safe`, `escape` and `e`
//! filters do nothing here, so neither do they let a value through nor escape it twice). The
//! template's own text is not escaped: that is how a template writes markup.
//!
//! Push and Teams messages have a title: their templates give it as their first line
//! ([`split_title`]).

use super::ChannelKind;
use super::EventKind;
use super::named;
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// The longest template an admin may save, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 10_000;
/// The longest rendering before trimming and truncation, in characters.
const MAX_OUTPUT_CHARS: usize = 100_000;
/// Instructions one rendering may execute: plenty for a message, a bound for a runaway loop.
const FUEL: u64 = 50_000;
/// Zero-width space: breaks a formatting character's or a mention's meaning without showing.
const ZWSP: char = '\u{200B}';

/// One rendering of a notification.
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
pub enum Format {
    /// One line of plain text, at most 150 characters.
    EmailSubject,
    /// HTML: values HTML-escaped.
    EmailHtml,
    /// Plain text.
    EmailText,
    /// Plain text, at most 300 characters.
    Sms,
    /// Plain text, title on the first line; at most 200 characters.
    Push,
    /// Slack mrkdwn, at most 1900 characters.
    Slack,
    /// Markdown (Adaptive Card TextBlock), title on the first line.
    Teams,
    /// Discord Markdown, at most 1900 characters.
    Discord,
}

named!(Format {
    EmailSubject => "email_subject",
    EmailHtml => "email_html",
    EmailText => "email_text",
    Sms => "sms",
    Push => "push",
    Slack => "slack",
    Teams => "teams",
    Discord => "discord",
});

impl Format {
    /// The formats a channel kind renders (email: subject, HTML and text; webhook: none, its
    /// body is structured JSON, [`webhook_body`]).
    pub fn of(kind: ChannelKind) -> &'static [Format] {
        match kind {
            ChannelKind::Email => &[Self::EmailSubject, Self::EmailHtml, Self::EmailText],
            ChannelKind::Sms => &[Self::Sms],
            ChannelKind::Push => &[Self::Push],
            ChannelKind::Slack => &[Self::Slack],
            ChannelKind::Teams => &[Self::Teams],
            ChannelKind::Discord => &[Self::Discord],
            ChannelKind::Webhook => &[],
        }
    }

    /// The most characters a rendering keeps (longer ones end in "…").
    pub fn max_chars(self) -> Option<usize> {
        match self {
            Self::EmailSubject => Some(150),
            Self::Sms => Some(300),
            Self::Push => Some(200),
            Self::Slack | Self::Discord => Some(1900),
            Self::EmailHtml | Self::EmailText | Self::Teams => None,
        }
    }
}

/// The eight formats of one event from its subject and its one-line text (both templates).
macro_rules! formats {
    ($format:expr, $subject:literal, $text:literal) => {
        match $format {
            Format::EmailSubject => $subject,
            Format::EmailHtml => concat!(
                "<p>",
                $text,
                "</p>\n<p style=\"color:#666666;font-size:12px\">You receive this because of your notification preferences.</p>"
            ),
            Format::EmailText => concat!(
                $text,
                "\n\n--\nYou receive this because of your notification preferences."
            ),
            Format::Sms => $text,
            Format::Push | Format::Teams => concat!($subject, "\n", $text),
            Format::Slack => concat!("*", $subject, "*\n", $text),
            Format::Discord => concat!("**", $subject, "**\n", $text),
        }
    };
}

/// The template shipped for `event` in `format`.
pub fn default_template(event: EventKind, format: Format) -> &'static str {
    match event {
        EventKind::RunSucceeded => formats!(
            format,
            "Run {{ run_id }} of workflow {{ workflow_name or workflow_id }} succeeded",
            "Run {{ run_id }} of workflow {{ workflow_name or workflow_id }} succeeded: {{ steps_succeeded }} of {{ steps_total }} steps done."
        ),
        EventKind::RunFailed => formats!(
            format,
            "Run {{ run_id }} of workflow {{ workflow_name or workflow_id }} failed",
            "Run {{ run_id }} of workflow {{ workflow_name or workflow_id }} failed: {{ steps_failed }} of {{ steps_total }} steps failed.{% if error %} Last error: {{ error }}{% endif %}"
        ),
        EventKind::StepWaitingApproval => formats!(
            format,
            "Step {{ step_number or step_id }} of run {{ run_id }} waits for your approval",
            "Step {{ step_number or step_id }}{% if steps_total %} of {{ steps_total }}{% endif %} of run {{ run_id }} (workflow {{ workflow_name or workflow_id }}) is waiting for your approval before it writes node {{ node_id }}."
        ),
        EventKind::WorkflowShared => formats!(
            format,
            "Workflow {{ workflow_name or workflow_id }} was shared with you",
            "{{ owner_name or owner_id }} shared workflow {{ workflow_name or workflow_id }} with you, with {{ access }} access."
        ),
        EventKind::NewLogin => formats!(
            format,
            "New sign-in to your account",
            "Your account was signed in to at {{ at }}{% if source_ip %} from {{ source_ip }}{% endif %}{% if user_agent %} ({{ user_agent }}){% endif %}. If this was not you, change your password now."
        ),
        EventKind::PasswordChanged => formats!(
            format,
            "Your password was {{ change or 'changed' }}",
            "The password of your account was {{ change or 'changed' }} at {{ at }}{% if source_ip %} from {{ source_ip }}{% endif %}. If this was not you, reset your password and contact support."
        ),
        EventKind::MfaChanged => formats!(
            format,
            "Two-factor authentication was {{ change or 'changed' }}",
            "Two-factor authentication of your account was {{ change or 'changed' }} at {{ at }}{% if source_ip %} from {{ source_ip }}{% endif %}. If this was not you, contact support now."
        ),
        EventKind::KeyCreated => formats!(
            format,
            "A new API key was created",
            "API key {{ key_name or key_id }} was created for your account at {{ at }}{% if scopes %} with scopes {{ scopes }}{% endif %}. If this was not you, revoke it now."
        ),
        EventKind::ScheduleSkipped => formats!(
            format,
            "A scheduled run of workflow {{ workflow_name or workflow_id }} was skipped",
            "Schedule {{ schedule_name or schedule_id }} did not start a run of workflow {{ workflow_name or workflow_id }}{% if scheduled_time %} at {{ scheduled_time }}{% endif %}: {{ reason }}."
        ),
        EventKind::SystemNotice => formats!(format, "{{ subject }}", "{{ body }}"),
    }
}

/// Values to check a template against: every variable `event` may have.
pub fn sample_vars(event: EventKind) -> Map<String, Json> {
    let run = json!({
        "workflow_id": "01JH5Z2W3X4Y5Z6A7B8C9D0E1F",
        "workflow_name": "Quarterly report",
        "run_id": "01JH5Z3A1B2C3D4E5F6G7H8J9K",
    });
    let security = json!({
        "at": "2025-01-15T12:00:00Z",
        "source_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    });
    let extra = match event {
        EventKind::RunSucceeded => json!({
            "status": "succeeded", "steps_total": 3, "steps_succeeded": 3, "steps_failed": 0,
        }),
        EventKind::RunFailed => json!({
            "status": "failed", "steps_total": 3, "steps_succeeded": 2, "steps_failed": 1,
            "error": "the model provider refused for rate", "error_kind": "throttled",
        }),
        EventKind::StepWaitingApproval => json!({
            "step_id": "01JH5Z4B2C3D4E5F6G7H8J9K0L", "node_id": "01JH5Z4C3D4E5F6G7H8J9K0L1M",
            "step_number": 2, "steps_total": 3,
        }),
        EventKind::WorkflowShared => json!({
            "access": "editor", "owner_id": "01JH5Z1A1B2C3D4E5F6G7H8J9K", "owner_name": "Ann Lee",
        }),
        EventKind::NewLogin => security.clone(),
        EventKind::PasswordChanged => merge(security.clone(), json!({"change": "changed"})),
        EventKind::MfaChanged => merge(security.clone(), json!({"change": "enabled"})),
        EventKind::KeyCreated => merge(
            security.clone(),
            json!({
                "key_id": "01JH5Z5D4E5F6G7H8J9K0L1M2N", "key_name": "CI",
                "scopes": "workflows:read, runs:write", "expires_at": "2025-04-15T00:00:00Z",
            }),
        ),
        EventKind::ScheduleSkipped => json!({
            "schedule_id": "01JH5Z6E5F6G7H8J9K0L1M2N3P", "schedule_name": "cron(0 9 ? * MON-FRI *)",
            "expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Paris",
            "reason": "the workflow is paused", "scheduled_time": "2025-01-15T08:00:00Z",
        }),
        EventKind::SystemNotice => json!({
            "subject": "Scheduled maintenance on Sunday",
            "body": "The service will be read-only on Sunday from 02:00 to 03:00 UTC.",
        }),
    };
    let base = match event {
        EventKind::RunSucceeded
        | EventKind::RunFailed
        | EventKind::StepWaitingApproval
        | EventKind::ScheduleSkipped => run,
        EventKind::WorkflowShared => json!({
            "workflow_id": "01JH5Z2W3X4Y5Z6A7B8C9D0E1F", "workflow_name": "Quarterly report",
        }),
        _ => json!({}),
    };
    match merge(base, extra) {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn merge(mut a: Json, b: Json) -> Json {
    if let (Json::Object(a), Json::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

/// Renders `source` with `vars`, every printed value escaped for `format` (see the module's
/// notes); fuel-bounded, a missing variable prints nothing. The output is trimmed, and cut to
/// the format's [`Format::max_chars`] with "…". The error names what is wrong with the
/// template.
pub fn render(source: &str, format: Format, vars: &Map<String, Json>) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(20);
    for name in ["safe", "escape", "e"] {
        env.add_filter(name, |v: Value| v);
    }
    env.set_formatter(move |out, _state, value| {
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        out.write_str(&escape(format, &value.to_string()))
            .map_err(minijinja::Error::from)
    });
    let ctx: BTreeMap<String, Value> = vars.iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
    let out = env
        .render_str(source, Value::from(ctx))
        .map_err(|e| format!("the template does not render: {}", describe(&e)))?;
    if out.chars().count() > MAX_OUTPUT_CHARS {
        return Err(format!(
            "the template produced over {MAX_OUTPUT_CHARS} characters"
        ));
    }
    let mut out = out.trim().to_string();
    if format == Format::EmailSubject {
        out = out.replace(['\r', '\n'], " ");
    }
    Ok(match format.max_chars() {
        Some(max) => truncate(format, out, max),
        None => out,
    })
}

/// An admin's override: at most [`MAX_TEMPLATE_CHARS`], compiles, and renders something
/// against [`sample_vars`] of `event`.
pub fn check_template(event: EventKind, format: Format, source: &str) -> Result<(), String> {
    if source.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(format!("must be at most {MAX_TEMPLATE_CHARS} characters"));
    }
    let out = render(source, format, &sample_vars(event))?;
    if out.is_empty() {
        return Err("the template renders nothing for the sample values".into());
    }
    Ok(())
}

/// A title (the first line) and the rest, of a rendering that has one (Push, Teams).
pub fn split_title(rendered: &str) -> (&str, &str) {
    match rendered.split_once('\n') {
        Some((title, body)) => (title.trim(), body.trim()),
        None => (rendered.trim(), ""),
    }
}

fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => items.iter().map(to_value).collect(),
        Json::Object(m) => Value::from(
            m.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// The error's kind and detail with its line, without minijinja's debug dump.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(detail) = e.detail() {
        s.push_str(": ");
        s.push_str(detail);
    }
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// Characters no message should carry from a value: controls (but the newline) and the
/// bidirectional overrides that make text read other than it is (U+202A-E, U+2066-9).
fn unwanted(c: char) -> bool {
    (c.is_control() && c != '\n')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `value` escaped for `format`.
fn escape(format: Format, value: &str) -> String {
    let value = value.replace("\r\n", "\n");
    let mut out = String::with_capacity(value.len() + 8);
    let mut chars = value.chars().filter(|c| !unwanted(*c)).peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        match format {
            Format::EmailHtml => match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#x27;"),
                '\n' => out.push_str("<br>\n"),
                c => out.push(c),
            },
            Format::EmailSubject => out.push(if c == '\n' { ' ' } else { c }),
            Format::EmailText | Format::Sms | Format::Push => out.push(c),
            // Slack: only & < > are escaped (as entities; `<!channel>` stays text), and the
            // formatting characters, which mrkdwn cannot escape, are broken by a zero-width space.
            Format::Slack => match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '*' | '_' | '~' | '`' => {
                    out.push(c);
                    out.push(ZWSP);
                }
                c => out.push(c),
            },
            Format::Teams | Format::Discord => {
                if matches!(
                    c,
                    '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']' | '(' | ')'
                ) {
                    out.push('\\');
                }
                out.push(c);
                // Discord: no @everyone, @here or <@id> mention (allowed_mentions stops the
                // ping as well; this also keeps them from reading as one).
                if format == Format::Discord && c == '@' {
                    let rest: String = chars.clone().take(8).collect::<String>().to_lowercase();
                    if prev == Some('<') || rest.starts_with("everyone") || rest.starts_with("here")
                    {
                        out.push(ZWSP);
                    }
                }
            }
        }
        prev = Some(c);
    }
    out
}

/// `s` cut to `max` characters, ending in "…", without leaving half an escape at the cut.
fn truncate(format: Format, s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut kept: String = s.chars().take(max.saturating_sub(1)).collect();
    if format == Format::Slack
        && let Some(amp) = kept.rfind('&')
        && !kept[amp..].contains(';')
        && kept.len() - amp < 5
    {
        kept.truncate(amp);
    }
    if matches!(format, Format::Discord | Format::Teams) {
        let backslashes = kept.chars().rev().take_while(|c| *c == '\\').count();
        if backslashes % 2 == 1 {
            kept.pop();
        }
    }
    let mut kept = kept.trim_end().to_string();
    kept.push('…');
    kept
}

/// A Slack incoming webhook's body: the text, and one mrkdwn section with it.
pub fn slack_payload(text: &str) -> Json {
    json!({
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    })
}

/// A Teams incoming webhook's (or Workflows') body: an Adaptive Card 1.4 with a bold title and
/// the text.
pub fn teams_payload(title: &str, text: &str) -> Json {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": text, "wrap": true},
                ],
            },
        }],
    })
}

/// A Discord webhook's body, allowed to mention no one.
pub fn discord_payload(text: &str) -> Json {
    json!({"content": text, "allowed_mentions": {"parse": []}})
}

/// The generic webhook body: `{"id", "event", "at" (RFC 3339), "data": vars}`, compact JSON.
pub fn webhook_body(
    id: &str,
    event: EventKind,
    at: DateTime<Utc>,
    vars: &Map<String, Json>,
) -> String {
    json!({
        "id": id,
        "event": event.as_str(),
        "at": at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "data": vars,
    })
    .to_string()
}

/// The SNS message (`MessageStructure: json`) of a push to a platform endpoint: the body as
/// `default`, a notification for FCM (`GCM`), an alert for APNs (and its sandbox), each with
/// the event's name.
pub fn push_message(title: &str, body: &str, event: EventKind) -> String {
    let gcm = json!({
        "notification": {"title": title, "body": body},
        "data": {"event": event.as_str()},
    });
    let apns = json!({
        "aps": {"alert": {"title": title, "body": body}},
        "event": event.as_str(),
    });
    json!({
        "default": body,
        "GCM": gcm.to_string(),
        "APNS": apns.to_string(),
        "APNS_SANDBOX": apns.to_string(),
    })
    .to_string()
}

/// The webhook signature header's value: `v1=` and the lower-hex HMAC-SHA256 under `secret` of
/// `"{timestamp}.{body}"` (the timestamp, Unix seconds, goes in its own header).
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    format!(
        "v1={}",
        crate::crypto::hmac_sha256_hex(secret, &format!("{timestamp}.{body}"))
    )
}

/// What a receiver does: refuse a timestamp more than `tolerance_s` from `now_s` (a replay),
/// and compare the signature in constant time. The header may list several `v1=` signatures,
/// comma-separated (while a secret is rotated); one must match.
pub fn verify_signature(
    secret: &[u8],
    timestamp: i64,
    body: &str,
    header: &str,
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    if now_s.abs_diff(timestamp) > tolerance_s.max(0).unsigned_abs() {
        return false;
    }
    let expected = signature(secret, timestamp, body);
    header
        .split(',')
        .map(str::trim)
        .filter(|s| s.starts_with("v1="))
        .fold(false, |found, s| {
            crate::crypto::constant_time_eq(s, &expected) | found
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_round_trip_and_every_event_has_every_format() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
        assert_eq!(Format::of(ChannelKind::Email).len(), 3);
        assert!(Format::of(ChannelKind::Webhook).is_empty());
        for e in EventKind::ALL {
            for f in Format::ALL {
                let source = default_template(e, f);
                check_template(e, f, source).unwrap_or_else(|err| panic!("{e} {f}: {err}"));
                let out = render(source, f, &sample_vars(e)).unwrap();
                assert!(
                    !out.contains("{{") && !out.contains("none"),
                    "{e} {f}: {out}"
                );
            }
        }
    }

    #[test]
    fn defaults_read_well() {
        let v = sample_vars(EventKind::RunFailed);
        let subject = render(
            default_template(EventKind::RunFailed, Format::EmailSubject),
            Format::EmailSubject,
            &v,
        )
        .unwrap();
        assert_eq!(
            subject,
            "Run 01JH5Z3A1B2C3D4E5F6G7H8J9K of workflow Quarterly report failed"
        );
        // Without a name, the id.
        let mut v = v;
        v.remove("workflow_name");
        let text = render(
            default_template(EventKind::RunFailed, Format::Sms),
            Format::Sms,
            &v,
        )
        .unwrap();
        assert!(text.starts_with("Run 01JH5Z3A1B2C3D4E5F6G7H8J9K of workflow 01JH5Z2W3X4Y5Z6A7B8C9D0E1F failed: 1 of 3 steps failed. Last error: the model"), "{text}");
        let html = render(
            default_template(EventKind::RunFailed, Format::EmailHtml),
            Format::EmailHtml,
            &v,
        )
        .unwrap();
        assert!(html.starts_with("<p>Run "), "{html}");
        let push = render(
            default_template(EventKind::NewLogin, Format::Push),
            Format::Push,
            &sample_vars(EventKind::NewLogin),
        )
        .unwrap();
        let (title, body) = split_title(&push);
        assert_eq!(title, "New sign-in to your account");
        assert!(
            body.starts_with(
                "Your account was signed in to at 2025-01-15T12:00:00Z from 203.0.113.7"
            ),
            "{body}"
        );
        let notice = render(
            default_template(EventKind::SystemNotice, Format::EmailSubject),
            Format::EmailSubject,
            &vars(json!({"subject": "Hi\nBcc: x@y.z", "body": "b"})),
        )
        .unwrap();
        assert_eq!(notice, "Hi Bcc: x@y.z");
    }

    #[test]
    fn a_script_in_a_name_is_escaped_in_html_and_plain_in_text() {
        let v = vars(
            json!({"run_id": "r1", "workflow_name": "<script>alert(1)</script>", "steps_failed": 1, "steps_total": 2}),
        );
        let html = render(
            default_template(EventKind::RunFailed, Format::EmailHtml),
            Format::EmailHtml,
            &v,
        )
        .unwrap();
        assert!(
            html.contains("workflow &lt;script&gt;alert(1)&lt;/script&gt; failed"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(
            html.starts_with("<p>"),
            "the template's own markup stays: {html}"
        );
        let text = render(
            default_template(EventKind::RunFailed, Format::EmailText),
            Format::EmailText,
            &v,
        )
        .unwrap();
        assert!(
            text.contains("workflow <script>alert(1)</script> failed"),
            "{text}"
        );
        // Quotes too; |safe lets nothing through and |e does not escape twice.
        let out = render(
            "<a title=\"{{ x }}\">{{ x|safe }}{{ x|e }}</a>",
            Format::EmailHtml,
            &vars(json!({"x": "\"'&"})),
        )
        .unwrap();
        let once = "&quot;&#x27;&amp;";
        assert_eq!(out, format!("<a title=\"{once}\">{once}{once}</a>"));
        // Control characters go from plain text; newlines only from the subject.
        let out = render(
            "{{ x }}",
            Format::Sms,
            &vars(json!({"x": "a\u{7}b\r\nc\u{202E}d"})),
        )
        .unwrap();
        assert_eq!(out, "ab\ncd");
    }

    #[test]
    fn slack_formatting_and_mentions_arrive_literal() {
        let v = vars(json!({"x": "*bold* _x_ ~s~ `c` <!channel> <@U123> a&b"}));
        let out = render("*Title* {{ x }}", Format::Slack, &v).unwrap();
        let z = ZWSP;
        assert_eq!(
            out,
            format!(
                "*Title* *{z}bold*{z} _{z}x_{z} ~{z}s~{z} `{z}c`{z} &lt;!channel&gt; &lt;@U123&gt; a&amp;b"
            )
        );
        // No `*` directly followed by a letter from the value: nothing pairs up into bold.
        assert!(!out["*Title* ".len()..].contains("*b"));
        let p = slack_payload(&out);
        assert_eq!(p["text"], out);
        assert_eq!(p["blocks"][0]["text"]["type"], "mrkdwn");
        assert_eq!(p["blocks"][0]["text"]["text"], out);
    }

    #[test]
    fn discord_and_teams_escape_markdown_and_discord_does_not_ping() {
        let v =
            vars(json!({"x": "@everyone @Here <@123> **b** [l](http://e.x) # h ann@example.com"}));
        let out = render("{{ x }}", Format::Discord, &v).unwrap();
        let z = ZWSP;
        assert_eq!(
            out,
            format!(
                "@{z}everyone @{z}Here <@{z}123\\> \\*\\*b\\*\\* \\[l\\]\\(http://e.x\\) \\# h ann@example.com"
            )
        );
        assert!(!out.contains("@everyone") && !out.contains("<@1"));
        assert_eq!(
            discord_payload(&out),
            json!({"content": out, "allowed_mentions": {"parse": []}})
        );
        let out = render(
            "**{{ t }}**\n{{ x }}",
            Format::Teams,
            &vars(json!({"t": "a_b", "x": "| c \\ d"})),
        )
        .unwrap();
        assert_eq!(out, "**a\\_b**\n\\| c \\\\ d");
        let card = teams_payload("Title", "Body");
        let att = &card["attachments"][0];
        assert_eq!(card["type"], "message");
        assert_eq!(
            att["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(att["content"]["version"], "1.4");
        assert_eq!(att["content"]["body"][0]["text"], "Title");
        assert_eq!(att["content"]["body"][0]["weight"], "Bolder");
        assert_eq!(
            att["content"]["body"][1],
            json!({"type": "TextBlock", "text": "Body", "wrap": true})
        );
    }

    #[test]
    fn long_renderings_are_cut_and_missing_values_print_nothing() {
        let long = vars(json!({"x": "a".repeat(5000)}));
        for (f, max) in [
            (Format::Sms, 300),
            (Format::Push, 200),
            (Format::EmailSubject, 150),
            (Format::Slack, 1900),
            (Format::Discord, 1900),
        ] {
            let out = render("{{ x }}", f, &long).unwrap();
            assert_eq!(out.chars().count(), max, "{f}");
            assert!(out.ends_with('…'));
        }
        assert_eq!(
            render("{{ x }}", Format::EmailText, &long).unwrap().len(),
            5000
        );
        // No half entity at the cut.
        let amps = vars(json!({"x": "&".repeat(1000)}));
        let out = render("{{ x }}", Format::Slack, &amps).unwrap();
        assert!(
            out.trim_end_matches('…').ends_with("&amp;"),
            "{}",
            &out[out.len() - 12..]
        );
        assert_eq!(
            render(
                "  [{{ missing }}|{{ n }}]  ",
                Format::Sms,
                &vars(json!({"n": null}))
            )
            .unwrap(),
            "[|]"
        );
        assert_eq!(
            render(
                "{{ n }} {{ f }} {{ l|join(',') }}",
                Format::Sms,
                &vars(json!({"n": 3, "f": 1.5, "l": [1, "a"]}))
            )
            .unwrap(),
            "3 1.5 1,a"
        );
    }

    #[test]
    fn bad_overrides_are_refused() {
        let e = EventKind::RunFailed;
        assert!(
            check_template(e, Format::Sms, "{% for %}")
                .unwrap_err()
                .contains("syntax")
        );
        assert!(check_template(e, Format::Sms, &"x".repeat(MAX_TEMPLATE_CHARS + 1)).is_err());
        assert!(
            check_template(e, Format::Sms, "{{ nothing }}")
                .unwrap_err()
                .contains("nothing")
        );
        let runaway =
            "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}";
        assert!(
            check_template(e, Format::Sms, runaway)
                .unwrap_err()
                .contains("fuel")
        );
        assert_eq!(
            check_template(e, Format::Sms, "Failed: {{ run_id }}"),
            Ok(())
        );
    }

    #[test]
    fn webhook_bodies_are_json_with_the_values_intact() {
        let at: DateTime<Utc> = "2025-01-15T12:00:00Z".parse().unwrap();
        let v =
            vars(json!({"workflow_name": "A \"quoted\" </script> \\ name\n", "steps_failed": 2}));
        let body = webhook_body("01JN", EventKind::RunFailed, at, &v);
        let parsed: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"id": "01JN", "event": "run_failed", "at": "2025-01-15T12:00:00Z", "data": v})
        );
        assert!(!body.contains('\n'), "compact: {body}");
    }

    #[test]
    fn push_messages_carry_each_platforms_payload() {
        let m: Json =
            serde_json::from_str(&push_message("T \"1\"", "B", EventKind::NewLogin)).unwrap();
        assert_eq!(m["default"], "B");
        let gcm: Json = serde_json::from_str(m["GCM"].as_str().unwrap()).unwrap();
        assert_eq!(
            gcm,
            json!({"notification": {"title": "T \"1\"", "body": "B"}, "data": {"event": "new_login"}})
        );
        let apns: Json = serde_json::from_str(m["APNS"].as_str().unwrap()).unwrap();
        assert_eq!(
            apns,
            json!({"aps": {"alert": {"title": "T \"1\"", "body": "B"}}, "event": "new_login"})
        );
        assert_eq!(m["APNS_SANDBOX"], m["APNS"]);
    }

    #[test]
    fn signatures_match_an_independent_hmac_and_refuse_tampering() {
        let secret = b"whsec_test";
        let (ts, body) = (1_736_942_400_i64, r#"{"id":"1","event":"run_failed"}"#);
        // Computed independently: HMAC-SHA256 from RFC 2104's definition over SHA-256.
        let independent = {
            use sha2::{Digest, Sha256};
            let mut key = [0u8; 64];
            key[..secret.len()].copy_from_slice(secret);
            let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
            let inner = Sha256::new()
                .chain_update(pad(0x36))
                .chain_update(format!("{ts}.{body}"))
                .finalize();
            let outer = Sha256::new()
                .chain_update(pad(0x5c))
                .chain_update(inner)
                .finalize();
            outer.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let sig = signature(secret, ts, body);
        assert_eq!(sig, format!("v1={independent}"));
        assert_eq!(
            sig,
            format!(
                "v1={}",
                crate::crypto::hmac_sha256_hex(secret, &format!("{ts}.{body}"))
            )
        );
        // RFC 4231 test case 2, through the same path.
        assert_eq!(
            crate::crypto::hmac_sha256_hex(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );

        let now = ts + 60;
        assert!(verify_signature(secret, ts, body, &sig, now, 300));
        assert!(verify_signature(
            secret,
            ts,
            body,
            &format!("v1=00, {sig}"),
            now,
            300
        ));
        assert!(!verify_signature(
            secret,
            ts,
            &body.replace("failed", "succeeded"),
            &sig,
            now,
            300
        ));
        assert!(!verify_signature(b"other", ts, body, &sig, now, 300));
        assert!(!verify_signature(secret, ts, body, &sig, ts + 301, 300));
        assert!(!verify_signature(secret, ts, body, &sig, ts - 301, 300));
        assert!(!verify_signature(secret, ts + 1, body, &sig, now, 300));
        assert!(!verify_signature(
            secret,
            ts,
            body,
            sig.trim_start_matches("v1="),
            now,
            300
        ));
        assert!(!verify_signature(secret, ts, body, "", now, 300));
        assert!(!verify_signature(
            secret,
            i64::MIN,
            body,
            &sig,
            i64::MAX,
            i64::MAX
        ));
    }
}
