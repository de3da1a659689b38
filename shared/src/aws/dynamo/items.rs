//! Conversions between domain values and table items.

use super::keys::*;
use crate::domain::{Node, ShareAccess, Workflow, workflow::search_text};
use crate::ports::{IdempotencyRecord, PageKey, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::DateTime;
use std::collections::{BTreeMap, HashMap};

pub type Item = HashMap<String, AttributeValue>;

/// Marks a workflow whose import has not finished: invisible to every read.
pub const IMPORT_PENDING: &str = "import_pending";
pub const EXPIRES_AT: &str = "expires_at";
pub const SEARCH_TEXT: &str = "search_text";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub fn workflow_key(id: &str) -> Item {
    HashMap::from([(PK.into(), s(workflow_pk(id))), (SK.into(), s(WORKFLOW_SK))])
}

pub fn node_key(workflow_id: &str, node_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(workflow_pk(workflow_id))),
        (SK.into(), s(node_sk(node_id))),
    ])
}

pub fn idempotency_key(owner_id: &str, key: &str) -> Item {
    HashMap::from([
        (PK.into(), s(idempotency_pk(owner_id, key))),
        (SK.into(), s(IDEMPOTENCY_SK)),
    ])
}

/// The item of a workflow; `listed` puts it in its owner's list (GSI1).
pub fn workflow_item(w: &Workflow, listed: bool) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(w).map_err(internal)?;
    item.extend(workflow_key(&w.id));
    item.insert("type".into(), s("workflow"));
    item.insert(SEARCH_TEXT.into(), s(search_text(&w.name)));
    if listed {
        item.extend(owner_index_keys(w));
    }
    Ok(item)
}

pub fn owner_index_keys(w: &Workflow) -> Item {
    HashMap::from([
        (GSI1PK.into(), s(owner_pk(&w.owner_id))),
        (GSI1SK.into(), s(owner_sk(w.created_at, &w.id))),
    ])
}

/// Marks a share entry: the item that puts a workflow in the list of a user it is shared with.
pub const SHARE_ACCESS: &str = "share_access";
pub const SHARE_PK_PREFIX: &str = "SHARE#";

pub fn share_key(workflow_id: &str, user_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{SHARE_PK_PREFIX}{workflow_id}"))),
        (SK.into(), s(format!("USER#{user_id}"))),
    ])
}

/// A share entry sorts in the user's list (GSI1) where the workflow's own item sorts in its
/// owner's: by the workflow's creation time.
pub fn share_entry(w: &Workflow, user_id: &str, access: ShareAccess) -> Item {
    let mut item = share_key(&w.id, user_id);
    item.insert("type".into(), s("share"));
    item.insert("id".into(), s(w.id.as_str()));
    item.insert("user_id".into(), s(user_id));
    item.insert(SHARE_ACCESS.into(), s(access.as_str()));
    item.insert(GSI1PK.into(), s(owner_pk(user_id)));
    item.insert(GSI1SK.into(), s(owner_sk(w.created_at, &w.id)));
    item
}

pub fn node_item(n: &Node) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(n).map_err(internal)?;
    item.extend(node_key(&n.workflow_id, &n.id));
    item.insert("type".into(), s("node"));
    Ok(item)
}

pub fn idempotency_item(r: &IdempotencyRecord) -> Item {
    let mut item = idempotency_key(&r.owner_id, &r.key);
    item.insert("type".into(), s("idempotency"));
    item.insert("owner_id".into(), s(&r.owner_id));
    item.insert("key".into(), s(&r.key));
    item.insert("request_hash".into(), s(&r.request_hash));
    item.insert("status".into(), AttributeValue::N(r.status.to_string()));
    item.insert("body".into(), s(&r.body));
    item.insert("location".into(), s(&r.location));
    item.insert("created_at".into(), s(sort_time(r.created_at)));
    item.insert(
        EXPIRES_AT.into(),
        AttributeValue::N(r.expires_at.timestamp().to_string()),
    );
    item
}

