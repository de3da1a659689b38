//! The local dashboard: the template's `AWS::CloudWatch::Dashboard` drawn over the metrics the
//! gateway collected from the functions' EMF lines ([`super::metrics`]), and the template's
//! `AWS::CloudWatch::Alarm`s evaluated over them. Locally there is no CloudWatch; this is the
//! same view, from the same template.
//!
//! - `GET /_local/dashboard`: the page (HTML with its script and styles inline; nothing from
//!   elsewhere), which reads the data below every few seconds and draws each widget as an SVG
//!   line chart.
//! - `GET /_local/dashboard/data[?minutes=N]`: JSON: every widget of the dashboard's body (its
//!   `!Sub` resolved as the gateway resolves the functions' environment, so `${SomeFunction}` is
//!   the name the function's `AWS_LAMBDA_FUNCTION_NAME` and thus its EMF `Service` has), each
//!   metric line with its datapoints over the last N minutes (default 60), and every alarm with
//!   its state.
//!
//! Statistics: `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount`, `pNN`. Metric math: numbers,
//! ids, `+ - * /`, comparisons, `AND`/`OR`, `IF(c, a, b)`, `FILL(x, value)`, `ABS`; anything
//! else is shown as "not computed locally". Metrics of the `AWS/*` namespaces (Lambda, SQS,
//! DynamoDB) are nobody's EMF lines: they are shown as "not available locally", and the alarms
//! on them stay `INSUFFICIENT_DATA`.
//!
//! Every path under `/_local/` is answered here, by the gateway, never by a function.

use super::metrics::{MetricId, Metrics, Statistic};
use super::server::{self, Reply};
use crate::resolve::Resolver;
use crate::template::Template;
use serde_json::{Value as Json, json};
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The prefix of the gateway's own pages.
pub const PREFIX: &str = "/_local";
/// Minutes of data the page shows unless `?minutes=` says otherwise.
pub const DEFAULT_MINUTES: i64 = 60;
const NOT_AVAILABLE: &str = "not available locally (an AWS/* metric: only CloudWatch has it)";

/// Whether the gateway itself answers `path` (never a function).
pub fn is_local(path: &str) -> bool {
    path == PREFIX || path.starts_with("/_local/")
}

/// One metric line of a widget or alarm: a metric with its statistic, or an expression.
#[derive(Debug, Clone)]
struct Line {
    id: Option<String>,
    label: String,
    visible: bool,
    period: i64,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Metric { metric: MetricId, stat: String },
    Expression(String),
}

#[derive(Debug, Clone)]
struct Widget {
    raw: Json,
    kind: String,
    title: String,
    period: i64,
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
struct Alarm {
    name: String,
    description: String,
    comparison: String,
    threshold: f64,
    evaluation_periods: usize,
    datapoints_to_alarm: usize,
    treat_missing: String,
    period: i64,
    /// The metrics (and the one expression returning data).
    lines: Vec<Line>,
    /// Why it cannot be evaluated at all (a template this module does not understand).
    problem: Option<String>,
}

/// The template's dashboard and alarms over the collected metrics.
pub struct Dashboard {
    name: String,
    widgets: Vec<Widget>,
    alarms: Vec<Alarm>,
    /// Why the dashboard body could not be read, if it could not.
    problem: Option<String>,
    metrics: Arc<Metrics>,
}

impl Dashboard {
    /// The first `AWS::CloudWatch::Dashboard` of `template` and all its alarms, with their
    /// intrinsic functions resolved by `resolver`.
    pub fn new(template: &Template, resolver: &Resolver, metrics: Arc<Metrics>) -> Dashboard {
        let mut dashboard = Dashboard {
            name: String::new(),
            widgets: Vec::new(),
            alarms: Vec::new(),
            problem: None,
            metrics,
        };
        match template
            .resources()
            .iter()
            .find(|r| r.resource_type == "AWS::CloudWatch::Dashboard")
        {
            None => {
                dashboard.problem = Some("the template has no AWS::CloudWatch::Dashboard".into())
            }
            Some(resource) => {
                dashboard.name = resource.logical_id.clone();
                let context = format!("{}.Properties.DashboardBody", resource.logical_id);
                let body = resource
                    .properties
                    .get("DashboardBody")
                    .ok_or_else(|| format!("{context}: missing"))
                    .and_then(|b| resolver.string(&context, b).map_err(|e| e.to_string()))
                    .and_then(|text| {
                        serde_json::from_str::<Json>(&text)
                            .map_err(|e| format!("{context} is not JSON: {e}"))
                    });
                match body {
                    Ok(body) => dashboard.widgets = widgets(&body),
                    Err(e) => dashboard.problem = Some(e),
                }
            }
        }
        dashboard.alarms = template
            .resources()
            .iter()
            .filter(|r| r.resource_type == "AWS::CloudWatch::Alarm")
            .map(|r| alarm(&r.logical_id, &r.properties, resolver))
            .collect();
        dashboard
    }

