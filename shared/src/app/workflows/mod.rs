//! The workflows area: workflows (create, read, list, change, delete, statistics, here), their
//! nodes, shares, bulk changes, export and import, and `Idempotency-Key` replays; with the
//! access rules every one of them applies ([`visible`], [`changeable`], [`require_write`]).

pub mod bulk;
pub mod idempotency;
pub mod nodes;
pub mod requests;
pub mod shares;
pub mod transfer;

use crate::app::AppError;
use crate::domain::error::Errors;
use crate::domain::tree::{self, Draft};
use crate::domain::{Access, Role};
use crate::domain::{
    Node, Principal, Settings, Workflow, WorkflowStatistics, WorkflowStatus, ids, workflow,
};
use crate::ports::StoreError;
use crate::ports::{
    Idempotency, Page, Runs, WorkflowChange, WorkflowFilter, WorkflowUpdate, Workflows,
};
use chrono::{DateTime, Utc};
use idempotency::{IdempotencyKey, Outcome};
use requests::*;

pub struct CreateWorkflow<'a> {
    pub principal: &'a Principal,
    pub body: CreateWorkflowRequest,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

/// Validates a whole new workflow with its nodes and builds the items to store.
pub fn new_workflow(
    principal: &Principal,
    body: CreateWorkflowRequest,
    now: DateTime<Utc>,
) -> Result<CreatedWorkflow, AppError> {
    require_write(principal)?;
    let mut errors = Errors::default();
    if body.nodes.len() > MAX_NODES_PER_CREATE {
        errors.push("nodes", format!("at most {MAX_NODES_PER_CREATE} nodes per request (got {}); add more with POST /nodes", body.nodes.len()));
    }
    let head = NewWorkflow {
        name: body.name,
        description: body.description,
        status: WorkflowStatus::Draft,
        settings: Settings::with_defaults(body.settings),
        tags: body.tags,
    };
    new_tree(
        errors,
        principal,
        head,
        "",
        &body.nodes,
        ("ref", "parent_ref"),
        |n| (n.reference.as_deref(), n.parent_ref.as_deref()),
        NewNodeInTree::fields,
        now,
    )
}

/// A new workflow's own fields, as create and import receive them.
pub(crate) struct NewWorkflow {
    pub name: String,
    pub description: String,
    pub status: WorkflowStatus,
    pub settings: Settings,
    pub tags: Vec<String>,
}

/// Validates a new workflow (fields under `prefix`) with its nodes, each naming itself and its
/// parent by keys local to the request (`key_names` in error paths), adding to the caller's
/// `errors`; then builds the workflow and its tree, parents first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_tree<T>(
    mut errors: Errors,
    principal: &Principal,
    head: NewWorkflow,
    prefix: &str,
    drafts: &[T],
    key_names: (&str, &str),
    keys: impl Fn(&T) -> (Option<&str>, Option<&str>),
    fields: impl Fn(&T) -> crate::domain::NodeFields,
    now: DateTime<Utc>,
) -> Result<CreatedWorkflow, AppError> {
    let settings = head.settings;
    workflow::validate_fields(
        &mut errors,
        prefix,
        &head.name,
        &head.description,
        &settings,
        &head.tags,
    );
    if drafts.len() as u64 > settings.max_nodes() {
        errors.push(
            "nodes",
            format!(
                "more nodes ({}) than {prefix}settings.max_nodes ({})",
                drafts.len(),
                settings.max_nodes()
            ),
        );
    }
    validate_nodes(&mut errors, "nodes", drafts.iter().map(&fields));
    let tree_drafts: Vec<Draft> = drafts
        .iter()
        .map(|d| {
            let (key, parent_key) = keys(d);
            Draft { key, parent_key }
        })
        .collect();
    let order = match tree::parent_first_order(&tree_drafts, "nodes", key_names.0, key_names.1) {
        Ok(order) => order,
        Err(e) => {
            errors.extend(e);
            vec![]
        }
    };
    errors.into_result(())?;
    let workflow = Workflow {
        id: ids::new_id(),
        owner_id: principal.user_id.clone(),
        name: head.name,
        description: head.description,
        status: head.status,
        settings,
        tags: head.tags,
        node_count: drafts.len() as u64,
        created_at: now,
        updated_at: now,
        version: 1,
        shares: Default::default(),
    };
    let nodes = build_tree(&workflow.id, drafts, &order, keys, fields, now);
    Ok(CreatedWorkflow { workflow, nodes })
}

