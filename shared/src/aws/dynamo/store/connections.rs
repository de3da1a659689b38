//! [`Connections`] over the table: WebSocket connections and their subscriptions, each item
//! with the connection's TTL (`expires_at`, API Gateway's 2 hours), since `$disconnect` is best
//! effort.
//!
//! | item | `PK` | `SK` | `GSI1PK` | `GSI1SK` |
//! | --- | --- | --- | --- | --- |
//! | connection (with its count of subscriptions) | `CONN#<connection_id>` | `#CONN` | `USERCONNS#<user_id>` | `CONN#<connection_id>` |
//! | subscription | `SUBS#<workflow_id>` | `CONN#<connection_id>` | `CONNSUBS#<connection_id>` | `SUB#<workflow_id>` |
//!
//! Access patterns:
//! - a workflow's followers (fan-out): Query `PK = SUBS#<workflow_id>`, one request;
//! - a user's connections (their count, and later messages to a user): Query on GSI1,
//!   `GSI1PK = USERCONNS#<user_id>`;
//! - a connection's subscriptions (to remove them with it): Query on GSI1,
//!   `GSI1PK = CONNSUBS#<connection_id>`. GSI reads are eventually consistent: a subscription
//!   made an instant before a disconnect can be missed, and is then removed by its TTL or by
//!   the first fan-out that finds the connection gone.
//!
//! Subscribing is one transaction: the subscription, and the connection's count raised under
//! its limit (so a connection cannot follow more than the limit, even with commands sent
//! concurrently).

use super::super::table::reason_code;
use super::*;
use crate::domain::realtime::Connection;
use aws_sdk_dynamodb::types::{Delete, Select};

const CONN_SK: &str = "#CONN";
const SUBSCRIPTIONS: &str = "subscriptions";

fn connection_key(id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("CONN#{id}"))),
        (SK.into(), s(CONN_SK)),
    ])
}

fn subscription_key(workflow_id: &str, connection_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("SUBS#{workflow_id}"))),
        (SK.into(), s(format!("CONN#{connection_id}"))),
    ])
}

fn epoch(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(t.timestamp().to_string())
}

impl DynamoStore {
    /// The items of partition `pk` of `index` (the table when `None`; `key` names its partition
    /// key), those expired by `live_at` left out when given: their count, or (with `projection`)
    /// the items with those attributes.
    async fn query_partition_of(
        &self,
        index: Option<&str>,
        key: &str,
        pk: String,
        live_at: Option<DateTime<Utc>>,
        projection: Option<&[&str]>,
    ) -> Result<(u64, Vec<Item>), StoreError> {
        let mut e = Expr::default();
        let condition = format!("{} = {}", e.name(key), e.s(pk));
        let filter = live_at.map(|t| format!("{} > {}", e.name(EXPIRES_AT), e.value(epoch(t))));
        let projected =
            projection.map(|p| p.iter().map(|f| e.name(f)).collect::<Vec<_>>().join(", "));
        let (mut count, mut items, mut start) = (0u64, Vec::new(), None);
        loop {
            let out = self
                .table
                .client
                .query()
                .table_name(self.table.name())
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(&condition)
                .set_filter_expression(filter.clone())
                .set_projection_expression(projected.clone())
                .set_select(projection.is_none().then_some(Select::Count))
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            count += out.count.max(0) as u64;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok((count, items));
            }
        }
    }
}

