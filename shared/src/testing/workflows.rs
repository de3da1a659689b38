//! In-memory fakes of the workflow ports.
//!
//! [`MemoryWorkflowStore`] implements [`Workflows`], [`Nodes`], [`Shares`], [`Idempotency`] and
//! [`Runs`] as the DynamoDB adapter ([`crate::aws::dynamo::DynamoStore`]) does: the same conditions on
//! every write (who may write, not deleted, version, source status, `max_nodes`, parent, child
//! counts, idempotency keys), the same counters, the same errors carrying the current item, and
//! page keys of the same shape (so a key of one list is refused by another, as DynamoDB's are).
//!
//! Where the adapter commits in several transactions the fake does too: a cascade deletion of
//! more than 98 nodes is deleted chunk by chunk. Where it is atomic, so is the fake. Two
//! differences, both invisible to callers: a create of more than 100 items (the adapter's hidden
//! "pending import" path) is one atomic write here, and a page ends (`next: None`) as soon as
//! nothing follows it, as the emulator does, where DynamoDB itself may hand out one more key
//! that leads to an empty page.
//!
//! Runs and steps keep to their port's documented conditions ([`Runs`]); every write of a run
//! and its steps is one atomic write here, whatever its size.

use crate::domain::run::{Run, Step, StepStatus};
use crate::domain::time::truncate_to_millis;
use crate::domain::{Node, Principal, ShareAccess, Workflow, WorkflowStatus};
use crate::ports::{
    ChangeOutcome, Fut, Idempotency, IdempotencyRecord, NodeDeletion, Nodes, Page, PageKey,
    RunWith, Runs, Shares, StepCommit, StoreError, WorkflowChange, WorkflowFilter, Workflows,
};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// DynamoDB allows at most 100 actions in one transaction.
const TX_MAX: usize = 100;
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;

// Key attribute names and formats of the table (see `crate::aws::dynamo`), for page keys.
const PK: &str = "PK";
const SK: &str = "SK";
const GSI1PK: &str = "GSI1PK";
const GSI1SK: &str = "GSI1SK";
const WORKFLOW_SK: &str = "#WORKFLOW";
const NODE_SK_PREFIX: &str = "NODE#";
const RUN_SK_PREFIX: &str = "RUN#";
const SHARE_PK_PREFIX: &str = "SHARE#";

fn workflow_pk(id: &str) -> String {
    format!("WF#{id}")
}

fn owner_pk(user_id: &str) -> String {
    format!("OWNER#{user_id}")
}

fn sort_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn owner_sk(created_at: DateTime<Utc>, id: &str) -> String {
    format!("WF#{}#{id}", sort_time(created_at))
}

/// The sort key of a run in its workflow's list: newest first means backwards by creation
/// time, then id.
fn run_sk(run: &Run) -> String {
    format!("{RUN_SK_PREFIX}{}#{}", sort_time(run.created_at), run.id)
}

fn owner_sk_after(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("WF#{}#~", sort_time(t)),
        None => "WF#".to_string(),
    }
}

fn owner_sk_before(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("WF#{}#", sort_time(t)),
        None => "WF#~".to_string(),
    }
}

/// A port method of the store (each variant is the method of the same name), to name the call
/// a hook runs before ([`MemoryWorkflowStore::before`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    CreateWorkflow,
    GetWorkflow,
    GetWorkflows,
    GetTree,
    ListWorkflows,
    ChangeWorkflow,
    ChangeWorkflows,
    AddNode,
    GetNode,
    ListNodes,
    UpdateNode,
    DeleteNodes,
    PutShare,
    DeleteShare,
    GetIdempotency,
    CreateRun,
    GetRun,
    GetRunWith,
    ListRuns,
    UpdateRun,
    ClaimStep,
    CommitStep,
}

/// A workflow item: the workflow, and whether it is in its owner's list (the adapter's `GSI1`
/// keys, removed when the workflow is deleted).
#[derive(Debug, Clone, PartialEq)]
struct StoredWorkflow {
    workflow: Workflow,
    listed: bool,
}

/// A share entry: puts a workflow in its user's list, sorted by the workflow's creation time.
#[derive(Debug, Clone, PartialEq)]
struct ShareEntry {
    access: ShareAccess,
    /// `GSI1SK`: `WF#<workflow created_at>#<workflow_id>`.
    sort_key: String,
}

/// Everything stored, as the table holds it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tables {
    workflows: BTreeMap<String, StoredWorkflow>,
    /// workflow id -> node id -> node: node ids are ULIDs, so creation order.
    nodes: BTreeMap<String, BTreeMap<String, Node>>,
    /// (workflow id, user id) -> entry.
    shares: BTreeMap<(String, String), ShareEntry>,
    /// (owner id, key) -> record, expired or not (the table's TTL removes them late).
    idempotency: BTreeMap<(String, String), IdempotencyRecord>,
    /// run id -> run (run ids are ULIDs: unique across workflows).
    runs: BTreeMap<String, Run>,
    /// run id -> step id -> step.
    steps: BTreeMap<String, BTreeMap<String, Step>>,
}

type Hook = Box<dyn FnOnce(&MemoryWorkflowStore) + Send>;

#[derive(Default)]
struct Inner {
    tables: Tables,
    /// Reasons of the calls to fail next, in order.
    failures: VecDeque<String>,
    /// Hooks to run before the next call of a method.
    hooks: Vec<(Method, Hook)>,
}

/// Everything a [`MemoryWorkflowStore`] holds at one moment, to compare before and after (for
/// example, that a refused request wrote nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot(Tables);

