//! What every adapter test needs: a store over its own table, domain values built with the
//! domain constructors, and raw reads of the table to see what was really stored.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};
use shared::aws::dynamo::DynamoStore;
use shared::clock::SystemClock;
use shared::domain::time::truncate_to_millis;
use shared::domain::{Node, NodeFields, NodeStatus, Priority, Settings, Workflow, WorkflowStatus};
use shared::domain::{ids, workflow::search_text};
use shared::ports::{
    Clock, IdempotencyRecord, Nodes, StoreError, WorkflowChange, WorkflowFilter, WorkflowUpdate,
    Workflows,
};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// Most lists in these tests are small; a list that pages more often than this never ends.
const MAX_PAGES: usize = 1000;

pub struct Env {
    pub client: Client,
    pub table: String,
    pub store: DynamoStore,
}

/// A store over a new table of its own, made from the template.
pub async fn env() -> Env {
    let (client, table) = localstack::testing::fresh_table("adapter").await;
    let store = DynamoStore::new(client.clone(), table.clone());
    Env {
        client,
        table,
        store,
    }
}

pub fn now() -> DateTime<Utc> {
    SystemClock.now()
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub fn object(v: Value) -> Map<String, Value> {
    v.as_object().expect("a JSON object").clone()
}

/// A new draft workflow of `owner`, created now.
pub fn workflow(owner: &str, name: &str) -> Workflow {
    workflow_at(owner, name, now())
}

/// A new draft workflow of `owner`, created at `created_at` (to the millisecond, as stored).
pub fn workflow_at(owner: &str, name: &str, created_at: DateTime<Utc>) -> Workflow {
    let created_at = truncate_to_millis(created_at);
    Workflow {
        id: ids::new_id(),
        owner_id: owner.to_string(),
        name: name.to_string(),
        description: format!("All about {name}"),
        status: WorkflowStatus::Draft,
        settings: Settings::with_defaults(object(json!({"model": "gpt-test"}))),
        tags: vec![],
        node_count: 0,
        created_at,
        updated_at: created_at,
        version: 1,
        shares: Default::default(),
    }
}

pub fn fields(title: &str) -> NodeFields {
    NodeFields {
        title: title.to_string(),
        content: format!("{title} opens the chain. It goes on from here.\n\nA second paragraph."),
        prompt: format!("Write about {title}"),
        priority: Priority::default(),
        status: NodeStatus::Pending,
        tags: vec!["draft".to_string()],
        metadata: object(json!({"source": "test", "depth": {"level": 1, "ratio": 0.5}})),
    }
}

/// The nodes of `workflow` in creation order, as a create request makes them: `parents[i]` is
/// the index of node `i`'s parent (an earlier node), `None` for a root. Sets the child counts
/// and the workflow's node count.
pub fn tree(workflow: &mut Workflow, parents: &[Option<usize>]) -> Vec<Node> {
    let ids = ids::new_ids(parents.len());
    let mut nodes: Vec<Node> = parents
        .iter()
        .enumerate()
        .map(|(i, parent)| {
            assert!(parent.is_none_or(|p| p < i), "parents come first");
            Node::new(
                ids[i].clone(),
                workflow.id.clone(),
                parent.map(|p| ids[p].clone()),
                fields(&format!("Node {i}")),
                workflow.created_at,
            )
        })
        .collect();
    for &p in parents.iter().flatten() {
        nodes[p].child_count += 1;
    }
    workflow.node_count = nodes.len() as u64;
    nodes
}

/// A node to add to `workflow` under `parent`, with the given id.
pub fn node_with_id(workflow: &Workflow, parent: Option<&Node>, title: &str, id: String) -> Node {
    Node::new(
        id,
        workflow.id.clone(),
        parent.map(|p| p.id.clone()),
        fields(title),
        now(),
    )
}

/// A node to add to `workflow` under `parent`.
pub fn new_node(workflow: &Workflow, parent: Option<&Node>, title: &str) -> Node {
    node_with_id(workflow, parent, title, ids::new_id())
}

/// An idempotency record as the use cases store it (the TTL keeps whole seconds).
pub fn record(owner: &str, key: &str, request_hash: &str, body: &str) -> IdempotencyRecord {
    let expires = now() + Duration::hours(24);
    IdempotencyRecord {
        owner_id: owner.to_string(),
        key: key.to_string(),
        request_hash: request_hash.to_string(),
        status: 201,
        body: body.to_string(),
        location: "w".to_string(),
        created_at: now(),
        expires_at: DateTime::from_timestamp(expires.timestamp(), 0).expect("a valid time"),
    }
}

/// A change that only moves `workflow` to `status`, from any legal source.
pub fn status_change(workflow: &Workflow, status: WorkflowStatus) -> WorkflowChange {
    WorkflowChange {
        id: workflow.id.clone(),
        actor: ed(&workflow.owner_id),
        expected_version: Some(workflow.version),
        allowed_from: WorkflowStatus::sources_of(status),
        max_nodes: None,
        update: WorkflowUpdate {
            status: Some(status),
            ..WorkflowUpdate::default()
        },
        now: now(),
    }
}

/// What a change should leave stored, for a change of the workflow's own fields.
pub fn changed(workflow: &Workflow, change: &WorkflowChange) -> Workflow {
    let u = &change.update;
    let mut w = workflow.clone();
    if let Some(name) = &u.name {
        w.name = name.clone();
    }
    if let Some(d) = &u.description {
        w.description = d.clone();
    }
    if let Some(tags) = &u.tags {
        w.tags = tags.clone();
    }
    if let Some(status) = u.status {
        w.status = status;
    }
    if let Some(settings) = &u.settings {
        w.settings = settings.clone();
    }
    w.version += 1;
    w.updated_at = change.now;
    w
}

pub fn ids_of(workflows: &[Workflow]) -> Vec<&str> {
    workflows.iter().map(|w| w.id.as_str()).collect()
}

pub fn node_ids(nodes: &[Node]) -> Vec<&str> {
    nodes.iter().map(|n| n.id.as_str()).collect()
}

/// Panics with the error when it is not a `WorkflowRejected`; returns what it carries.
pub fn workflow_rejected<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Option<Workflow> {
    match result {
        Err(StoreError::WorkflowRejected(current)) => current.map(|w| *w),
        other => panic!("expected WorkflowRejected, got {other:?}"),
    }
}

/// Panics with the error when it is not a `NodeRejected`; returns what it carries.
pub fn node_rejected<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Option<Node> {
    match result {
        Err(StoreError::NodeRejected(current)) => current.map(|n| *n),
        other => panic!("expected NodeRejected, got {other:?}"),
    }
}

impl Env {
    pub async fn create(&self, workflow: &Workflow, nodes: &[Node]) {
        self.store
            .create_workflow(workflow, nodes, None)
            .await
            .expect("create_workflow");
    }

    pub async fn get(&self, id: &str) -> Option<Workflow> {
        self.store.get_workflow(id).await.expect("get_workflow")
    }

    pub async fn node(&self, workflow_id: &str, node_id: &str) -> Option<Node> {
        self.store
            .get_node(workflow_id, node_id)
            .await
            .expect("get_node")
            .1
    }

    /// The nodes of a workflow as `get_tree` answers; empty for a missing workflow.
    pub async fn nodes(&self, workflow_id: &str) -> Vec<Node> {
        self.store
            .get_tree(workflow_id)
            .await
            .expect("get_tree")
            .map(|(_, nodes)| nodes)
            .unwrap_or_default()
    }

    /// Every page of a list, checking that no page holds more than `limit`.
    pub async fn list_all(
        &self,
        owner: &str,
        filter: &WorkflowFilter,
        limit: u32,
    ) -> Vec<Workflow> {
        let mut out = Vec::new();
        let mut after = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .store
                .list_workflows(owner, filter, limit, after.as_ref())
                .await
                .expect("list_workflows");
            assert!(page.items.len() <= limit as usize, "page over its limit");
            out.extend(page.items);
            match page.next {
                Some(key) => after = Some(key),
                None => return out,
            }
        }
        panic!("list_workflows never handed out its last page")
    }

    /// The ids of an owner's list, unfiltered.
    pub async fn listed(&self, owner: &str) -> Vec<String> {
        let all = self.list_all(owner, &WorkflowFilter::default(), 100).await;
        all.into_iter().map(|w| w.id).collect()
    }

    /// One item read straight from the table.
    pub async fn raw(&self, pk: &str, sk: &str) -> Option<Item> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    pub async fn raw_workflow(&self, id: &str) -> Item {
        self.raw(&format!("WF#{id}"), "#WORKFLOW")
            .await
            .expect("the workflow item is stored")
    }

    /// Every item of a workflow's partition, read straight from the table.
    pub async fn partition(&self, id: &str) -> Vec<Item> {
        let mut out = Vec::new();
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(&format!("WF#{id}")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Query");
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return out,
            }
        }
        panic!("the partition query never ended")
    }
}

/// The text a workflow's name is matched on, as the adapter stores it.
pub fn stored_search_text(name: &str) -> AttributeValue {
    AttributeValue::S(search_text(name))
}

/// `user` acting with the editor role.
pub fn ed(user: &str) -> shared::domain::Principal {
    shared::domain::Principal::user(user, shared::domain::Role::Editor)
}