impl Connections for DynamoStore {
    fn add_connection<'a>(&'a self, connection: &'a Connection) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut item = to_item(connection, connection_key(&connection.id))?;
            item.insert("type".into(), s("connection"));
            item.insert(SUBSCRIPTIONS.into(), AttributeValue::N("0".into()));
            item.insert(
                GSI1PK.into(),
                s(format!("USERCONNS#{}", connection.user_id)),
            );
            item.insert(GSI1SK.into(), s(format!("CONN#{}", connection.id)));
            // API Gateway never reuses a connection id: a plain put.
            self.table.put_if(item, None, Expr::default()).await?;
            Ok(())
        })
    }

    fn get_connection<'a>(
        &'a self,
        id: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Option<Connection>> {
        Box::pin(async move {
            match self.table.get(connection_key(id), None).await? {
                Some(item) => {
                    let c: Connection = from_item(item)?;
                    Ok((c.expires_at > now).then_some(c))
                }
                None => Ok(None),
            }
        })
    }

    fn remove_connection<'a>(&'a self, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let (_, subscriptions) = self
                .query_partition_of(
                    Some(GSI1),
                    GSI1PK,
                    format!("CONNSUBS#{id}"),
                    None,
                    Some(&[PK, SK]),
                )
                .await?;
            let mut keys: Vec<Item> = subscriptions;
            keys.push(connection_key(id));
            self.table.batch_delete(keys).await
        })
    }

    fn subscribe<'a>(
        &'a self,
        connection: &'a Connection,
        workflow_id: &'a str,
        max: u64,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            let count = counter_parts(connection_key(&connection.id), SUBSCRIPTIONS, 1, |e| {
                format!(
                    "attribute_exists({}) AND {} < {}",
                    e.name(PK),
                    e.name(SUBSCRIPTIONS),
                    e.n(max)
                )
            });
            let item = HashMap::from([
                (PK.into(), s(format!("SUBS#{workflow_id}"))),
                (SK.into(), s(format!("CONN#{}", connection.id))),
                ("type".into(), s("subscription")),
                ("connection_id".into(), s(connection.id.as_str())),
                ("workflow_id".into(), s(workflow_id)),
                ("user_id".into(), s(connection.user_id.as_str())),
                (EXPIRES_AT.into(), epoch(connection.expires_at)),
                (GSI1PK.into(), s(format!("CONNSUBS#{}", connection.id))),
                (GSI1SK.into(), s(format!("SUB#{workflow_id}"))),
            ]);
            let actions = vec![count.action(self.table.name())?, self.put_new(item)?];
            match self.table.transact(actions).await {
                Ok(()) => Ok(true),
                Err(TxError::Other(e)) => Err(e),
                Err(TxError::Cancelled(reasons)) => {
                    // Already following it: the state asked for.
                    Ok(reason_code(&reasons, 1) == Some("ConditionalCheckFailed"))
                }
            }
        })
    }

    fn unsubscribe<'a>(&'a self, connection_id: &'a str, workflow_id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut e = Expr::default();
            let condition = format!("attribute_exists({})", e.name(PK));
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(subscription_key(workflow_id, connection_id)))
                .condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .build()
                .map_err(build)?;
            let count = counter_parts(connection_key(connection_id), SUBSCRIPTIONS, -1, |e| {
                format!("attribute_exists({})", e.name(PK))
            });
            let actions = vec![
                TransactWriteItem::builder().delete(delete).build(),
                count.action(self.table.name())?,
            ];
            match self.table.transact(actions).await {
                Ok(()) => Ok(true),
                Err(TxError::Other(e)) => Err(e),
                Err(TxError::Cancelled(reasons)) => {
                    if reason_code(&reasons, 0) == Some("ConditionalCheckFailed") {
                        return Ok(false);
                    }
                    // The connection is gone but the subscription is left: remove it alone.
                    self.table
                        .batch_delete(vec![subscription_key(workflow_id, connection_id)])
                        .await?;
                    Ok(true)
                }
            }
        })
    }

    fn connection_stats<'a>(
        &'a self,
        user_id: &'a str,
        connection_id: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, (u64, u64)> {
        Box::pin(async move {
            let (connections, subscriptions) = tokio::join!(
                self.query_partition_of(
                    Some(GSI1),
                    GSI1PK,
                    format!("USERCONNS#{user_id}"),
                    Some(now),
                    None
                ),
                self.table
                    .get(connection_key(connection_id), Some(&[SUBSCRIPTIONS]))
            );
            let subscriptions = subscriptions?
                .and_then(|i| i.get(SUBSCRIPTIONS).and_then(|v| v.as_n().ok()).cloned())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            Ok((connections?.0, subscriptions))
        })
    }

    fn subscribers<'a>(&'a self, workflow_id: &'a str, now: DateTime<Utc>) -> Fut<'a, Vec<String>> {
        Box::pin(self.connection_ids(
            None,
            PK,
            format!("SUBS#{workflow_id}"),
            "connection_id",
            now,
        ))
    }

    fn user_connections<'a>(
        &'a self,
        user_id: &'a str,
        now: DateTime<Utc>,
    ) -> Fut<'a, Vec<String>> {
        Box::pin(self.connection_ids(
            Some(GSI1),
            GSI1PK,
            format!("USERCONNS#{user_id}"),
            "id",
            now,
        ))
    }
}

impl DynamoStore {
    /// The connection ids (attribute `field`) of the live items of a partition (one Query,
    /// paged): subscriptions name theirs `connection_id`, connections `id`.
    async fn connection_ids(
        &self,
        index: Option<&str>,
        key: &str,
        pk: String,
        field: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let (_, items) = self
            .query_partition_of(index, key, pk, Some(now), Some(&[field]))
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|i| i.get(field).and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }
}
