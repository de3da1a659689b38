//! The local stand-in for CloudWatch's metric store: collects the Embedded Metric Format (EMF)
//! lines the functions print (Lambda would send them to CloudWatch Logs, which extracts the
//! metrics) and keeps, per namespace + metric name + dimension set, one-minute buckets of the
//! values for the last [`RETENTION_MINUTES`] minutes. [`super::dashboard`] reads them back as
//! CloudWatch's `GetMetricData` would (statistics over a period).
//!
//! A line is an EMF record when it is a JSON object with `_aws.CloudWatchMetrics`; anything else
//! (the functions' tracing output, the gateway's own messages) is ignored. As CloudWatch does,
//! each metric of a directive is recorded once per dimension set of that directive, with the
//! record's members as the dimension values.

use super::logs::LogSink;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// How long values are kept (CloudWatch dashboards default to the last 3 hours).
pub const RETENTION_MINUTES: i64 = 180;
/// Values kept per bucket for percentiles; past it, values replace a slot at random (a
/// reservoir sample), and Sum/Count/Min/Max stay exact.
const MAX_VALUES_PER_BUCKET: usize = 2000;

/// A metric as CloudWatch names it: namespace, name and its dimensions (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricId {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// The values of one metric in one minute.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub sum: f64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    /// Up to [`MAX_VALUES_PER_BUCKET`] of the values (all of them below that).
    pub values: Vec<f64>,
}

impl Bucket {
    fn add(&mut self, value: f64, seed: u64) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.sum += value;
        self.count += 1;
        if self.values.len() < MAX_VALUES_PER_BUCKET {
            self.values.push(value);
        } else {
            let slot = usize::try_from(seed % self.count).unwrap_or(usize::MAX);
            if let Some(v) = self.values.get_mut(slot) {
                *v = value;
            }
        }
    }

    fn merge(&mut self, other: &Bucket) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        self.values.extend_from_slice(&other.values);
    }
}

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    Sum,
    Average,
    Minimum,
    Maximum,
    SampleCount,
    /// `pNN` (`p99`, `p99.9`): the percentile, 0..=100.
    Percentile(f64),
}

