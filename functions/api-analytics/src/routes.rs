//! One function per route: parse the query, pick whose counters and which window, call the
//! use case, shape the answer. The `#[utoipa::path]` annotations generate the OpenAPI document.

use crate::{Api, Route};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::app::analytics::{
    self, GenerationReport, InsightsReport, OverviewReport, QualityReport, WorkflowReport,
};
use shared::app::audit::{self, CheckedReport, ExportFormat};
use shared::app::operations::{self, StatusReport};
use shared::app::workflows::requests::ListResponse;
use shared::domain::Principal;
use shared::domain::analytics::{Scope, Window};
use shared::domain::audit::{AuditEvent, ComplianceReport, Outcome, Verification};
use shared::http::Problem;
use shared::http::pipeline::{Access, Call, Reply, Routes};
use shared::http::request as rq;
use shared::http::response::{json, page, raw_json};
use shared::ports::AuditFilter;
use std::collections::HashMap;

impl Routes for Route {
    type Api = Api;

    const TABLE: &'static [(&'static str, Route)] = &[
        ("GET /api/v3/analytics/openapi.json", Route::OpenApi),
        ("GET /api/v3/analytics/overview", Route::Overview),
        ("GET /api/v3/analytics/generation", Route::Generation),
        ("GET /api/v3/analytics/quality", Route::Quality),
        ("GET /api/v3/analytics/workflows/{id}", Route::Workflow),
        ("GET /api/v3/analytics/insights", Route::Insights),
        ("GET /api/v3/analytics/export", Route::Export),
        ("GET /status", Route::Status),
        ("GET /api/v3/status", Route::ApiStatus),
        ("GET /metrics", Route::Metrics),
        ("GET /api/v3/audit", Route::Audit),
        ("GET /api/v3/audit/verify", Route::AuditVerify),
        ("GET /api/v3/audit/export", Route::AuditExport),
        ("GET /api/v3/audit/reports", Route::AuditReports),
        ("GET /api/v3/audit/reports/{date}", Route::AuditReport),
    ];

    fn access(self) -> Access {
        match self {
            Route::OpenApi => Access::Public,
            _ => Access::Authenticated,
        }
    }

    async fn dispatch(self, api: &Api, call: &Call<'_>) -> Reply {
        let req = call.req;
        let p = || call.principal();
        match self {
            Route::OpenApi => Ok(openapi()),
            Route::Overview => overview(api, p()?, req).await,
            Route::Generation => generation(api, p()?, req).await,
            Route::Quality => quality(api, p()?, req).await,
            Route::Workflow => workflow(api, p()?, &call.id("id")?, req).await,
            Route::Insights => insights(api, p()?, req).await,
            Route::Export => export(api, p()?, req).await,
            Route::Status => status(api, p()?).await,
            Route::ApiStatus => api_status(api, p()?).await,
            Route::Metrics => metrics(api, p()?).await,
            Route::Audit => audit(api, p()?, req).await,
            Route::AuditVerify => audit_verify(api, p()?, req).await,
            Route::AuditExport => audit_export(api, p()?, req).await,
            Route::AuditReports => audit_reports(api, p()?, req).await,
            Route::AuditReport => audit_report(api, p()?, req).await,
        }
    }
}

/// The query parameters of a range: `range` or `from`/`to`.
const RANGE_PARAMS: [&str; 3] = ["range", "from", "to"];
/// And whose counters: `user` (admins: anyone; others: themselves) or `scope=system` (admins).
const SCOPE_PARAMS: [&str; 2] = ["user", "scope"];

fn window(api: &Api, q: &HashMap<String, String>) -> Result<Window, Problem> {
    let now = api.pipeline.clock.now();
    Window::parse(
        q.get("range").map(String::as_str),
        rq::time(q, "from")?,
        rq::time(q, "to")?,
        now,
    )
    .map_err(|m| {
        let name = if m.starts_with("range") {
            "range"
        } else {
            "from"
        };
        Problem::bad_parameter(name, m)
    })
}

