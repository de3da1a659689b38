//! The stored shape of every item, and conversions between domain values and table items.
//!
//! Each stored value has its own item struct here ([`Stored`]): the attribute names below are
//! the table's schema, so renaming a field of an API body (the domain types are also the
//! response bodies) does not rename an attribute of items already written. Enumerations
//! (statuses, roles, scopes, share access) are stored by their API names, which are part of
//! the public contract and do not change without a new API version.

use super::keys::*;
use crate::domain::account::{Account, AccountStatus, ApiKey, Mfa, Session};
use crate::domain::realtime::Connection;
use crate::domain::run::{ErrorKind, Run, RunStatus, Step, StepError, StepStatus};
use crate::domain::{
    ContentMetrics, Node, NodeStatus, Priority, QualityScores, Role, Scope, Settings, ShareAccess,
    Workflow, WorkflowStatus, workflow::search_text,
};
use crate::ports::{IdempotencyRecord, PageKey, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
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

/// A domain value with a stored shape of its own.
pub trait Stored: Sized {
    type Item: Serialize + DeserializeOwned;
    fn to_stored(&self) -> Self::Item;
    fn from_stored(item: Self::Item) -> Self;
}

/// The item of `value`, with its keys.
pub fn to_item<T: Stored>(value: &T, keys: Item) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value.to_stored()).map_err(internal)?;
    item.extend(keys);
    Ok(item)
}

/// The value an item holds (attributes other than the stored shape's, such as keys, ignored).
pub fn from_item<T: Stored>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item::<_, T::Item>(item)
        .map(T::from_stored)
        .map_err(internal)
}

