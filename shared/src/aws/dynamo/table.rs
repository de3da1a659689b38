//! The table's requests that every adapter makes the same way: get, batch get (keys DynamoDB
//! hands back unprocessed are asked for again, a bounded number of times), query of a whole
//! partition, conditional put, batch delete (bounded the same way) and transactions (retried
//! when only a concurrent transaction got in the way; otherwise the cancellation reasons).
//! Puts, updates and transactions carry the `changed_by` stamp ([`super::stamp`]).

use super::expr::Expr;
use super::items::Item;
use super::keys::{PK, SK};
use crate::aws::errors::{build, classify};
use crate::ports::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, DeleteRequest, KeysAndAttributes, TransactWriteItem, WriteRequest,
};
use std::sync::Arc;
use std::time::Duration;

/// Attempts for a request DynamoDB answered only in part (unprocessed keys or items) or a
/// transaction cancelled only by a conflicting one.
pub const ATTEMPTS: u32 = 4;
/// DynamoDB's limit on one BatchWriteItem.
const BATCH_WRITE_MAX: usize = 25;

/// Why a transaction did not apply.
#[derive(Debug)]
pub enum TxError {
    /// A condition failed: one reason per action, in order.
    Cancelled(Vec<CancellationReason>),
    Other(StoreError),
}

/// Backoff before attempt `attempt + 1`: 20, 40, 80 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10 << attempt.min(6))
}

/// One DynamoDB table and its client.
#[derive(Clone, Debug)]
pub struct Table {
    pub client: Client,
    pub name: Arc<str>,
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Table {
        Table {
            client,
            name: Arc::from(name.into()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A strongly consistent GetItem, of only `projection`'s attributes when given.
    pub async fn get(
        &self,
        key: Item,
        projection: Option<&[&str]>,
    ) -> Result<Option<Item>, StoreError> {
        let mut e = Expr::default();
        let projection =
            projection.map(|p| p.iter().map(|f| e.name(f)).collect::<Vec<_>>().join(", "));
        Ok(self
            .client
            .get_item()
            .table_name(self.name())
            .set_key(Some(key))
            .consistent_read(true)
            .set_projection_expression(projection)
            .set_expression_attribute_names(e.names_opt())
            .send()
            .await
            .map_err(classify)?
            .item)
    }

    /// PutItem conditional on `condition` (with `e`'s names and values); `Ok(false)` when the
    /// condition failed.
    pub async fn put_if(
        &self,
        item: Item,
        condition: Option<String>,
        e: Expr,
    ) -> Result<bool, StoreError> {
        let mut item = item;
        super::stamp::put(&mut item);
        let result = self
            .client
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .set_condition_expression(condition)
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .send()
            .await;
        condition_held(result)
    }

    /// UpdateItem of `key` conditional on `condition` (with `e`'s names and values); `Ok(false)`
    /// when the condition failed.
    pub async fn update_if(
        &self,
        key: Item,
        update: String,
        condition: String,
        e: Expr,
    ) -> Result<bool, StoreError> {
        let (mut update, mut names, mut values) = (update, e.names_opt(), e.values_opt());
        super::stamp::update(&key, &mut update, &mut names, &mut values);
        let result = self
            .client
            .update_item()
            .table_name(self.name())
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .send()
            .await;
        condition_held(result)
    }

    /// DeleteItem of `key`; whether there was an item to delete.
    pub async fn delete(&self, key: Item) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(self.name())
            .set_key(Some(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.attributes.is_some())
    }

    /// Strongly consistent BatchGetItem of `keys` (at most 100), in no particular order.
    pub async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(build)?,
        );
        let mut attempt = 0;
        while let Some(request) = pending.take() {
            attempt += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(self.name(), request)
                .send()
                .await
                .map_err(classify)?;
            found.extend(
                out.responses
                    .and_then(|mut r| r.remove(self.name()))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(self.name()))
                .filter(|k| !k.keys().is_empty());
            if pending.is_some() {
                if attempt >= ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "batch get left keys unprocessed".into(),
                    ));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(found)
    }

    /// Every item of partition `pk` whose sort key starts with `sk_prefix` ("" for all), in
    /// sort key order, following every page.
    pub async fn query_all(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.query_keys(pk, SortKeys::Prefix(sk_prefix)).await
    }

    /// Every item of partition `pk` whose sort key is in `from..=to`, in sort key order,
    /// following every page.
    pub async fn query_between(
        &self,
        pk: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_keys(pk, SortKeys::Between(from, to)).await
    }

    async fn query_keys(&self, pk: &str, sort: SortKeys<'_>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut e = Expr::default();
            let mut condition = format!("{} = {}", e.name(PK), e.s(pk));
            match sort {
                // DynamoDB refuses an empty string as a key condition value.
                SortKeys::Prefix("") => {}
                SortKeys::Prefix(p) => {
                    condition += &format!(" AND begins_with({}, {})", e.name(SK), e.s(p));
                }
                SortKeys::Between(a, b) => {
                    condition += &format!(" AND {} BETWEEN {} AND {}", e.name(SK), e.s(a), e.s(b));
                }
            }
            let out = self
                .client
                .query()
                .table_name(self.name())
                .key_condition_expression(condition)
                .set_expression_attribute_names(e.names_opt())
                .set_expression_attribute_values(e.values_opt())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Deletes the items with `keys`, 25 to a BatchWriteItem; items DynamoDB hands back
    /// unprocessed are sent again, a bounded number of times.
    pub async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut requests = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(build)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                if attempt > ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "batch delete left items unprocessed".into(),
                    ));
                }
                if attempt > 1 {
                    tokio::time::sleep(backoff(attempt - 1)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.name(), requests)
                    .send()
                    .await
                    .map_err(classify)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(self.name()))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// TransactWriteItems, tried again (with backoff) while the only reasons are conflicts
    /// with concurrent transactions; persistent conflicts are `Unavailable`.
    pub async fn transact(&self, mut actions: Vec<TransactWriteItem>) -> Result<(), TxError> {
        super::stamp::transaction(&mut actions);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().to_vec()
                }
                _ => return Err(TxError::Other(classify(err))),
            };
            let only_conflicts = reasons
                .iter()
                .all(|r| matches!(r.code(), None | Some("None") | Some("TransactionConflict")));
            if !only_conflicts {
                return Err(TxError::Cancelled(reasons));
            }
            if attempt >= ATTEMPTS {
                return Err(TxError::Other(StoreError::Unavailable(
                    "transaction conflicts persisted".into(),
                )));
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// Which sort keys of a partition a Query reads.
#[derive(Clone, Copy)]
enum SortKeys<'a> {
    Prefix(&'a str),
    Between(&'a str, &'a str),
}

/// `Ok(true)` for a write that happened, `Ok(false)` for one whose condition failed.
fn condition_held<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(err) => Err(classify(err)),
    }
}

/// The cancellation reason's code of action `index`, if the transaction was cancelled.
pub fn reason_code(reasons: &[CancellationReason], index: usize) -> Option<&str> {
    reasons.get(index).and_then(|r| r.code())
}