/// A workflow from its item; `None` while its import is pending (it does not exist yet).
pub fn workflow_from(item: Item) -> Result<Option<Workflow>, StoreError> {
    if item.contains_key(IMPORT_PENDING) {
        return Ok(None);
    }
    serde_dynamo::from_item(item).map(Some).map_err(internal)
}

pub fn node_from(item: Item) -> Result<Node, StoreError> {
    serde_dynamo::from_item(item).map_err(internal)
}

pub fn is_node(item: &Item) -> bool {
    matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk.starts_with(NODE_SK_PREFIX))
}

pub fn idempotency_from(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(internal(format!("idempotency record without {k}"))),
    };
    let number = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<i64>().map_err(internal),
        _ => Err(internal(format!("idempotency record without {k}"))),
    };
    Ok(IdempotencyRecord {
        owner_id: text("owner_id")?,
        key: text("key")?,
        request_hash: text("request_hash")?,
        status: u16::try_from(number("status")?).map_err(internal)?,
        body: text("body")?,
        location: text("location")?,
        created_at: DateTime::parse_from_rfc3339(&text("created_at")?)
            .map_err(internal)?
            .to_utc(),
        expires_at: DateTime::from_timestamp(number(EXPIRES_AT)?, 0).unwrap_or_default(),
    })
}

/// The position a list stopped at (DynamoDB's LastEvaluatedKey), as a page key.
pub fn page_key(last: Option<&Item>) -> Option<PageKey> {
    let map: BTreeMap<String, String> = last?
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
        .collect();
    Some(PageKey(map))
}

/// A page key as DynamoDB's ExclusiveStartKey.
pub fn start_key(key: &PageKey) -> Item {
    key.0
        .iter()
        .map(|(k, v)| (k.clone(), s(v.as_str())))
        .collect()
}

/// A JSON value as an attribute value (for merge patches of nested maps).
pub fn json_attribute(v: &serde_json::Value) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Settings, WorkflowStatus};
    use chrono::Utc;
    use serde_json::json;

    fn workflow() -> Workflow {
        let now = crate::domain::time::truncate_to_millis(Utc::now());
        Workflow {
            id: crate::domain::ids::new_id(),
            owner_id: "u1".into(),
            name: "Quarterly Report".into(),
            description: String::new(),
            status: WorkflowStatus::Draft,
            settings: Settings::with_defaults(
                json!({"model": "m", "nested": {"a": [1, 2.5, null]}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            tags: vec!["a".into()],
            node_count: 0,
            created_at: now,
            updated_at: now,
            version: 1,
            shares: Default::default(),
        }
    }

    #[test]
    fn workflow_round_trips_through_its_item() {
        let w = workflow();
        let item = workflow_item(&w, true).unwrap();
        assert_eq!(item[GSI1PK], AttributeValue::S("OWNER#u1".into()));
        assert_eq!(
            item[SEARCH_TEXT],
            AttributeValue::S(" quarterly report ".into())
        );
        assert!(matches!(item["settings"], AttributeValue::M(_)));
        assert_eq!(workflow_from(item).unwrap(), Some(w));
    }

    #[test]
    fn pending_import_is_invisible() {
        let mut item = workflow_item(&workflow(), false).unwrap();
        assert!(!item.contains_key(GSI1PK));
        item.insert(IMPORT_PENDING.into(), AttributeValue::Bool(true));
        assert_eq!(workflow_from(item).unwrap(), None);
    }

    #[test]
    fn idempotency_record_round_trips() {
        let r = IdempotencyRecord {
            owner_id: "u".into(),
            key: "k#1".into(),
            request_hash: "h".into(),
            status: 201,
            body: "{}".into(),
            location: "w1".into(),
            created_at: DateTime::from_timestamp(1_899_913_600, 0).unwrap(),
            expires_at: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        };
        assert_eq!(idempotency_from(&idempotency_item(&r)).unwrap(), r);
    }
}