/// New nodes in parent-first `order`, with fresh increasing ids, parents resolved by key.
fn build_tree<T>(
    workflow_id: &str,
    drafts: &[T],
    order: &[usize],
    keys: impl Fn(&T) -> (Option<&str>, Option<&str>),
    fields: impl Fn(&T) -> crate::domain::NodeFields,
    now: DateTime<Utc>,
) -> Vec<Node> {
    let new_ids = ids::new_ids(order.len());
    let mut id_of_key = std::collections::HashMap::new();
    let mut nodes = Vec::with_capacity(order.len());
    for (&i, id) in order.iter().zip(new_ids) {
        let (key, parent_key) = keys(&drafts[i]);
        let parent_id = parent_key.and_then(|p| id_of_key.get(p)).cloned();
        if let Some(k) = key {
            id_of_key.insert(k.to_string(), id.clone());
        }
        nodes.push(Node::new(
            id,
            workflow_id.to_string(),
            parent_id,
            fields(&drafts[i]),
            now,
        ));
    }
    // Child counts follow from the tree being created.
    let mut counts = std::collections::HashMap::<String, u64>::new();
    for n in &nodes {
        if let Some(p) = &n.parent_id {
            *counts.entry(p.clone()).or_default() += 1;
        }
    }
    for n in &mut nodes {
        n.child_count = counts.get(&n.id).copied().unwrap_or(0);
    }
    nodes
}

pub async fn create(
    store: &(impl Workflows + Idempotency + ?Sized),
    req: CreateWorkflow<'_>,
) -> Result<Outcome<CreatedWorkflow>, AppError> {
    let created = new_workflow(req.principal, req.body, req.now)?;
    store_created(
        store,
        req.principal,
        created,
        req.idempotency.as_ref(),
        req.now,
    )
    .await
}

/// Stores a new workflow with its nodes and the idempotency record, or answers the replay of
/// an earlier request with the same key (create and import).
pub(crate) async fn store_created(
    store: &(impl Workflows + Idempotency + ?Sized),
    principal: &Principal,
    created: CreatedWorkflow,
    idempotency: Option<&IdempotencyKey>,
    now: DateTime<Utc>,
) -> Result<Outcome<CreatedWorkflow>, AppError> {
    let location = created.workflow.id.clone();
    let record = idempotency::record(
        &principal.user_id,
        idempotency,
        201,
        &created,
        location,
        now,
    )?;
    match store
        .create_workflow(&created.workflow, &created.nodes, record.as_ref())
        .await
    {
        Ok(()) => Ok(Outcome::Created(created)),
        Err(e) => {
            idempotency::on_store_error(e, idempotency, AppError::from)?
                .into_outcome(|id| read_created(store, principal, id))
                .await
        }
    }
}

/// A created workflow as it is now, for a replay whose response was too large to keep.
pub(crate) async fn read_created(
    store: &(impl Workflows + ?Sized),
    principal: &Principal,
    id: String,
) -> Result<CreatedWorkflow, AppError> {
    let (workflow, nodes) = store
        .get_tree(&id)
        .await?
        .ok_or(AppError::NotFound("workflow"))?;
    let workflow = visible(Some(workflow), principal)?;
    Ok(CreatedWorkflow { workflow, nodes })
}