/// The workflow ports in memory, with the semantics of the DynamoDB adapter. Cheap to make:
/// one per test.
#[derive(Default)]
pub struct MemoryWorkflowStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryWorkflowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryWorkflowStore")
            .field("tables", &self.lock().tables)
            .finish_non_exhaustive()
    }
}

impl MemoryWorkflowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next port call (of any method) fail with [`StoreError::Unavailable`]`(reason)`
    /// without reading or writing anything, as a throttled or unreachable table does. Called
    /// several times, it fails as many calls, in order.
    pub fn fail_next(&self, reason: impl Into<String>) {
        self.lock().failures.push_back(reason.into());
    }

    /// Runs `hook` right before the next call of `method` is applied (without the store's lock
    /// held, so the hook may use the inspection and editing methods): a write of someone else
    /// landing between a use case's read and its write. Hooks of one method run one per call,
    /// in the order they were set. A hook that calls [`Self::fail_next`] fails that very call
    /// (a write that fails after its read went through).
    pub fn before(&self, method: Method, hook: impl FnOnce(&MemoryWorkflowStore) + Send + 'static) {
        self.lock().hooks.push((method, Box::new(hook)));
    }

    /// Everything stored now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.lock().tables.clone())
    }

    /// The stored workflow, deleted or not.
    pub fn workflow(&self, id: &str) -> Option<Workflow> {
        self.lock()
            .tables
            .workflows
            .get(id)
            .map(|s| s.workflow.clone())
    }

    /// Every stored workflow (deleted ones too), in id order.
    pub fn workflows(&self) -> Vec<Workflow> {
        self.lock()
            .tables
            .workflows
            .values()
            .map(|s| s.workflow.clone())
            .collect()
    }

    /// The stored nodes of a workflow, in creation order.
    pub fn nodes(&self, workflow_id: &str) -> Vec<Node> {
        self.lock()
            .tables
            .nodes
            .get(workflow_id)
            .map(|n| n.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One stored node.
    pub fn node(&self, workflow_id: &str, node_id: &str) -> Option<Node> {
        self.lock()
            .tables
            .nodes
            .get(workflow_id)
            .and_then(|n| n.get(node_id))
            .cloned()
    }

    /// The stored idempotency record of `owner_id`'s `key`, expired or not.
    pub fn idempotency_record(&self, owner_id: &str, key: &str) -> Option<IdempotencyRecord> {
        self.lock()
            .tables
            .idempotency
            .get(&(owner_id.to_string(), key.to_string()))
            .cloned()
    }

    /// The share entries that put workflows in `user_id`'s list: (workflow id, access).
    pub fn share_entries(&self, user_id: &str) -> Vec<(String, ShareAccess)> {
        self.lock()
            .tables
            .shares
            .iter()
            .filter(|((_, u), _)| u == user_id)
            .map(|((w, _), e)| (w.clone(), e.access))
            .collect()
    }

    /// Changes a stored workflow as a concurrent writer would, bypassing every condition (the
    /// caller bumps `version` if the change should count as a write of the workflow). Edited to
    /// `deleted`, it leaves its owner's list, as a deletion removes its index keys.
    pub fn edit_workflow(&self, id: &str, edit: impl FnOnce(&mut Workflow)) {
        if let Some(s) = self.lock().tables.workflows.get_mut(id) {
            edit(&mut s.workflow);
            if s.workflow.status == WorkflowStatus::Deleted {
                s.listed = false;
            }
        }
    }

    /// Changes a stored node as a concurrent writer would, bypassing every condition.
    pub fn edit_node(&self, workflow_id: &str, node_id: &str, edit: impl FnOnce(&mut Node)) {
        if let Some(n) = self
            .lock()
            .tables
            .nodes
            .get_mut(workflow_id)
            .and_then(|n| n.get_mut(node_id))
        {
            edit(n);
        }
    }

    /// Stores a node as is (no counters change), bypassing every condition.
    pub fn put_node(&self, node: Node) {
        self.lock()
            .tables
            .nodes
            .entry(node.workflow_id.clone())
            .or_default()
            .insert(node.id.clone(), node);
    }

    /// A stored run with its steps (in plan order), if the run is `workflow_id`'s.
    pub fn run(&self, workflow_id: &str, run_id: &str) -> Option<(Run, Vec<Step>)> {
        self.lock().tables.get_run(workflow_id, run_id)
    }

    /// Every stored run, in id order.
    pub fn runs(&self) -> Vec<Run> {
        self.lock().tables.runs.values().cloned().collect()
    }

    /// One stored step.
    pub fn step(&self, run_id: &str, step_id: &str) -> Option<Step> {
        self.lock()
            .tables
            .steps
            .get(run_id)
            .and_then(|s| s.get(step_id))
            .cloned()
    }

    /// Changes a stored run as a concurrent writer would, bypassing every condition (the
    /// caller bumps `version` if the change should count as a write of the run).
    pub fn edit_run(&self, run_id: &str, edit: impl FnOnce(&mut Run)) {
        if let Some(r) = self.lock().tables.runs.get_mut(run_id) {
            edit(r);
        }
    }

    /// Changes a stored step as a concurrent writer would, bypassing every condition.
    pub fn edit_step(&self, run_id: &str, step_id: &str, edit: impl FnOnce(&mut Step)) {
        if let Some(s) = self
            .lock()
            .tables
            .steps
            .get_mut(run_id)
            .and_then(|s| s.get_mut(step_id))
        {
            edit(s);
        }
    }

    /// Runs the hook of `method`, if any, then `op` on the tables, unless a failure is due.
    fn call<T>(
        &self,
        method: Method,
        op: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let hook = {
            let mut inner = self.lock();
            let at = inner.hooks.iter().position(|(m, _)| *m == method);
            at.map(|i| inner.hooks.remove(i).1)
        };
        if let Some(hook) = hook {
            hook(self);
        }
        let mut inner = self.lock();
        if let Some(reason) = inner.failures.pop_front() {
            return Err(StoreError::Unavailable(reason));
        }
        op(&mut inner.tables)
    }
}

/// The adapter's `writable_by` condition on an existing workflow item: not deleted, and the
/// actor is an admin, its owner or (unless `owner_only`) a user it is shared with as `editor`.
/// Roles and scopes beyond `admin` are the use case's to check, not the store's.
fn writable_by(w: &Workflow, actor: &Principal, owner_only: bool) -> bool {
    let who = actor.is_admin()
        || w.owner_id == actor.user_id
        || (!owner_only && w.shares.get(&actor.user_id) == Some(&ShareAccess::Editor));
    who && w.status != WorkflowStatus::Deleted
}

/// Writes a node's own fields over the stored node: identity, parent, `child_count` and
/// `created_at` stay as stored.
fn write_node_fields(stored: &mut Node, node: &Node) {
    stored.title = node.title.clone();
    stored.content = node.content.clone();
    stored.prompt = node.prompt.clone();
    stored.priority = node.priority;
    stored.status = node.status;
    stored.tags = node.tags.clone();
    stored.metadata = node.metadata.clone();
    stored.metrics = node.metrics;
    stored.quality = node.quality;
    stored.updated_at = node.updated_at;
    stored.version = node.version;
}

/// DynamoDB refuses a transaction that names one item twice.
fn distinct<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    if keys.into_iter().all(|k| seen.insert(k)) {
        Ok(())
    } else {
        Err(StoreError::Internal(
            "transaction names one item more than once".into(),
        ))
    }
}