    /// Answers a request under `/_local/`.
    pub fn handle<B>(&self, req: &hyper::Request<B>) -> Reply {
        let path = req.uri().path().trim_end_matches('/');
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
            return server::reply(
                405,
                "application/json",
                r#"{"message":"Method Not Allowed"}"#,
            );
        }
        match path {
            "/_local/dashboard" => {
                let mut r = server::reply(200, "text/html; charset=utf-8", PAGE);
                let headers = r.headers_mut();
                if let Ok(policy) = hyper::header::HeaderValue::from_str(&POLICY) {
                    headers.insert(hyper::header::CONTENT_SECURITY_POLICY, policy);
                }
                headers.insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static("no-store"),
                );
                r
            }
            "/_local/dashboard/data" => {
                let minutes = req
                    .uri()
                    .query()
                    .and_then(|q| {
                        form_urlencoded::parse(q.as_bytes())
                            .find(|(k, _)| k == "minutes")
                            .and_then(|(_, v)| v.parse::<i64>().ok())
                    })
                    .unwrap_or(DEFAULT_MINUTES)
                    .clamp(5, super::metrics::RETENTION_MINUTES);
                let now = chrono::Utc::now().timestamp();
                let mut r =
                    server::reply(200, "application/json", self.data(now, minutes).to_string());
                r.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static("no-store"),
                );
                r
            }
            _ => server::reply(404, "application/json", r#"{"message":"Not Found"}"#),
        }
    }

    /// The data the page draws, at `now_s` (epoch seconds) over the last `minutes`.
    pub fn data(&self, now_s: i64, minutes: i64) -> Json {
        let start = now_s - minutes * 60;
        let widgets: Vec<Json> = self
            .widgets
            .iter()
            .map(|w| self.widget_data(w, start, now_s))
            .collect();
        let alarms: Vec<Json> = self
            .alarms
            .iter()
            .map(|a| self.alarm_data(a, now_s))
            .collect();
        json!({
            "dashboard": self.name,
            "problem": self.problem,
            "now": now_s * 1000,
            "start": start * 1000,
            "end": now_s * 1000,
            "minutes": minutes,
            "emfLines": self.metrics.lines(),
            "widgets": widgets,
            "alarms": alarms,
        })
    }

    fn widget_data(&self, w: &Widget, start: i64, end: i64) -> Json {
        let props = &w.raw["properties"];
        let mut out = json!({
            "type": w.kind,
            "x": w.raw["x"], "y": w.raw["y"], "width": w.raw["width"], "height": w.raw["height"],
        });
        if w.kind == "text" {
            out["markdown"] = props["markdown"].clone();
            return out;
        }
        out["title"] = json!(w.title);
        out["period"] = json!(w.period);
        out["view"] = props["view"].clone();
        let computed = compute(&self.metrics, &w.lines, start, end + 1);
        let series: Vec<Json> = w
            .lines
            .iter()
            .zip(computed)
            .map(|(line, result)| series_json(line, result))
            .collect();
        let available = series
            .iter()
            .any(|s| s["visible"] == true && s["available"] == true);
        out["available"] = json!(available);
        if !available {
            out["note"] = json!(NOT_AVAILABLE);
        }
        out["series"] = json!(series);
        out
    }

    fn alarm_data(&self, a: &Alarm, now_s: i64) -> Json {
        let mut out = json!({
            "name": a.name,
            "description": a.description,
            "comparison": a.comparison,
            "threshold": a.threshold,
            "period": a.period,
            "evaluationPeriods": a.evaluation_periods,
            "datapointsToAlarm": a.datapoints_to_alarm,
            "treatMissingData": a.treat_missing,
        });
        let (state, reason, values) = self.evaluate(a, now_s);
        out["state"] = json!(state);
        out["reason"] = json!(reason);
        out["values"] = json!(values);
        out["available"] = json!(reason != NOT_AVAILABLE && a.problem.is_none());
        out
    }

    /// The alarm's state at `now_s`, why, and the values of its evaluation periods (oldest
    /// first; null where there was no data).
    fn evaluate(&self, a: &Alarm, now_s: i64) -> (&'static str, String, Vec<Option<f64>>) {
        if let Some(p) = &a.problem {
            return (
                "INSUFFICIENT_DATA",
                format!("not computed locally: {p}"),
                Vec::new(),
            );
        }
        if a.lines.iter().any(
            |l| matches!(&l.source, Source::Metric { metric, .. } if is_aws(&metric.namespace)),
        ) {
            return ("INSUFFICIENT_DATA", NOT_AVAILABLE.into(), Vec::new());
        }
        let period = a.period.max(60);
        // The N periods up to and including the one `now` is in (locally the current one
        // counts, so the page follows traffic without waiting for periods to close).
        let last = now_s.div_euclid(period) * period;
        let first = last - (a.evaluation_periods as i64 - 1) * period;
        let Some(target) = a.lines.iter().position(|l| l.visible) else {
            return (
                "INSUFFICIENT_DATA",
                "no metric returns data".into(),
                Vec::new(),
            );
        };
        let results = compute(&self.metrics, &a.lines, first, last + period);
        let series = match &results[target] {
            Ok(points) => points.clone(),
            Err(e) => {
                return (
                    "INSUFFICIENT_DATA",
                    format!("not computed locally: {e}"),
                    Vec::new(),
                );
            }
        };
        let values: Vec<Option<f64>> = (0..a.evaluation_periods as i64)
            .map(|i| series.get(&(first + i * period)).copied())
            .collect();
        let missing = values.iter().filter(|v| v.is_none()).count();
        let breaching = values
            .iter()
            .filter(|v| match v {
                Some(v) => compare(&a.comparison, *v, a.threshold),
                None => a.treat_missing == "breaching",
            })
            .count();
        let of = format!(
            "{breaching} of the last {} periods of {period} s breach {} {} (alarm at {})",
            a.evaluation_periods,
            comparison_symbol(&a.comparison),
            a.threshold,
            a.datapoints_to_alarm
        );
        if breaching >= a.datapoints_to_alarm {
            ("ALARM", of, values)
        } else if missing == values.len()
            && matches!(a.treat_missing.as_str(), "missing" | "ignore")
        {
            (
                "INSUFFICIENT_DATA",
                "no data in the evaluation periods".into(),
                values,
            )
        } else {
            ("OK", of, values)
        }
    }
}

