//! Use cases of nodes: add, read, list, change, delete (optionally with the subtree).

use super::expected_version;
use super::idempotency::{self, IdempotencyKey, Outcome};
use super::requests::*;
use super::{changeable, require_write, visible, workflow_rejection};
use crate::app::AppError;
use crate::domain::error::Errors;
use crate::domain::metrics::ContentMetrics;
use crate::domain::quality::QualityScores;
use crate::domain::{Node, Principal, ids, node, tree, validate};
use crate::ports::{Idempotency, NodeDeletion, Nodes, Page, StoreError, Workflows};
use chrono::{DateTime, Utc};

pub struct AddNode<'a> {
    pub principal: &'a Principal,
    pub workflow_id: &'a str,
    pub body: CreateNodeRequest,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

pub async fn add(
    store: &(impl Workflows + Nodes + Idempotency + ?Sized),
    req: AddNode<'_>,
) -> Result<Outcome<Node>, AppError> {
    require_write(req.principal)?;
    let mut errors = Errors::default();
    req.body.fields().validate(&mut errors, "");
    if let Some(p) = &req.body.parent_id
        && !ids::is_valid_id(p)
    {
        errors.push("parent_id", "is not a node id");
    }
    errors.into_result(())?;
    let node = Node::new(
        ids::new_id(),
        req.workflow_id.to_string(),
        req.body.parent_id.clone(),
        req.body.fields(),
        req.now,
    );
    let record = idempotency::record(
        &req.principal.user_id,
        req.idempotency.as_ref(),
        201,
        &node,
        format!("{}/{}", node.workflow_id, node.id),
        req.now,
    )?;
    match store.add_node(req.principal, &node, record.as_ref()).await {
        Ok(()) => Ok(Outcome::Created(node)),
        Err(e) => {
            let stored = idempotency::on_store_error(e, req.idempotency.as_ref(), |e| {
                workflow_rejection(e, req.principal, |current| AppError::NodeLimitReached {
                    max_nodes: current.settings.max_nodes(),
                })
            })?;
            stored
                .into_outcome(|location| async move {
                    let (workflow_id, node_id) =
                        location.split_once('/').ok_or(AppError::NotFound("node"))?;
                    get(store, req.principal, workflow_id, node_id).await
                })
                .await
        }
    }
}

