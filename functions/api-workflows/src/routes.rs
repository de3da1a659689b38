//! One function per route and method: parse the request, call the use case, shape the
//! response. The `#[utoipa::path]` annotations generate the OpenAPI document from these.

use crate::{Api, Route};
use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::app::Outcome;
use shared::app::audit::Note;
use shared::app::runs::dead_letters::{self, DeadLetterList, RedriveRequest, RedriveResult};
use shared::app::runs::{self, Control, RunDetail};
use shared::app::schedules;
use shared::app::workflows::requests::*;
use shared::app::workflows::shares::{self, ShareList, ShareRequest};
use shared::app::workflows::transfer::{self, ExportDocument};
use shared::app::workflows::{self, bulk, nodes};
use shared::domain::audit::{Outcome as AuditOutcome, Target};
use shared::domain::run::{Run, StartRunRequest};
use shared::domain::schedule::{CreateScheduleRequest, ScheduleView, UpdateScheduleRequest};
use shared::domain::{Node, Principal, Workflow, WorkflowStatistics, WorkflowStatus};
use shared::http::Problem;
use shared::http::pipeline::{Access, Call, Reply, Routes};
use shared::http::request::{self as rq, json_body};
use shared::http::response::{json, no_content, page, raw_json, with_etag};
use shared::ports::StepQueue;

impl Routes for Route {
    type Api = Api;

