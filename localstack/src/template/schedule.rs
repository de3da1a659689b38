//! The schedule events of the template's functions: `Type: Schedule` (an EventBridge rule) and
//! `Type: ScheduleV2` (an EventBridge Scheduler schedule). AWS fires them; locally the gateway
//! does (`gateway::schedules`), because the emulator fires neither.
//!
//! Read from each function's `Properties.Events` and checked when the template is loaded: the
//! expression (with `schedule-expr`), the time zone, `Enabled`/`State`, the start and end
//! dates, and that an `Input` written as a string is JSON (a Lambda target needs JSON).
//! Properties that only matter on AWS (`Name`'s rule, `RoleArn`, `RetryPolicy`,
//! `DeadLetterConfig`, `FlexibleTimeWindow`, ...) are accepted and ignored.

use super::node::{Ctx, Node};
use super::{ResourceKind, Template};
use crate::Error;
use chrono::{DateTime, NaiveDateTime, Utc};
use schedule_expr::{Expression, Schedule};
use serde_yaml_ng::{Mapping, Value};

/// Which service a schedule event stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleEventKind {
    /// `Type: Schedule`: an EventBridge rule with a schedule expression (UTC, no `at()`).
    Rule,
    /// `Type: ScheduleV2`: an EventBridge Scheduler schedule.
    Scheduler,
}

/// One `Schedule` or `ScheduleV2` event of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEventSpec {
    /// The function's logical id.
    pub function: String,
    /// The event's name under the function's `Events`.
    pub event: String,
    pub kind: ScheduleEventKind,
    /// `Schedule` (rule) or `ScheduleExpression` (Scheduler).
    pub expression: String,
    /// `ScheduleExpressionTimezone`; empty for UTC (always, for a rule).
    pub timezone: String,
    /// `Input` as written (an intrinsic stays unresolved): the payload instead of the default.
    pub input: Option<Value>,
    /// `Enabled` / `State` (rule), `State` (Scheduler); true when absent.
    pub enabled: bool,
    /// `StartDate` / `EndDate` (Scheduler only).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `Name`, if given (the rule's or schedule's name).
    pub name: Option<String>,
}

impl ScheduleEventSpec {
    /// The schedule this event describes (checked when the template was loaded).
    pub fn schedule(&self) -> Result<Schedule, schedule_expr::ScheduleError> {
        Schedule::new(&self.expression, &self.timezone)?.with_window(self.start, self.end)
    }
}

impl Template {
    /// Every `Schedule` and `ScheduleV2` event of every function, in template order.
    pub fn schedule_events(&self) -> Result<Vec<ScheduleEventSpec>, Error> {
        let mut events = Vec::new();
        for resource in self.resources() {
            if !matches!(resource.kind, ResourceKind::Function(_)) {
                continue;
            }
            // A mapping holding `Properties`, so that error paths read `Properties.Events...`.
            let mut wrapper = Mapping::new();
            wrapper.insert(
                Value::String("Properties".into()),
                resource.properties.clone(),
            );
            let wrapper = Value::Mapping(wrapper);
            let ctx = Ctx {
                template: self.source(),
                resource: &resource.logical_id,
            };
            let node = Node::resource(&ctx, &wrapper);
            let Some(props) = node.field("Properties")? else {
                continue;
            };
            let Some(event_nodes) = props.field("Events")? else {
                continue;
            };
            for (name, event) in event_nodes.entries()? {
                let kind = match event.required("Type")?.str()? {
                    "Schedule" => ScheduleEventKind::Rule,
                    "ScheduleV2" => ScheduleEventKind::Scheduler,
                    _ => continue,
                };
                events.push(parse(&resource.logical_id, name, kind, &event)?);
            }
        }
        Ok(events)
    }
}

fn parse(
    function: &str,
    event: &str,
    kind: ScheduleEventKind,
    node: &Node<'_>,
) -> Result<ScheduleEventSpec, Error> {
    let props = node.required("Properties")?;
    let string = |key: &str| -> Result<Option<String>, Error> {
        props
            .field(key)?
            .map(|n| n.str().map(str::to_owned))
            .transpose()
    };
    let state = match props.field("State")? {
        Some(state) => Some(state.one_of(&[("ENABLED", true), ("DISABLED", false)])?),
        None => None,
    };
    let (expression_key, enabled, timezone, start, end) = match kind {
        ScheduleEventKind::Rule => {
            let enabled = match (props.field("Enabled")?, state) {
                (Some(node), Some(_)) => {
                    return Err(node.error("give `Enabled` or `State`, not both"));
                }
                (Some(node), None) => node.bool()?,
                (None, state) => state.unwrap_or(true),
            };
            ("Schedule", enabled, String::new(), None, None)
        }
        ScheduleEventKind::Scheduler => (
            "ScheduleExpression",
            state.unwrap_or(true),
            string("ScheduleExpressionTimezone")?.unwrap_or_default(),
            date(&props, "StartDate")?,
            date(&props, "EndDate")?,
        ),
    };
    let expression_node = props.required(expression_key)?;
    let expression = expression_node.str()?.to_owned();
    let parsed =
        Expression::parse(&expression).map_err(|e| expression_node.error(e.to_string()))?;
    if kind == ScheduleEventKind::Rule && matches!(parsed, Expression::At(_)) {
        return Err(expression_node.error(
            "an EventBridge rule takes cron(...) or rate(...); at(...) needs a ScheduleV2 event",
        ));
    }
    if let Err(e) = schedule_expr::parse_timezone(&timezone)
        && let Some(node) = props.field("ScheduleExpressionTimezone")?
    {
        return Err(node.error(e.to_string()));
    }
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
        && let Some(node) = props.field("EndDate")?
    {
        return Err(node.error("must be after StartDate"));
    }
    let input = match props.field("Input")? {
        Some(node) => {
            if let Value::String(text) = node.value()
                && let Err(e) = serde_json::from_str::<serde_json::Value>(text)
            {
                return Err(node.error(format!("must be JSON for a Lambda target: {e}")));
            }
            Some(node.value().clone())
        }
        None => None,
    };
    Ok(ScheduleEventSpec {
        function: function.to_owned(),
        event: event.to_owned(),
        kind,
        expression,
        timezone,
        input,
        enabled,
        start,
        end,
        name: string("Name")?,
    })
}