pub async fn get(
    store: &(impl Nodes + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    node_id: &str,
) -> Result<Node, AppError> {
    let (workflow, node) = store.get_node(workflow_id, node_id).await?;
    visible(workflow, principal)?;
    node.ok_or(AppError::NotFound("node"))
}

/// The node, if the caller may change its workflow (a read-only caller learns nothing more, such
/// as a version or a child count, before its 403).
async fn get_changeable(
    store: &(impl Nodes + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    node_id: &str,
) -> Result<Node, AppError> {
    let (workflow, node) = store.get_node(workflow_id, node_id).await?;
    changeable(workflow, principal)?;
    node.ok_or(AppError::NotFound("node"))
}

pub async fn list(
    store: &(impl Nodes + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    limit: u32,
    cursor: Option<crate::ports::PageKey>,
) -> Result<Page<Node>, AppError> {
    let (workflow, page) = store
        .list_nodes(workflow_id, limit, cursor.as_ref())
        .await?;
    visible(workflow, principal)?;
    Ok(page)
}

pub struct UpdateNode<'a> {
    pub principal: &'a Principal,
    pub workflow_id: &'a str,
    pub node_id: &'a str,
    pub if_match: Option<u64>,
    pub body: UpdateNodeRequest,
    pub now: DateTime<Utc>,
}

/// Reads the node, applies the patch, and writes it back only if nobody wrote in between.
pub async fn update(store: &(impl Nodes + ?Sized), req: UpdateNode<'_>) -> Result<Node, AppError> {
    require_write(req.principal)?;
    let expected = expected_version(req.if_match, req.body.expected_version)?
        .ok_or(AppError::PreconditionRequired)?;
    let current = get_changeable(store, req.principal, req.workflow_id, req.node_id).await?;
    if current.version != expected {
        return Err(AppError::VersionConflict {
            current_version: current.version,
        });
    }
    let body = req.body;
    let mut next = current.clone();
    let mut errors = Errors::default();
    if let Some(title) = body.title {
        validate::name(&mut errors, "title", &title, node::MAX_TITLE_CHARS);
        next.title = title;
    }
    if let Some(content) = body.content {
        node::validate_content(&mut errors, "content", &content);
        next.metrics = ContentMetrics::of(&content);
        next.quality = QualityScores::of(&content, &next.metrics);
        next.content = content;
    }
    if let Some(prompt) = body.prompt {
        validate::text(
            &mut errors,
            "prompt",
            &prompt,
            0,
            node::MAX_PROMPT_CHARS,
            true,
        );
        next.prompt = prompt;
    }
    if let Some(p) = body.priority {
        next.priority = p;
    }
    if let Some(s) = body.status {
        next.status = s;
    }
    if let Some(tags) = body.tags {
        validate::tags(&mut errors, "tags", &tags);
        next.tags = tags;
    }
    if let Some(patch) = body.metadata {
        for (k, v) in patch {
            if v.is_null() {
                next.metadata.remove(&k);
            } else {
                next.metadata.insert(k, v);
            }
        }
        validate::object(&mut errors, "metadata", &next.metadata);
    }
    errors.into_result(())?;
    next.version = current.version + 1;
    next.updated_at = req.now;
    match store.update_node(req.principal, &next, expected).await {
        Ok(()) => Ok(next),
        Err(StoreError::NodeRejected(Some(n))) => Err(AppError::VersionConflict {
            current_version: n.version,
        }),
        Err(e) => Err(workflow_rejection(e, req.principal, |_| {
            AppError::NotFound("node")
        })),
    }
}

pub struct DeleteNode<'a> {
    pub principal: &'a Principal,
    pub workflow_id: &'a str,
    pub node_id: &'a str,
    pub cascade: bool,
}

/// Deletes a node; one with children only with `cascade`, and then its whole subtree, deepest
/// first. Each node is deleted only if it still has the children that were read, so a child
/// added concurrently is never orphaned (the request then answers 409 and can be repeated).
pub async fn delete(
    store: &(impl Workflows + Nodes + ?Sized),
    req: DeleteNode<'_>,
) -> Result<(), AppError> {
    require_write(req.principal)?;
    let (plan, parent_id) = if req.cascade {
        let (workflow, nodes) = store
            .get_tree(req.workflow_id)
            .await?
            .ok_or(AppError::NotFound("workflow"))?;
        changeable(Some(workflow), req.principal)?;
        let subtree = tree::subtree_deepest_first(&nodes, req.node_id);
        let root = subtree.last().ok_or(AppError::NotFound("node"))?;
        let parent_id = root.parent_id.clone();
        let plan = subtree
            .iter()
            .map(|n| NodeDeletion {
                id: n.id.clone(),
                child_count: n.child_count,
            })
            .collect::<Vec<_>>();
        (plan, parent_id)
    } else {
        let node = get_changeable(store, req.principal, req.workflow_id, req.node_id).await?;
        if node.child_count > 0 {
            return Err(AppError::NodeHasChildren {
                child_count: node.child_count,
            });
        }
        (
            vec![NodeDeletion {
                id: node.id,
                child_count: 0,
            }],
            node.parent_id,
        )
    };
    match store
        .delete_nodes(req.principal, req.workflow_id, &plan, parent_id.as_deref())
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::NodeRejected(Some(n))) if n.child_count > 0 && !req.cascade => {
            Err(AppError::NodeHasChildren {
                child_count: n.child_count,
            })
        }
        Err(StoreError::NodeRejected(Some(_))) => Err(AppError::TreeChanged),
        Err(StoreError::ParentMissing) => Err(AppError::TreeChanged),
        Err(e) => Err(workflow_rejection(e, req.principal, |_| {
            AppError::NotFound("workflow")
        })),
    }
}