    const TABLE: &'static [(&'static str, Route)] = &[
        ("GET /health", Route::Health),
        ("GET /docs", Route::Docs),
        ("GET /api/v3/openapi.json", Route::OpenApi),
        ("GET /api/v3/asyncapi.json", Route::AsyncApi),
        ("POST /api/v3/workflows", Route::CreateWorkflow),
        ("GET /api/v3/workflows", Route::ListWorkflows),
        ("POST /api/v3/workflows/bulk", Route::Bulk),
        ("POST /api/v3/workflows/import", Route::Import),
        ("GET /api/v3/workflows/{id}", Route::GetWorkflow),
        ("PATCH /api/v3/workflows/{id}", Route::UpdateWorkflow),
        ("DELETE /api/v3/workflows/{id}", Route::DeleteWorkflow),
        ("POST /api/v3/workflows/{id}/status", Route::ChangeStatus),
        ("GET /api/v3/workflows/{id}/statistics", Route::Statistics),
        ("GET /api/v3/workflows/{id}/export", Route::Export),
        ("POST /api/v3/workflows/{id}/nodes", Route::CreateNode),
        ("GET /api/v3/workflows/{id}/nodes", Route::ListNodes),
        ("GET /api/v3/workflows/{id}/nodes/{node_id}", Route::GetNode),
        (
            "PATCH /api/v3/workflows/{id}/nodes/{node_id}",
            Route::UpdateNode,
        ),
        (
            "DELETE /api/v3/workflows/{id}/nodes/{node_id}",
            Route::DeleteNode,
        ),
        ("GET /api/v3/workflows/{id}/shares", Route::ListShares),
        ("POST /api/v3/workflows/{id}/shares", Route::Share),
        (
            "DELETE /api/v3/workflows/{id}/shares/{user_id}",
            Route::Unshare,
        ),
        ("POST /api/v3/workflows/{id}/runs", Route::StartRun),
        ("GET /api/v3/workflows/{id}/runs", Route::ListRuns),
        ("GET /api/v3/workflows/{id}/runs/{run_id}", Route::GetRun),
        (
            "POST /api/v3/workflows/{id}/runs/{run_id}/pause",
            Route::PauseRun,
        ),
        (
            "POST /api/v3/workflows/{id}/runs/{run_id}/resume",
            Route::ResumeRun,
        ),
        (
            "POST /api/v3/workflows/{id}/runs/{run_id}/cancel",
            Route::CancelRun,
        ),
        (
            "POST /api/v3/workflows/{id}/runs/{run_id}/retry",
            Route::RetryRun,
        ),
        (
            "POST /api/v3/workflows/{id}/runs/{run_id}/steps/{step_id}/approve",
            Route::ApproveStep,
        ),
        (
            "POST /api/v3/workflows/{id}/schedules",
            Route::CreateSchedule,
        ),
        ("GET /api/v3/workflows/{id}/schedules", Route::ListSchedules),
        (
            "GET /api/v3/workflows/{id}/schedules/{schedule_id}",
            Route::GetSchedule,
        ),
        (
            "PATCH /api/v3/workflows/{id}/schedules/{schedule_id}",
            Route::UpdateSchedule,
        ),
        (
            "DELETE /api/v3/workflows/{id}/schedules/{schedule_id}",
            Route::DeleteSchedule,
        ),
        (
            "GET /api/v3/admin/dead-letters/{queue}",
            Route::ListDeadLetters,
        ),
        (
            "POST /api/v3/admin/dead-letters/{queue}/redrive",
            Route::RedriveDeadLetters,
        ),
    ];

    fn access(self) -> Access {
        match self {
            Route::Health | Route::Docs | Route::OpenApi | Route::AsyncApi => Access::Public,
            Route::CreateWorkflow
            | Route::ListWorkflows
            | Route::Bulk
            | Route::Import
            | Route::GetWorkflow
            | Route::UpdateWorkflow
            | Route::DeleteWorkflow
            | Route::ChangeStatus
            | Route::Statistics
            | Route::Export
            | Route::CreateNode
            | Route::ListNodes
            | Route::GetNode
            | Route::UpdateNode
            | Route::DeleteNode
            | Route::ListShares
            | Route::Share
            | Route::Unshare
            | Route::StartRun
            | Route::ListRuns
            | Route::GetRun
            | Route::PauseRun
            | Route::ResumeRun
            | Route::CancelRun
            | Route::RetryRun
            | Route::ApproveStep
            | Route::CreateSchedule
            | Route::ListSchedules
            | Route::GetSchedule
            | Route::UpdateSchedule
            | Route::DeleteSchedule
            | Route::ListDeadLetters
            | Route::RedriveDeadLetters => Access::Authenticated,
        }
    }

    /// Calls the handler of the route: one arm per template route, no catch-all.
    async fn dispatch(self, api: &Api, call: &Call<'_>) -> Reply {
        let req = call.req;
        let p = || call.principal();
        match self {
            Route::Health => Ok(health()),
            Route::Docs => Ok(docs()),
            Route::OpenApi => Ok(openapi()),
            Route::AsyncApi => Ok(asyncapi()),
            Route::CreateWorkflow => create_workflow(api, p()?, req).await,
            Route::ListWorkflows => list_workflows(api, p()?, req).await,
            Route::Bulk => bulk_action(api, p()?, req).await,
            Route::Import => import_workflow(api, p()?, req).await,
            Route::GetWorkflow => get_workflow(api, p()?, &call.id("id")?).await,
            Route::UpdateWorkflow => update_workflow(api, p()?, &call.id("id")?, req).await,
            Route::DeleteWorkflow => delete_workflow(api, p()?, &call.id("id")?, req).await,
            Route::ChangeStatus => change_status(api, p()?, &call.id("id")?, req).await,
            Route::Statistics => statistics(api, p()?, &call.id("id")?).await,
            Route::Export => export_workflow(api, p()?, &call.id("id")?).await,
            Route::CreateNode => create_node(api, p()?, &call.id("id")?, req).await,
            Route::ListNodes => list_nodes(api, p()?, &call.id("id")?, req).await,
            Route::GetNode => get_node(api, p()?, &call.id("id")?, &call.id("node_id")?).await,
            Route::UpdateNode => {
                update_node(api, p()?, &call.id("id")?, &call.id("node_id")?, req).await
            }
            Route::DeleteNode => {
                delete_node(api, p()?, &call.id("id")?, &call.id("node_id")?, req).await
            }
            Route::Share => share(api, p()?, &call.id("id")?, req).await,
            Route::ListShares => list_shares(api, p()?, &call.id("id")?).await,
            Route::Unshare => unshare(api, p()?, &call.id("id")?, &call.id("user_id")?).await,
            Route::StartRun => start_run(api, p()?, &call.id("id")?, req).await,
            Route::ListRuns => list_runs(api, p()?, &call.id("id")?, req).await,
            Route::GetRun => get_run(api, p()?, &call.id("id")?, &call.id("run_id")?).await,
            Route::PauseRun => pause_run(api, call).await,
            Route::ResumeRun => resume_run(api, call).await,
            Route::CancelRun => cancel_run(api, call).await,
            Route::RetryRun => retry_run(api, call).await,
            Route::ApproveStep => approve_step(api, call).await,
            Route::CreateSchedule => create_schedule(api, p()?, &call.id("id")?, req).await,
            Route::ListSchedules => list_schedules(api, p()?, &call.id("id")?).await,
            Route::GetSchedule => {
                get_schedule(api, p()?, &call.id("id")?, &call.id("schedule_id")?).await
            }
            Route::UpdateSchedule => {
                let (id, sid) = (call.id("id")?, call.id("schedule_id")?);
                update_schedule(api, p()?, &id, &sid, req).await
            }
            Route::DeleteSchedule => {
                delete_schedule(api, p()?, &call.id("id")?, &call.id("schedule_id")?).await
            }
            Route::ListDeadLetters => list_dead_letters(api, p()?, queue_name(call), req).await,
            Route::RedriveDeadLetters => {
                redrive_dead_letters(api, p()?, queue_name(call), req).await
            }
        }
    }
}

