//! The workflow side's ports: one trait per capability, so that a use case names only what it
//! uses and a fake implements only what a test needs.

use super::{Fut, Page, PageKey};
use crate::domain::{Node, Principal, Workflow, WorkflowStatus};
use chrono::{DateTime, Utc};

pub use crate::domain::workflow::WorkflowFilter;

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
/// may be changed by `actor` (see [`Principal::access`]), is not deleted, is at `expected_version` (when given) and its status is one of
/// `allowed_from` (when not empty).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowChange {
    pub id: String,
    pub actor: Principal,
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

/// The outcome of one change in [`Workflows::change_workflows`].
#[derive(Debug)]
pub enum ChangeOutcome {
    Done,
    /// The change's conditions did not hold when it was applied (a concurrent write).
    Rejected,
}

/// Workflows: create, read, list and conditionally change them.
pub trait Workflows: Send + Sync {
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
    /// The workflows a user owns or that are shared with them, newest first.
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
}

/// The nodes of a workflow.
pub trait Nodes: Send + Sync {
    /// Adds a node to a workflow the owner has and that is below its `max_nodes`; the parent,
    /// when named, must exist in the same workflow.
    fn add_node<'a>(
        &'a self,
        actor: &'a Principal,
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
        actor: &'a Principal,
        node: &'a Node,
        expected_version: u64,
    ) -> Fut<'a, ()>;
    /// Deletes nodes in the order given (children before parents); `parent_id` is the parent of
    /// the last node, whose child count drops by one.
    fn delete_nodes<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        plan: &'a [NodeDeletion],
        parent_id: Option<&'a str>,
    ) -> Fut<'a, ()>;
}

/// Who else may see or change a workflow.
pub trait Shares: Send + Sync {
    /// Shares `workflow` with `user_id` (or changes what they may do): only its owner or an
    /// admin may; [`StoreError::WorkflowRejected`] otherwise. The share also puts the workflow
    /// in that user's list.
    fn put_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow: &'a Workflow,
        user_id: &'a str,
        access: crate::domain::ShareAccess,
    ) -> Fut<'a, Workflow>;
    /// Stops sharing; `WorkflowRejected` when the actor may not or the share does not exist.
    fn delete_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        user_id: &'a str,
    ) -> Fut<'a, ()>;
}

/// Stored answers to requests that carried an `Idempotency-Key` (written with what they
/// created, by [`Workflows::create_workflow`] and [`Nodes::add_node`]).
pub trait Idempotency: Send + Sync {
    /// The record of an idempotency key, unless it has expired by `now`.
    fn get_idempotency<'a>(
        &'a self,
        owner_id: &'a str,
        key: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<IdempotencyRecord>>;
}

/// Every workflow capability of one backend (runs included), for wiring one adapter into a
/// function.
pub trait WorkflowStore: Workflows + Nodes + Shares + Idempotency + super::Runs {}

impl<T: Workflows + Nodes + Shares + Idempotency + super::Runs + ?Sized> WorkflowStore for T {}
