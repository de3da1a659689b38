//! The table's stream records as domain changes (`ws-broadcast`): which item changed, decoded
//! from its images the way the store reads it. Items that are none of a workflow, a node or a
//! run (subscriptions, accounts, idempotency records) are no change of interest.

use super::items::{Item, is_node, node_from, workflow_from};
use super::keys::{PK, SK, WORKFLOW_SK};
use crate::domain::broadcast::Change;
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;

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
    if pk.starts_with("RUN#") {
        let decode = |i: Option<Item>| i.map(super::store::run_with_steps).transpose();
        return Ok(Some(Change::Run {
            old: decode(old)?,
            new: decode(new)?,
        }));
    }
    Ok(None)
}