pub async fn get(
    store: &(impl Workflows + ?Sized),
    principal: &Principal,
    id: &str,
) -> Result<Workflow, AppError> {
    visible(store.get_workflow(id).await?, principal)
}

/// Validates list parameters and returns a page of the caller's workflows.
pub async fn list(
    store: &(impl Workflows + ?Sized),
    principal: &Principal,
    query: ListWorkflowsQuery,
) -> Result<Page<Workflow>, AppError> {
    if !principal.has(crate::domain::Scope::WorkflowsRead) {
        return Err(AppError::Forbidden(
            "this API key's scopes do not include workflows:read",
        ));
    }
    if let (Some(a), Some(b)) = (query.created_after, query.created_before)
        && a >= b
    {
        return Err(AppError::field(
            "created_before",
            "must be later than created_after",
        ));
    }
    let name_words = query
        .q
        .as_deref()
        .map(workflow::search_words)
        .unwrap_or_default();
    if name_words.len() > 10 {
        return Err(AppError::field("q", "at most 10 words"));
    }
    let filter = WorkflowFilter {
        status: query.status,
        tag: query.tag,
        name_words,
        created_after: query.created_after,
        created_before: query.created_before,
    };
    Ok(store
        .list_workflows(
            &principal.user_id,
            &filter,
            query.limit,
            query.cursor.as_ref(),
        )
        .await?)
}

