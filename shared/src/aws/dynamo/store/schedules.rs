//! [`Schedules`] over the table: a workflow's schedules in a partition of their own, with a
//! count that bounds them.
//!
//! | item | `PK` | `SK` |
//! | --- | --- | --- |
//! | schedule | `SCHED#<workflow_id>` | `S#<schedule_id>` |
//! | the workflow's count of schedules | `SCHED#<workflow_id>` | `#COUNT` |
//!
//! Access patterns:
//! - create: TransactWriteItems of the count (`ADD 1`, below the limit) and the schedule (new);
//! - get one: GetItem; list a workflow's: Query `PK = SCHED#<id> AND begins_with(SK, S#)`;
//! - update: PutItem conditional on the version read; record a fire: UpdateItem of
//!   `last_fire` unless a later scheduled time is recorded;
//! - delete: TransactWriteItems of the schedule (if there) and the count (`ADD -1`).

use super::super::table::reason_code;
use super::*;
use crate::domain::schedule::{Fire, Schedule};

const COUNT_SK: &str = "#COUNT";
const COUNT: &str = "schedules";

fn pk(workflow_id: &str) -> String {
    format!("SCHED#{workflow_id}")
}

fn key(workflow_id: &str, id: &str) -> Item {
    HashMap::from([
        (PK.into(), AttributeValue::S(pk(workflow_id))),
        (SK.into(), AttributeValue::S(format!("S#{id}"))),
    ])
}

fn count_key(workflow_id: &str) -> Item {
    HashMap::from([
        (PK.into(), AttributeValue::S(pk(workflow_id))),
        (SK.into(), AttributeValue::S(COUNT_SK.into())),
    ])
}

fn schedule_item(schedule: &Schedule) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(schedule)
        .map_err(|e| StoreError::Internal(format!("schedule item: {e}")))?;
    item.extend(key(&schedule.workflow_id, &schedule.id));
    Ok(item)
}

pub(crate) fn schedule_from(item: Item) -> Result<Schedule, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Internal(format!("schedule item: {e}")))
}

impl Schedules for DynamoStore {
    fn create_schedule<'a>(&'a self, schedule: &'a Schedule, max: usize) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut e = Expr::default();
            let count = e.name(COUNT);
            let update = format!("ADD {count} {}", e.n(1));
            let condition = format!("attribute_not_exists({count}) OR {count} < {}", e.n(max));
            let grow = Update::builder()
                .table_name(self.table.name())
                .set_key(Some(count_key(&schedule.workflow_id)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .build()
                .map_err(build)?;
            let mut e = Expr::default();
            let put = Put::builder()
                .table_name(self.table.name())
                .set_item(Some(schedule_item(schedule)?))
                .condition_expression(format!("attribute_not_exists({})", e.name(PK)))
                .set_expression_attribute_names(e.names_opt())
                .build()
                .map_err(build)?;
            let actions = vec![
                TransactWriteItem::builder().update(grow).build(),
                TransactWriteItem::builder().put(put).build(),
            ];
            match self.table.transact(actions).await {
                Ok(()) => Ok(true),
                Err(TxError::Cancelled(reasons))
                    if reason_code(&reasons, 0) == Some("ConditionalCheckFailed") =>
                {
                    Ok(false)
                }
                Err(TxError::Cancelled(_)) => Err(StoreError::Conflict),
                Err(TxError::Other(e)) => Err(e),
            }
        })
    }

    fn get_schedule<'a>(&'a self, workflow_id: &'a str, id: &'a str) -> Fut<'a, Option<Schedule>> {
        Box::pin(async move {
            self.table
                .get(key(workflow_id, id), None)
                .await?
                .map(schedule_from)
                .transpose()
        })
    }

    fn list_schedules<'a>(&'a self, workflow_id: &'a str) -> Fut<'a, Vec<Schedule>> {
        Box::pin(async move {
            self.table
                .query_all(&pk(workflow_id), "S#")
                .await?
                .into_iter()
                .map(schedule_from)
                .collect()
        })
    }

    fn update_schedule<'a>(&'a self, schedule: &'a Schedule, expected_version: u64) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = format!(
                "attribute_exists({}) AND {} = {}",
                e.name(PK),
                e.name("version"),
                e.n(expected_version)
            );
            if self
                .table
                .put_if(schedule_item(schedule)?, Some(condition), e)
                .await?
            {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
    }

    fn delete_schedule<'a>(&'a self, workflow_id: &'a str, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut e = Expr::default();
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(key(workflow_id, id)))
                .condition_expression(format!("attribute_exists({})", e.name(PK)))
                .set_expression_attribute_names(e.names_opt())
                .build()
                .map_err(build)?;
            let mut e = Expr::default();
            let shrink = Update::builder()
                .table_name(self.table.name())
                .set_key(Some(count_key(workflow_id)))
                .update_expression(format!("ADD {} {}", e.name(COUNT), e.n(-1)))
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .build()
                .map_err(build)?;
            let actions = vec![
                TransactWriteItem::builder().delete(delete).build(),
                TransactWriteItem::builder().update(shrink).build(),
            ];
            match self.table.transact(actions).await {
                Ok(()) => Ok(()),
                // Already gone: nothing to count off.
                Err(TxError::Cancelled(reasons))
                    if reason_code(&reasons, 0) == Some("ConditionalCheckFailed") =>
                {
                    Ok(())
                }
                Err(TxError::Cancelled(_)) => Err(StoreError::Conflict),
                Err(TxError::Other(e)) => Err(e),
            }
        })
    }

    fn record_fire<'a>(&'a self, workflow_id: &'a str, id: &'a str, fire: &'a Fire) -> Fut<'a, ()> {
        Box::pin(async move {
            let value = serde_dynamo::to_attribute_value(fire)
                .map_err(|e| StoreError::Internal(format!("fire: {e}")))?;
            let mut e = Expr::default();
            let last = e.name("last_fire");
            let update = format!("SET {last} = {}", e.value(value));
            let condition = format!(
                "attribute_exists({}) AND (attribute_not_exists({last}) OR {last} = {} OR {} <= {})",
                e.name(PK),
                e.value(AttributeValue::Null(true)),
                e.path(&["last_fire", "scheduled_time"]),
                e.s(fire
                    .scheduled_time
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            );
            // A later fire recorded already, or the schedule deleted meanwhile: keep what is there.
            self.table
                .update_if(key(workflow_id, id), update, condition, e)
                .await
                .map(|_| ())
        })
    }
}