/// The caller's scope and window from a query that may name `extra` parameters too.
fn scoped(
    api: &Api,
    p: &Principal,
    req: &Request,
    extra: &[&str],
) -> Result<(Scope, Window, HashMap<String, String>), Problem> {
    let allowed: Vec<&str> = RANGE_PARAMS
        .iter()
        .chain(SCOPE_PARAMS.iter())
        .chain(extra)
        .copied()
        .collect();
    let q = rq::query(req, &allowed)?;
    let system = match q.get("scope").map(String::as_str) {
        None => false,
        Some("system") => true,
        Some(_) => return Err(Problem::bad_parameter("scope", "the only scope is system")),
    };
    let scope = analytics::scope_of(p, q.get("user").map(String::as_str), system)?;
    Ok((scope, window(api, &q)?, q))
}

/// This function's OpenAPI document.
#[utoipa::path(get, path = "/api/v3/analytics/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub fn openapi() -> Response<Body> {
    raw_json(StatusCode::OK, crate::openapi::document_json().to_string())
}

/// Runs started, succeeded, failed and cancelled, the completion rate, steps, retries,
/// documents, words and tokens over a range, with runs per hour (or day).
#[utoipa::path(get, path = "/api/v3/analytics/overview", tag = "analytics", params(Params),
    responses((status = 200, body = OverviewReport), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Another user's or the system's figures, asked by a non-admin")))]
pub async fn overview(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (scope, w, _) = scoped(api, p, req, &[])?;
    let r = analytics::overview(api.analytics.as_ref(), &scope, &w).await?;
    Ok(json(StatusCode::OK, &r))
}

/// Per model: successful generations with their latency P50/P95/P99, failed attempts by
/// class, tokens.
#[utoipa::path(get, path = "/api/v3/analytics/generation", tag = "analytics", params(Params),
    responses((status = 200, body = GenerationReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn generation(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (scope, w, _) = scoped(api, p, req, &[])?;
    let r = analytics::generation(api.analytics.as_ref(), &scope, &w).await?;
    Ok(json(StatusCode::OK, &r))
}

/// The distribution of generated documents' quality scores (0-100).
#[utoipa::path(get, path = "/api/v3/analytics/quality", tag = "analytics", params(Params),
    responses((status = 200, body = QualityReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn quality(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (scope, w, _) = scoped(api, p, req, &[])?;
    let r = analytics::quality(api.analytics.as_ref(), &scope, &w).await?;
    Ok(json(StatusCode::OK, &r))
}

/// Overview, generation and quality of one workflow the caller may read.
#[utoipa::path(get, path = "/api/v3/analytics/workflows/{id}", tag = "analytics",
    params(("id" = String, Path), RangeParams),
    responses((status = 200, body = WorkflowReport), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "No such workflow, or not one the caller may read")))]
pub async fn workflow(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let q = rq::query(req, &RANGE_PARAMS)?;
    let w = window(api, &q)?;
    let scope = analytics::workflow_scope(api.workflows.as_ref(), p, id).await?;
    let r = analytics::workflow(api.analytics.as_ref(), &scope, &w).await?;
    Ok(json(StatusCode::OK, &r))
}

/// Findings of rules over the range and the one before it (completion rate under 95 %, a
/// model's failure rate tripling, latency doubling, many retries, quality dropping), each with
/// the figures it compared.
#[utoipa::path(get, path = "/api/v3/analytics/insights", tag = "analytics", params(Params),
    responses((status = 200, body = InsightsReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn insights(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (scope, w, _) = scoped(api, p, req, &[])?;
    let r = analytics::insights(api.analytics.as_ref(), &scope, &w).await?;
    Ok(json(StatusCode::OK, &r))
}

/// The counters of a range, one row per hour (or day) and group (all, or one model): CSV
/// (`format=csv`, RFC 4180 with a header row) or JSON (`{"period", "columns", "rows"}`).
#[utoipa::path(get, path = "/api/v3/analytics/export", tag = "analytics",
    params(Params, ("format" = Option<String>, Query, description = "`json` (default) or `csv`", example = "csv")),
    responses((status = 200, description = "The rows", content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn export(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (scope, w, q) = scoped(api, p, req, &["format"])?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Problem::bad_parameter("format", "must be json or csv")),
    };
    let e = analytics::export(api.analytics.as_ref(), &scope, &w).await?;
    if !csv {
        return Ok(json(StatusCode::OK, &e.json()));
    }
    let mut r = Response::new(Body::Text(e.csv()));
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        http::header::CONTENT_DISPOSITION,
        http::HeaderValue::from_static("attachment; filename=\"analytics.csv\""),
    );
    Ok(r)
}

/// The range parameters (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RangeParams {
    /// `1h`, `24h` (default), `7d`, `30d`, `90d` or `1y`, ending now; not with `from`.
    #[param(pattern = "^(1h|24h|7d|30d|90d|1y)$")]
    range: Option<String>,
    /// Start of a custom range (RFC 3339); ranges up to 7 days are read by hour, longer ones
    /// by day, widened to whole hours or days; at most two years.
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of a custom range (RFC 3339, default now); needs `from`.
    to: Option<chrono::DateTime<chrono::Utc>>,
}

/// Range and scope parameters (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Params {
    /// `1h`, `24h` (default), `7d`, `30d`, `90d` or `1y`, ending now; not with `from`.
    #[param(pattern = "^(1h|24h|7d|30d|90d|1y)$")]
    range: Option<String>,
    /// Start of a custom range (RFC 3339); ranges up to 7 days are read by hour, longer ones
    /// by day, widened to whole hours or days; at most two years.
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of a custom range (RFC 3339, default now); needs `from`.
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Whose figures: the caller's by default; admins may name any user.
    user: Option<String>,
    /// `system`: everyone's (admins only); not with `user`.
    #[param(pattern = "^system$")]
    scope: Option<String>,
}

/// Admins: the health checker. Checks the table, each step queue with its dead-letter queue,
/// the KMS key and the generator's endpoint at once, each with its latency; `degraded` (and
/// 503) when any check fails, so a load balancer or uptime check can use it.
#[utoipa::path(get, path = "/status", tag = "operations",
    responses((status = 200, body = StatusReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = StatusReport, description = "A check failed")))]