impl Tables {
    fn rejected(&self, workflow_id: &str) -> StoreError {
        StoreError::WorkflowRejected(
            self.workflows
                .get(workflow_id)
                .map(|s| Box::new(s.workflow.clone())),
        )
    }

    fn node(&self, workflow_id: &str, node_id: &str) -> Option<&Node> {
        self.nodes.get(workflow_id).and_then(|n| n.get(node_id))
    }

    /// The idempotency condition of a new record: the key is free or its record expired
    /// before the new one was made (compared in whole seconds, as the TTL attribute is kept).
    fn check_idempotency(&self, r: &IdempotencyRecord) -> Result<(), StoreError> {
        match self.idempotency.get(&(r.owner_id.clone(), r.key.clone())) {
            Some(existing) if existing.expires_at.timestamp() >= r.created_at.timestamp() => {
                Err(StoreError::IdempotencyKeyUsed(Box::new(existing.clone())))
            }
            _ => Ok(()),
        }
    }

    /// Stores a record as the table keeps it: `created_at` to the millisecond, `expires_at`
    /// to the second.
    fn put_idempotency(&mut self, r: &IdempotencyRecord) {
        let mut r = r.clone();
        r.created_at = truncate_to_millis(r.created_at);
        r.expires_at = DateTime::from_timestamp(r.expires_at.timestamp(), 0).unwrap_or_default();
        self.idempotency
            .insert((r.owner_id.clone(), r.key.clone()), r);
    }

