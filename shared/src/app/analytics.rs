//! Analytics use cases: counting the table's changes (the stream side of `api-analytics`) and
//! the reports of `/api/v3/analytics` (who may see which counters, which buckets a range reads).

use super::AppError;
use crate::domain::Principal;
use crate::domain::analytics::{
    self as a, Bucket, Insight, ModelGeneration, Overview, QualityFigures, Report, Scope, Window,
};
use crate::domain::broadcast::Change;
use crate::ports::{Analytics, StoreError, Workflows};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// One stream record to count and audit: its id and what it brings.
pub struct Counted {
    pub event_id: String,
    pub what: Recorded,
}

/// What a stream record brings.
pub enum Recorded {
    /// A workflow, node or run changed, and who changed it (the item's `changed_by` stamp, when
    /// it has one).
    Change {
        change: Box<Change>,
        by: Option<crate::domain::audit::ChangedBy>,
    },
    /// An audit event a request handler left in the inbox.
    Note {
        chain: crate::domain::audit::Chain,
        draft: crate::domain::audit::Draft,
    },
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CountOutcome {
    /// Changes added to the counters now.
    pub counted: usize,
    /// Changes counted before (a retried batch): nothing added.
    pub repeated: usize,
    /// Changes that count nothing.
    pub ignored: usize,
}

/// Counts `records` in order, each exactly once. Stops at the first record that cannot be
/// counted and returns its index with the error: the caller reports it (and what follows) as
/// the batch's failures, so the event source retries from there.
pub async fn count(
    analytics: &(impl Analytics + ?Sized),
    records: &[Counted],
) -> Result<CountOutcome, (usize, CountOutcome, StoreError)> {
    let mut out = CountOutcome::default();
    for (i, record) in records.iter().enumerate() {
        let Recorded::Change { change, .. } = &record.what else {
            out.ignored += 1;
            continue;
        };
        let Some(tally) = a::tally(change) else {
            out.ignored += 1;
            continue;
        };
        match analytics.record(&record.event_id, &tally).await {
            Ok(true) => out.counted += 1,
            Ok(false) => out.repeated += 1,
            Err(e) => return Err((i, out, e)),
        }
    }
    Ok(out)
}

/// Whose counters a request asks for: `user` (admins: anyone's; others: only their own) or,
/// with `system`, everyone's (admins only).
pub fn scope_of(
    principal: &Principal,
    user: Option<&str>,
    system: bool,
) -> Result<Scope, AppError> {
    match (user, system) {
        (Some(_), true) => Err(AppError::Validation(vec![crate::domain::FieldError::new(
            "scope",
            "give either user or scope=system, not both",
        )])),
        (_, true) if principal.is_admin() => Ok(Scope::System),
        (_, true) => Err(AppError::Forbidden(
            "only admins may read the system's analytics",
        )),
        (Some(u), false) if principal.owns(u) || principal.is_admin() => {
            Ok(Scope::User(u.to_string()))
        }
        (Some(_), false) => Err(AppError::Forbidden(
            "only admins may read another user's analytics",
        )),
        (None, false) => Ok(Scope::User(principal.user_id.clone())),
    }
}

/// The workflow's counters, if the caller may see the workflow (else 404, as for every other
/// workflow route).
pub async fn workflow_scope(
    workflows: &(impl Workflows + ?Sized),
    principal: &Principal,
    id: &str,
) -> Result<Scope, AppError> {
    let workflow = workflows.get_workflow(id).await?;
    super::workflows::visible(workflow, principal)?;
    Ok(Scope::Workflow(id.to_string()))
}

/// The buckets of `scope` over `window` (one Query).
async fn report(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<Report, AppError> {
    let buckets = analytics.buckets(scope, window).await?;
    Ok(Report::of(window, &buckets))
}

/// The window and who it is about, in every answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `hour` (ranges up to 7 days) or `day`.
    pub granularity: a::Granularity,
    /// `user:<id>`, `workflow:<id>` or `system`.
    pub scope: String,
}

fn period(scope: &Scope, w: &Window) -> Period {
    Period {
        from: w.from,
        to: w.to,
        granularity: w.granularity,
        scope: match scope {
            Scope::User(u) => format!("user:{u}"),
            Scope::Workflow(id) => format!("workflow:{id}"),
            Scope::System => "system".into(),
        },
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    pub start: DateTime<Utc>,
    pub runs_started: u64,
    pub runs_succeeded: u64,
    pub runs_failed: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverviewReport {
    pub period: Period,
    #[serde(flatten)]
    pub overview: Overview,
    /// Runs per bucket that has any.
    pub series: Vec<SeriesPoint>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenerationReport {
    pub period: Period,
    pub models: Vec<ModelGeneration>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QualityReport {
    pub period: Period,
    #[serde(flatten)]
    pub quality: QualityFigures,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowReport {
    pub period: Period,
    pub overview: Overview,
    pub models: Vec<ModelGeneration>,
    pub quality: QualityFigures,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InsightsReport {
    pub period: Period,
    /// The window before, of the same length, that the rules compare with.
    pub previous: Period,
    pub insights: Vec<Insight>,
}

fn series(r: &Report) -> Vec<SeriesPoint> {
    r.series
        .iter()
        .map(|(start, [s, ok, failed])| SeriesPoint {
            start: *start,
            runs_started: *s,
            runs_succeeded: *ok,
            runs_failed: *failed,
        })
        .collect()
}

pub async fn overview(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<OverviewReport, AppError> {
    let r = report(analytics, scope, window).await?;
    Ok(OverviewReport {
        period: period(scope, window),
        overview: r.overview(),
        series: series(&r),
    })
}

pub async fn generation(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<GenerationReport, AppError> {
    let r = report(analytics, scope, window).await?;
    Ok(GenerationReport {
        period: period(scope, window),
        models: r.generation(),
    })
}

pub async fn quality(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<QualityReport, AppError> {
    let r = report(analytics, scope, window).await?;
    Ok(QualityReport {
        period: period(scope, window),
        quality: r.quality(),
    })
}

pub async fn workflow(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<WorkflowReport, AppError> {
    let r = report(analytics, scope, window).await?;
    Ok(WorkflowReport {
        period: period(scope, window),
        overview: r.overview(),
        models: r.generation(),
        quality: r.quality(),
    })
}

/// The rules over `window` and the window before it, read together in one Query.
pub async fn insights(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<InsightsReport, AppError> {
    let previous = window.previous();
    let both = Window {
        from: previous.from,
        ..*window
    };
    let buckets = analytics.buckets(scope, &both).await?;
    let (now, before) = (
        Report::of(window, &buckets),
        Report::of(&previous, &buckets),
    );
    Ok(InsightsReport {
        period: period(scope, window),
        previous: period(scope, &previous),
        insights: a::insights(&now, &before),
    })
}

/// An export: the columns, and one row per bucket and group in time order.
pub struct Export {
    pub period: Period,
    pub rows: Vec<Vec<serde_json::Value>>,
}

pub async fn export(
    analytics: &(impl Analytics + ?Sized),
    scope: &Scope,
    window: &Window,
) -> Result<Export, AppError> {
    let mut buckets: Vec<Bucket> = analytics
        .buckets(scope, window)
        .await?
        .into_iter()
        .filter(|b| b.start >= window.from && b.start < window.to)
        .collect();
    buckets.sort_by(|x, y| (x.start, &x.group).cmp(&(y.start, &y.group)));
    Ok(Export {
        period: period(scope, window),
        rows: buckets
            .iter()
            .map(|b| a::export_row(b, window.granularity))
            .collect(),
    })
}

impl Export {
    /// RFC 4180 CSV with a header row; text cells that a spreadsheet would run as a formula
    /// (`=`, `+`, `-`, `@`) are prefixed with `'`.
    pub fn csv(&self) -> String {
        let mut out = a::EXPORT_COLUMNS.join(",");
        out.push_str("\r\n");
        for row in &self.rows {
            csv_row(row, &mut out);
        }
        out
    }

    /// `{"period": ..., "columns": [...], "rows": [[...]]}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "period": self.period,
            "columns": a::EXPORT_COLUMNS,
            "rows": self.rows,
        })
    }
}

/// Appends `cells` as one CSV record (RFC 4180, CRLF), defused as [`Export::csv`] says.
pub fn csv_row(cells: &[serde_json::Value], out: &mut String) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(c));
    }
    out.push_str("\r\n");
}

fn csv_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => {
            let s = if s.starts_with(['=', '+', '-', '@']) {
                format!("'{s}")
            } else {
                s.clone()
            };
            if s.contains([',', '"', '\r', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        let e = Export {
            period: Period {
                from: Utc::now(),
                to: Utc::now(),
                granularity: a::Granularity::Hour,
                scope: "system".into(),
            },
            rows: vec![vec![
                serde_json::json!("2026-11-30T10:00:00Z"),
                serde_json::json!("hour"),
                serde_json::json!("=cmd|\"x\",y"),
                serde_json::json!(3),
                serde_json::Value::Null,
            ]],
        };
        let csv = e.csv();
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some(a::EXPORT_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some("2026-11-30T10:00:00Z,hour,\"'=cmd|\"\"x\"\",y\",3,")
        );
    }
}