fn is_aws(namespace: &str) -> bool {
    namespace.starts_with("AWS/")
}

fn compare(op: &str, v: f64, threshold: f64) -> bool {
    match op {
        "GreaterThanThreshold" => v > threshold,
        "GreaterThanOrEqualToThreshold" => v >= threshold,
        "LessThanThreshold" => v < threshold,
        "LessThanOrEqualToThreshold" => v <= threshold,
        _ => false,
    }
}

fn comparison_symbol(op: &str) -> &'static str {
    match op {
        "GreaterThanThreshold" => ">",
        "GreaterThanOrEqualToThreshold" => ">=",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "<=",
        _ => "?",
    }
}

fn series_json(line: &Line, result: Result<BTreeMap<i64, f64>, String>) -> Json {
    let mut s = json!({
        "label": line.label,
        "id": line.id,
        "visible": line.visible,
        "period": line.period,
    });
    match &line.source {
        Source::Metric { metric, stat } => {
            s["stat"] = json!(stat);
            s["namespace"] = json!(metric.namespace);
            s["metric"] = json!(metric.name);
            s["dimensions"] = json!(metric.dimensions);
        }
        Source::Expression(e) => s["expression"] = json!(e),
    }
    let unavailable =
        matches!(&line.source, Source::Metric { metric, .. } if is_aws(&metric.namespace));
    match result {
        _ if unavailable => {
            s["available"] = json!(false);
            s["note"] = json!(NOT_AVAILABLE);
            s["points"] = json!([]);
        }
        Ok(points) => {
            s["available"] = json!(true);
            s["points"] = json!(
                points
                    .iter()
                    .map(|(t, v)| json!([t * 1000, v]))
                    .collect::<Vec<_>>()
            );
        }
        Err(e) => {
            s["available"] = json!(false);
            s["note"] = json!(format!("not computed locally: {e}"));
            s["points"] = json!([]);
        }
    }
    s
}