pub async fn status(api: &Api, p: &Principal) -> Reply {
    let probes: Vec<&dyn shared::ports::Probe> = api.probes.iter().map(|p| p.as_ref()).collect();
    let r = operations::status(p, &probes, api.pipeline.clock.now()).await?;
    let code = if r.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(code, &r))
}

/// The same as `GET /status`, under the API's base path.
#[utoipa::path(get, path = "/api/v3/status", tag = "operations",
    responses((status = 200, body = StatusReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = StatusReport, description = "A check failed")))]
pub async fn api_status(api: &Api, p: &Principal) -> Reply {
    status(api, p).await
}

/// Admins, or API keys with the `metrics` scope: the system's counters (runs, steps, retries,
/// documents, words, tokens, generations by model) and the generation latency histogram by
/// model, in Prometheus' text exposition format, for scraping into Prometheus and Grafana.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn metrics(api: &Api, p: &Principal) -> Reply {
    let text = operations::prometheus(api.analytics.as_ref(), p, api.pipeline.clock.now()).await?;
    let mut r = Response::new(Body::Text(text));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

/// The chain, filter and query of an audit listing or export (which may name `extra`
/// parameters too).
fn audit_query(
    p: &Principal,
    req: &Request,
    extra: &[&str],
) -> Result<
    (
        shared::domain::audit::Chain,
        AuditFilter,
        HashMap<String, String>,
    ),
    Problem,
