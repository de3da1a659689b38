//! The OpenAPI 3.1 document of `/api/v3/analytics`, generated from the Rust types and route
//! annotations.

use crate::routes;
use serde_json::Value;
use shared::http::openapi::{BearerAuth, finish};
use std::sync::OnceLock;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Document Workflow Chain analytics API", version = "3.0.0", description = "Figures of runs, generation and quality, computed from the table's changes, and the audit trail. Every route but this document needs `Authorization: Bearer <access token or API key>`. Errors are RFC 9457 problem+json."),
    paths(
        routes::openapi, routes::overview, routes::generation, routes::quality,
        routes::workflow, routes::insights, routes::export,
        routes::status, routes::api_status, routes::metrics,
        routes::audit, routes::audit_verify, routes::audit_export,
        routes::audit_reports, routes::audit_report,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The document, built once per instance.
pub fn document_json() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
        finish(&mut doc);
        doc
    })
}