    fn create_workflow(
        &mut self,
        workflow: &Workflow,
        nodes: &[Node],
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        // Each node goes to its own workflow's partition, as the adapter's items do.
        let keys: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}/{}", n.workflow_id, n.id))
            .collect();
        distinct(keys.iter().map(String::as_str))?;
        // Every condition of the transaction, by the adapter's precedence.
        if let Some(r) = idempotency {
            self.check_idempotency(r)?;
        }
        if self.workflows.contains_key(&workflow.id) {
            return Err(self.rejected(&workflow.id));
        }
        if let Some(existing) = nodes.iter().find_map(|n| self.node(&n.workflow_id, &n.id)) {
            return Err(StoreError::NodeRejected(Some(Box::new(existing.clone()))));
        }
        self.workflows.insert(
            workflow.id.clone(),
            StoredWorkflow {
                workflow: workflow.clone(),
                listed: true,
            },
        );
        for n in nodes {
            self.nodes
                .entry(n.workflow_id.clone())
                .or_default()
                .insert(n.id.clone(), n.clone());
        }
        if let Some(r) = idempotency {
            self.put_idempotency(r);
        }
        Ok(())
    }

    fn get_workflows(&self, ids: &[String]) -> Result<Vec<Workflow>, StoreError> {
        if ids.len() > BATCH_GET_MAX {
            return Err(StoreError::Internal(format!(
                "batch get of {} keys (at most {BATCH_GET_MAX})",
                ids.len()
            )));
        }
        distinct(ids.iter().map(String::as_str))?;
        Ok(ids
            .iter()
            .filter_map(|id| self.workflows.get(id))
            .map(|s| s.workflow.clone())
            .collect())
    }

    fn get_tree(&self, id: &str) -> Option<(Workflow, Vec<Node>)> {
        let w = self.workflows.get(id)?.workflow.clone();
        let nodes = self
            .nodes
            .get(id)
            .map(|n| n.values().cloned().collect())
            .unwrap_or_default();
        Some((w, nodes))
    }

    fn list_workflows(
        &self,
        user_id: &str,
        filter: &WorkflowFilter,
        limit: u32,
        after: Option<&PageKey>,
    ) -> Result<Page<Workflow>, StoreError> {
        let owner = owner_pk(user_id);
        let low = owner_sk_after(filter.created_after);
        let high = owner_sk_before(filter.created_before);
        if let Some(key) = after {
            // The adapter's check: a key of this user's list, inside this query's range.
            let own = key.0.get(SK).map(String::as_str) == Some(WORKFLOW_SK)
                && key.0.get(PK).is_some_and(|pk| pk.starts_with("WF#"));
            let shared = key.0.get(SK).is_some_and(|sk| sk.starts_with("USER#"))
                && key
                    .0
                    .get(PK)
                    .is_some_and(|pk| pk.starts_with(SHARE_PK_PREFIX));
            let ok = key.0.len() == 4
                && key.0.get(GSI1PK) == Some(&owner)
                && (own || shared)
                && key
                    .0
                    .get(GSI1SK)
                    .is_some_and(|sk| *sk >= low && *sk <= high);
            if !ok {
                return Err(StoreError::BadPageKey);
            }
        }
        if limit == 0 {
            return Err(StoreError::Internal("a query limit of 0".into()));
        }
        // The user's partition of the index: (GSI1SK, PK, SK, workflow id, shared?).
        let mut index: Vec<(String, String, String, &str, bool)> = Vec::new();
        for s in self.workflows.values() {
            let w = &s.workflow;
            if s.listed && w.owner_id == user_id {
                index.push((
                    owner_sk(w.created_at, &w.id),
                    workflow_pk(&w.id),
                    WORKFLOW_SK.to_string(),
                    &w.id,
                    false,
                ));
            }
        }
        for ((workflow_id, user), entry) in &self.shares {
            if user == user_id {
                index.push((
                    entry.sort_key.clone(),
                    format!("{SHARE_PK_PREFIX}{workflow_id}"),
                    format!("USER#{user}"),
                    workflow_id,
                    true,
                ));
            }
        }
        index.retain(|(sk, ..)| *sk >= low && *sk <= high);
        // Backwards, newest first.
        index.sort_by(|a, b| (&b.0, &b.1, &b.2).cmp(&(&a.0, &a.1, &a.2)));
        if let Some(key) = after {
            let start = (
                key.0.get(GSI1SK).cloned().unwrap_or_default(),
                key.0.get(PK).cloned().unwrap_or_default(),
                key.0.get(SK).cloned().unwrap_or_default(),
            );
            index.retain(|(sk, pk, tsk, ..)| (sk, pk, tsk) < (&start.0, &start.1, &start.2));
        }
        let more = index.len() > limit as usize;
        index.truncate(limit as usize);
        let next = match (more, index.last()) {
            (true, Some((sk, pk, tsk, ..))) => Some(PageKey(BTreeMap::from([
                (PK.to_string(), pk.clone()),
                (SK.to_string(), tsk.clone()),
                (GSI1PK.to_string(), owner.clone()),
                (GSI1SK.to_string(), sk.clone()),
            ]))),
            _ => None,
        };
        // Own items pass the filter in the query; shared ones once their workflow is read.
        let items = index
            .iter()
            .filter_map(|(_, _, _, id, shared)| {
                let w = &self.workflows.get(*id)?.workflow;
                let keep = if *shared {
                    w.status != WorkflowStatus::Deleted
                        && w.shares.contains_key(user_id)
                        && filter.matches(w)
                } else {
                    filter.matches(w)
                };
                keep.then(|| w.clone())
            })
            .collect();
        Ok(Page { items, next })
    }

    fn change_workflow(&mut self, c: &WorkflowChange) -> Result<Workflow, StoreError> {
        let Some(stored) = self.workflows.get_mut(&c.id) else {
            return Err(StoreError::WorkflowRejected(None));
        };
        let w = &stored.workflow;
        let deleting = c.update.status == Some(WorkflowStatus::Deleted);
        let holds = writable_by(w, &c.actor, deleting)
            && c.expected_version.is_none_or(|v| w.version == v)
            && (c.allowed_from.is_empty() || c.allowed_from.contains(&w.status))
            && c.max_nodes.is_none_or(|max| w.node_count <= max);
        if !holds {
            return Err(StoreError::WorkflowRejected(Some(Box::new(w.clone()))));
        }
        let w = &mut stored.workflow;
        let u = &c.update;
        w.version += 1;
        w.updated_at = c.now;
        if let Some(name) = &u.name {
            w.name = name.clone();
        }
        if let Some(d) = &u.description {
            w.description = d.clone();
        }
        if let Some(tags) = &u.tags {
            w.tags = tags.clone();
        }
        if let Some(settings) = &u.settings {
            w.settings = settings.clone();
        }
        if let Some(status) = u.status {
            w.status = status;
            if status == WorkflowStatus::Deleted {
                stored.listed = false;
            }
        }
        Ok(stored.workflow.clone())
    }

    fn change_workflows(
        &mut self,
        changes: &[WorkflowChange],
    ) -> Result<Vec<ChangeOutcome>, StoreError> {
        if changes.len() > TX_MAX {
            return Err(StoreError::Internal(format!(
                "a transaction of {} actions (at most {TX_MAX})",
                changes.len()
            )));
        }
        distinct(changes.iter().map(|c| c.id.as_str()))?;
        // One transaction; the rejected changes are dropped and the rest retried: each change
        // lands or not on its own.
        changes
            .iter()
            .map(|c| match self.change_workflow(c) {
                Ok(_) => Ok(ChangeOutcome::Done),
                Err(StoreError::WorkflowRejected(_)) => Ok(ChangeOutcome::Rejected),
                Err(e) => Err(e),
            })
            .collect()
    }

    fn add_node(
        &mut self,
        actor: &Principal,
        node: &Node,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let workflow_id = &node.workflow_id;
        distinct(
            [node.id.as_str()]
                .into_iter()
                .chain(node.parent_id.as_deref()),
        )?;
        if let Some(r) = idempotency {
            self.check_idempotency(r)?;
        }
        match self.workflows.get(workflow_id) {
            // `node_count < settings.max_nodes`: false when `max_nodes` is missing or no number.
            Some(s)
                if writable_by(&s.workflow, actor, false)
                    && s.workflow
                        .settings
                        .0
                        .get("max_nodes")
                        .and_then(serde_json::Value::as_f64)
                        .is_some_and(|max| (s.workflow.node_count as f64) < max) => {}
            _ => return Err(self.rejected(workflow_id)),
        }
        if let Some(parent) = &node.parent_id
            && self.node(workflow_id, parent).is_none()
        {
            return Err(StoreError::ParentMissing);
        }
        if let Some(existing) = self.node(workflow_id, &node.id) {
            return Err(StoreError::NodeRejected(Some(Box::new(existing.clone()))));
        }
        if let Some(s) = self.workflows.get_mut(workflow_id) {
            s.workflow.node_count += 1;
        }
        let nodes = self.nodes.entry(workflow_id.clone()).or_default();
        if let Some(p) = node.parent_id.as_ref().and_then(|p| nodes.get_mut(p)) {
            p.child_count += 1;
        }
        nodes.insert(node.id.clone(), node.clone());
        if let Some(r) = idempotency {
            self.put_idempotency(r);
        }
        Ok(())
    }

    fn get_node(&self, workflow_id: &str, node_id: &str) -> (Option<Workflow>, Option<Node>) {
        (
            self.workflows.get(workflow_id).map(|s| s.workflow.clone()),
            self.node(workflow_id, node_id).cloned(),
        )
    }

    fn list_nodes(
        &self,
        workflow_id: &str,
        limit: u32,
        after: Option<&PageKey>,
    ) -> Result<(Option<Workflow>, Page<Node>), StoreError> {
        let pk = workflow_pk(workflow_id);
        // The partition in key order: the workflow item (`#WORKFLOW`) sorts before its nodes.
        let workflow = self.workflows.get(workflow_id).map(|s| &s.workflow);
        let mut partition: Vec<(String, Option<&Node>)> = Vec::new();
        if workflow.is_some() {
            partition.push((WORKFLOW_SK.to_string(), None));
        }
        if let Some(nodes) = self.nodes.get(workflow_id) {
            partition.extend(
                nodes
                    .values()
                    .map(|n| (format!("{NODE_SK_PREFIX}{}", n.id), Some(n))),
            );
        }
        let (start, query_limit) = match after {
            // The first page asks for one more item: the workflow's own.
            None => (None, limit as usize + 1),
            Some(key) => {
                let ok = key.0.len() == 2
                    && key.0.get(PK) == Some(&pk)
                    && key
                        .0
                        .get(SK)
                        .is_some_and(|sk| sk.starts_with(NODE_SK_PREFIX));
                if !ok {
                    return Err(StoreError::BadPageKey);
                }
                if limit == 0 {
                    return Err(StoreError::Internal("a query limit of 0".into()));
                }
                (key.0.get(SK).cloned(), limit as usize)
            }
        };
        if let Some(start) = &start {
            partition.retain(|(sk, _)| sk > start);
        }
        let more = partition.len() > query_limit;
        partition.truncate(query_limit);
        let next = match (more, partition.last()) {
            (true, Some((sk, _))) => Some(PageKey(BTreeMap::from([
                (PK.to_string(), pk.clone()),
                (SK.to_string(), sk.clone()),
            ]))),
            _ => None,
        };
        let items = partition
            .into_iter()
            .filter_map(|(_, n)| n.cloned())
            .collect();
        Ok((workflow.cloned(), Page { items, next }))
    }

    fn update_node(
        &mut self,
        actor: &Principal,
        node: &Node,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        match self.workflows.get(&node.workflow_id) {
            Some(s) if writable_by(&s.workflow, actor, false) => {}
            _ => return Err(self.rejected(&node.workflow_id)),
        }
        let Some(stored) = self
            .nodes
            .get_mut(&node.workflow_id)
            .and_then(|n| n.get_mut(&node.id))
        else {
            return Err(StoreError::NodeRejected(None));
        };
        if stored.version != expected_version {
            return Err(StoreError::NodeRejected(Some(Box::new(stored.clone()))));
        }
        write_node_fields(stored, node);
        Ok(())
    }

    /// One transaction of a deletion plan: the workflow's count, the nodes, and (for the last
    /// chunk) the parent's count.
    fn delete_chunk(
        &mut self,
        actor: &Principal,
        workflow_id: &str,
        chunk: &[NodeDeletion],
        parent_id: Option<&str>,
    ) -> Result<(), StoreError> {
        distinct(chunk.iter().map(|d| d.id.as_str()).chain(parent_id))?;
        match self.workflows.get(workflow_id) {
            Some(s) if writable_by(&s.workflow, actor, false) => {}
            _ => return Err(self.rejected(workflow_id)),
        }
        if let Some(parent) = parent_id
            && self.node(workflow_id, parent).is_none()
        {
            return Err(StoreError::ParentMissing);
        }
        for d in chunk {
            match self.node(workflow_id, &d.id) {
                Some(n) if n.child_count == d.child_count => {}
                current => return Err(StoreError::NodeRejected(current.cloned().map(Box::new))),
            }
        }
        if let Some(s) = self.workflows.get_mut(workflow_id) {
            // `node_count - n` as DynamoDB computes it: a number, so it may go below zero,
            // which a `u64` cannot hold; it saturates here.
            s.workflow.node_count = s.workflow.node_count.saturating_sub(chunk.len() as u64);
        }
        let nodes = self.nodes.entry(workflow_id.to_string()).or_default();
        for d in chunk {
            nodes.remove(&d.id);
        }
        if let Some(p) = parent_id.and_then(|p| nodes.get_mut(p)) {
            // `child_count - 1`, likewise.
            p.child_count = p.child_count.saturating_sub(1);
        }
        Ok(())
    }

    fn delete_nodes(
        &mut self,
        actor: &Principal,
        workflow_id: &str,
        plan: &[NodeDeletion],
        parent_id: Option<&str>,
    ) -> Result<(), StoreError> {
        // Two actions of each transaction are the counters; each chunk commits on its own.
        let chunks: Vec<&[NodeDeletion]> = plan.chunks(TX_MAX - 2).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let parent = if i + 1 == chunks.len() {
                parent_id
            } else {
                None
            };
            self.delete_chunk(actor, workflow_id, chunk, parent)?;
        }
        Ok(())
    }

    fn put_share(
        &mut self,
        actor: &Principal,
        workflow: &Workflow,
        user_id: &str,
        access: ShareAccess,
    ) -> Result<Workflow, StoreError> {
        match self.workflows.get_mut(&workflow.id) {
            Some(s) if writable_by(&s.workflow, actor, true) => {
                // Only `shares.<user>` is set: the workflow's version and times stay.
                s.workflow.shares.insert(user_id.to_string(), access);
            }
            _ => return Err(self.rejected(&workflow.id)),
        }
        self.shares.insert(
            (workflow.id.clone(), user_id.to_string()),
            ShareEntry {
                access,
                sort_key: owner_sk(workflow.created_at, &workflow.id),
            },
        );
        // As the adapter answers: the workflow it was given, with the share.
        let mut w = workflow.clone();
        w.shares.insert(user_id.to_string(), access);
        Ok(w)
    }

    fn delete_share(
        &mut self,
        actor: &Principal,
        workflow_id: &str,
        user_id: &str,
    ) -> Result<(), StoreError> {
        match self.workflows.get_mut(workflow_id) {
            Some(s)
                if writable_by(&s.workflow, actor, true)
                    && s.workflow.shares.contains_key(user_id) =>
            {
                s.workflow.shares.remove(user_id);
            }
            _ => return Err(self.rejected(workflow_id)),
        }
        self.shares
            .remove(&(workflow_id.to_string(), user_id.to_string()));
        Ok(())
    }
}

