//! The table's stream records as domain changes (`ws-broadcast`): which item changed, decoded
//! from its images the way the store reads it. Items that are none of a workflow, a node or a
//! run (subscriptions, accounts, idempotency records) are no change of interest.

use super::items::{Item, is_node, node_from, workflow_from};
use super::keys::{PK, SK, WORKFLOW_SK};
use crate::domain::audit::{Chain, ChangedBy, Draft};
use crate::domain::broadcast::Change;
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// The change of one record of a Lambda DynamoDB stream event (as the event source hands it:
/// `dynamodb.Keys`, `OldImage`, `NewImage` in DynamoDB JSON); `Ok(None)` when the item is of
/// no interest, `Err` (with the reason) for a record that cannot be read.
pub fn record_change(mut record: Value) -> Result<Option<Change>, String> {
    let mut image = |name: &str| -> Result<Option<Item>, String> {
        match record
            .pointer_mut(&format!("/dynamodb/{name}"))
            .map(Value::take)
        {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value::<serde_dynamo::Item>(v)
                .map(|i| Some(i.into()))
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    let keys = image("Keys")?.ok_or("the record has no keys")?;
    let (old, new) = (image("OldImage")?, image("NewImage")?);
    change(&keys, old, new).map_err(|e| e.to_string())
}

/// The audit note a record brings (an inbox item written: [`crate::ports::AuditInbox`]);
/// `Ok(None)` for every other record, `Err` for a note that cannot be read.
pub fn record_note(record: &Value) -> Result<Option<(Chain, Draft)>, String> {
    let image = |name: &str| -> Result<Option<Item>, String> {
        match record.pointer(&format!("/dynamodb/{name}")) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value::<serde_dynamo::Item>(v.clone())
                .map(|i| Some(i.into()))
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    let is_note = record
        .pointer(&format!("/dynamodb/Keys/{PK}/S"))
        .and_then(Value::as_str)
        .is_some_and(|pk| pk.starts_with(super::store::NOTE_PK_PREFIX));
    if !is_note {
        return Ok(None);
    }
    let keys = image("Keys")?.ok_or("the record has no keys")?;
    super::store::note_of(&keys, image("NewImage")?.as_ref())
}

/// The system notice a record of a new `NOTICE#` item brings (its fan-out starts then);
/// `Ok(None)` for every other record.
pub fn record_notice(
    record: &Value,
) -> Result<Option<crate::domain::notification::Notice>, String> {
    let is_new_notice = record.get("eventName").and_then(Value::as_str) == Some("INSERT")
        && record
            .pointer(&format!("/dynamodb/Keys/{PK}/S"))
            .and_then(Value::as_str)
            .is_some_and(|pk| pk.starts_with(super::store::NOTICE_PK_PREFIX));
    if !is_new_notice {
        return Ok(None);
    }
    let Some(image) = record.pointer("/dynamodb/NewImage") else {
        return Err("a notice without its new image".into());
    };
    let item: Item = serde_json::from_value::<serde_dynamo::Item>(image.clone())
        .map_err(|e| format!("NewImage: {e}"))?
        .into();
    super::store::notice_from(item)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Who made the record's change: the `changed_by` stamp of the item as written (`None` for a
/// deleted item, or one written without a stamp).
pub fn changed_by(record: &Value) -> Option<ChangedBy> {
    let v = record.pointer(&format!("/dynamodb/NewImage/{}", super::stamp::CHANGED_BY))?;
    let av: serde_dynamo::AttributeValue = serde_json::from_value(v.clone()).ok()?;
    serde_dynamo::from_attribute_value(av).ok()
}

/// The stream record's id (`eventID`): unique per change, the same when a batch is retried.
pub fn event_id(record: &Value) -> Option<&str> {
    record.get("eventID").and_then(Value::as_str)
}

/// A stream function's answer with `ReportBatchItemFailures`: the records to retry, by
/// sequence number (Lambda retries from the lowest; none: the batch succeeded).
pub fn batch_response(failures: Vec<String>) -> Value {
    let failures: Vec<Value> = failures
        .into_iter()
        .map(|id| serde_json::json!({ "itemIdentifier": id }))
        .collect();
    serde_json::json!({ "batchItemFailures": failures })
}

/// The record's sequence number: what a batch item failure names.
pub fn sequence_number(record: &Value) -> Option<String> {
    record
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The change of the item with `keys`, from its images (`None`, or an empty map, where the
/// stream has none); `Ok(None)` when the item is of no interest.
pub fn change(
    keys: &Item,
    old: Option<Item>,
    new: Option<Item>,
) -> Result<Option<Change>, StoreError> {
    let text = |k: &str| match keys.get(k) {
        Some(AttributeValue::S(s)) => s.as_str(),
        _ => "",
    };
    let (pk, sk) = (text(PK), text(SK));
    let old = old.filter(|i| !i.is_empty());
    let new = new.filter(|i| !i.is_empty());
    if pk.starts_with("WF#") && sk == WORKFLOW_SK {
        let decode = |i: Option<Item>| i.map(workflow_from).transpose().map(Option::flatten);
        return Ok(Some(Change::Workflow {
            old: decode(old)?,
            new: decode(new)?,
        }));
    }
    if pk.starts_with("WF#") && is_node(keys) {
        let decode = |i: Option<Item>| i.map(node_from).transpose();
        return Ok(Some(Change::Node {
            old: decode(old)?,
            new: decode(new)?,
        }));
    }
    if pk.starts_with("SCHED#") && sk.starts_with("S#") {
        let decode = |i: Option<Item>| {
            i.map(|i| super::store::schedule_from(i).map(Box::new))
                .transpose()
        };
        return Ok(Some(Change::Schedule {
            old: decode(old)?,
            new: decode(new)?,
        }));
    }
    if pk.starts_with("RUN#") {
        let decode = |i: Option<Item>| i.map(super::store::run_with_steps).transpose();
        return Ok(Some(Change::Run {
            old: decode(old)?,
            new: decode(new)?,
        }));
    }
    Ok(None)
}
