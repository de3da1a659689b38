//! Request and response bodies of the workflows API. Requests refuse unknown fields; every
//! type here appears in the OpenAPI document.

use crate::domain::error::Errors;
use crate::domain::node::NodeFields;
use crate::domain::{FieldError, Node, NodeStatus, Priority, Workflow, WorkflowStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// At most this many nodes in one create request (one transaction of 100 actions holds the
/// workflow, the nodes and the idempotency record).
pub const MAX_NODES_PER_CREATE: usize = 98;
pub const MAX_BULK_IDS: usize = 100;
pub const MAX_PAGE_LIMIT: u32 = 100;
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflowRequest {
    /// 1..=255 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// At most 1000 characters.
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    /// `max_nodes` (1..=10000, default 1000), `timeout_s` (1..=900), `model`, and free keys.
    #[serde(default)]
    #[schema(schema_with = crate::app::schemas::settings)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    #[schema(schema_with = crate::app::schemas::tags)]
    pub tags: Vec<String>,
    /// Nodes created with the workflow in the same transaction (at most 98). A node names its
    /// parent by the parent's `ref`.
    #[serde(default)]
    #[schema(max_items = 98)]
    pub nodes: Vec<NewNodeInTree>,
}

/// A node created together with its workflow.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNodeInTree {
    /// A name for this node, local to the request, that children use as `parent_ref`.
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// The `ref` of this node's parent in the same request; absent for a root.
    #[serde(default)]
    pub parent_ref: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    /// At most 100,000 characters (and 300 KiB).
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

/// A node added to an existing workflow.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNodeRequest {
    /// An existing node of the same workflow; absent for a root.
    #[serde(default)]
    pub parent_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    /// At most 100,000 characters (and 300 KiB).
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

/// `fields()` for the request types that carry a node's client-editable fields.
macro_rules! node_fields {
    ($t:ty) => {
        impl $t {
            pub fn fields(&self) -> $crate::domain::NodeFields {
                $crate::domain::NodeFields {
                    title: self.title.clone(),
                    content: self.content.clone(),
                    prompt: self.prompt.clone(),
                    priority: self.priority,
                    status: self.status,
                    tags: self.tags.clone(),
                    metadata: self.metadata.clone(),
                }
            }
        }
    };
}
pub(crate) use node_fields;
node_fields!(NewNodeInTree);
node_fields!(CreateNodeRequest);

/// Changes to a workflow. Absent fields stay as they are; `settings` is a merge patch
/// (`null` removes a key). Requires `If-Match` or `expected_version`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkflowRequest {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    #[schema(
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub description: Option<String>,
    #[schema(schema_with = crate::app::schemas::settings)]
    pub settings: Option<Map<String, Value>>,
    #[schema(schema_with = crate::app::schemas::tags)]
    pub tags: Option<Vec<String>>,
    /// The version the change is based on, when `If-Match` is not sent.
    pub expected_version: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatusRequest {
    pub status: WorkflowStatus,
    /// Optional: refuse the change unless the workflow is at this version.
    pub expected_version: Option<u64>,
}

/// Changes to a node. Absent fields stay as they are; `metadata` is a merge patch. Requires
/// `If-Match` or `expected_version`. A node's parent cannot change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNodeRequest {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: Option<String>,
    #[schema(
        max_length = 100000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub content: Option<String>,
    #[schema(
        max_length = 10000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub prompt: Option<String>,
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 5)]
    pub priority: Option<Priority>,
    pub status: Option<NodeStatus>,
    #[schema(schema_with = crate::app::schemas::tags)]
    pub tags: Option<Vec<String>>,
    #[schema(schema_with = crate::app::schemas::metadata)]
    pub metadata: Option<Map<String, Value>>,
    pub expected_version: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Delete,
    Activate,
    Pause,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkAction,
    /// 1..=100 distinct workflow ids.
    #[schema(schema_with = crate::app::schemas::workflow_ids)]
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BulkResponse {
    pub action: BulkAction,
    pub succeeded: u32,
    pub failed: u32,
    /// One result per id, in the order given.
    pub results: Vec<BulkResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BulkResult {
    pub id: String,
    pub outcome: BulkOutcome,
    /// The workflow's status after the action (`ok`) or as it is (`conflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkflowStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why the action was not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkOutcome {
    Ok,
    NotFound,
    Conflict,
}

/// A newly created workflow with the nodes created with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWorkflow {
    #[serde(flatten)]
    pub workflow: Workflow,
    pub nodes: Vec<Node>,
}

/// One page of a list. `next_cursor` is absent on the last page; a page may hold fewer than
/// `limit` items when filters are used, so follow `next_cursor` until it is absent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ListResponse<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v3/workflows`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListWorkflowsQuery {
    pub status: Option<WorkflowStatus>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: u32,
    pub cursor: Option<crate::ports::PageKey>,
}

/// Collects field errors for a list of nodes, each under `nodes[i].`.
pub fn validate_nodes<'a>(
    errors: &mut Errors,
    field: &str,
    nodes: impl Iterator<Item = NodeFields> + 'a,
) {
    for (i, fields) in nodes.enumerate() {
        fields.validate(errors, &format!("{field}[{i}]."));
    }
}

pub fn one_field_error(field: &str, message: &str) -> Vec<FieldError> {
    vec![FieldError::new(field, message)]
}