> {
    let allowed: Vec<&str> = [
        "user", "scope", "action", "outcome", "actor", "target", "from", "to", "cursor",
    ]
    .iter()
    .chain(extra)
    .copied()
    .collect();
    let q = rq::query(req, &allowed)?;
    let chain = audit_chain(p, &q)?;
    let outcome = match q.get("outcome") {
        None => None,
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
            Problem::bad_parameter("outcome", "must be success, failure or denied")
        })?),
    };
    let filter = AuditFilter {
        action: q.get("action").cloned(),
        outcome,
        actor: q.get("actor").cloned(),
        target: q.get("target").cloned(),
        from: rq::time(&q, "from")?,
        to: rq::time(&q, "to")?,
        oldest_first: false,
    };
    Ok((chain, filter, q))
}

/// Whose audit chain: `user` (admins: anyone's; others: their own) or `scope=system` (admins).
fn audit_chain(
    p: &Principal,
    q: &HashMap<String, String>,
) -> Result<shared::domain::audit::Chain, Problem> {
    let system = match q.get("scope").map(String::as_str) {
        None => false,
        Some("system") => true,
        Some(_) => return Err(Problem::bad_parameter("scope", "the only scope is system")),
    };
    Ok(audit::chain_of(
        p,
        q.get("user").map(String::as_str),
        system,
    )?)
}

/// A page of an account's audit events (the caller's by default; admins may name any user or
/// the system's chain), newest first, filtered by action, outcome, actor, target and time.
#[utoipa::path(get, path = "/api/v3/audit", tag = "audit",
    params(AuditParams, ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "1..=200, default 50")),
    responses((status = 200, body = ListResponse<AuditEvent>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Another user's or the system's events, asked by a non-admin"),
        (status = 422, body = Problem, description = "An unknown action")))]
pub async fn audit(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (chain, filter, q) = audit_query(p, req, &["limit"])?;
    let limit = rq::limit(&q, 50, 200)?;
    let events = audit::list(
        api.audit.as_ref(),
        &chain,
        &filter,
        limit as usize,
        rq::cursor(&q)?,
    )
    .await?;
    Ok(page(events))
}