/// Runs and steps: the conditions of [`Runs`].
impl Tables {
    fn create_run(
        &mut self,
        actor: &Principal,
        run: &Run,
        steps: &[Step],
        new_nodes: &[Node],
        max_nodes: u64,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let workflow_id = &run.workflow_id;
        if steps.iter().any(|s| s.run_id != run.id) {
            return Err(StoreError::Internal("a step of another run".into()));
        }
        if new_nodes.iter().any(|n| &n.workflow_id != workflow_id) {
            return Err(StoreError::Internal("a node of another workflow".into()));
        }
        distinct(steps.iter().map(|s| s.id.as_str()))?;
        distinct(new_nodes.iter().map(|n| n.id.as_str()))?;
        if let Some(r) = idempotency {
            self.check_idempotency(r)?;
        }
        let added = new_nodes.len() as u64;
        match self.workflows.get(workflow_id) {
            Some(s)
                if writable_by(&s.workflow, actor, false)
                    && (added == 0
                        || (s.workflow.settings.max_nodes() == max_nodes
                            && s.workflow.node_count.saturating_add(added) <= max_nodes)) => {}
            _ => return Err(self.rejected(workflow_id)),
        }
        if self.runs.contains_key(&run.id) {
            return Err(StoreError::Conflict);
        }
        let new_ids: HashSet<&str> = new_nodes.iter().map(|n| n.id.as_str()).collect();
        let parent_missing = new_nodes.iter().any(|n| {
            n.parent_id
                .as_deref()
                .is_some_and(|p| !new_ids.contains(p) && self.node(workflow_id, p).is_none())
        });
        if parent_missing {
            return Err(StoreError::ParentMissing);
        }
        if let Some(existing) = new_nodes.iter().find_map(|n| self.node(workflow_id, &n.id)) {
            return Err(StoreError::NodeRejected(Some(Box::new(existing.clone()))));
        }
        // Everything holds: write it all.
        if let Some(s) = self.workflows.get_mut(workflow_id) {
            s.workflow.node_count += added;
        }
        let nodes = self.nodes.entry(workflow_id.clone()).or_default();
        for n in new_nodes {
            // `child_count` is the store's: a new node's children are the new nodes under it.
            let mut n = n.clone();
            n.child_count = new_nodes
                .iter()
                .filter(|c| c.parent_id.as_deref() == Some(n.id.as_str()))
                .count() as u64;
            nodes.insert(n.id.clone(), n);
        }
        for n in new_nodes {
            if let Some(p) = n.parent_id.as_deref()
                && !new_ids.contains(p)
                && let Some(parent) = nodes.get_mut(p)
            {
                parent.child_count += 1;
            }
        }
        self.runs.insert(run.id.clone(), run.clone());
        self.steps.insert(
            run.id.clone(),
            steps.iter().map(|s| (s.id.clone(), s.clone())).collect(),
        );
        if let Some(r) = idempotency {
            self.put_idempotency(r);
        }
        Ok(())
    }

