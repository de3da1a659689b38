//! [`WorkflowStore`] over one DynamoDB table.

use super::expr::Expr;
use super::items::*;
use super::keys::*;
use super::table::{ATTEMPTS as TX_ATTEMPTS, Table, TxError};
use crate::aws::errors::{build, classify};
use crate::domain::{Node, Principal, ShareAccess, Workflow, WorkflowStatus};
use crate::ports::*;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The attributes of a node that an update writes (everything but keys, identity and counters).
const NODE_OWN_FIELDS: &[&str] = &[
    "title",
    "content",
    "prompt",
    "priority",
    "status",
    "tags",
    "metadata",
    "metrics",
    "quality",
    "updated_at",
    "version",
];

/// The attributes a [`Workflow`] is read from (and the import marker that hides one): what a
/// list asks DynamoDB for.
pub const WORKFLOW_FIELDS: &[&str] = &[
    "id",
    "owner_id",
    "name",
    "description",
    "status",
    "settings",
    "tags",
    "node_count",
    "created_at",
    "updated_at",
    "version",
    "shares",
    IMPORT_PENDING,
];

/// DynamoDB allows at most 100 actions in one transaction.
const TX_MAX: usize = 100;
/// A pending import not finished within this time is removed by the table's TTL.
const IMPORT_TTL_SECONDS: i64 = 24 * 3600;
const ALL_OLD: ReturnValuesOnConditionCheckFailure = ReturnValuesOnConditionCheckFailure::AllOld;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    table: Table,
}

/// What an action of a transaction stands for, to explain a cancellation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    // Ordered by precedence: a replayed idempotency key explains everything else.
    Idempotency,
    Workflow,
    Parent,
    Node,
}

/// The parts of one conditional update, usable as UpdateItem or as a transaction action.
struct UpdateParts {
    key: Item,
    update: String,
    condition: String,
    expr: Expr,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn string_list(v: &[String]) -> AttributeValue {
    AttributeValue::L(v.iter().map(|t| s(t.as_str())).collect())
}

/// Condition: the workflow exists, `actor` may change it (owner, shared as `editor`, or an
/// admin), and it is not deleted and not mid-import. Roles and scopes are the use case's to
/// check; this makes a share revoked or an owner changed since the read count.
fn writable(e: &mut Expr, actor: &Principal) -> String {
    writable_by(e, actor, false)
}

/// [`writable`], or with `owner_only` only by the owner or an admin (deleting a workflow).
fn writable_by(e: &mut Expr, actor: &Principal, owner_only: bool) -> String {
    let who = if actor.is_admin() {
        String::new()
    } else if owner_only {
        format!(
            " AND {owner} = {u}",
            owner = e.name("owner_id"),
            u = e.s(actor.user_id.as_str()),
        )
    } else {
        format!(
            " AND ({owner} = {u} OR {share} = {editor})",
            owner = e.name("owner_id"),
            u = e.s(actor.user_id.as_str()),
            share = e.path(&["shares", actor.user_id.as_str()]),
            editor = e.s(ShareAccess::Editor.as_str()),
        )
    };
    format!(
        "attribute_exists({pk}){who} AND {status} <> {deleted} AND attribute_not_exists({pending})",
        pk = e.name(PK),
        status = e.name("status"),
        deleted = e.s(WorkflowStatus::Deleted.as_str()),
        pending = e.name(IMPORT_PENDING),
    )
}

fn workflow_update_parts(c: &WorkflowChange) -> Result<UpdateParts, StoreError> {
    let mut e = Expr::default();
    let deleting = c.update.status == Some(WorkflowStatus::Deleted);
    let mut condition = writable_by(&mut e, &c.actor, deleting);
    if let Some(v) = c.expected_version {
        condition += &format!(" AND {} = {}", e.name("version"), e.n(v));
    }
    if !c.allowed_from.is_empty() {
        let status = e.name("status");
        let list: Vec<String> = c.allowed_from.iter().map(|st| e.s(st.as_str())).collect();
        condition += &format!(" AND {status} IN ({})", list.join(", "));
    }
    if let Some(max) = c.max_nodes {
        condition += &format!(" AND {} <= {}", e.name("node_count"), e.n(max));
    }
    let u = &c.update;
    let mut sets = vec![
        format!("{v} = {v} + {one}", v = e.name("version"), one = e.n(1)),
        format!(
            "{} = {}",
            e.name("updated_at"),
            e.value(
                serde_dynamo::to_attribute_value(c.now)
                    .map_err(|x| StoreError::Internal(x.to_string()))?
            )
        ),
    ];
    let mut removes = vec![];
    if let Some(name) = &u.name {
        sets.push(format!("{} = {}", e.name("name"), e.s(name.as_str())));
        sets.push(format!(
            "{} = {}",
            e.name(SEARCH_TEXT),
            e.s(crate::domain::workflow::search_text(name))
        ));
    }
    if let Some(d) = &u.description {
        sets.push(format!("{} = {}", e.name("description"), e.s(d.as_str())));
    }
    if let Some(tags) = &u.tags {
        sets.push(format!(
            "{} = {}",
            e.name("tags"),
            e.value(string_list(tags))
        ));
    }
    if let Some(settings) = &u.settings {
        let value = json_attribute(&serde_json::Value::Object(settings.0.clone()))?;
        sets.push(format!("{} = {}", e.name("settings"), e.value(value)));
    }
    if let Some(status) = u.status {
        sets.push(format!("{} = {}", e.name("status"), e.s(status.as_str())));
        if status == WorkflowStatus::Deleted {
            sets.push(format!(
                "{} = {}",
                e.name("deleted_at"),
                e.s(sort_time(c.now))
            ));
            removes.push(e.name(GSI1PK));
            removes.push(e.name(GSI1SK));
        }
    }
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update += &format!(" REMOVE {}", removes.join(", "));
    }
    Ok(UpdateParts {
        key: workflow_key(&c.id),
        update,
        condition,
        expr: e,
    })
}

