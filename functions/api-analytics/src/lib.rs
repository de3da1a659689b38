//! `api-analytics`: the HTTP API of `/api/v3/analytics` (runs, generation, quality, a
//! workflow's figures, insights and exports over the specification's ranges), the operators'
//! `GET /status` (health checker) and `GET /metrics` (Prometheus), the audit trail's
//! `/api/v3/audit` (query and verify), and [`stream`], the table's stream into the counters
//! and the audit chains those answers read.
//!
//! The function is its routes ([`Route`], the template's route keys, with a handler each in
//! `routes`); the request pipeline (gate, routing, authentication, problem+json) is
//! [`shared::http::pipeline`]. Both `main.rs` files only wire AWS clients.

pub mod openapi;
mod routes;
pub mod stream;

use lambda_http::{Body, Request, Response};
use shared::http::pipeline::{self, Pipeline};
use shared::ports::{Analytics, AuditLog, AuditReports, Probe, Sealer, Workflows};
use std::sync::Arc;

/// What the handlers need from the world, built once per cold start.
#[derive(Clone)]
pub struct Api {
    /// The counters.
    pub analytics: Arc<dyn Analytics>,
    /// The audit trail's chains.
    pub audit: Arc<dyn AuditLog>,
    /// The trail's daily figures and compliance reports.
    pub reports: Arc<dyn AuditReports>,
    /// Checks the chains' seals (KMS VerifyMac).
    pub sealer: Arc<dyn Sealer>,
    /// How long audit events are kept (`verify` accepts older ones missing).
    pub retention: Option<shared::domain::audit::Retention>,
    /// Largest part of an audit export ([`shared::app::audit::EXPORT_MAX_BYTES`] deployed).
    pub export_max_bytes: usize,
    /// Who may read a workflow's figures.
    pub workflows: Arc<dyn Workflows>,
    /// What the health checker checks (`GET /status`).
    pub probes: Vec<Arc<dyn Probe>>,
    /// Gate, authenticator and clock.
    pub pipeline: Pipeline,
}

/// One variant per route of this function in `infra/sam-template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    OpenApi,
    Overview,
    Generation,
    Quality,
    Workflow,
    Insights,
    Export,
    Status,
    ApiStatus,
    Metrics,
    Audit,
    AuditVerify,
    AuditExport,
    AuditReports,
    AuditReport,
}

impl AsRef<Pipeline> for Api {
    fn as_ref(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Handles one API Gateway (HTTP API, payload 2.0) request.
pub async fn handle(api: &Api, req: Request) -> Response<Body> {
    pipeline::handle::<Route>(api, req).await
}
