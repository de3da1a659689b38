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

mod analytics;
mod audit;
mod connections;
mod nodes;
mod notify;
pub(crate) use notify::{NOTICE_PK_PREFIX, notice_from};
mod runs;
mod schedules;
pub use audit::MAX_APPEND as AUDIT_MAX_APPEND;
pub(crate) use audit::{NOTE_PK_PREFIX, note_of};
pub(crate) use runs::run_with_steps;
pub(crate) use schedules::schedule_from;
mod shares;
mod workflows;

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
    /// How long audit events are kept (`None`: for good).
    audit_retention: Option<crate::domain::audit::Retention>,
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

/// The sparse index `GSI2` holds several lists (runs not over, audit chains not sealed), each
/// spread over this many partitions: `<list>#<0..4>`.
const SPARSE_SHARDS: usize = 4;

/// `GSI2PK` of `id` in `list`: the shard from the id's last character.
fn sparse_pk(list: &str, id: &str) -> String {
    let shard = id.bytes().last().map_or(0, |b| b as usize % SPARSE_SHARDS);
    format!("{list}#{shard}")
}

impl DynamoStore {
    /// Up to `limit` items of `list` in `GSI2` (a Query per shard, paged).
    async fn sparse_index(&self, list: &str, limit: usize) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..SPARSE_SHARDS {
            let mut start = None;
            loop {
                if out.len() >= limit {
                    return Ok(out);
                }
                let mut e = Expr::default();
                let condition = format!("{} = {}", e.name(GSI2PK), e.s(format!("{list}#{shard}")));
                let page = self
                    .table
                    .client
                    .query()
                    .table_name(self.table.name())
                    .index_name(GSI2)
                    .key_condition_expression(condition)
                    .set_expression_attribute_names(e.names_opt())
                    .set_expression_attribute_values(e.values_opt())
                    .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(classify)?;
                out.extend(page.items.unwrap_or_default());
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(out)
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

/// Writes only a node's own fields (not `child_count`, which belongs to the store and may have
/// changed since the node was read), under `condition`.
fn node_own_fields_update(
    node: &Node,
    condition: impl FnOnce(&mut Expr) -> String,
) -> Result<UpdateParts, StoreError> {
    let mut e = Expr::default();
    let condition = condition(&mut e);
    let mut item = node_item(node)?;
    let sets = NODE_OWN_FIELDS
        .iter()
        .filter_map(|f| item.remove(*f).map(|v| (f, v)))
        .map(|(f, v)| format!("{} = {}", e.name(f), e.value(v)))
        .collect::<Vec<_>>();
    Ok(UpdateParts {
        key: node_key(&node.workflow_id, &node.id),
        update: format!("SET {}", sets.join(", ")),
        condition,
        expr: e,
    })
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            table: Table::new(client, table),
            audit_retention: None,
        }
    }

    /// Audit events appended through this store expire (TTL) as `retention` says.
    pub fn with_audit_retention(
        mut self,
        retention: Option<crate::domain::audit::Retention>,
    ) -> Self {
        self.audit_retention = retention;
        self
    }

    pub fn table(&self) -> &str {
        self.table.name()
    }

    /// Gives the workflow an empty `shares` map if it exists and has none; whether it did.
    async fn add_shares_map(&self, workflow_id: &str) -> Result<bool, StoreError> {
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
        self.table
            .update_if(workflow_key(workflow_id), update, condition, e)
            .await
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
        let condition = format!(
            "{} AND attribute_exists({})",
            writable_by(&mut e, actor, true),
            e.name("shares")
        );
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

    /// A transaction action that only checks that `actor` may change the workflow.
    fn workflow_check(
        &self,
        actor: &Principal,
        workflow_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut e = Expr::default();
        let check = ConditionCheck::builder()
            .table_name(self.table.name())
            .set_key(Some(workflow_key(workflow_id)))
            .condition_expression(writable(&mut e, actor))
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .return_values_on_condition_check_failure(ALL_OLD)
            .build()
            .map_err(build)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
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

impl Idempotency for DynamoStore {
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