/// Each line's datapoints (period start in epoch seconds -> value) over `[start, end)`:
/// metrics from the store, expressions over the other lines' ids.
fn compute(
    metrics: &Metrics,
    lines: &[Line],
    start: i64,
    end: i64,
) -> Vec<Result<BTreeMap<i64, f64>, String>> {
    let mut by_id: HashMap<String, BTreeMap<i64, f64>> = HashMap::new();
    let mut out: Vec<Result<BTreeMap<i64, f64>, String>> = lines
        .iter()
        .map(|line| match &line.source {
            Source::Metric { metric, stat } => {
                if is_aws(&metric.namespace) {
                    return Err(NOT_AVAILABLE.to_string());
                }
                let statistic = Statistic::parse(stat)
                    .ok_or_else(|| format!("the statistic {stat} is not supported locally"))?;
                let points: BTreeMap<i64, f64> = metrics
                    .query(metric, statistic, line.period, start, end)
                    .into_iter()
                    .collect();
                if let Some(id) = &line.id {
                    by_id.insert(id.clone(), points.clone());
                }
                Ok(points)
            }
            Source::Expression(_) => Ok(BTreeMap::new()),
        })
        .collect();
    // Expressions, in order (one may use another's id when it comes first).
    for (i, line) in lines.iter().enumerate() {
        let Source::Expression(text) = &line.source else {
            continue;
        };
        let result = parse_expression(text).and_then(|expr| {
            let mut ids = BTreeSet::new();
            expr.ids(&mut ids);
            let mut times = BTreeSet::new();
            for id in &ids {
                let series = by_id
                    .get(id)
                    .ok_or_else(|| format!("{id} is not a metric of this widget"))?;
                times.extend(series.keys().copied());
            }
            Ok(times
                .into_iter()
                .filter_map(|t| expr.eval(&by_id, t).map(|v| (t, v)))
                .collect::<BTreeMap<i64, f64>>())
        });
        if let (Ok(points), Some(id)) = (&result, &line.id) {
            by_id.insert(id.clone(), points.clone());
        }
        out[i] = result;
    }
    out
}

/// The widgets of a dashboard body, with their metric lines.
fn widgets(body: &Json) -> Vec<Widget> {
    body["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let props = &w["properties"];
            let period = props["period"].as_i64().unwrap_or(300);
            let stat = props["stat"].as_str().unwrap_or("Average");
            let mut lines = Vec::new();
            let mut previous: Vec<String> = Vec::new();
            for m in props["metrics"].as_array().into_iter().flatten() {
                let parts = m.as_array().cloned().unwrap_or_default();
                let options = parts
                    .iter()
                    .find(|p| p.is_object())
                    .cloned()
                    .unwrap_or(Json::Null);
                let mut strings: Vec<String> = parts
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect();
                // `"."`: the same as the line before at that position.
                for (i, s) in strings.iter_mut().enumerate() {
                    if s == "." {
                        *s = previous.get(i).cloned().unwrap_or_default();
                    }
                }
                let id = options["id"].as_str().map(str::to_string);
                let visible = options["visible"].as_bool().unwrap_or(true);
                let line_period = options["period"].as_i64().unwrap_or(period);
                if let Some(expression) = options["expression"].as_str() {
                    lines.push(Line {
                        label: options["label"]
                            .as_str()
                            .or(id.as_deref())
                            .unwrap_or(expression)
                            .to_string(),
                        id,
                        visible,
                        period: line_period,
                        source: Source::Expression(expression.to_string()),
                    });
                    continue;
                }
                if strings.len() < 2 {
                    continue;
                }
                previous = strings.clone();
                let dimensions = strings[2..]
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                let stat = options["stat"].as_str().unwrap_or(stat).to_string();
                lines.push(Line {
                    label: options["label"].as_str().unwrap_or(&strings[1]).to_string(),
                    id,
                    visible,
                    period: line_period,
                    source: Source::Metric {
                        metric: MetricId {
                            namespace: strings[0].clone(),
                            name: strings[1].clone(),
                            dimensions,
                        },
                        stat,
                    },
                });
            }
            Widget {
                raw: w.clone(),
                kind: w["type"].as_str().unwrap_or("").to_string(),
                title: props["title"].as_str().unwrap_or("").to_string(),
                period,
                lines,
            }
        })
        .collect()
}