impl Statistic {
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount` or `pNN`.
    pub fn parse(text: &str) -> Option<Statistic> {
        Some(match text {
            "Sum" => Statistic::Sum,
            "Average" | "Avg" => Statistic::Average,
            "Minimum" | "Min" => Statistic::Minimum,
            "Maximum" | "Max" => Statistic::Maximum,
            "SampleCount" => Statistic::SampleCount,
            other => {
                let p: f64 = other
                    .strip_prefix('p')
                    .or_else(|| other.strip_prefix('P'))?
                    .parse()
                    .ok()?;
                if !(0.0..=100.0).contains(&p) {
                    return None;
                }
                Statistic::Percentile(p)
            }
        })
    }

    /// The statistic of the values in `bucket` (None when it has none).
    pub fn of(self, bucket: &Bucket) -> Option<f64> {
        if bucket.count == 0 {
            return None;
        }
        Some(match self {
            Statistic::Sum => bucket.sum,
            Statistic::Average => bucket.sum / bucket.count as f64,
            Statistic::Minimum => bucket.min,
            Statistic::Maximum => bucket.max,
            Statistic::SampleCount => bucket.count as f64,
            Statistic::Percentile(p) => {
                let mut values = bucket.values.clone();
                values.sort_by(f64::total_cmp);
                // Nearest rank, as CloudWatch reports percentiles of few values.
                let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
                let index = rank.clamp(1, values.len().max(1)) - 1;
                *values.get(index)?
            }
        })
    }
}

#[derive(Default)]
struct Store {
    /// Metric -> minute (epoch seconds / 60) -> values.
    series: HashMap<MetricId, BTreeMap<i64, Bucket>>,
    /// The newest minute seen: older buckets than [`RETENTION_MINUTES`] before it are dropped.
    newest: i64,
    lines: u64,
}

/// The collected metrics, shared by the log sink that feeds them and the dashboard that reads
/// them.
#[derive(Default)]
pub struct Metrics {
    store: Mutex<Store>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// A sink that sends every line on to `inner` and collects the EMF ones here.
    pub fn tee(self: &Arc<Self>, inner: LogSink) -> LogSink {
        let metrics = self.clone();
        LogSink::new(move |source, line| {
            metrics.ingest(line);
            inner.line(source, line);
        })
    }

    /// Records the metrics of `line` if it is an EMF record; whether it was.
    pub fn ingest(&self, line: &str) -> bool {
        let line = line.trim();
        if !line.starts_with('{') || !line.contains("\"_aws\"") {
            return false;
        }
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        let Some(points) = points_of(&record) else {
            return false;
        };
        let Ok(mut store) = self.store.lock() else {
            return false;
        };
        store.lines += 1;
        let seed = store.lines;
        for (id, timestamp_ms, values) in points {
            let minute = timestamp_ms.div_euclid(60_000);
            store.newest = store.newest.max(minute);
            let oldest = store.newest - RETENTION_MINUTES;
            if minute <= oldest {
                continue;
            }
            let buckets = store.series.entry(id).or_default();
            let bucket = buckets.entry(minute).or_default();
            for (i, v) in values.into_iter().enumerate() {
                bucket.add(
                    v,
                    seed.wrapping_mul(6364136223846793005)
                        .wrapping_add(i as u64),
                );
            }
            while buckets.first_key_value().is_some_and(|(m, _)| *m <= oldest) {
                buckets.pop_first();
            }
        }
        let oldest = store.newest - RETENTION_MINUTES;
        if store.lines % 256 == 0 {
            store.series.retain(|_, buckets| {
                buckets.retain(|m, _| *m > oldest);
                !buckets.is_empty()
            });
        }
        true
    }

    /// EMF lines collected so far.
    pub fn lines(&self) -> u64 {
        self.store.lock().map(|s| s.lines).unwrap_or(0)
    }

    /// Whether anything was ever recorded for `id`.
    pub fn has(&self, id: &MetricId) -> bool {
        self.store
            .lock()
            .map(|s| s.series.contains_key(id))
            .unwrap_or(false)
    }

    /// Every metric seen (for the page's "collected" list).
    pub fn ids(&self) -> Vec<MetricId> {
        let mut ids: Vec<MetricId> = self
            .store
            .lock()
            .map(|s| s.series.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// `stat` of `id` for each period of `period_s` seconds that starts in
    /// `[start_s, end_s)` (epoch seconds, aligned down to the period) and has values: the
    /// period's start (epoch seconds) and the value.
    pub fn query(
        &self,
        id: &MetricId,
        stat: Statistic,
        period_s: i64,
        start_s: i64,
        end_s: i64,
    ) -> Vec<(i64, f64)> {
        let period_s = period_s.max(60) / 60 * 60;
        let Ok(store) = self.store.lock() else {
            return Vec::new();
        };
        let Some(buckets) = store.series.get(id) else {
            return Vec::new();
        };
        let first = start_s.div_euclid(period_s) * period_s;
        let mut periods: BTreeMap<i64, Bucket> = BTreeMap::new();
        for (minute, bucket) in buckets.range(first / 60..end_s.div_euclid(60) + 1) {
            let at = (minute * 60).div_euclid(period_s) * period_s;
            if at >= end_s {
                continue;
            }
            periods.entry(at).or_default().merge(bucket);
        }
        periods
            .into_iter()
            .filter_map(|(at, b)| stat.of(&b).map(|v| (at, v)))
            .collect()
    }
}

/// The metrics of an EMF record: each (metric, timestamp in ms, values); None when `record` is
/// not one.
fn points_of(record: &Value) -> Option<Vec<(MetricId, i64, Vec<f64>)>> {
    let aws = record.get("_aws")?;
    let directives = aws.get("CloudWatchMetrics")?.as_array()?;
    let timestamp_ms = aws
        .get("Timestamp")
        .and_then(|t| t.as_i64().or_else(|| t.as_f64().map(|f| f as i64)))
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let mut out = Vec::new();
    for directive in directives {
        let Some(namespace) = directive.get("Namespace").and_then(Value::as_str) else {
            continue;
        };
        let sets: Vec<Vec<&str>> = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .map(|sets| {
                sets.iter()
                    .map(|set| {
                        set.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        // No dimension set: the metric without dimensions.
        let sets = if sets.is_empty() {
            vec![Vec::new()]
        } else {
            sets
        };
        for metric in directive
            .get("Metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = metric.get("Name").and_then(Value::as_str) else {
                continue;
            };
            let values: Vec<f64> = match record.get(name) {
                Some(Value::Number(n)) => n.as_f64().into_iter().collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_f64).collect(),
                _ => continue,
            };
            if values.is_empty() {
                continue;
            }
            for set in &sets {
                let dimensions: Option<BTreeMap<String, String>> = set
                    .iter()
                    .map(|d| {
                        let v = record.get(*d)?;
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        Some(((*d).to_string(), v))
                    })
                    .collect();
                // A dimension without its member: CloudWatch rejects the record's set.
                let Some(dimensions) = dimensions else {
                    continue;
                };
                out.push((
                    MetricId {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        dimensions,
                    },
                    timestamp_ms,
                    values.clone(),
                ));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, dims: &[(&str, &str)]) -> MetricId {
        MetricId {
            namespace: "DocumentWorkflowChain".into(),
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const T: i64 = 1_764_558_000_000; // a whole minute

    fn line(ts: i64, status: &str, latency: f64) -> String {
        format!(
            r#"{{"_aws":{{"Timestamp":{ts},"CloudWatchMetrics":[{{"Namespace":"DocumentWorkflowChain","Dimensions":[["Service"],["Service","StatusClass"]],"Metrics":[{{"Name":"Requests","Unit":"Count"}},{{"Name":"RequestLatency","Unit":"Milliseconds"}}]}}]}},"Service":"ApiWorkflowsFunction","StatusClass":"{status}","Requests":1,"RequestLatency":{latency}}}"#
        )
    }

    #[test]
    fn records_each_dimension_set_and_ignores_other_lines() {
        let m = Metrics::default();
        assert!(m.ingest(&line(T, "2xx", 10.0)));
        assert!(m.ingest(&line(T + 1000, "4xx", 30.0)));
        assert!(m.ingest(&line(T + 61_000, "2xx", 20.0)));
        assert!(!m.ingest("INFO api-workflows: request done"));
        assert!(!m.ingest(r#"{"level":"INFO","message":"x"}"#));
        assert!(!m.ingest(r#"{"_aws": "#));
        let s = T / 1000;
        let all = id("Requests", &[("Service", "ApiWorkflowsFunction")]);
        assert_eq!(
            m.query(&all, Statistic::Sum, 60, s - 600, s + 600),
            vec![(s, 2.0), (s + 60, 1.0)]
        );
        assert_eq!(
            m.query(&all, Statistic::Sum, 300, s - 600, s + 600),
            vec![(s.div_euclid(300) * 300, 3.0)]
        );
        let ok = id(
            "Requests",
            &[("Service", "ApiWorkflowsFunction"), ("StatusClass", "2xx")],
        );
        assert_eq!(
            m.query(&ok, Statistic::SampleCount, 60, s - 600, s + 600),
            vec![(s, 1.0), (s + 60, 1.0)]
        );
        let latency = id("RequestLatency", &[("Service", "ApiWorkflowsFunction")]);
        assert_eq!(
            m.query(&latency, Statistic::Average, 60, s, s + 60),
            vec![(s, 20.0)]
        );
        assert_eq!(
            m.query(&latency, Statistic::Percentile(50.0), 120, s, s + 120),
            vec![(s.div_euclid(120) * 120, 20.0)]
        );
        assert_eq!(
            m.query(&latency, Statistic::Maximum, 60, s, s + 120),
            vec![(s, 30.0), (s + 60, 20.0)]
        );
        assert_eq!(m.lines(), 3);
    }

    #[test]
    fn statistics_parse() {
        assert_eq!(Statistic::parse("p99"), Some(Statistic::Percentile(99.0)));
        assert_eq!(Statistic::parse("Sum"), Some(Statistic::Sum));
        assert_eq!(Statistic::parse("p101"), None);
        assert_eq!(Statistic::parse("tm99"), None);
    }

    #[test]
    fn old_minutes_are_dropped() {
        let m = Metrics::default();
        for i in 0..300 {
            m.ingest(&line(T + i * 60_000, "2xx", 1.0));
        }
        let s = T / 1000;
        let all = id("Requests", &[("Service", "ApiWorkflowsFunction")]);
        let kept = m.query(&all, Statistic::Sum, 60, s, s + 400 * 60);
        assert_eq!(kept.len(), RETENTION_MINUTES as usize);
        assert_eq!(kept.last().map(|p| p.0), Some(s + 299 * 60));
    }
}
