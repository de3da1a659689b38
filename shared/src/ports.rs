//! What the use cases need from the world, as narrow traits. Adapters in [`crate::aws`]
//! implement them; tests may implement them too.

use crate::domain::{Node, Workflow, WorkflowStatus};
use chrono::{DateTime, Utc};

use std::collections::BTreeMap;
use std::future::Future;

/// The time, so that use cases and their tests agree on "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, truncated to milliseconds (the precision stored and sorted on).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_millis(Utc::now())
    }
}

pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// A position in a list, as the store left it. The HTTP layer makes it opaque for clients and
/// the store checks it belongs to the list it is given back to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageKey(pub BTreeMap<String, String>);

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageKey>,
}

/// Filters of the workflow list; all given ones must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowFilter {
    pub status: Option<WorkflowStatus>,
    pub tag: Option<String>,
    /// Lower-case words; each must start a word of the name.
    pub name_words: Vec<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// A stored response to a request that carried an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub owner_id: String,
    pub key: String,
    /// Hash of the route and body the key was first used with.
    pub request_hash: String,
    pub status: u16,
    /// The response body, or empty when it was too large to keep (see `location`).
    pub body: String,
    /// What was created (`<workflow_id>` or `<workflow_id>/<node_id>`), to read again for a
    /// replay whose body was not kept.
    pub location: String,
    /// When the key was first used; the key is free again from `expires_at` on, even while
    /// the table's TTL has not yet removed the record.
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Changes to a workflow's own fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// The whole new `settings` (the use case merges the client's patch into what it read).
    pub settings: Option<crate::domain::Settings>,
    pub status: Option<WorkflowStatus>,
}

/// One conditional write of a workflow: it happens only if the workflow exists, belongs to
/// `owner_id`, is not deleted, is at `expected_version` (when given) and its status is one of
/// `allowed_from` (when not empty).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowChange {
    pub id: String,
    pub owner_id: String,
    pub expected_version: Option<u64>,
    pub allowed_from: Vec<WorkflowStatus>,
    /// When the merge patch sets `max_nodes`, the write also requires `node_count <= max_nodes`.
    pub max_nodes: Option<u64>,
    pub update: WorkflowUpdate,
    pub now: DateTime<Utc>,
}

/// One node of a deletion plan: deleted only if it still has `child_count` children (so a child
/// added meanwhile is never orphaned).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDeletion {
    pub id: String,
    pub child_count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The workflow's condition failed: it is missing, someone else's, deleted, at another
    /// version or status, or full. Carries the current workflow when it exists.
    #[error("workflow condition failed")]
    WorkflowRejected(Option<Box<Workflow>>),
    /// The node's condition failed; carries the current node when it exists.
    #[error("node condition failed")]
    NodeRejected(Option<Box<Node>>),
    /// A new node's parent does not exist in the workflow.
    #[error("parent node missing")]
    ParentMissing,
    /// The idempotency key was used before; carries what was stored for it.
    #[error("idempotency key already used")]
    IdempotencyKeyUsed(Box<IdempotencyRecord>),
    /// A page key that this list never handed out.
    #[error("page key does not belong to this list")]
    BadPageKey,
    /// The backend could not be reached or refused for a transient reason (throttling, network).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered in a way this code does not expect: a defect, not bad input.
    #[error("store failure: {0}")]
    Internal(String),
}

/// The outcome of one change in [`WorkflowStore::change_workflows`].
#[derive(Debug)]
pub enum ChangeOutcome {
    Done,
    /// The change's conditions did not hold when it was applied (a concurrent write).
    Rejected,
}

/// The future a port method returns (boxed, so ports can be used as trait objects).
pub type Fut<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Workflows and their nodes.
pub trait WorkflowStore: Send + Sync {
    /// Stores a new workflow with its nodes (parents before children) and, when given, the
    /// idempotency record, all or nothing where the backend allows it.
    fn create_workflow<'a>(
        &'a self,
        workflow: &'a Workflow,
        nodes: &'a [Node],
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()>;
    fn get_workflow<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Workflow>>;
    /// Several workflows at once; missing ids are left out.
    fn get_workflows<'a>(&'a self, ids: &'a [String]) -> Fut<'a, Vec<Workflow>>;
    /// A workflow and all its nodes, nodes in creation order.
    fn get_tree<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Workflow, Vec<Node>)>>;
    /// The owner's visible workflows, newest first.
    fn list_workflows<'a>(
        &'a self,
        owner_id: &'a str,
        filter: &'a WorkflowFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Workflow>>;
    /// Applies one conditional change and returns the workflow as written.
    fn change_workflow<'a>(&'a self, change: &'a WorkflowChange) -> Fut<'a, Workflow>;
    /// Applies several conditional changes, each on its own: one rejected change does not stop
    /// the others. Outcomes are in the order of `changes`.
    fn change_workflows<'a>(&'a self, changes: &'a [WorkflowChange])
    -> Fut<'a, Vec<ChangeOutcome>>;
    /// Adds a node to a workflow the owner has and that is below its `max_nodes`; the parent,
    /// when named, must exist in the same workflow.
    fn add_node<'a>(
        &'a self,
        owner_id: &'a str,
        node: &'a Node,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()>;
    /// A workflow and one of its nodes.
    fn get_node<'a>(
        &'a self,
        workflow_id: &'a str,
        node_id: &'a str,
    ) -> Fut<'a, (Option<Workflow>, Option<Node>)>;
    /// A page of a workflow's nodes in creation order, with the workflow.
    fn list_nodes<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, (Option<Workflow>, Page<Node>)>;
    /// Replaces a node of an owned, not deleted workflow with `node`, if the stored node is at
    /// `expected_version`.
    fn update_node<'a>(
        &'a self,
        owner_id: &'a str,
        node: &'a Node,
        expected_version: u64,
    ) -> Fut<'a, ()>;
    /// Deletes nodes in the order given (children before parents); `parent_id` is the parent of
    /// the last node, whose child count drops by one.
    fn delete_nodes<'a>(
        &'a self,
        owner_id: &'a str,
        workflow_id: &'a str,
        plan: &'a [NodeDeletion],
        parent_id: Option<&'a str>,
    ) -> Fut<'a, ()>;
    /// The record of an idempotency key, unless it has expired by `now`.
    fn get_idempotency<'a>(
        &'a self,
        owner_id: &'a str,
        key: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<IdempotencyRecord>>;
}

/// Rate limit counters shared by every instance of every function.
pub trait RateLimitStore: Send + Sync {
    /// Decides one request of `key` (a scope built by the caller, such as
    /// `route:POST /api/v3/workflows|user:alice`) under `limit` at `now_ms` (epoch ms), and
    /// records it when admitted. Concurrent checks of one key never admit more than the limit.
    fn check<'a>(
        &'a self,
        key: &'a str,
        limit: &'a crate::domain::ratelimit::Limit,
        now_ms: i64,
    ) -> Fut<'a, crate::domain::ratelimit::Decision>;
}