/// The `{queue}` path parameter as sent (the use case says whether it names a queue, after
/// the admin check).
fn queue_name<'a>(call: &'a Call<'_>) -> &'a str {
    call.req
        .path_parameters_ref()
        .and_then(|p| p.first("queue"))
        .unwrap_or("")
}

fn created<T: serde::Serialize>(outcome: Outcome<T>) -> Response<Body> {
    answered(StatusCode::CREATED, outcome)
}

/// A creating request's answer: `status` with the new resource, or the replay of the first
/// answer (marked `Idempotent-Replayed: true`).
fn answered<T: serde::Serialize>(status: StatusCode, outcome: Outcome<T>) -> Response<Body> {
    match outcome {
        Outcome::Created(value) => json(status, &value),
        Outcome::Replayed {
            status: first,
            body,
        } => {
            let mut r = raw_json(StatusCode::from_u16(first).unwrap_or(status), body);
            r.headers_mut().insert(
                "idempotent-replayed",
                http::HeaderValue::from_static("true"),
            );
            r
        }
    }
}

fn workflow_reply(status: StatusCode, w: &Workflow) -> Response<Body> {
    with_etag(json(status, w), w.version)
}

/// Liveness: answers without authentication and without calling AWS.
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The function is up", body = Object, example = json!({"status": "ok"}))))]
pub fn health() -> Response<Body> {
    json(
        StatusCode::OK,
        &serde_json::json!({"status": "ok", "service": "api-workflows"}),
    )
}

/// The API's documentation as a page: the workflows, identity and analytics OpenAPI documents
/// and the AsyncAPI document of the WebSocket API, rendered in the browser by a script the page
/// carries (nothing is fetched from elsewhere).
#[utoipa::path(get, path = "/docs", tag = "operations", security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
pub fn docs() -> Response<Body> {
    shared::http::docs::page()
}

/// This document.
#[utoipa::path(get, path = "/api/v3/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub fn openapi() -> Response<Body> {
    raw_json(StatusCode::OK, crate::openapi::document_json().to_string())
}

/// The AsyncAPI 3.0 document of the WebSocket API: its servers and credentials, the commands
/// a client sends with their replies, and the changes and notifications pushed to it.
#[utoipa::path(get, path = "/api/v3/asyncapi.json", tag = "operations", security(()),
    responses((status = 200, description = "AsyncAPI 3.0 document of the WebSocket API", body = Object)))]
pub fn asyncapi() -> Response<Body> {
    raw_json(StatusCode::OK, crate::asyncapi::document_text().to_string())
}