    fn get_run(&self, workflow_id: &str, run_id: &str) -> Option<(Run, Vec<Step>)> {
        let run = self
            .runs
            .get(run_id)
            .filter(|r| r.workflow_id == workflow_id)?;
        let mut steps: Vec<Step> = self
            .steps
            .get(run_id)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        steps.sort_by(|a, b| (a.position, &a.id).cmp(&(b.position, &b.id)));
        Some((run.clone(), steps))
    }

    fn list_runs(
        &self,
        workflow_id: &str,
        limit: u32,
        after: Option<&PageKey>,
    ) -> Result<Page<Run>, StoreError> {
        let pk = workflow_pk(workflow_id);
        let start = match after {
            None => None,
            Some(key) => {
                let ok = key.0.len() == 2
                    && key.0.get(PK) == Some(&pk)
                    && key
                        .0
                        .get(SK)
                        .is_some_and(|sk| sk.starts_with(RUN_SK_PREFIX));
                if !ok {
                    return Err(StoreError::BadPageKey);
                }
                key.0.get(SK).cloned()
            }
        };
        if limit == 0 {
            return Err(StoreError::Internal("a query limit of 0".into()));
        }
        let mut index: Vec<(String, &Run)> = self
            .runs
            .values()
            .filter(|r| r.workflow_id == workflow_id)
            .map(|r| (run_sk(r), r))
            .collect();
        // Backwards, newest first.
        index.sort_by(|a, b| b.0.cmp(&a.0));
        if let Some(start) = &start {
            index.retain(|(sk, _)| sk < start);
        }
        let more = index.len() > limit as usize;
        index.truncate(limit as usize);
        let next = match (more, index.last()) {
            (true, Some((sk, _))) => Some(PageKey(BTreeMap::from([
                (PK.to_string(), pk.clone()),
                (SK.to_string(), sk.clone()),
            ]))),
            _ => None,
        };
        let items = index.into_iter().map(|(_, r)| r.clone()).collect();
        Ok(Page { items, next })
    }

