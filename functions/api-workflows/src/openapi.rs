//! The OpenAPI 3.1 document, generated from the Rust types and route annotations.

use crate::routes;
use serde_json::Value;
use shared::http::openapi::{BearerAuth, finish};
use std::sync::OnceLock;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Document Workflow Chain API", version = "3.0.0", description = "Workflows are trees of documents (nodes). Every /api/v3 route needs `Authorization: Bearer <access token or API key>` (tokens from /api/v3/auth/login). Errors are RFC 9457 problem+json."),
    paths(
        routes::health, routes::docs, routes::openapi, routes::asyncapi,
        routes::create_workflow, routes::list_workflows, routes::get_workflow, routes::update_workflow,
        routes::change_status, routes::delete_workflow, routes::statistics, routes::bulk_action,
        routes::export_workflow, routes::import_workflow,
        routes::create_node, routes::list_nodes, routes::get_node, routes::update_node, routes::delete_node,
        routes::share, routes::list_shares, routes::unshare,
        routes::start_run, routes::list_runs, routes::get_run, routes::pause_run, routes::resume_run,
        routes::cancel_run, routes::retry_run, routes::approve_step,
        routes::create_schedule, routes::list_schedules, routes::get_schedule, routes::update_schedule,
        routes::delete_schedule,
        routes::list_dead_letters, routes::redrive_dead_letters,
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
        cap_dead_letter_limit(&mut doc);
        doc
    })
}

/// `finish` gives every `limit` the page limit (1..=100); a dead-letter list shows at most one
/// `ReceiveMessage` of messages.
fn cap_dead_letter_limit(doc: &mut Value) {
    let parameters = doc
        .pointer_mut("/paths/~1api~1v3~1admin~1dead-letters~1{queue}/get/parameters")
        .and_then(Value::as_array_mut);
    for p in parameters.into_iter().flatten() {
        if p["name"] == "limit" {
            p["schema"]["maximum"] = shared::app::runs::dead_letters::MAX_LIST.into();
        }
    }
}