/// Version a conditional write is based on: `If-Match` or the body's `expected_version`.
pub fn expected_version(if_match: Option<u64>, body: Option<u64>) -> Result<Option<u64>, AppError> {
    match (if_match, body) {
        (Some(a), Some(b)) if a != b => Err(AppError::field(
            "expected_version",
            "disagrees with If-Match",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// A settings patch may name at most this many keys.
pub const MAX_SETTINGS_PATCH_KEYS: usize = 100;

pub struct UpdateWorkflow<'a> {
    pub principal: &'a Principal,
    pub id: &'a str,
    pub if_match: Option<u64>,
    pub body: UpdateWorkflowRequest,
    pub now: DateTime<Utc>,
}

pub async fn update(
    store: &(impl Workflows + ?Sized),
    req: UpdateWorkflow<'_>,
) -> Result<Workflow, AppError> {
    require_write(req.principal)?;
    let expected = expected_version(req.if_match, req.body.expected_version)?
        .ok_or(AppError::PreconditionRequired)?;
    let body = req.body;
    let mut errors = Errors::default();
    if let Some(name) = &body.name {
        crate::domain::validate::name(&mut errors, "name", name, workflow::MAX_NAME_CHARS);
    }
    if let Some(d) = &body.description {
        crate::domain::validate::text(
            &mut errors,
            "description",
            d,
            0,
            workflow::MAX_DESCRIPTION_CHARS,
            true,
        );
    }
    if let Some(tags) = &body.tags {
        crate::domain::validate::tags(&mut errors, "tags", tags);
    }
    // A settings patch is merged into the settings as stored and the result checked as a
    // whole (size, known keys): one read first, then the write conditional on that version.
    let settings = match &body.settings {
        None => None,
        Some(patch) => {
            let current = changeable(store.get_workflow(req.id).await?, req.principal)?;
            if current.version != expected {
                return Err(AppError::VersionConflict {
                    current_version: current.version,
                });
            }
            if patch.len() > MAX_SETTINGS_PATCH_KEYS {
                errors.push(
                    "settings",
                    format!("at most {MAX_SETTINGS_PATCH_KEYS} keys per patch"),
                );
            }
            let merged = current.settings.merged(patch);
            merged.validate(&mut errors, "settings");
            if errors.is_empty() && merged.max_nodes() < current.node_count {
                return Err(AppError::MaxNodesBelowCount {
                    node_count: current.node_count,
                });
            }
            Some(merged)
        }
    };
    errors.into_result(())?;
    let max_nodes = settings.as_ref().map(Settings::max_nodes);
    let change = WorkflowChange {
        id: req.id.to_string(),
        actor: req.principal.clone(),
        expected_version: Some(expected),
        allowed_from: vec![],
        max_nodes,
        update: WorkflowUpdate {
            name: body.name,
            description: body.description,
            tags: body.tags,
            settings,
            status: None,
        },
        now: req.now,
    };
    store.change_workflow(&change).await.map_err(|e| {
        workflow_rejection(e, req.principal, |current| match max_nodes {
            Some(max) if current.version == expected && current.node_count > max => {
                AppError::MaxNodesBelowCount {
                    node_count: current.node_count,
                }
            }
            _ => AppError::VersionConflict {
                current_version: current.version,
            },
        })
    })
}

pub struct ChangeStatus<'a> {
    pub principal: &'a Principal,
    pub id: &'a str,
    pub target: WorkflowStatus,
    pub expected_version: Option<u64>,
    pub now: DateTime<Utc>,
}

/// One status transition, conditional on the current status being a legal source, so the
/// check and the write cannot race. Deleting is the transition to `deleted`.
/// Moves a workflow to another status; pausing or cancelling it (or deleting it) pauses or
/// cancels its runs ([`crate::app::runs::follow_workflow`]).
pub async fn change_status(
    store: &(impl Workflows + Runs + ?Sized),
    req: ChangeStatus<'_>,
) -> Result<Workflow, AppError> {
    require_write(req.principal)?;
    let change = WorkflowChange {
        id: req.id.to_string(),
        actor: req.principal.clone(),
        expected_version: req.expected_version,
        allowed_from: WorkflowStatus::sources_of(req.target),
        max_nodes: None,
        update: WorkflowUpdate {
            status: Some(req.target),
            ..Default::default()
        },
        now: req.now,
    };
    let workflow = store.change_workflow(&change).await.map_err(|e| {
        workflow_rejection(e, req.principal, |current| match req.expected_version {
            _ if req.target == WorkflowStatus::Deleted
                && !req.principal.owns(&current.owner_id)
                && !req.principal.is_admin() =>
            {
                AppError::Forbidden("only the owner can delete a workflow")
            }
            Some(v) if v != current.version => AppError::VersionConflict {
                current_version: current.version,
            },
            _ => AppError::IllegalTransition {
                from: current.status.as_str(),
                to: req.target.as_str(),
                allowed: current
                    .status
                    .allowed_targets()
                    .iter()
                    .map(|s| s.as_str())
                    .collect(),
            },
        })
    })?;
    crate::app::runs::follow_workflow(store, &workflow.id, workflow.status, req.now).await?;
    Ok(workflow)
}

pub async fn statistics(
    store: &(impl Workflows + ?Sized),
    principal: &Principal,
    id: &str,
) -> Result<WorkflowStatistics, AppError> {
    let (workflow, nodes) = store
        .get_tree(id)
        .await?
        .ok_or(AppError::NotFound("workflow"))?;
    visible(Some(workflow), principal)?;
    Ok(WorkflowStatistics::of(&nodes))
}

/// The workflow if the caller may see it: it exists, is not deleted, and is theirs, shared with
/// them, or they are an admin. Anything else looks the same to the caller as a workflow that
/// never existed.
pub(crate) fn visible(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<Workflow, AppError> {
    access(workflow, principal).map(|(w, _)| w)
}

/// The workflow if the caller may change it: visible, and with write access (else 403).
pub(crate) fn changeable(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<Workflow, AppError> {
    match access(workflow, principal)? {
        (w, Access::Write) => Ok(w),
        (_, Access::Read) => Err(read_only(principal)),
    }
}

fn access(
    workflow: Option<Workflow>,
    principal: &Principal,
) -> Result<(Workflow, Access), AppError> {
    match workflow {
        Some(w) if w.status != crate::domain::WorkflowStatus::Deleted => {
            match principal.access(&w.owner_id, &w.shares) {
                Some(a) => Ok((w, a)),
                None => Err(AppError::NotFound("workflow")),
            }
        }
        _ => Err(AppError::NotFound("workflow")),
    }
}

/// Refuses a change up front when the caller's role or key scopes allow none at all.
pub(crate) fn require_write(principal: &Principal) -> Result<(), AppError> {
    if principal.can_write() {
        Ok(())
    } else {
        Err(read_only(principal))
    }
}

fn read_only(principal: &Principal) -> AppError {
    AppError::Forbidden(
        if principal.scopes.is_some() && principal.role != Role::Viewer {
            "this API key's scopes do not include workflows:write"
        } else if principal.role == Role::Viewer {
            "the viewer role can read but not change workflows"
        } else {
            "this workflow is shared with you read-only"
        },
    )
}

/// Maps a failed conditional workflow write: not visible -> 404, read-only -> 403; otherwise
/// `conflict` explains.
pub(crate) fn workflow_rejection(
    err: StoreError,
    principal: &Principal,
    conflict: impl FnOnce(Workflow) -> AppError,
) -> AppError {
    match err {
        StoreError::WorkflowRejected(current) => match changeable(current.map(|b| *b), principal) {
            Ok(w) => conflict(w),
            Err(e) => e,
        },
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn principal() -> Principal {
        Principal::user("u1", crate::domain::Role::Editor)
    }

    fn body(v: Value) -> CreateWorkflowRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn new_workflow_builds_the_tree_with_counts() {
        let created = new_workflow(
            &principal(),
            body(json!({"name": "W", "nodes": [
                {"ref": "c", "parent_ref": "b", "title": "C"},
                {"ref": "a", "title": "A"},
                {"ref": "b", "parent_ref": "a", "title": "B"},
                {"parent_ref": "a", "title": "D"}
            ]})),
            Utc::now(),
        )
        .unwrap();
        let by_title = |t: &str| created.nodes.iter().find(|n| n.title == t).unwrap();
        assert_eq!(created.workflow.node_count, 4);
        assert_eq!(created.workflow.status, WorkflowStatus::Draft);
        assert_eq!(created.workflow.settings.max_nodes(), 1000);
        assert_eq!(by_title("B").parent_id.as_ref(), Some(&by_title("A").id));
        assert_eq!(by_title("C").parent_id.as_ref(), Some(&by_title("B").id));
        assert_eq!(by_title("A").child_count, 2);
        assert_eq!(by_title("C").child_count, 0);
        // Parents come first and ids increase in that order.
        assert!(created.nodes.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(created.nodes[0].title, "A");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = new_workflow(
            &principal(),
            body(json!({"name": "", "settings": {"max_nodes": 1}, "nodes": [
                {"title": "", "ref": "x"}, {"title": "ok", "parent_ref": "nope"}
            ]})),
            Utc::now(),
        )
        .unwrap_err();
        let AppError::Validation(v) = err else {
            panic!("{err:?}")
        };
        let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "nodes", "nodes[0].title", "nodes[1].parent_ref"]
        );
    }

    #[test]
    fn too_many_nodes_per_request() {
        let nodes: Vec<Value> = (0..99).map(|i| json!({"title": format!("n{i}")})).collect();
        let err = new_workflow(
            &principal(),
            body(json!({"name": "W", "nodes": nodes})),
            Utc::now(),
        )
        .unwrap_err();
        assert!(matches!(err, AppError::Validation(v) if v[0].field == "nodes"));
    }

    #[test]
    fn expected_version_sources_agree() {
        assert_eq!(expected_version(Some(2), None).unwrap(), Some(2));
        assert_eq!(expected_version(None, Some(3)).unwrap(), Some(3));
        assert_eq!(expected_version(Some(3), Some(3)).unwrap(), Some(3));
        assert!(expected_version(Some(2), Some(3)).is_err());
        assert_eq!(expected_version(None, None).unwrap(), None);
    }
}