    fn stored_step(&self, step: &Step) -> Option<&Step> {
        self.steps.get(&step.run_id).and_then(|s| s.get(&step.id))
    }

    fn put_step(&mut self, step: &Step) {
        self.steps
            .entry(step.run_id.clone())
            .or_default()
            .insert(step.id.clone(), step.clone());
    }

    fn update_run(
        &mut self,
        run: &Run,
        expected_version: u64,
        steps: &[(Step, StepStatus)],
    ) -> Result<(), StoreError> {
        if steps.iter().any(|(s, _)| s.run_id != run.id) {
            return Err(StoreError::Internal("a step of another run".into()));
        }
        distinct(steps.iter().map(|(s, _)| s.id.as_str()))?;
        match self.runs.get(&run.id) {
            Some(r) if r.version == expected_version && r.workflow_id == run.workflow_id => {}
            _ => return Err(StoreError::Conflict),
        }
        let steps_hold = steps
            .iter()
            .all(|(s, status)| self.stored_step(s).is_some_and(|st| st.status == *status));
        if !steps_hold {
            return Err(StoreError::Conflict);
        }
        let mut run = run.clone();
        run.version = expected_version + 1;
        self.runs.insert(run.id.clone(), run);
        for (s, _) in steps {
            self.put_step(s);
        }
        Ok(())
    }

    fn claim_step(
        &mut self,
        step: &Step,
        from: StepStatus,
        expected_attempts: u32,
        now: DateTime<Utc>,
    ) -> bool {
        let holds = self.stored_step(step).is_some_and(|stored| {
            // A running attempt's lease, or a scheduled retry's due time, must have passed.
            let due = match stored.lease_until {
                Some(until) if from == StepStatus::Running || stored.is_scheduled_retry() => {
                    until <= now
                }
                _ => true,
            };
            stored.status == from && stored.attempts == expected_attempts && due
        });
        if holds {
            self.put_step(step);
        }
        holds
    }

    fn commit_step(&mut self, c: &StepCommit) -> Result<bool, StoreError> {
        if c.step.run_id != c.run.id {
            return Err(StoreError::Internal("a step of another run".into()));
        }
        if let Some(n) = &c.node
            && n.workflow_id != c.run.workflow_id
        {
            return Err(StoreError::Internal("a node of another workflow".into()));
        }
        let claimed = self
            .stored_step(&c.step)
            .is_some_and(|s| s.status == StepStatus::Running && s.attempts == c.attempt);
        if !claimed {
            return Ok(false);
        }
        match self.runs.get(&c.run.id) {
            Some(r) if r.version == c.run_version && r.workflow_id == c.run.workflow_id => {}
            _ => return Err(StoreError::Conflict),
        }
        if let Some(n) = &c.node
            && self.node(&n.workflow_id, &n.id).is_none()
        {
            return Err(StoreError::NodeRejected(None));
        }
        // Everything holds: write it all.
        self.put_step(&c.step);
        if let Some(n) = &c.node
            && let Some(stored) = self
                .nodes
                .get_mut(&n.workflow_id)
                .and_then(|nodes| nodes.get_mut(&n.id))
        {
            write_node_fields(stored, n);
        }
        let mut run = c.run.clone();
        run.version = c.run_version + 1;
        self.runs.insert(run.id.clone(), run);
        Ok(true)
    }
}

