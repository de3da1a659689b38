//! Export a workflow with all its nodes as one JSON document, and import such a document as a
//! new workflow (new ids, the same tree). Export -> import -> export gives the same document up
//! to ids and timestamps.

use super::idempotency::{self, IdempotencyKey, Outcome};
use super::requests::CreatedWorkflow;
use super::visible;
use super::{NewWorkflow, new_tree, read_created, store_created};
use crate::app::AppError;
use crate::domain::error::Errors;
use crate::domain::{NodeStatus, Principal, Priority, Settings, WorkflowStatus};
use crate::ports::{Idempotency, Workflows};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDocument {
    /// Always 1 for this layout.
    #[schema(minimum = 1, maximum = 1)]
    pub format_version: u32,
    /// When the export was made; ignored on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<DateTime<Utc>>,
    pub workflow: ExportedWorkflow,
    /// Parents before children.
    pub nodes: Vec<ExportedNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedWorkflow {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    pub status: WorkflowStatus,
    #[serde(default)]
    #[schema(schema_with = crate::app::schemas::settings)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    #[schema(schema_with = crate::app::schemas::tags)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedNode {
    /// The node's id in the exported workflow; on import only a key for `parent_id`.
    pub id: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(
        max_length = 100000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub content: String,
    #[serde(default)]
    #[schema(
        max_length = 10000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub prompt: String,
    #[serde(default)]
    #[schema(value_type = u8, minimum = 1, maximum = 5)]
    pub priority: Priority,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default)]
    #[schema(schema_with = crate::app::schemas::tags)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = crate::app::schemas::metadata)]
    pub metadata: Map<String, Value>,
}

super::requests::node_fields!(ExportedNode);

pub async fn export(
    store: &(impl Workflows + ?Sized),
    principal: &Principal,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ExportDocument, AppError> {
    let (workflow, nodes) = store
        .get_tree(id)
        .await?
        .ok_or(AppError::NotFound("workflow"))?;
    let workflow = visible(Some(workflow), principal)?;
    Ok(ExportDocument {
        format_version: FORMAT_VERSION,
        exported_at: Some(now),
        workflow: ExportedWorkflow {
            name: workflow.name,
            description: workflow.description,
            status: workflow.status,
            settings: workflow.settings.0,
            tags: workflow.tags,
        },
        nodes: nodes
            .into_iter()
            .map(|n| ExportedNode {
                id: n.id,
                parent_id: n.parent_id,
                title: n.title,
                content: n.content,
                prompt: n.prompt,
                priority: n.priority,
                status: n.status,
                tags: n.tags,
                metadata: n.metadata,
            })
            .collect(),
    })
}

pub struct Import<'a> {
    pub principal: &'a Principal,
    pub document: ExportDocument,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

pub async fn import(
    store: &(impl Workflows + Idempotency + ?Sized),
    req: Import<'_>,
) -> Result<Outcome<CreatedWorkflow>, AppError> {
    super::require_write(req.principal)?;
    // A large import takes several transactions: look the key up first rather than discover
    // a replay after writing.
    if let Some(key) = &req.idempotency
        && let Some(existing) = store
            .get_idempotency(&req.principal.user_id, &key.key, req.now)
            .await?
    {
        return idempotency::replay(&existing, key)?
            .into_outcome(|id| read_created(store, req.principal, id))
            .await;
    }
    let doc = req.document;
    let mut errors = Errors::default();
    if doc.format_version != FORMAT_VERSION {
        errors.push("format_version", format!("must be {FORMAT_VERSION}"));
    }
    let w = doc.workflow;
    if w.status == WorkflowStatus::Deleted {
        errors.push("workflow.status", "a deleted workflow cannot be imported");
    }
    let head = NewWorkflow {
        name: w.name,
        description: w.description,
        status: w.status,
        settings: Settings::with_defaults(w.settings),
        tags: w.tags,
    };
    let created = new_tree(
        errors,
        req.principal,
        head,
        "workflow.",
        &doc.nodes,
        ("id", "parent_id"),
        |n| (Some(n.id.as_str()), n.parent_id.as_deref()),
        ExportedNode::fields,
        req.now,
    )?;
    store_created(
        store,
        req.principal,
        created,
        req.idempotency.as_ref(),
        req.now,
    )
    .await
}