/// An alarm's properties, read as CloudWatch reads them.
fn alarm(name: &str, props: &Yaml, resolver: &Resolver) -> Alarm {
    let text = |v: &Yaml| -> String {
        match v {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            other => resolver.string(name, other).unwrap_or_default(),
        }
    };
    let number = |v: Option<&Yaml>| -> Option<f64> {
        match v? {
            Yaml::Number(n) => n.as_f64(),
            Yaml::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    let dimensions = |d: Option<&Yaml>| -> BTreeMap<String, String> {
        d.and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .map(|kv| {
                (
                    kv.get("Name").map(text).unwrap_or_default(),
                    kv.get("Value").map(text).unwrap_or_default(),
                )
            })
            .collect()
    };
    let evaluation_periods = number(props.get("EvaluationPeriods"))
        .unwrap_or(1.0)
        .max(1.0) as usize;
    let mut alarm = Alarm {
        name: name.to_string(),
        description: props.get("AlarmDescription").map(text).unwrap_or_default(),
        comparison: props
            .get("ComparisonOperator")
            .map(text)
            .unwrap_or_default(),
        threshold: number(props.get("Threshold")).unwrap_or(0.0),
        evaluation_periods,
        datapoints_to_alarm: number(props.get("DatapointsToAlarm"))
            .map(|d| d.max(1.0) as usize)
            .unwrap_or(evaluation_periods),
        treat_missing: props
            .get("TreatMissingData")
            .map(text)
            .unwrap_or_else(|| "missing".into()),
        period: number(props.get("Period")).unwrap_or(60.0) as i64,
        lines: Vec::new(),
        problem: None,
    };
    if let Some(metric) = props.get("MetricName") {
        let stat = props
            .get("ExtendedStatistic")
            .or_else(|| props.get("Statistic"))
            .map(text)
            .unwrap_or_else(|| "Average".into());
        alarm.lines.push(Line {
            id: Some("m".into()),
            label: text(metric),
            visible: true,
            period: alarm.period,
            source: Source::Metric {
                metric: MetricId {
                    namespace: props.get("Namespace").map(text).unwrap_or_default(),
                    name: text(metric),
                    dimensions: dimensions(props.get("Dimensions")),
                },
                stat,
            },
        });
    } else if let Some(items) = props.get("Metrics").and_then(Yaml::as_sequence) {
        let mut period = None;
        for item in items {
            let id = item.get("Id").map(text);
            let visible = item
                .get("ReturnData")
                .and_then(Yaml::as_bool)
                .unwrap_or(true);
            let label = item.get("Label").map(text);
            if let Some(expression) = item.get("Expression") {
                let expression = text(expression);
                alarm.lines.push(Line {
                    label: label.or(id.clone()).unwrap_or_else(|| expression.clone()),
                    id,
                    visible,
                    period: 0,
                    source: Source::Expression(expression),
                });
            } else if let Some(stat) = item.get("MetricStat") {
                let p = number(stat.get("Period")).unwrap_or(60.0) as i64;
                period.get_or_insert(p);
                let metric = stat.get("Metric").cloned().unwrap_or(Yaml::Null);
                let name = metric.get("MetricName").map(text).unwrap_or_default();
                alarm.lines.push(Line {
                    label: label.unwrap_or_else(|| name.clone()),
                    id,
                    visible,
                    period: p,
                    source: Source::Metric {
                        metric: MetricId {
                            namespace: metric.get("Namespace").map(text).unwrap_or_default(),
                            name,
                            dimensions: dimensions(metric.get("Dimensions")),
                        },
                        stat: stat
                            .get("Stat")
                            .map(text)
                            .unwrap_or_else(|| "Average".into()),
                    },
                });
            }
        }
        alarm.period = period.unwrap_or(60);
        for line in &mut alarm.lines {
            if line.period == 0 {
                line.period = alarm.period;
            }
        }
        if alarm.lines.iter().filter(|l| l.visible).count() != 1 {
            alarm.problem = Some("an alarm's Metrics must return exactly one series".into());
        }
    } else {
        alarm.problem = Some("neither MetricName nor Metrics".into());
    }
    alarm
}

// --- Metric math -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Number(f64),
    Id(String),
    Negate(Box<Expr>),
    Binary(String, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

impl Expr {
    fn ids(&self, into: &mut BTreeSet<String>) {
        match self {
            Expr::Number(_) => {}
            Expr::Id(id) => {
                into.insert(id.clone());
            }
            Expr::Negate(e) => e.ids(into),
            Expr::Binary(_, a, b) => {
                a.ids(into);
                b.ids(into);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.ids(into)),
        }
    }

    /// The value at time `t` (None: no datapoint there).
    fn eval(&self, series: &HashMap<String, BTreeMap<i64, f64>>, t: i64) -> Option<f64> {
        let truth = |v: f64| v != 0.0;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            Expr::Number(n) => Some(*n),
            Expr::Id(id) => series.get(id)?.get(&t).copied(),
            Expr::Negate(e) => e.eval(series, t).map(|v| -v),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(series, t)?, b.eval(series, t)?);
                let v = match op.as_str() {
                    "+" => a + b,
                    "-" => a - b,
                    "*" => a * b,
                    "/" => {
                        if b == 0.0 {
                            return None;
                        }
                        a / b
                    }
                    ">" => flag(a > b),
                    ">=" => flag(a >= b),
                    "<" => flag(a < b),
                    "<=" => flag(a <= b),
                    "==" => flag(a == b),
                    "!=" => flag(a != b),
                    "AND" => flag(truth(a) && truth(b)),
                    "OR" => flag(truth(a) || truth(b)),
                    _ => return None,
                };
                Some(v)
            }
            Expr::Call(f, args) => match (f.as_str(), args.as_slice()) {
                ("FILL", [x, value]) => x.eval(series, t).or_else(|| value.eval(series, t)),
                ("IF", [c, a]) => {
                    if truth(c.eval(series, t)?) {
                        a.eval(series, t)
                    } else {
                        None
                    }
                }
                ("IF", [c, a, b]) => {
                    if truth(c.eval(series, t)?) {
                        a.eval(series, t)
                    } else {
                        b.eval(series, t)
                    }
                }
                ("ABS", [x]) => x.eval(series, t).map(f64::abs),
                _ => None,
            },
        }
    }
}