impl Workflows for MemoryWorkflowStore {
    fn create_workflow<'a>(
        &'a self,
        workflow: &'a Workflow,
        nodes: &'a [Node],
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Method::CreateWorkflow, |t| {
                t.create_workflow(workflow, nodes, idempotency)
            })
        })
    }

    fn get_workflow<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Workflow>> {
        Box::pin(async move {
            self.call(Method::GetWorkflow, |t| {
                Ok(t.workflows.get(id).map(|s| s.workflow.clone()))
            })
        })
    }

    fn get_workflows<'a>(&'a self, ids: &'a [String]) -> Fut<'a, Vec<Workflow>> {
        Box::pin(async move { self.call(Method::GetWorkflows, |t| t.get_workflows(ids)) })
    }

    fn get_tree<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Workflow, Vec<Node>)>> {
        Box::pin(async move { self.call(Method::GetTree, |t| Ok(t.get_tree(id))) })
    }

    fn list_workflows<'a>(
        &'a self,
        owner_id: &'a str,
        filter: &'a WorkflowFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Workflow>> {
        Box::pin(async move {
            self.call(Method::ListWorkflows, |t| {
                t.list_workflows(owner_id, filter, limit, after)
            })
        })
    }

    fn change_workflow<'a>(&'a self, change: &'a WorkflowChange) -> Fut<'a, Workflow> {
        Box::pin(async move { self.call(Method::ChangeWorkflow, |t| t.change_workflow(change)) })
    }

    fn change_workflows<'a>(
        &'a self,
        changes: &'a [WorkflowChange],
    ) -> Fut<'a, Vec<ChangeOutcome>> {
        Box::pin(async move { self.call(Method::ChangeWorkflows, |t| t.change_workflows(changes)) })
    }
}

impl Nodes for MemoryWorkflowStore {
    fn add_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(
            async move { self.call(Method::AddNode, |t| t.add_node(actor, node, idempotency)) },
        )
    }

    fn get_node<'a>(
        &'a self,
        workflow_id: &'a str,
        node_id: &'a str,
    ) -> Fut<'a, (Option<Workflow>, Option<Node>)> {
        Box::pin(
            async move { self.call(Method::GetNode, |t| Ok(t.get_node(workflow_id, node_id))) },
        )
    }

    fn list_nodes<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, (Option<Workflow>, Page<Node>)> {
        Box::pin(async move {
            self.call(Method::ListNodes, |t| {
                t.list_nodes(workflow_id, limit, after)
            })
        })
    }

    fn update_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        expected_version: u64,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Method::UpdateNode, |t| {
                t.update_node(actor, node, expected_version)
            })
        })
    }

    fn delete_nodes<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        plan: &'a [NodeDeletion],
        parent_id: Option<&'a str>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Method::DeleteNodes, |t| {
                t.delete_nodes(actor, workflow_id, plan, parent_id)
            })
        })
    }
}

impl Shares for MemoryWorkflowStore {
    fn put_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow: &'a Workflow,
        user_id: &'a str,
        access: ShareAccess,
    ) -> Fut<'a, Workflow> {
        Box::pin(async move {
            self.call(Method::PutShare, |t| {
                t.put_share(actor, workflow, user_id, access)
            })
        })
    }

    fn delete_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        user_id: &'a str,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Method::DeleteShare, |t| {
                t.delete_share(actor, workflow_id, user_id)
            })
        })
    }
}

impl Idempotency for MemoryWorkflowStore {
    fn get_idempotency<'a>(
        &'a self,
        owner_id: &'a str,
        key: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<IdempotencyRecord>> {
        Box::pin(async move {
            self.call(Method::GetIdempotency, |t| {
                Ok(t.idempotency
                    .get(&(owner_id.to_string(), key.to_string()))
                    .filter(|r| r.expires_at > now)
                    .cloned())
            })
        })
    }
}

impl Runs for MemoryWorkflowStore {
    fn create_run<'a>(
        &'a self,
        actor: &'a Principal,
        run: &'a Run,
        steps: &'a [Step],
        new_nodes: &'a [Node],
        max_nodes: u64,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Method::CreateRun, |t| {
                t.create_run(actor, run, steps, new_nodes, max_nodes, idempotency)
            })
        })
    }

    fn get_run<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
    ) -> Fut<'a, Option<(Run, Vec<Step>)>> {
        Box::pin(async move { self.call(Method::GetRun, |t| Ok(t.get_run(workflow_id, run_id))) })
    }

    fn get_run_with<'a>(
        &'a self,
        workflow_id: &'a str,
        run_id: &'a str,
        node_id: Option<&'a str>,
        parent_id: Option<&'a str>,
    ) -> Fut<'a, RunWith> {
        Box::pin(async move {
            self.call(Method::GetRunWith, |t| {
                let node = |id: Option<&str>| id.and_then(|id| t.node(workflow_id, id).cloned());
                Ok(RunWith {
                    run: t.get_run(workflow_id, run_id),
                    workflow: t.workflows.get(workflow_id).map(|s| s.workflow.clone()),
                    node: node(node_id),
                    parent: node(parent_id),
                })
            })
        })
    }

    fn list_runs<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Run>> {
        Box::pin(
            async move { self.call(Method::ListRuns, |t| t.list_runs(workflow_id, limit, after)) },
        )
    }

    fn update_run<'a>(
        &'a self,
        run: &'a Run,
        expected_version: u64,
        steps: &'a [(Step, StepStatus)],
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Method::UpdateRun, |t| {
                t.update_run(run, expected_version, steps)
            })
        })
    }

    fn claim_step<'a>(
        &'a self,
        step: &'a Step,
        from: StepStatus,
        expected_attempts: u32,
        now: DateTime<Utc>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            self.call(Method::ClaimStep, |t| {
                Ok(t.claim_step(step, from, expected_attempts, now))
            })
        })
    }

    fn commit_step<'a>(&'a self, commit: &'a StepCommit) -> Fut<'a, bool> {
        Box::pin(async move { self.call(Method::CommitStep, |t| t.commit_step(commit)) })
    }

    fn active_runs<'a>(&'a self, limit: usize) -> Fut<'a, Vec<(String, String)>> {
        let runs: Vec<(String, String)> = self
            .runs()
            .into_iter()
            .filter(|r| !r.status.is_terminal())
            .map(|r| (r.workflow_id, r.id))
            .take(limit)
            .collect();
        Box::pin(async move { Ok(runs) })
    }
}