/// Checks an audit chain from its first event: each event's hash against its contents, each
/// link to the event before, the numbering (a deleted event leaves a gap) and the chain's head
/// (a deleted last event leaves the chain short); then its latest seal with the KMS key (a
/// chain rewritten after it was sealed no longer has the sealed hash). `ok` and the first
/// broken link.
#[utoipa::path(get, path = "/api/v3/audit/verify", tag = "audit",
    params(("user" = Option<String>, Query, description = "Whose chain: the caller's by default; admins may name any user"),
        ("scope" = Option<String>, Query, description = "`system`: the system's chain (admins only)")),
    responses((status = 200, body = Verification), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_verify(api: &Api, p: &Principal, req: &Request) -> Reply {
    let q = rq::query(req, &["user", "scope"])?;
    let chain = audit_chain(p, &q)?;
    let horizon = api.retention.map(|r| r.horizon(api.pipeline.clock.now()));
    let v = audit::verify(api.audit.as_ref(), api.sealer.as_ref(), &chain, horizon).await?;
    Ok(json(StatusCode::OK, &v))
}

/// A chain's events that pass the filters, oldest first, as CSV (`format=csv`, RFC 4180, the
/// header row on the first part, cells a spreadsheet would run as formulas defused with `'`)
/// or JSON Lines (`format=json`, one event per line). Written a page at a time as they are
/// read; an answer stops after about 4 MB (under Lambda's 6 MB limit) and its `X-Next-Cursor`
/// header is the `cursor` of the next part. No header: the export is complete.
#[utoipa::path(get, path = "/api/v3/audit/export", tag = "audit",
    params(AuditParams, ("format" = Option<String>, Query, description = "`csv` (default) or `json` (JSON Lines)", example = "csv")),
    responses((status = 200, description = "A part of the export", content((String = "text/csv"), (String = "application/x-ndjson")),
            headers(("X-Next-Cursor" = String, description = "Where the next part starts; absent on the last part"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn audit_export(api: &Api, p: &Principal, req: &Request) -> Reply {
    let (chain, filter, q) = audit_query(p, req, &["format"])?;
    let (format, content_type, extension) = match q.get("format").map(String::as_str) {
        None | Some("csv") => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        Some("json") => (ExportFormat::JsonLines, "application/x-ndjson", "jsonl"),
        Some(_) => return Err(Problem::bad_parameter("format", "must be csv or json")),
    };
    let part = audit::export(
        api.audit.as_ref(),
        &chain,
        &filter,
        format,
        rq::cursor(&q)?,
        api.export_max_bytes,
    )
    .await?;
    let mut r = Response::new(Body::Text(part.text));
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    let name = format!("attachment; filename=\"audit.{extension}\"");
    if let Ok(v) = http::HeaderValue::from_str(&name) {
        headers.insert(http::header::CONTENT_DISPOSITION, v);
    }
    if let Some(next) = part.next
        && let Ok(v) = http::HeaderValue::from_str(&shared::http::cursor::encode(&next))
    {
        headers.insert("x-next-cursor", v);
    }
    Ok(r)
}

/// Admins: the latest daily compliance reports (up to 90), newest first: each day's events by
/// class, action and outcome, failed logins and privilege changes, made by the scheduler after
/// the day ends and sealed with the audit key.
#[utoipa::path(get, path = "/api/v3/audit/reports", tag = "audit",
    responses((status = 200, body = Vec<ComplianceReport>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_reports(api: &Api, p: &Principal, req: &Request) -> Reply {
    rq::query(req, &[])?;
    let r = audit::reports(api.reports.as_ref(), p, 90).await?;
    Ok(json(StatusCode::OK, &r))
}

/// Admins: the compliance report of one day (UTC), checked with the audit key (`mac_valid`),
/// as JSON or as CSV (`format=csv`: `metric,key,value` rows) to download.
#[utoipa::path(get, path = "/api/v3/audit/reports/{date}", tag = "audit",
    params(("date" = String, Path, format = Date, example = "2026-12-05"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses((status = 200, body = CheckedReport, content((CheckedReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "No report of that day (yet)")))]
pub async fn audit_report(api: &Api, p: &Principal, req: &Request) -> Reply {
    use lambda_http::RequestExt;
    let q = rq::query(req, &["format"])?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Problem::bad_parameter("format", "must be json or csv")),
    };
    let params = req.path_parameters_ref();
    let text = params.and_then(|p| p.first("date")).unwrap_or("");
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| Problem::bad_parameter("date", "must be a date, YYYY-MM-DD"))?;
    let r = audit::report(api.reports.as_ref(), api.sealer.as_ref(), p, date).await?;
    if !csv {
        return Ok(json(StatusCode::OK, &r));
    }
    let mut response = Response::new(Body::Text(audit::report_csv(&r)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!("attachment; filename=\"compliance-{date}.csv\"");
    if let Ok(v) = http::HeaderValue::from_str(&name) {
        headers.insert(http::header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Parameters of `GET /api/v3/audit` and its export (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditParams {
    /// Whose events: the caller's by default; admins may name any user.
    user: Option<String>,
    /// `system`: the system's chain (admins only); not with `user`.
    #[param(pattern = "^system$")]
    scope: Option<String>,
    /// One action, e.g. `workflow.created` (the README lists them).
    action: Option<String>,
    /// `success`, `failure` or `denied`.
    #[param(pattern = "^(success|failure|denied)$")]
    outcome: Option<String>,
    /// The acting user's or API key's id.
    actor: Option<String>,
    /// The target's id (a workflow, node, run, account...).
    target: Option<String>,
    /// Events at or after (RFC 3339).
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Events before (RFC 3339).
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Where to go on: `next_cursor` of the page before (a listing), `X-Next-Cursor` of the
    /// part before (an export).
    cursor: Option<String>,
}