/// Defines the stored shape of a domain struct whose fields map one to one: the item struct
/// `$item` with the attribute names listed, and the [`Stored`] conversions. A field marked
/// `[stored]` holds a value with a stored shape of its own (its item type is given).
macro_rules! stored {
    ($(#[$m:meta])* $domain:ident as $item:ident {
        $( $(#[$attr:meta])* $field:ident: $ty:ty $([$nested:ident])? ),* $(,)?
    }) => {
        #[derive(Serialize, Deserialize)]
        $(#[$m])*
        pub struct $item {
            $( $(#[$attr])* pub $field: $ty, )*
        }

        impl Stored for $domain {
            type Item = $item;
            fn to_stored(&self) -> $item {
                $item { $( $field: stored!(@to self.$field $(, $nested)?), )* }
            }
            fn from_stored(item: $item) -> $domain {
                $domain { $( $field: stored!(@from item.$field $(, $nested)?), )* }
            }
        }
    };
    (@to $v:expr) => { $v.clone() };
    (@to $v:expr, $n:ident) => { Stored::to_stored(&$v) };
    (@from $v:expr) => { $v };
    (@from $v:expr, $n:ident) => { Stored::from_stored($v) };
}

impl<T: Stored> Stored for Option<T> {
    type Item = Option<T::Item>;
    fn to_stored(&self) -> Self::Item {
        self.as_ref().map(Stored::to_stored)
    }
    fn from_stored(item: Self::Item) -> Self {
        item.map(T::from_stored)
    }
}

/// Times compared in conditions (a step's lease) are written fixed-width, so that text order
/// is time order.
mod fixed_time {
    use super::super::keys::sort_time;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&sort_time(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}

stored!(Run as RunItem {
    id: String,
    workflow_id: String,
    owner_id: String,
    status: RunStatus,
    model: Option<String>,
    priority: u8,
    max_attempts: u32,
    timeout_s: u64,
    approval: bool,
    steps_total: u32,
    steps_succeeded: u32,
    steps_failed: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    version: u64,
    last_error: Option<StepErrorItem> [stored],
});

stored!(StepError as StepErrorItem {
    kind: ErrorKind,
    message: String,
    retryable: bool,
});

stored!(Step as StepItem {
    id: String,
    run_id: String,
    node_id: String,
    parent_node_id: Option<String>,
    position: u32,
    depends_on: Option<String>,
    status: StepStatus,
    attempts: u32,
    #[serde(with = "fixed_time", default)]
    lease_until: Option<DateTime<Utc>>,
    last_error: Option<StepErrorItem> [stored],
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    model: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
    latency_ms: u64,
    #[serde(default)]
    words: u64,
    #[serde(default)]
    quality: Option<u8>,
});

stored!(Connection as ConnectionItem {
    id: String,
    user_id: String,
    role: Role,
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
    connected_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_seconds")]
    expires_at: DateTime<Utc>,
});

stored!(Workflow as WorkflowItem {
    id: String,
    owner_id: String,
    name: String,
    description: String,
    status: WorkflowStatus,
    settings: Settings,
    tags: Vec<String>,
    node_count: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    #[serde(default)]
    shares: BTreeMap<String, ShareAccess>,
});

stored!(Node as NodeItem {
    id: String,
    workflow_id: String,
    parent_id: Option<String>,
    title: String,
    content: String,
    prompt: String,
    priority: Priority,
    status: NodeStatus,
    tags: Vec<String>,
    metadata: Map<String, Value>,
    metrics: MetricsItem [stored],
    quality: QualityItem [stored],
    child_count: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
});

stored!(ContentMetrics as MetricsItem {
    words: u64,
    characters: u64,
    sentences: u64,
    paragraphs: u64,
    reading_minutes: f64,
});

stored!(QualityScores as QualityItem {
    readability: u8,
    length: u8,
    structure: u8,
    overall: u8,
});

stored!(Account as AccountItem {
    user_id: String,
    email: String,
    display_name: String,
    role: Role,
    status: AccountStatus,
    password_hash: String,
    #[serde(default)]
    mfa: MfaItem [stored],
    #[serde(default)]
    failed_logins: u32,
    #[serde(default)]
    last_failed_at: Option<DateTime<Utc>>,
    tokens_valid_after: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
});

stored!(#[derive(Default)] Mfa as MfaItem {
    enabled: bool,
    #[serde(default)]
    data_key: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    pending_secret: Option<String>,
    #[serde(default)]
    recovery_hashes: Vec<String>,
    #[serde(default)]
    last_step: u64,
});

stored!(Session as SessionItem {
    session_id: String,
    user_id: String,
    device: String,
    ip: String,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_seconds")]
    expires_at: DateTime<Utc>,
    refresh_hash: String,
    #[serde(default)]
    used_hashes: Vec<String>,
});

stored!(ApiKey as ApiKeyItem {
    key_id: String,
    user_id: String,
    name: String,
    scopes: Vec<Scope>,
    created_at: DateTime<Utc>,
    #[serde(default, with = "chrono::serde::ts_seconds_option")]
    expires_at: Option<DateTime<Utc>>,
    secret_hash: String,
});

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
    let mut item = to_item(w, workflow_key(&w.id))?;
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
    let mut item = to_item(n, node_key(&n.workflow_id, &n.id))?;
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
    from_item(item).map(Some)
}

pub fn node_from(item: Item) -> Result<Node, StoreError> {
    from_item(item)
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

    fn attribute_names(item: &Item) -> Vec<&str> {
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The table's schema: changing one of these names needs a data migration, not a rename.
    #[test]
    fn stored_attribute_names_are_the_tables_schema() {
        let w = workflow();
        assert_eq!(
            attribute_names(&workflow_item(&w, false).unwrap()),
            [
                "PK",
                "SK",
                "created_at",
                "description",
                "id",
                "name",
                "node_count",
                "owner_id",
                "search_text",
                "settings",
                "shares",
                "status",
                "tags",
                "type",
                "updated_at",
                "version"
            ]
        );
        let n = Node::new(
            crate::domain::ids::new_id(),
            w.id.clone(),
            None,
            crate::domain::NodeFields {
                title: "t".into(),
                content: "Some words.".into(),
                prompt: String::new(),
                priority: Priority::default(),
                status: NodeStatus::default(),
                tags: vec![],
                metadata: Map::new(),
            },
            w.created_at,
        );
        let item = node_item(&n).unwrap();
        assert_eq!(
            attribute_names(&item),
            [
                "PK",
                "SK",
                "child_count",
                "content",
                "created_at",
                "id",
                "metadata",
                "metrics",
                "parent_id",
                "priority",
                "prompt",
                "quality",
                "status",
                "tags",
                "title",
                "type",
                "updated_at",
                "version",
                "workflow_id"
            ]
        );
        let AttributeValue::M(metrics) = &item["metrics"] else {
            panic!("metrics is a map")
        };
        assert_eq!(
            attribute_names(metrics),
            [
                "characters",
                "paragraphs",
                "reading_minutes",
                "sentences",
                "words"
            ]
        );
        assert_eq!(node_from(item).unwrap(), n);
    }

    #[test]
    fn accounts_sessions_and_keys_round_trip_through_their_items() {
        let t = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let account = Account {
            user_id: "u".into(),
            email: "u@example.com".into(),
            display_name: "U".into(),
            role: Role::Editor,
            status: AccountStatus::Active,
            password_hash: "$argon2id$x".into(),
            mfa: Mfa {
                enabled: true,
                data_key: Some("K".into()),
                secret: Some("S".into()),
                pending_secret: None,
                recovery_hashes: vec!["h".into()],
                last_step: 7,
            },
            failed_logins: 2,
            last_failed_at: Some(t),
            tokens_valid_after: t,
            created_at: t,
            updated_at: t,
            version: 3,
        };
        let item = to_item(&account, HashMap::new()).unwrap();
        assert_eq!(
            attribute_names(&item),
            [
                "created_at",
                "display_name",
                "email",
                "failed_logins",
                "last_failed_at",
                "mfa",
                "password_hash",
                "role",
                "status",
                "tokens_valid_after",
                "updated_at",
                "user_id",
                "version"
            ]
        );
        assert_eq!(from_item::<Account>(item).unwrap(), account);

        let session = Session {
            session_id: "s".into(),
            user_id: "u".into(),
            device: "d".into(),
            ip: "192.0.2.1".into(),
            created_at: t,
            last_used_at: t,
            expires_at: t,
            refresh_hash: "r".into(),
            used_hashes: vec!["old".into()],
        };
        let item = to_item(&session, HashMap::new()).unwrap();
        // The table's TTL reads epoch seconds.
        assert_eq!(item["expires_at"], AttributeValue::N("1900000000".into()));
        assert_eq!(from_item::<Session>(item).unwrap(), session);

        let key = ApiKey {
            key_id: "k".into(),
            user_id: "u".into(),
            name: "ci".into(),
            scopes: vec![Scope::WorkflowsRead],
            created_at: t,
            expires_at: Some(t),
            secret_hash: "h".into(),
        };
        let item = to_item(&key, HashMap::new()).unwrap();
        assert_eq!(item["expires_at"], AttributeValue::N("1900000000".into()));
        assert_eq!(from_item::<ApiKey>(item).unwrap(), key);
    }
}