/// A date property: RFC 3339 (`2026-01-01T00:00:00Z`), or without an offset (UTC).
fn date(props: &Node<'_>, key: &str) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(node) = props.field(key)? else {
        return Ok(None);
    };
    let text = node.str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            node.error(format!(
                "expected a date like 2026-01-01T00:00:00Z, found {text:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(events: &str) -> Result<Template, Error> {
        Template::from_yaml(
            "schedule-test.yaml",
            &format!(
                "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n{events}"
            ),
        )
    }

    #[test]
    fn schedule_and_schedule_v2_events_are_read() {
        let t = template(
            r#"        Tick:
          Type: Schedule
          Properties: { Schedule: rate(5 minutes), Enabled: false }
        Daily:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(30 9 ? * MON-FRI *)
            ScheduleExpressionTimezone: Europe/Berlin
            Input: '{"job": "digest"}'
            StartDate: "2030-01-01T00:00:00Z"
            State: ENABLED
        Api:
          Type: HttpApi
          Properties: { Method: get, Path: /x }
"#,
        )
        .unwrap();
        let events = t.schedule_events().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, ScheduleEventKind::Rule);
        assert_eq!(events[0].expression, "rate(5 minutes)");
        assert!(!events[0].enabled);
        assert_eq!(events[0].input, None);
        let daily = &events[1];
        assert_eq!(
            (daily.function.as_str(), daily.event.as_str()),
            ("Fn", "Daily")
        );
        assert_eq!(daily.kind, ScheduleEventKind::Scheduler);
        assert_eq!(daily.timezone, "Europe/Berlin");
        assert!(daily.enabled);
        assert_eq!(
            daily.input,
            Some(Value::String(r#"{"job": "digest"}"#.into()))
        );
        assert_eq!(daily.start, Some("2030-01-01T00:00:00Z".parse().unwrap()));
        assert!(daily.schedule().is_ok());
    }

    #[test]
    fn a_bad_schedule_event_fails_the_template_naming_the_property() {
        let cases = [
            (
                "Schedule: cron(0 12 * * * *)",
                "Schedule",
                "Properties.Events.E.Properties.Schedule",
                "day-of-month and day-of-week cannot both be specified",
            ),
            (
                "Schedule: at(2030-01-01T00:00:00)",
                "Schedule",
                "Properties.Events.E.Properties.Schedule",
                "at(...) needs a ScheduleV2 event",
            ),
            (
                "Schedule: rate(1 minute), Enabled: true, State: ENABLED",
                "Schedule",
                "Properties.Events.E.Properties.Enabled",
                "not both",
            ),
            (
                "ScheduleExpression: rate(1 hour), ScheduleExpressionTimezone: Mars/Base",
                "ScheduleV2",
                "Properties.Events.E.Properties.ScheduleExpressionTimezone",
                "unknown timezone 'Mars/Base'",
            ),
            (
                "ScheduleExpression: rate(1 hour), State: PAUSED",
                "ScheduleV2",
                "Properties.Events.E.Properties.State",
                "expected one of ENABLED, DISABLED",
            ),
            (
                "ScheduleExpression: rate(1 hour), Input: 'not json'",
                "ScheduleV2",
                "Properties.Events.E.Properties.Input",
                "must be JSON",
            ),
            (
                "ScheduleExpression: rate(1 hour), StartDate: '2030-01-02T00:00:00Z', EndDate: '2030-01-01T00:00:00Z'",
                "ScheduleV2",
                "Properties.Events.E.Properties.EndDate",
                "must be after StartDate",
            ),
            (
                "ScheduleExpression: rate(1 hour), StartDate: tomorrow",
                "ScheduleV2",
                "Properties.Events.E.Properties.StartDate",
                "expected a date",
            ),
        ];
        for (props, kind, path, message) in cases {
            // Checked when the template is loaded.
            let error = template(&format!(
                "        E:\n          Type: {kind}\n          Properties: {{ {props} }}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(error.contains(path), "{props}: {error}");
            assert!(error.contains(message), "{props}: {error}");
        }
    }
}