impl UpdateParts {
    fn action(self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(self.update)
            .condition_expression(self.condition)
            .set_expression_attribute_names(self.expr.names_opt())
            .set_expression_attribute_values(self.expr.values_opt())
            .return_values_on_condition_check_failure(ALL_OLD)
            .build()
            .map_err(build)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Adds `n` (negative to subtract) to a counter of an item, under `condition`.
fn counter_parts(
    key: Item,
    counter: &str,
    n: i64,
    condition: impl FnOnce(&mut Expr) -> String,
) -> UpdateParts {
    let mut e = Expr::default();
    let condition = condition(&mut e);
    let c = e.name(counter);
    let update = format!("SET {c} = {c} + {}", e.n(n));
    UpdateParts {
        key,
        update,
        condition,
        expr: e,
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            table: Table::new(client, table),
        }
    }

    pub fn table(&self) -> &str {
        self.table.name()
    }

    /// Gives a workflow item an empty `shares` map if it has none.
    async fn add_shares_map(&self, workflow_id: &str) -> Result<(), StoreError> {
        let mut e = Expr::default();
        let update = format!(
            "SET {} = {}",
            e.name("shares"),
            e.value(AttributeValue::M(Default::default()))
        );
        let condition = format!(
            "attribute_exists({}) AND attribute_not_exists({})",
            e.name(PK),
            e.name("shares")
        );
        // Already there (a concurrent share added it) is as good as added.
        self.table
            .update_if(workflow_key(workflow_id), update, condition, e)
            .await
            .map(|_| ())
    }

    /// Shares `workflow` with `user_id` in one transaction: the workflow's `shares` map (owner
    /// or admin, not deleted) and the share entry that lists it for the user.
    async fn try_put_share(
        &self,
        actor: &Principal,
        workflow: &Workflow,
        user_id: &str,
        access: ShareAccess,
    ) -> Result<Workflow, StoreError> {
        let mut e = Expr::default();
        let condition = writable_by(&mut e, actor, true);
        let update = format!(
            "SET {} = {}",
            e.path(&["shares", user_id]),
            e.s(access.as_str())
        );
        let workflow_update = UpdateParts {
            key: workflow_key(&workflow.id),
            update,
            condition,
            expr: e,
        };
        let put = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(share_entry(workflow, user_id, access)))
            .build()
            .map_err(build)?;
        let actions = vec![
            workflow_update.action(self.table.name())?,
            TransactWriteItem::builder().put(put).build(),
        ];
        self.transact_roles(actions, &[Role::Workflow, Role::Node])
            .await?;
        let mut w = workflow.clone();
        w.shares.insert(user_id.to_string(), access);
        Ok(w)
    }

    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::default();
        let condition = format!("attribute_not_exists({})", e.name(PK));
        let put = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names_opt())
            .return_values_on_condition_check_failure(ALL_OLD)
            .build()
            .map_err(build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Stores an idempotency record unless the key holds one that has not expired (the table's
    /// TTL removes expired records late, so expiry is checked here, not left to it).
    fn put_idempotency(&self, r: &IdempotencyRecord) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::default();
        let condition = format!(
            "attribute_not_exists({}) OR {} < {}",
            e.name(PK),
            e.name(EXPIRES_AT),
            e.n(r.created_at.timestamp())
        );
        let put = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(idempotency_item(r)))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .return_values_on_condition_check_failure(ALL_OLD)
            .build()
            .map_err(build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs a transaction whose actions play `roles`, explaining a cancellation by the failed
    /// condition of highest precedence.
    async fn transact_roles(
        &self,
        actions: Vec<TransactWriteItem>,
        roles: &[Role],
    ) -> Result<(), StoreError> {
        let reasons = match self.table.transact(actions).await {
            Ok(()) => return Ok(()),
            Err(TxError::Other(e)) => return Err(e),
            Err(TxError::Cancelled(reasons)) => reasons,
        };
        let failed = reasons
            .iter()
            .zip(roles)
            .filter(|(r, _)| r.code() == Some("ConditionalCheckFailed"))
            .min_by_key(|(_, role)| **role);
        let Some((reason, role)) = failed else {
            let codes: Vec<_> = reasons.iter().map(|r| r.code().unwrap_or("?")).collect();
            if codes
                .iter()
                .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded"))
            {
                return Err(StoreError::Unavailable(format!(
                    "transaction throttled: {codes:?}"
                )));
            }
            return Err(StoreError::Internal(format!(
                "transaction cancelled: {codes:?}"
            )));
        };
        let item = reason.item();
        Err(match role {
            Role::Idempotency => match item {
                Some(item) => StoreError::IdempotencyKeyUsed(Box::new(idempotency_from(item)?)),
                None => StoreError::Internal("idempotency record not returned".into()),
            },
            Role::Workflow => StoreError::WorkflowRejected(match item {
                Some(item) => workflow_from(item.clone())?.map(Box::new),
                None => None,
            }),
            Role::Parent => StoreError::ParentMissing,
            Role::Node => StoreError::NodeRejected(match item {
                Some(item) => Some(Box::new(node_from(item.clone())?)),
                None => None,
            }),
        })
    }

    /// One page of a workflow's partition.
    async fn query_partition(
        &self,
        workflow_id: &str,
        limit: Option<i32>,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut e = Expr::default();
        let condition = format!("{} = {}", e.name(PK), e.s(workflow_pk(workflow_id)));
        let response = self
            .table
            .client
            .query()
            .table_name(self.table.name())
            .key_condition_expression(condition)
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .consistent_read(true)
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        Ok((
            response.items.unwrap_or_default(),
            response.last_evaluated_key,
        ))
    }

    async fn create_in_chunks(
        &self,
        workflow: &Workflow,
        nodes: &[Node],
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        // Too many items for one transaction: write the workflow hidden (no list keys, marked
        // pending, expiring), then the nodes parents first, then reveal it with the
        // idempotency record. Until then every read treats it as missing.
        let mut first = workflow_item(workflow, false)?;
        first.insert(IMPORT_PENDING.into(), AttributeValue::Bool(true));
        first.insert(
            EXPIRES_AT.into(),
            AttributeValue::N((workflow.created_at.timestamp() + IMPORT_TTL_SECONDS).to_string()),
        );
        let mut actions = vec![self.put_new(first)?];
        let mut roles = vec![Role::Workflow];
        for node in nodes {
            actions.push(self.put_new(node_item(node)?)?);
            roles.push(Role::Node);
            if actions.len() == TX_MAX {
                let chunk = std::mem::take(&mut actions);
                self.transact_roles(chunk, &std::mem::take(&mut roles))
                    .await?;
            }
        }
        if !actions.is_empty() {
            self.transact_roles(actions, &roles).await?;
        }
        let mut e = Expr::default();
        let update = format!(
            "SET {} = {}, {} = {} REMOVE {}, {}",
            e.name(GSI1PK),
            e.s(owner_pk(&workflow.owner_id)),
            e.name(GSI1SK),
            e.s(owner_sk(workflow.created_at, &workflow.id)),
            e.name(IMPORT_PENDING),
            e.name(EXPIRES_AT),
        );
        let condition = format!("attribute_exists({})", e.name(IMPORT_PENDING));
        let reveal = UpdateParts {
            key: workflow_key(&workflow.id),
            update,
            condition,
            expr: e,
        };
        let mut actions = vec![reveal.action(self.table.name())?];
        let mut roles = vec![Role::Workflow];
        if let Some(r) = idempotency {
            actions.push(self.put_idempotency(r)?);
            roles.push(Role::Idempotency);
        }
        self.transact_roles(actions, &roles).await
    }
}

impl WorkflowStore for DynamoStore {
    fn create_workflow<'a>(
        &'a self,
        workflow: &'a Workflow,
        nodes: &'a [Node],
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            if 1 + nodes.len() + usize::from(idempotency.is_some()) > TX_MAX {
                return self.create_in_chunks(workflow, nodes, idempotency).await;
            }
            let mut actions = vec![self.put_new(workflow_item(workflow, true)?)?];
            let mut roles = vec![Role::Workflow];
            for node in nodes {
                actions.push(self.put_new(node_item(node)?)?);
                roles.push(Role::Node);
            }
            if let Some(r) = idempotency {
                actions.push(self.put_idempotency(r)?);
                roles.push(Role::Idempotency);
            }
            self.transact_roles(actions, &roles).await
        })
    }

    fn get_workflow<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Workflow>> {
        Box::pin(async move {
            match self.table.get(workflow_key(id), None).await? {
                Some(item) => workflow_from(item),
                None => Ok(None),
            }
        })
    }

    fn get_workflows<'a>(&'a self, ids: &'a [String]) -> Fut<'a, Vec<Workflow>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            let items = self
                .table
                .batch_get(ids.iter().map(|id| workflow_key(id)).collect())
                .await?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.extend(workflow_from(item)?);
            }
            Ok(out)
        })
    }

    fn get_tree<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Workflow, Vec<Node>)>> {
        Box::pin(async move {
            let mut workflow = None;
            let mut nodes = Vec::new();
            let mut start = None;
            loop {
                let (items, last) = self.query_partition(id, None, start).await?;
                for item in items {
                    if is_node(&item) {
                        nodes.push(node_from(item)?);
                    } else {
                        match workflow_from(item)? {
                            Some(w) => workflow = Some(w),
                            None => return Ok(None),
                        }
                    }
                }
                if workflow.is_none() || last.is_none() {
                    break;
                }
                start = last;
            }
            Ok(workflow.map(|w| (w, nodes)))
        })
    }

    fn list_workflows<'a>(
        &'a self,
        owner_id: &'a str,
        filter: &'a WorkflowFilter,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, Page<Workflow>> {
        Box::pin(async move {
            let owner = owner_pk(owner_id);
            let low = owner_sk_after(filter.created_after);
            let high = owner_sk_before(filter.created_before);
            if let Some(key) = after {
                // A key from this owner's list and inside this query's time range (DynamoDB
                // refuses a start key outside the key condition, e.g. a cursor reused with other
                // filters).
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
            let mut e = Expr::default();
            let condition = format!(
                "{} = {} AND {} BETWEEN {} AND {}",
                e.name(GSI1PK),
                e.s(owner),
                e.name(GSI1SK),
                e.s(low),
                e.s(high),
            );
            let mut filters = Vec::new();
            if let Some(st) = filter.status {
                filters.push(format!("{} = {}", e.name("status"), e.s(st.as_str())));
            }
            if let Some(tag) = &filter.tag {
                filters.push(format!(
                    "contains({}, {})",
                    e.name("tags"),
                    e.s(tag.as_str())
                ));
            }
            for word in &filter.name_words {
                filters.push(format!(
                    "contains({}, {})",
                    e.name(SEARCH_TEXT),
                    e.s(format!(" {word}"))
                ));
            }
            // Share entries (workflows shared with this user) have none of the filtered
            // attributes: they pass here and are filtered once their workflow is read.
            if !filters.is_empty() {
                filters = vec![format!(
                    "({}) OR attribute_exists({})",
                    filters.join(" AND "),
                    e.name(SHARE_ACCESS)
                )];
            }
            // Only what a workflow is made of: keys and search text are not sent back, which
            // saves parsing them for every item of the page.
            let projection = WORKFLOW_FIELDS
                .iter()
                .chain([&SHARE_ACCESS])
                .map(|f| e.name(f))
                .collect::<Vec<_>>()
                .join(", ");
            let response = self
                .table
                .client
                .query()
                .table_name(self.table.name())
                .index_name(GSI1)
                .key_condition_expression(condition)
                .projection_expression(projection)
                .set_filter_expression((!filters.is_empty()).then(|| filters.join(" AND ")))
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .scan_index_forward(false)
                .limit(limit as i32)
                .set_exclusive_start_key(after.map(start_key))
                .send()
                .await
                .map_err(classify)?;
            let next = page_key(response.last_evaluated_key.as_ref());
            let found = response.items.unwrap_or_default();
            // Shared workflows are read in one more request, only when the page has some.
            let shared_ids: Vec<String> = found
                .iter()
                .filter(|item| item.contains_key(SHARE_ACCESS))
                .filter_map(|item| item.get("id").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            let mut shared: HashMap<String, Workflow> = if shared_ids.is_empty() {
                HashMap::new()
            } else {
                self.get_workflows(&shared_ids)
                    .await?
                    .into_iter()
                    .filter(|w| {
                        w.status != WorkflowStatus::Deleted
                            && w.shares.contains_key(owner_id)
                            && filter.matches(w)
                    })
                    .map(|w| (w.id.clone(), w))
                    .collect()
            };
            let mut items = Vec::new();
            for item in found {
                if item.contains_key(SHARE_ACCESS) {
                    if let Some(AttributeValue::S(id)) = item.get("id") {
                        items.extend(shared.remove(id));
                    }
                } else {
                    items.extend(workflow_from(item)?);
                }
            }
            Ok(Page { items, next })
        })
    }

    fn change_workflow<'a>(&'a self, change: &'a WorkflowChange) -> Fut<'a, Workflow> {
        Box::pin(async move {
            let p = workflow_update_parts(change)?;
            let result = self
                .table
                .client
                .update_item()
                .table_name(self.table.name())
                .set_key(Some(p.key))
                .update_expression(p.update)
                .condition_expression(p.condition)
                .set_expression_attribute_names(p.expr.names_opt())
                .set_expression_attribute_values(p.expr.values_opt())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ALL_OLD)
                .send()
                .await;
            match result {
                Ok(out) => match out.attributes.map(workflow_from).transpose()?.flatten() {
                    Some(w) => Ok(w),
                    None => Err(StoreError::Internal("update returned no workflow".into())),
                },
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        Err(StoreError::WorkflowRejected(match c.item() {
                            Some(item) => workflow_from(item.clone())?.map(Box::new),
                            None => None,
                        }))
                    }
                    _ => Err(classify(err)),
                },
            }
        })
    }

    fn change_workflows<'a>(
        &'a self,
        changes: &'a [WorkflowChange],
    ) -> Fut<'a, Vec<ChangeOutcome>> {
        Box::pin(async move {
            let mut rejected = vec![false; changes.len()];
            let mut pending: Vec<usize> = (0..changes.len()).collect();
            for _ in 0..TX_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let mut actions = Vec::with_capacity(pending.len());
                for &i in &pending {
                    actions.push(workflow_update_parts(&changes[i])?.action(self.table.name())?);
                }
                match self.table.transact(actions).await {
                    Ok(()) => pending.clear(),
                    Err(TxError::Other(e)) => return Err(e),
                    Err(TxError::Cancelled(reasons)) => {
                        let failed: Vec<usize> = pending
                            .iter()
                            .zip(&reasons)
                            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                            .map(|(&i, _)| i)
                            .collect();
                        for &i in &failed {
                            rejected[i] = true;
                        }
                        pending.retain(|i| !failed.contains(i));
                    }
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(
                    "bulk change kept conflicting".into(),
                ));
            }
            Ok(rejected
                .into_iter()
                .map(|r| {
                    if r {
                        ChangeOutcome::Rejected
                    } else {
                        ChangeOutcome::Done
                    }
                })
                .collect())
        })
    }

    fn add_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        idempotency: Option<&'a IdempotencyRecord>,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let workflow = counter_parts(workflow_key(&node.workflow_id), "node_count", 1, |e| {
                let w = writable(e, actor);
                format!(
                    "{w} AND {} < {}",
                    e.name("node_count"),
                    e.path(&["settings", "max_nodes"])
                )
            });
            let mut actions = vec![workflow.action(self.table.name())?];
            let mut roles = vec![Role::Workflow];
            if let Some(parent) = &node.parent_id {
                let parent =
                    counter_parts(node_key(&node.workflow_id, parent), "child_count", 1, |e| {
                        format!("attribute_exists({})", e.name(PK))
                    });
                actions.push(parent.action(self.table.name())?);
                roles.push(Role::Parent);
            }
            actions.push(self.put_new(node_item(node)?)?);
            roles.push(Role::Node);
            if let Some(r) = idempotency {
                actions.push(self.put_idempotency(r)?);
                roles.push(Role::Idempotency);
            }
            self.transact_roles(actions, &roles).await
        })
    }

    fn get_node<'a>(
        &'a self,
        workflow_id: &'a str,
        node_id: &'a str,
    ) -> Fut<'a, (Option<Workflow>, Option<Node>)> {
        Box::pin(async move {
            let items = self
                .table
                .batch_get(vec![
                    workflow_key(workflow_id),
                    node_key(workflow_id, node_id),
                ])
                .await?;
            let mut workflow = None;
            let mut node = None;
            for item in items {
                if is_node(&item) {
                    node = Some(node_from(item)?);
                } else {
                    workflow = workflow_from(item)?;
                }
            }
            Ok((workflow, node))
        })
    }

    fn list_nodes<'a>(
        &'a self,
        workflow_id: &'a str,
        limit: u32,
        after: Option<&'a PageKey>,
    ) -> Fut<'a, (Option<Workflow>, Page<Node>)> {
        Box::pin(async move {
            let (workflow, items, last) = match after {
                None => {
                    // The workflow item sorts first: one Query answers the first page.
                    let (mut items, last) = self
                        .query_partition(workflow_id, Some(limit as i32 + 1), None)
                        .await?;
                    let workflow = match items.first() {
                        Some(first) if !is_node(first) => workflow_from(items.remove(0))?,
                        _ => None,
                    };
                    (workflow, items, last)
                }
                Some(key) => {
                    let ok = key.0.len() == 2
                        && key.0.get(PK) == Some(&workflow_pk(workflow_id))
                        && key
                            .0
                            .get(SK)
                            .is_some_and(|sk| sk.starts_with(NODE_SK_PREFIX));
                    if !ok {
                        return Err(StoreError::BadPageKey);
                    }
                    let (workflow, page) = tokio::join!(
                        self.table.get(workflow_key(workflow_id), None),
                        self.query_partition(workflow_id, Some(limit as i32), Some(start_key(key)))
                    );
                    let workflow = match workflow? {
                        Some(item) => workflow_from(item)?,
                        None => None,
                    };
                    let (items, last) = page?;
                    (workflow, items, last)
                }
            };
            let nodes = items
                .into_iter()
                .filter(is_node)
                .map(node_from)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                workflow,
                Page {
                    items: nodes,
                    next: page_key(last.as_ref()),
                },
            ))
        })
    }

    fn update_node<'a>(
        &'a self,
        actor: &'a Principal,
        node: &'a Node,
        expected_version: u64,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = writable(&mut e, actor);
            let check = ConditionCheck::builder()
                .table_name(self.table.name())
                .set_key(Some(workflow_key(&node.workflow_id)))
                .condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .return_values_on_condition_check_failure(ALL_OLD)
                .build()
                .map_err(build)?;
            // Only the node's own fields are written: `child_count` belongs to the store and may
            // have changed since the node was read (a child added meanwhile).
            let mut e = Expr::default();
            let condition = format!(
                "attribute_exists({}) AND {} = {}",
                e.name(PK),
                e.name("version"),
                e.n(expected_version)
            );
            let mut item = node_item(node)?;
            let sets = NODE_OWN_FIELDS
                .iter()
                .filter_map(|f| item.remove(*f).map(|v| (f, v)))
                .map(|(f, v)| format!("{} = {}", e.name(f), e.value(v)))
                .collect::<Vec<_>>();
            let update = UpdateParts {
                key: node_key(&node.workflow_id, &node.id),
                update: format!("SET {}", sets.join(", ")),
                condition,
                expr: e,
            };
            let actions = vec![
                TransactWriteItem::builder().condition_check(check).build(),
                update.action(self.table.name())?,
            ];
            self.transact_roles(actions, &[Role::Workflow, Role::Node])
                .await
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
            // Two actions of each transaction are the counters; the rest deletes nodes.
            let chunks: Vec<&[NodeDeletion]> = plan.chunks(TX_MAX - 2).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let workflow = counter_parts(
                    workflow_key(workflow_id),
                    "node_count",
                    -(chunk.len() as i64),
                    |e| writable(e, actor),
                );
                let mut actions = vec![workflow.action(self.table.name())?];
                let mut roles = vec![Role::Workflow];
                for d in chunk.iter() {
                    let mut e = Expr::default();
                    let condition = format!(
                        "attribute_exists({}) AND {} = {}",
                        e.name(PK),
                        e.name("child_count"),
                        e.n(d.child_count)
                    );
                    let delete = Delete::builder()
                        .table_name(self.table.name())
                        .set_key(Some(node_key(workflow_id, &d.id)))
                        .condition_expression(condition)
                        .set_expression_attribute_names(e.names_opt())
                        .set_expression_attribute_values(e.values_opt())
                        .return_values_on_condition_check_failure(ALL_OLD)
                        .build()
                        .map_err(build)?;
                    actions.push(TransactWriteItem::builder().delete(delete).build());
                    roles.push(Role::Node);
                }
                if let (true, Some(parent)) = (i + 1 == chunks.len(), parent_id) {
                    let parent =
                        counter_parts(node_key(workflow_id, parent), "child_count", -1, |e| {
                            format!("attribute_exists({})", e.name(PK))
                        });
                    actions.push(parent.action(self.table.name())?);
                    roles.push(Role::Parent);
                }
                self.transact_roles(actions, &roles).await?;
            }
            Ok(())
        })
    }

    fn put_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow: &'a Workflow,
        user_id: &'a str,
        access: ShareAccess,
    ) -> Fut<'a, Workflow> {
        Box::pin(async move {
            match self.try_put_share(actor, workflow, user_id, access).await {
                // An item written without a `shares` map (before sharing existed) has no path
                // to set a share in: give it an empty map (only if it still has none) and try
                // once more. DynamoDB says so only in the message of a ValidationException.
                Err(StoreError::Internal(m)) if m.contains("document path") => {
                    self.add_shares_map(&workflow.id).await?;
                    self.try_put_share(actor, workflow, user_id, access).await
                }
                other => other,
            }
        })
    }

    fn delete_share<'a>(
        &'a self,
        actor: &'a Principal,
        workflow_id: &'a str,
        user_id: &'a str,
    ) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let share = e.path(&["shares", user_id]);
            let condition = format!(
                "{} AND attribute_exists({share})",
                writable_by(&mut e, actor, true)
            );
            let workflow_update = UpdateParts {
                key: workflow_key(workflow_id),
                update: format!("REMOVE {share}"),
                condition,
                expr: e,
            };
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(share_key(workflow_id, user_id)))
                .build()
                .map_err(build)?;
            let actions = vec![
                workflow_update.action(self.table.name())?,
                TransactWriteItem::builder().delete(delete).build(),
            ];
            self.transact_roles(actions, &[Role::Workflow, Role::Node])
                .await
        })
    }

    fn get_idempotency<'a>(
        &'a self,
        owner_id: &'a str,
        key: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<IdempotencyRecord>> {
        Box::pin(async move {
            match self.table.get(idempotency_key(owner_id, key), None).await? {
                Some(item) => {
                    let record = idempotency_from(&item)?;
                    Ok((record.expires_at > now).then_some(record))
                }
                None => Ok(None),
            }
        })
    }
}