/// Parses the metric math this module evaluates (see the module docs); an error names what is
/// not supported.
fn parse_expression(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let e = p.or()?;
    if p.at != p.tokens.len() {
        return Err(format!("unexpected {:?} in {text:?}", p.tokens[p.at]));
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
    Op(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Token::Number(
                s.parse().map_err(|_| format!("bad number {s:?}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                ">=" | "<=" | "==" | "!=" | "&&" | "||" => two,
                _ if "+-*/()<>,".contains(c) => c.to_string(),
                _ => return Err(format!("{c:?} is not supported locally")),
            };
            i += op.chars().count();
            out.push(Token::Op(match op.as_str() {
                "&&" => "AND".into(),
                "||" => "OR".into(),
                _ => op,
            }));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Token::Op(o)) => Some(o),
            Some(Token::Word(w)) if w == "AND" || w == "OR" => Some(w),
            _ => None,
        }
    }

    fn binary(
        &mut self,
        ops: &[&str],
        next: fn(&mut Parser) -> Result<Expr, String>,
    ) -> Result<Expr, String> {
        let mut left = next(self)?;
        while let Some(op) = self
            .peek_op()
            .filter(|o| ops.contains(o))
            .map(str::to_string)
        {
            self.at += 1;
            let right = next(self)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.binary(&["OR"], Parser::and)
    }
    fn and(&mut self) -> Result<Expr, String> {
        self.binary(&["AND"], Parser::comparison)
    }
    fn comparison(&mut self) -> Result<Expr, String> {
        self.binary(&[">", ">=", "<", "<=", "==", "!="], Parser::sum)
    }
    fn sum(&mut self) -> Result<Expr, String> {
        self.binary(&["+", "-"], Parser::product)
    }
    fn product(&mut self) -> Result<Expr, String> {
        self.binary(&["*", "/"], Parser::unary)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_op() == Some("-") {
            self.at += 1;
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.peek_op() == Some(op) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {op:?}"))
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("unexpected end")?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Op(o) if o == "(" => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Token::Word(w) if self.peek_op() == Some("(") => {
                self.at += 1;
                let mut args = Vec::new();
                if self.peek_op() != Some(")") {
                    loop {
                        args.push(self.or()?);
                        if self.peek_op() == Some(",") {
                            self.at += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(")")?;
                let known = matches!(
                    (w.as_str(), args.len()),
                    ("FILL", 2) | ("IF", 2) | ("IF", 3) | ("ABS", 1)
                );
                if !known {
                    return Err(format!("the function {w} is not supported locally"));
                }
                if w == "FILL" && !matches!(args[1], Expr::Number(_)) {
                    return Err("FILL with other than a number is not supported locally".into());
                }
                Ok(Expr::Call(w, args))
            }
            Token::Word(w) if w.chars().next().is_some_and(|c| c.is_ascii_lowercase()) => {
                Ok(Expr::Id(w))
            }
            other => Err(format!("{other:?} is not supported locally")),
        }
    }
}

/// The page: fetches the data and draws it; no external assets.
const PAGE: &str = include_str!("dashboard.html");

/// The page's Content-Security-Policy: nothing from elsewhere, and of inline scripts only the
/// page's own (pinned by its SHA-256, so an injected script would not run).
static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use base64::Engine;
    use sha2::Digest;
    let script = PAGE
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(script, _)| script);
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pairs: &[(&str, &[(i64, f64)])]) -> HashMap<String, BTreeMap<i64, f64>> {
        pairs
            .iter()
            .map(|(id, points)| (id.to_string(), points.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn metric_math_of_the_template_evaluates() {
        let e = parse_expression(
            "IF((FILL(r0,0)+FILL(r1,0)) > 0, 100 * (FILL(e0,0)+FILL(e1,0)) / (FILL(r0,0)+FILL(r1,0)), 0)",
        )
        .unwrap();
        let s = series(&[
            ("r0", &[(0, 8.0), (60, 0.0)]),
            ("r1", &[(0, 2.0)]),
            ("e0", &[(0, 1.0)]),
        ]);
        assert_eq!(e.eval(&s, 0), Some(10.0));
        assert_eq!(e.eval(&s, 60), Some(0.0));
        let mut ids = BTreeSet::new();
        e.ids(&mut ids);
        assert_eq!(ids.len(), 4);
        let g = parse_expression("IF(FILL(g,0) >= 5, 100 * FILL(f,0) / g, 0)").unwrap();
        let s = series(&[("g", &[(0, 4.0), (60, 10.0)]), ("f", &[(60, 3.0)])]);
        assert_eq!(g.eval(&s, 0), Some(0.0));
        assert_eq!(g.eval(&s, 60), Some(30.0));
        assert_eq!(
            parse_expression("1 + 2 * -3").unwrap().eval(&s, 0),
            Some(-5.0)
        );
        assert!(parse_expression("ANOMALY_DETECTION_BAND(m1)").is_err());
        assert!(parse_expression("SEARCH('{AWS/Lambda}', 'Sum', 60)").is_err());
        assert!(parse_expression("FILL(m, REPEAT)").is_err());
    }

    #[test]
    fn local_paths() {
        assert!(is_local("/_local/dashboard"));
        assert!(is_local("/_local"));
        assert!(!is_local("/_localx"));
        assert!(!is_local("/api/v3/workflows"));
    }
}
