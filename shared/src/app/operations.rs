//! Operations: the health checker (`GET /status`) over the dependencies' [`Probe`]s, and the
//! aggregated counters and histograms in Prometheus' text exposition format (`GET /metrics`).

use super::AppError;
use crate::domain::analytics::{self as a, Report, Scope as AnalyticsScope, Window};
use crate::domain::histogram::bucket_bounds;
use crate::domain::{Principal, Scope};
use crate::ports::{Analytics, Check, Probe};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusReport {
    /// `ok` when every check is, else `degraded`.
    pub status: String,
    pub checked_at: DateTime<Utc>,
    /// The checks in a fixed order: table, queues, key, generator.
    pub checks: Vec<Check>,
}

/// Admins only: every probe at once.
pub async fn status(
    principal: &Principal,
    probes: &[&dyn Probe],
    now: DateTime<Utc>,
) -> Result<StatusReport, AppError> {
    if !principal.is_admin() {
        return Err(AppError::Forbidden(
            "only admins may read the system's status",
        ));
    }
    let checks: Vec<Check> = futures_util::future::join_all(probes.iter().map(|p| p.probe()))
        .await
        .into_iter()
        .flatten()
        .collect();
    let ok = checks.iter().all(|c| c.ok);
    Ok(StatusReport {
        status: if ok { "ok" } else { "degraded" }.into(),
        checked_at: now,
        checks,
    })
}

/// Upper bounds (ms) of the exposed generation latency histogram.
pub const LATENCY_LE_MS: [u64; 10] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000,
];

/// Admins, or an API key with the `metrics` scope: the system's counters since `since` (two
/// years of day buckets, one Query), in Prometheus' text format. Counters only grow while the
/// day buckets are kept.
pub async fn prometheus(
    analytics: &(impl Analytics + ?Sized),
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    if !principal.has(Scope::Metrics) {
        return Err(AppError::Forbidden(
            "only admins or API keys with the metrics scope may read the metrics",
        ));
    }
    let window = Window::parse(
        None,
        Some(now - chrono::Duration::days(730)),
        Some(now),
        now,
    )
    .map_err(AppError::Internal)?;
    let buckets = analytics.buckets(&AnalyticsScope::System, &window).await?;
    Ok(exposition(&Report::of(&window, &buckets)))
}

/// The counters and histograms of `r` in the text exposition format (version 0.0.4).
pub fn exposition(r: &Report) -> String {
    let mut out = String::new();
    let counters = [
        (a::RUNS_STARTED, "Runs created."),
        (a::RUNS_SUCCEEDED, "Runs that succeeded."),
        (a::RUNS_FAILED, "Runs that failed."),
        (a::RUNS_CANCELLED, "Runs cancelled."),
        (a::STEPS_SUCCEEDED, "Steps that wrote their document."),
        (a::STEPS_FAILED, "Steps that ended failed."),
        (a::RETRIES, "Step attempts after the first."),
        (a::DOCUMENTS, "Documents generated."),
        (a::WORDS, "Words generated."),
        (a::TOKENS_IN, "Model input tokens."),
        (a::TOKENS_OUT, "Model output tokens."),
    ];
    for (name, help) in counters {
        let _ = writeln!(out, "# HELP dwc_{name}_total {help}");
        let _ = writeln!(out, "# TYPE dwc_{name}_total counter");
        let _ = writeln!(out, "dwc_{name}_total {}", r.total(name));
    }
    let models = r.generation();
    for (metric, help, pick) in [
        ("generations", "Successful model calls, by model.", 0),
        ("generation_errors", "Failed model calls, by model.", 1),
    ] {
        let _ = writeln!(out, "# HELP dwc_{metric}_total {help}");
        let _ = writeln!(out, "# TYPE dwc_{metric}_total counter");
        for m in &models {
            let v = if pick == 0 { m.generations } else { m.errors };
            let _ = writeln!(
                out,
                "dwc_{metric}_total{{model=\"{}\"}} {v}",
                label(&m.model)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP dwc_generation_latency_ms Latency of successful model calls (ms), by model."
    );
    let _ = writeln!(out, "# TYPE dwc_generation_latency_ms histogram");
    for (model, f) in &r.models {
        let model = label(model);
        let buckets: Vec<(u64, u64, f64)> = f
            .latency
            .buckets()
            .map(|(i, c)| {
                let (low, width) = bucket_bounds(i);
                (
                    low + width - 1,
                    c,
                    crate::domain::histogram::bucket_value(i),
                )
            })
            .collect();
        for le in LATENCY_LE_MS {
            let n: u64 = buckets
                .iter()
                .filter(|(hi, _, _)| *hi <= le)
                .map(|b| b.1)
                .sum();
            let _ = writeln!(
                out,
                "dwc_generation_latency_ms_bucket{{model=\"{model}\",le=\"{le}\"}} {n}"
            );
        }
        let count = f.latency.count();
        let sum: f64 = buckets.iter().map(|(_, c, v)| *c as f64 * v).sum();
        let _ = writeln!(
            out,
            "dwc_generation_latency_ms_bucket{{model=\"{model}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "dwc_generation_latency_ms_sum{{model=\"{model}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "dwc_generation_latency_ms_count{{model=\"{model}\"}} {count}"
        );
    }
    out
}

/// A label value escaped as the format requires (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analytics::{Bucket, Group};
    use chrono::TimeZone;

    #[test]
    fn the_exposition_has_counters_and_a_cumulative_histogram_per_model() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 30, 0, 0, 0)
            .single()
            .expect("t");
        let w = Window::parse(None, Some(t), Some(t + chrono::Duration::days(1)), t).expect("w");
        let l = |ms| format!("l_{}", crate::domain::histogram::bucket_of(ms));
        let buckets = [
            Bucket {
                start: t,
                group: Group::All,
                counters: [(a::RUNS_STARTED.to_string(), 4)].into(),
            },
            Bucket {
                start: t,
                group: Group::Model("openai:\"x\"".into()),
                counters: [(a::GENERATIONS.to_string(), 3), (l(90), 1), (l(2_000), 2)].into(),
            },
        ];
        let text = exposition(&Report::of(&w, &buckets));
        assert!(text.contains("# TYPE dwc_runs_started_total counter\ndwc_runs_started_total 4\n"));
        assert!(text.contains("dwc_runs_failed_total 0\n"));
        assert!(
            text.contains(r#"dwc_generations_total{model="openai:\"x\""} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dwc_generation_latency_ms_bucket{model="openai:\"x\"",le="100"} 1"#)
        );
        assert!(
            text.contains(r#"dwc_generation_latency_ms_bucket{model="openai:\"x\"",le="1000"} 1"#)
        );
        assert!(
            text.contains(r#"dwc_generation_latency_ms_bucket{model="openai:\"x\"",le="2500"} 3"#)
        );
        assert!(
            text.contains(r#"dwc_generation_latency_ms_bucket{model="openai:\"x\"",le="+Inf"} 3"#)
        );
        assert!(text.contains(r#"dwc_generation_latency_ms_count{model="openai:\"x\""} 3"#));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
        }
    }
}