/// Create a workflow, optionally with a tree of nodes, in one transaction.
#[utoipa::path(post, path = "/api/v3/workflows", tag = "workflows", request_body = CreateWorkflowRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body replay the first response; same key, other body: 422")),
    responses((status = 201, body = CreatedWorkflow), (status = 400, body = Problem), (status = 401, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn create_workflow(api: &Api, p: &Principal, req: &Request) -> Reply {
    let idempotency = rq::idempotency_key(req)?;
    let body = json_body(req)?;
    let outcome = workflows::create(
        api.store.as_ref(),
        workflows::CreateWorkflow {
            principal: p,
            body,
            idempotency,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(created(outcome))
}

/// List the caller's workflows, newest first.
#[utoipa::path(get, path = "/api/v3/workflows", tag = "workflows",
    params(
        ("status" = Option<WorkflowStatus>, Query, description = "Only this status"),
        ("tag" = Option<String>, Query, description = "Only workflows with this tag", min_length = 1, max_length = 50),
        ("q" = Option<String>, Query, description = "Words that must each start a word of the name, case-insensitive", min_length = 1, max_length = 200),
        ("created_after" = Option<String>, Query, description = "RFC 3339 time, exclusive"),
        ("created_before" = Option<String>, Query, description = "RFC 3339 time, exclusive"),
        ("limit" = Option<u32>, Query, description = "1..=100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = ListResponse<Workflow>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 422, body = Problem, description = "created_before is not later than created_after")))]
pub async fn list_workflows(api: &Api, p: &Principal, req: &Request) -> Reply {
    let q = rq::query(
        req,
        &[
            "status",
            "tag",
            "q",
            "created_after",
            "created_before",
            "limit",
            "cursor",
        ],
    )?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(WorkflowStatus::parse(s).ok_or_else(|| {
            let all: Vec<_> = WorkflowStatus::ALL.iter().map(|s| s.as_str()).collect();
            Problem::bad_parameter("status", format!("must be one of {}", all.join(", ")))
        })?),
    };
    let text = |name: &str, max: usize| -> Result<Option<String>, Problem> {
        match q.get(name) {
            Some(v) if v.is_empty() || v.chars().count() > max => Err(Problem::bad_parameter(
                name,
                format!("must be 1 to {max} characters"),
            )),
            v => Ok(v.cloned()),
        }
    };
    let query = ListWorkflowsQuery {
        status,
        tag: text("tag", 50)?,
        q: text("q", 200)?,
        created_after: rq::time(&q, "created_after")?,
        created_before: rq::time(&q, "created_before")?,
        limit: rq::limit(&q, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?,
        cursor: rq::cursor(&q)?,
    };
    Ok(page(workflows::list(api.store.as_ref(), p, query).await?))
}

/// One workflow; `ETag` is its version.
#[utoipa::path(get, path = "/api/v3/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = Workflow, headers(("ETag" = String))), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_workflow(api: &Api, p: &Principal, id: &str) -> Reply {
    let w = workflows::get(api.store.as_ref(), p, id).await?;
    Ok(workflow_reply(StatusCode::OK, &w))
}

/// Change name, description, settings (merge patch) or tags, at the version read.
#[utoipa::path(patch, path = "/api/v3/workflows/{id}", tag = "workflows", request_body = UpdateWorkflowRequest,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The ETag read; or expected_version in the body")),
    responses((status = 200, body = Workflow), (status = 404, body = Problem), (status = 409, body = Problem, description = "Stale version: current_version in the body"),
        (status = 422, body = Problem), (status = 428, body = Problem)))]
pub async fn update_workflow(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let if_match = rq::if_match(req)?;
    let body = json_body(req)?;
    let w = workflows::update(
        api.store.as_ref(),
        workflows::UpdateWorkflow {
            principal: p,
            id,
            if_match,
            body,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(workflow_reply(StatusCode::OK, &w))
}

/// Move a workflow to another status; an illegal transition answers 409 with the allowed ones.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/status", tag = "workflows", request_body = ChangeStatusRequest,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Workflow), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn change_status(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let if_match = rq::if_match(req)?;
    let body: ChangeStatusRequest = json_body(req)?;
    let expected = workflows::expected_version(if_match, body.expected_version)?;
    let w = workflows::change_status(
        api.store.as_ref(),
        workflows::ChangeStatus {
            principal: p,
            id,
            target: body.status,
            expected_version: expected,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(workflow_reply(StatusCode::OK, &w))
}

/// Soft delete: afterwards the workflow answers 404 and leaves the list.
#[utoipa::path(delete, path = "/api/v3/workflows/{id}", tag = "workflows", params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_workflow(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let expected = rq::if_match(req)?;
    workflows::change_status(
        api.store.as_ref(),
        workflows::ChangeStatus {
            principal: p,
            id,
            target: WorkflowStatus::Deleted,
            expected_version: expected,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(no_content())
}

/// Node count, words, quality, depth, roots, leaves and reading time of a workflow.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/statistics", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = WorkflowStatistics), (status = 404, body = Problem)))]
pub async fn statistics(api: &Api, p: &Principal, id: &str) -> Reply {
    Ok(json(
        StatusCode::OK,
        &workflows::statistics(api.store.as_ref(), p, id).await?,
    ))
}

/// Apply one action to up to 100 workflows; each id gets its own result.
#[utoipa::path(post, path = "/api/v3/workflows/bulk", tag = "workflows", request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 422, body = Problem)))]
pub async fn bulk_action(api: &Api, p: &Principal, req: &Request) -> Reply {
    let body = json_body(req)?;
    Ok(json(
        StatusCode::OK,
        &bulk::apply(api.store.as_ref(), p, body, api.pipeline.clock.now()).await?,
    ))
}

/// The workflow and all its nodes as one document.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/export", tag = "transfer", params(("id" = String, Path)),
    responses((status = 200, body = ExportDocument), (status = 404, body = Problem), (status = 422, body = Problem, description = "Over 5 MiB: page through the nodes instead")))]
pub async fn export_workflow(api: &Api, p: &Principal, id: &str) -> Reply {
    let document = transfer::export(api.store.as_ref(), p, id, api.pipeline.clock.now()).await?;
    let text = serde_json::to_string(&document).map_err(|_| Problem::internal())?;
    let detail = serde_json::json!({"nodes": document.nodes.len(), "bytes": text.len()});
    // In the exporter's chain: who took a copy of what.
    let target = Target::new("workflow", id);
    note(api, Some(&p.user_id), "workflow.exported", target, detail).await;
    // Lambda answers at most 6 MB, and the body travels escaped inside a JSON envelope.
    if text.len() > MAX_EXPORT_BYTES {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "export-too-large",
            "Export too large",
            format!(
                "the export is {} bytes; at most {MAX_EXPORT_BYTES} fit in one response: read the nodes page by page with GET /api/v3/workflows/{{id}}/nodes",
                text.len()
            ),
        ));
    }
    Ok(raw_json(StatusCode::OK, text))
}

/// The largest export served in one response.
pub const MAX_EXPORT_BYTES: usize = 5 * 1024 * 1024;

/// Recreate an exported document as a new workflow with new ids and the same tree.
#[utoipa::path(post, path = "/api/v3/workflows/import", tag = "transfer", request_body = ExportDocument,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CreatedWorkflow), (status = 422, body = Problem)))]
pub async fn import_workflow(api: &Api, p: &Principal, req: &Request) -> Reply {
    let idempotency = rq::idempotency_key(req)?;
    let document = json_body(req)?;
    let outcome = transfer::import(
        api.store.as_ref(),
        transfer::Import {
            principal: p,
            document,
            idempotency,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    if let Outcome::Created(c) = &outcome {
        let detail = serde_json::json!({"nodes": c.nodes.len()});
        let target = Target::new("workflow", &c.workflow.id);
        note(
            api,
            Some(&c.workflow.owner_id),
            "workflow.imported",
            target,
            detail,
        )
        .await;
    }
    Ok(created(outcome))
}

/// Records `action` in `account`'s audit chain (the system's with none), as this request's
/// (one write; see [`shared::app::audit::note`]).
async fn note(
    api: &Api,
    account: Option<&str>,
    action: &'static str,
    target: Target,
    detail: serde_json::Value,
) {
    let note = Note::about(account, action, target, AuditOutcome::Success, detail);
    shared::app::audit::note(api.pipeline.audit.as_ref(), note, api.pipeline.clock.now()).await;
}

/// Add a node; its parent must be a node of this workflow.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/nodes", tag = "nodes", request_body = CreateNodeRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Node), (status = 404, body = Problem), (status = 409, body = Problem, description = "max_nodes reached"), (status = 422, body = Problem)))]
pub async fn create_node(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let idempotency = rq::idempotency_key(req)?;
    let body = json_body(req)?;
    let outcome = nodes::add(
        api.store.as_ref(),
        nodes::AddNode {
            principal: p,
            workflow_id: id,
            body,
            idempotency,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(created(outcome))
}

/// A page of the workflow's nodes in creation order (parents before children).
#[utoipa::path(get, path = "/api/v3/workflows/{id}/nodes", tag = "nodes",
    params(("id" = String, Path), ("limit" = Option<u32>, Query, description = "1..=100, default 20"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<Node>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_nodes(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let q = rq::query(req, &["limit", "cursor"])?;
    let limit = rq::limit(&q, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?;
    Ok(page(
        nodes::list(api.store.as_ref(), p, id, limit, rq::cursor(&q)?).await?,
    ))
}

/// One node; `ETag` is its version.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/nodes/{node_id}", tag = "nodes", params(("id" = String, Path), ("node_id" = String, Path)),
    responses((status = 200, body = Node), (status = 404, body = Problem)))]
pub async fn get_node(api: &Api, p: &Principal, id: &str, node_id: &str) -> Reply {
    let n = nodes::get(api.store.as_ref(), p, id, node_id).await?;
    Ok(with_etag(json(StatusCode::OK, &n), n.version))
}

/// Change a node at the version read; metrics and quality follow the new content.
#[utoipa::path(patch, path = "/api/v3/workflows/{id}/nodes/{node_id}", tag = "nodes", request_body = UpdateNodeRequest,
    params(("id" = String, Path), ("node_id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Node), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
pub async fn update_node(
    api: &Api,
    p: &Principal,
    id: &str,
    node_id: &str,
    req: &Request,
) -> Reply {
    let if_match = rq::if_match(req)?;
    let body = json_body(req)?;
    let n = nodes::update(
        api.store.as_ref(),
        nodes::UpdateNode {
            principal: p,
            workflow_id: id,
            node_id,
            if_match,
            body,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(with_etag(json(StatusCode::OK, &n), n.version))
}

/// Delete a node; one with children only with `?cascade=true` (then its whole subtree).
#[utoipa::path(delete, path = "/api/v3/workflows/{id}/nodes/{node_id}", tag = "nodes",
    params(("id" = String, Path), ("node_id" = String, Path), ("cascade" = Option<bool>, Query)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "The node has children")))]
pub async fn delete_node(
    api: &Api,
    p: &Principal,
    id: &str,
    node_id: &str,
    req: &Request,
) -> Reply {
    let q = rq::query(req, &["cascade"])?;
    nodes::delete(
        api.store.as_ref(),
        nodes::DeleteNode {
            principal: p,
            workflow_id: id,
            node_id,
            cascade: rq::flag(&q, "cascade")?,
        },
    )
    .await?;
    Ok(no_content())
}

/// Share a workflow with another user as `viewer` or `editor` (owner or admin only). A
/// shared workflow appears in that user's list.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/shares", tag = "sharing", params(("id" = String, Path)), request_body = ShareRequest,
    responses((status = 200, body = ShareList), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn share(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let body = json_body(req)?;
    let list = shares::share(api.store.as_ref(), api.accounts.as_ref(), p, id, body).await?;
    Ok(json(StatusCode::OK, &list))
}

/// Who the workflow is shared with.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/shares", tag = "sharing", params(("id" = String, Path)),
    responses((status = 200, body = ShareList), (status = 404, body = Problem)))]
pub async fn list_shares(api: &Api, p: &Principal, id: &str) -> Reply {
    Ok(json(
        StatusCode::OK,
        &shares::list(api.store.as_ref(), p, id).await?,
    ))
}

/// Stop sharing a workflow with a user (owner or admin only).
#[utoipa::path(delete, path = "/api/v3/workflows/{id}/shares/{user_id}", tag = "sharing", params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unshare(api: &Api, p: &Principal, id: &str, user_id: &str) -> Reply {
    shares::unshare(api.store.as_ref(), p, id, user_id).await?;
    Ok(no_content())
}

/// Start a run: generate the workflow's pending nodes (`{"plan": {"mode": "pending"}}`) or a
/// chain of new ones (`{"plan": {"mode": "continue", "steps": N}}`). Answers at once with the
/// queued run; poll it (or watch it over WebSocket) until it is over.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/runs", tag = "runs", request_body = StartRunRequest,
    params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and body replay the first response; same key, other body: 422")),
    responses((status = 202, body = RunDetail, description = "Queued"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "The workflow is not active"),
        (status = 422, body = Problem, description = "Invalid plan, model or prompt template; no pending node; over max_nodes")))]
pub async fn start_run(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let idempotency = rq::idempotency_key(req)?;
    let body = json_body(req)?;
    let outcome = runs::start(
        api.store.as_ref(),
        api.queue.as_ref(),
        runs::StartRun {
            principal: p,
            workflow_id: id,
            body,
            idempotency,
            now: api.pipeline.clock.now(),
        },
    )
    .await?;
    Ok(answered(StatusCode::ACCEPTED, outcome))
}

/// A page of the workflow's runs, newest first (steps are in each run's own document).
#[utoipa::path(get, path = "/api/v3/workflows/{id}/runs", tag = "runs",
    params(("id" = String, Path), ("limit" = Option<u32>, Query, description = "1..=100, default 20"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListResponse<Run>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_runs(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let q = rq::query(req, &["limit", "cursor"])?;
    let limit = rq::limit(&q, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?;
    Ok(page(
        runs::list(api.store.as_ref(), p, id, limit, rq::cursor(&q)?).await?,
    ))
}

/// A run with every step: status, node, attempts, last error, times, model and tokens.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/runs/{run_id}", tag = "runs",
    params(("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem)))]
pub async fn get_run(api: &Api, p: &Principal, id: &str, run_id: &str) -> Reply {
    let detail = runs::get(api.store.as_ref(), p, id, run_id).await?;
    Ok(json(StatusCode::OK, &detail))
}

/// Pause a queued or running run: steps under way finish, no new step starts.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/runs/{run_id}/pause", tag = "runs",
    params(("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem), (status = 409, body = Problem, description = "Not allowed from the run's status: the allowed ones are named")))]
pub async fn pause_run(api: &Api, call: &Call<'_>) -> Reply {
    control_run(api, call, Control::Pause).await
}

/// Resume a paused run (the workflow must be active).
#[utoipa::path(post, path = "/api/v3/workflows/{id}/runs/{run_id}/resume", tag = "runs",
    params(("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resume_run(api: &Api, call: &Call<'_>) -> Reply {
    control_run(api, call, Control::Resume).await
}

/// Cancel a run that is not over: its remaining steps are skipped.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/runs/{run_id}/cancel", tag = "runs",
    params(("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_run(api: &Api, call: &Call<'_>) -> Reply {
    control_run(api, call, Control::Cancel).await
}

/// Run a failed run again from its failed steps; steps that succeeded never run again.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/runs/{run_id}/retry", tag = "runs",
    params(("id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_run(api: &Api, call: &Call<'_>) -> Reply {
    control_run(api, call, Control::Retry).await
}

/// Let a step that waits for approval (runs started with `approval: true`) run.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/runs/{run_id}/steps/{step_id}/approve", tag = "runs",
    params(("id" = String, Path), ("run_id" = String, Path), ("step_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem), (status = 409, body = Problem, description = "The step does not wait for approval, or its parent is not done")))]
pub async fn approve_step(api: &Api, call: &Call<'_>) -> Reply {
    let step_id = call.id("step_id")?;
    control_run(api, call, Control::Approve { step_id }).await
}

/// Pause, resume, cancel, retry and approve: the action applied, the run as it is now.
async fn control_run(api: &Api, call: &Call<'_>, action: Control) -> Reply {
    let detail = runs::control(
        api.store.as_ref(),
        api.queue.as_ref(),
        call.principal()?,
        &call.id("id")?,
        &call.id("run_id")?,
        action,
        api.pipeline.clock.now(),
    )
    .await?;
    Ok(json(StatusCode::OK, &detail))
}

/// Admins: up to `limit` messages of a step queue's dead-letter queue (peeked: they stay in
/// it, visible), each with its step message when the body is one, and about how many it holds.
#[utoipa::path(get, path = "/api/v3/admin/dead-letters/{queue}", tag = "admin",
    params(("queue" = StepQueue, Path, description = "The step queue whose dead-letter queue to read"),
        ("limit" = Option<u32>, Query, description = "1..=10, default 10", minimum = 1, maximum = 10)),
    responses((status = 200, body = DeadLetterList), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Not an admin"), (status = 404, body = Problem, description = "No such queue")))]
pub async fn list_dead_letters(api: &Api, p: &Principal, queue: &str, req: &Request) -> Reply {
    let q = rq::query(req, &["limit"])?;
    let limit = rq::limit(&q, dead_letters::MAX_LIST, dead_letters::MAX_LIST)?;
    let list = dead_letters::list(api.dead_letters.as_ref(), p, queue, limit).await?;
    Ok(json(StatusCode::OK, &list))
}

/// Admins: move up to `max_messages` messages of a step queue's dead-letter queue back to the
/// step queue (body, group and attributes kept; each deleted from the dead-letter queue only
/// once sent). Stops early when the queue is empty or after a few seconds; redrive again while
/// `remaining_approx` is above 0.
#[utoipa::path(post, path = "/api/v3/admin/dead-letters/{queue}/redrive", tag = "admin",
    request_body(content = Option<RedriveRequest>, description = "Optional: no body, `null` or `{}` move up to 100 messages"),
    params(("queue" = StepQueue, Path, description = "The step queue whose dead-letter queue to redrive")),
    responses((status = 200, body = RedriveResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Not an admin"), (status = 404, body = Problem, description = "No such queue"),
        (status = 422, body = Problem, description = "max_messages outside 1..=1000")))]
pub async fn redrive_dead_letters(api: &Api, p: &Principal, queue: &str, req: &Request) -> Reply {
    // No body, or `null`: the defaults.
    let body: RedriveRequest = if rq::body_bytes(req).iter().all(u8::is_ascii_whitespace) {
        RedriveRequest::default()
    } else {
        json_body::<Option<RedriveRequest>>(req)?.unwrap_or_default()
    };
    let result = dead_letters::redrive(
        api.dead_letters.as_ref(),
        dead_letters::Redrive {
            principal: p,
            queue,
            body,
            budget: REDRIVE_BUDGET,
        },
    )
    .await?;
    let detail =
        serde_json::json!({"moved": result.moved, "remaining_approx": result.remaining_approx});
    let target = Target::new("queue", queue);
    note(api, None, "dlq.redriven", target, detail).await;
    Ok(json(StatusCode::OK, &result))
}

/// How long one redrive moves messages: well inside the function's 10 s timeout.
const REDRIVE_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Schedule runs of the workflow: `expression` is EventBridge Scheduler's `cron(...)` (six
/// fields, one of day-of-month and day-of-week `?`), `rate(...)` or `at(...)`, read in
/// `timezone`; each fire starts a run with `run` as its body, once per scheduled time, as the
/// schedule's creator. A workflow that is not `active` when a fire comes skips it, and the
/// schedule records why (`last_fire`). At most 20 schedules per workflow.
#[utoipa::path(post, path = "/api/v3/workflows/{id}/schedules", tag = "schedules", request_body = CreateScheduleRequest,
    params(("id" = String, Path)),
    responses((status = 201, body = ScheduleView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "The workflow has 20 schedules"),
        (status = 422, body = Problem, description = "An invalid expression, time zone or run body, named in `errors`")))]
pub async fn create_schedule(api: &Api, p: &Principal, id: &str, req: &Request) -> Reply {
    let body = json_body(req)?;
    let now = api.pipeline.clock.now();
    let s = schedules::create(
        api.store.as_ref(),
        api.schedules.as_ref(),
        api.triggers.as_ref(),
        p,
        id,
        body,
        now,
    )
    .await?;
    Ok(json(StatusCode::CREATED, &s))
}

/// The workflow's schedules, each with its next five fire times.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/schedules", tag = "schedules",
    params(("id" = String, Path)),
    responses((status = 200, body = ListResponse<ScheduleView>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list_schedules(api: &Api, p: &Principal, id: &str) -> Reply {
    let now = api.pipeline.clock.now();
    let items = schedules::list(api.store.as_ref(), api.schedules.as_ref(), p, id, now).await?;
    Ok(json(
        StatusCode::OK,
        &ListResponse {
            items,
            next_cursor: None,
        },
    ))
}

/// One schedule with its next five fire times and what its latest fire did.
#[utoipa::path(get, path = "/api/v3/workflows/{id}/schedules/{schedule_id}", tag = "schedules",
    params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_schedule(api: &Api, p: &Principal, id: &str, schedule_id: &str) -> Reply {
    let now = api.pipeline.clock.now();
    let s = schedules::get(
        api.store.as_ref(),
        api.schedules.as_ref(),
        p,
        id,
        schedule_id,
        now,
    )
    .await?;
    Ok(with_etag(json(StatusCode::OK, &s), s.schedule.version))
}

/// Change a schedule's expression, time zone, run or `enabled`, at the version read
/// (`If-Match` or `expected_version`).
#[utoipa::path(patch, path = "/api/v3/workflows/{id}/schedules/{schedule_id}", tag = "schedules", request_body = UpdateScheduleRequest,
    params(("id" = String, Path), ("schedule_id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ScheduleView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "Another version"), (status = 422, body = Problem),
        (status = 428, body = Problem, description = "Neither If-Match nor expected_version")))]
pub async fn update_schedule(
    api: &Api,
    p: &Principal,
    id: &str,
    schedule_id: &str,
    req: &Request,
) -> Reply {
    let if_match = rq::if_match(req)?;
    let body = json_body(req)?;
    let now = api.pipeline.clock.now();
    let s = schedules::update(
        api.store.as_ref(),
        api.schedules.as_ref(),
        api.triggers.as_ref(),
        p,
        id,
        schedule_id,
        body,
        if_match,
        now,
    )
    .await?;
    Ok(with_etag(json(StatusCode::OK, &s), s.schedule.version))
}

/// Delete a schedule (and its EventBridge Scheduler schedule): no run starts from it again.
#[utoipa::path(delete, path = "/api/v3/workflows/{id}/schedules/{schedule_id}", tag = "schedules",
    params(("id" = String, Path), ("schedule_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_schedule(api: &Api, p: &Principal, id: &str, schedule_id: &str) -> Reply {
    schedules::delete(
        api.store.as_ref(),
        api.schedules.as_ref(),
        api.triggers.as_ref(),
        p,
        id,
        schedule_id,
    )
    .await?;
    Ok(no_content())
}
