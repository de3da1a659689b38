//! The AsyncAPI 3.0 document of the WebSocket API, served by `api-workflows` at
//! `/api/v3/asyncapi.json` next to its OpenAPI document: the servers and how a client
//! authenticates when it connects (`ws-connect`), the commands a client sends
//! ([`Command`], by `action`) with the reply each gets on the same connection ([`Reply`], by
//! `type`), and the frames pushed to subscribers of a workflow and to a user
//! ([`crate::domain::broadcast`]).
//!
//! Schemas are generated from the Rust types with utoipa, as the OpenAPI documents are, and
//! their `#/components/schemas/...` references are the same path in an AsyncAPI document. The
//! pushed frames are built with `json!` in `broadcast`, so their shapes are declared here
//! ([`frames`]: shapes only, never built) over the domain types they embed; the tests hold each
//! builder's frames to them, key for key.

use crate::domain::credentials::API_KEY_PREFIX;
use crate::domain::realtime::{Command, MAX_COMMAND_BYTES, MAX_SUBSCRIPTIONS, Reply};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// The API's version, as the OpenAPI documents give it.
pub const VERSION: &str = "3.0.0";

/// The one channel: the connection itself.
const CHANNEL: &str = "connection";

/// Every `code` of an error reply (`shared::app::realtime` and `shared::domain::realtime`).
pub const ERROR_CODES: [&str; 6] = [
    "bad_request",
    "unknown_action",
    "not_found",
    "too_many_subscriptions",
    "unauthorized",
    "unavailable",
];

/// The client's commands (by `action`): what sending one is for, and the replies (by `type`)
/// it may get.
const COMMANDS: [(&str, &str, [&str; 2]); 4] = [
    (
        "subscribe_workflow",
        "Follow the changes of a workflow the caller may read",
        ["subscribed", "error"],
    ),
    (
        "unsubscribe_workflow",
        "Stop following a workflow's changes",
        ["unsubscribed", "error"],
    ),
    (
        "ping",
        "Check that the connection is alive",
        ["pong", "error"],
    ),
    (
        "get_stats",
        "Count the caller's open connections and this connection's subscriptions",
        ["stats", "error"],
    ),
];

/// The shapes of the frames `crate::domain::broadcast` pushes. They exist for their schemas:
/// the frames are built with `json!`, and the tests hold each builder to its shape.
pub mod frames {
    use crate::domain::broadcast::{RunEvent, UpdateType};
    use crate::domain::principal::ShareAccess;
    use crate::domain::run::{RunStatus, StepError, StepStatus};
    use crate::domain::{Node, WorkflowStatus};
    use chrono::{DateTime, Utc};
    use utoipa::ToSchema;

    /// `workflow_update`: a workflow was created, updated, deleted or changed status. Sent to
    /// the connections subscribed to it.
    #[derive(ToSchema)]
    pub struct WorkflowUpdate {
        pub update_type: UpdateType,
        pub workflow_id: String,
        /// The workflow as it is now (as it was, when deleted), without its settings and
        /// shares; `null` when `truncated`.
        #[schema(required = true)]
        pub workflow: Option<WorkflowSummary>,
        /// Present, `true`, when the frame would have been over 32 KB: `workflow` is then
        /// `null`; read it over REST.
        #[schema(required = false)]
        pub truncated: bool,
    }

    /// A workflow as a `workflow_update` describes it.
    #[derive(ToSchema)]
    pub struct WorkflowSummary {
        pub id: String,
        pub name: String,
        pub status: WorkflowStatus,
        pub node_count: u64,
        pub version: u64,
        pub updated_at: DateTime<Utc>,
    }

    /// `node_update`: a node of a subscribed workflow was created, updated, deleted or changed
    /// status.
    #[derive(ToSchema)]
    pub struct NodeUpdate {
        pub update_type: UpdateType,
        pub workflow_id: String,
        pub node_id: String,
        /// The node as the REST API shows it; `null` when deleted or `truncated`.
        #[schema(required = true)]
        pub node: Option<Node>,
        /// Present, `true`, when the node would not fit in a 32 KB frame: `node` is then
        /// `null`; read it over REST.
        #[schema(required = false)]
        pub truncated: bool,
    }

    /// `run_update`: a run of a subscribed workflow `started`, `paused`, `resumed`,
    /// `succeeded`, `failed` or was `cancelled`.
    #[derive(ToSchema)]
    pub struct RunUpdate {
        pub event: RunEvent,
        pub workflow_id: String,
        pub run_id: String,
        pub status: RunStatus,
        pub steps_total: u32,
        pub steps_succeeded: u32,
        pub steps_failed: u32,
        /// Why the run failed.
        #[schema(required = true)]
        pub last_error: Option<StepError>,
        /// Present, `true`, when the frame would have been over 32 KB: `last_error` is then
        /// `null`.
        #[schema(required = false)]
        pub truncated: bool,
    }

    /// `step_update`: a step of a run `started`, `succeeded`, `failed`, waits for a retry
    /// (`retrying`, in `delay_s`), waits for approval (`waiting_approval`) or was skipped
    /// (`cancelled`). Sent in plan order.
    #[derive(ToSchema)]
    pub struct StepUpdate {
        pub event: RunEvent,
        pub workflow_id: String,
        pub run_id: String,
        pub step_id: String,
        /// The node the step writes.
        pub node_id: String,
        pub status: StepStatus,
        /// Attempts started so far.
        pub attempt: u32,
        /// `retrying`: seconds until the next attempt.
        #[schema(required = true)]
        pub delay_s: Option<i64>,
        /// The error of the last failed attempt.
        #[schema(required = true)]
        pub last_error: Option<StepError>,
        /// The model of the successful attempt.
        #[schema(required = true)]
        pub model: Option<String>,
        pub output_tokens: u64,
        pub latency_ms: u64,
        /// Present, `true`, when the frame would have been over 32 KB: `last_error` is then
        /// `null`.
        #[schema(required = false)]
        pub truncated: bool,
    }

    /// `node_delta`: live text of a node being written by a run's step. `text` follows the
    /// first `offset` characters already sent for this attempt; `seq` counts the attempt's
    /// deltas from 0, so a client that missed one can tell, and read the node over REST once
    /// its `node_update` says it is complete. A long delta comes in several frames.
    #[derive(ToSchema)]
    pub struct NodeDelta {
        pub workflow_id: String,
        pub node_id: String,
        pub run_id: String,
        pub attempt: u32,
        pub seq: u64,
        /// Characters (Unicode scalar values) sent before `text` in this attempt.
        pub offset: u64,
        /// At most 8192 characters.
        pub text: String,
    }

    /// How a run ended, as a run notification says it.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum RunOutcome {
        RunSucceeded,
        RunFailed,
        RunCancelled,
    }

    /// `notification` of a run's end: sent to every connection of the user who started it,
    /// subscribed or not.
    #[derive(ToSchema)]
    pub struct RunNotification {
        #[schema(inline)]
        pub event: RunOutcome,
        pub workflow_id: String,
        pub run_id: String,
        pub status: RunStatus,
        pub steps_succeeded: u32,
        pub steps_failed: u32,
    }

    /// The event of a share notification.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum SharedEvent {
        WorkflowShared,
    }

    /// `notification` that a workflow was shared with the user (or their access changed):
    /// sent to every connection of that user.
    #[derive(ToSchema)]
    pub struct WorkflowSharedNotification {
        #[schema(inline)]
        pub event: SharedEvent,
        pub workflow_id: String,
        /// The workflow's name; `null` when `truncated`.
        #[schema(required = true)]
        pub name: Option<String>,
        pub access: ShareAccess,
        /// Present, `true`, when the frame would have been over 32 KB: `name` is then `null`.
        #[schema(required = false)]
        pub truncated: bool,
    }
}

/// A frame pushed by the server: its message id, its `type`, and what it is.
struct Push {
    id: &'static str,
    frame_type: &'static str,
    summary: &'static str,
    /// Adds the payload's schema (and those it refers to); returns its name.
    schema: fn(&mut Map<String, Value>) -> String,
}

const PUSHES: [Push; 7] = [
    Push {
        id: "workflowUpdate",
        frame_type: "workflow_update",
        summary: "A subscribed workflow changed",
        schema: add::<frames::WorkflowUpdate>,
    },
    Push {
        id: "nodeUpdate",
        frame_type: "node_update",
        summary: "A node of a subscribed workflow changed",
        schema: add::<frames::NodeUpdate>,
    },
    Push {
        id: "runUpdate",
        frame_type: "run_update",
        summary: "A run of a subscribed workflow changed status",
        schema: add::<frames::RunUpdate>,
    },
    Push {
        id: "stepUpdate",
        frame_type: "step_update",
        summary: "A step of a run of a subscribed workflow changed",
        schema: add::<frames::StepUpdate>,
    },
    Push {
        id: "nodeDelta",
        frame_type: "node_delta",
        summary: "Live text of a node being written",
        schema: add::<frames::NodeDelta>,
    },
    Push {
        id: "runNotification",
        frame_type: "notification",
        summary: "A run the user started has ended",
        schema: add::<frames::RunNotification>,
    },
    Push {
        id: "workflowSharedNotification",
        frame_type: "notification",
        summary: "A workflow was shared with the user",
        schema: add::<frames::WorkflowSharedNotification>,
    },
];

/// Adds `T`'s schema and every schema it refers to; returns `T`'s name.
fn add<T: ToSchema>(schemas: &mut Map<String, Value>) -> String {
    let mut all = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut all);
    for (name, schema) in all {
        schemas
            .entry(name)
            .or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    T::name().into_owned()
}

/// Adds the schema of an internally tagged enum `T` as one named schema per variant
/// (`<Variant><suffix>`, the variant's `tag` value in PascalCase) and `T`'s own as the `oneOf`
/// of their references. Returns each variant's tag value and schema name, in order.
fn add_tagged<T: ToSchema>(
    schemas: &mut Map<String, Value>,
    tag: &str,
    suffix: &str,
) -> Vec<(String, String)> {
    let mut dependencies = Vec::new();
    T::schemas(&mut dependencies);
    for (name, schema) in dependencies {
        schemas
            .entry(name)
            .or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    let whole = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    let mut variants = Vec::new();
    let mut refs = Vec::new();
    for variant in whole["oneOf"].as_array().into_iter().flatten() {
        let Some(value) = variant
            .pointer(&format!("/properties/{tag}/enum/0"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let name = format!("{}{suffix}", pascal(value));
        refs.push(schema_ref(&name));
        schemas.insert(name.clone(), variant.clone());
        variants.push((value.to_string(), name));
    }
    schemas.insert(T::name().into_owned(), json!({ "oneOf": refs }));
    variants
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `snake_case` -> `PascalCase`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// `snake_case` -> `camelCase`: message and operation ids.
fn camel(snake: &str) -> String {
    let p = pascal(snake);
    let mut chars = p.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn channel_message_ref(id: &str) -> Value {
    json!({ "$ref": format!("#/channels/{CHANNEL}/messages/{id}") })
}

fn message(id: &str, summary: &str, schema: &str) -> Value {
    json!({
        "name": id,
        "title": summary,
        "summary": summary,
        "contentType": "application/json",
        "payload": schema_ref(schema),
    })
}

/// The document, as JSON.
pub fn document() -> Value {
    let mut schemas = Map::new();
    let mut messages = Map::new();
    let mut operations = Map::new();
    let channel = json!({ "$ref": format!("#/channels/{CHANNEL}") });

    // Replies first: the commands' operations refer to them.
    for (reply_type, schema) in add_tagged::<Reply>(&mut schemas, "type", "Reply") {
        let summary = match reply_type.as_str() {
            "subscribed" => "The connection now follows the workflow",
            "unsubscribed" => "The connection no longer follows the workflow",
            "pong" => "Answer to a ping, with the server's time",
            "stats" => "The caller's open connections and this connection's subscriptions",
            _ => "The command was not carried out; the connection stays open",
        };
        messages.insert(
            camel(&reply_type),
            message(&camel(&reply_type), summary, &schema),
        );
    }
    if let Some(code) = schemas
        .get_mut("ErrorReply")
        .and_then(|s| s.pointer_mut("/properties/code"))
    {
        code["enum"] = json!(ERROR_CODES);
    }

    for (action, schema) in add_tagged::<Command>(&mut schemas, "action", "Command") {
        let Some((_, summary, replies)) = COMMANDS.iter().find(|(a, ..)| *a == action) else {
            continue;
        };
        let id = camel(&action);
        messages.insert(id.clone(), message(&id, summary, &schema));
        operations.insert(
            id.clone(),
            json!({
                "action": "send",
                "channel": channel,
                "title": summary,
                "summary": summary,
                "messages": [channel_message_ref(&id)],
                "reply": {
                    "channel": channel,
                    "messages": replies.iter().map(|r| channel_message_ref(&camel(r))).collect::<Vec<_>>(),
                },
            }),
        );
    }

    for push in &PUSHES {
        let schema = (push.schema)(&mut schemas);
        if let Some(s) = schemas.get_mut(&schema).and_then(Value::as_object_mut) {
            let required = s.entry("required").or_insert_with(|| json!([]));
            if let Some(required) = required.as_array_mut() {
                required.insert(0, json!("type"));
            }
            if let Some(properties) = s.get_mut("properties").and_then(Value::as_object_mut) {
                properties.insert(
                    "type".into(),
                    json!({ "type": "string", "const": push.frame_type }),
                );
            }
        }
        messages.insert(push.id.into(), message(push.id, push.summary, &schema));
        operations.insert(
            format!("receive{}", pascal_id(push.id)),
            json!({
                "action": "receive",
                "channel": channel,
                "title": push.summary,
                "summary": push.summary,
                "messages": [channel_message_ref(push.id)],
            }),
        );
    }

    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|id| {
            (
                id.clone(),
                json!({ "$ref": format!("#/components/messages/{id}") }),
            )
        })
        .collect();
    let security = json!([
        { "$ref": "#/components/securitySchemes/token" },
        { "$ref": "#/components/securitySchemes/subprotocol" },
    ]);
    let credential = format!(
        "An access token (a JWT from `POST /api/v3/auth/login`) or an API key (`{API_KEY_PREFIX}...`)"
    );

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Document Workflow Chain WebSocket API",
            "version": VERSION,
            "description": format!(
                "Real-time changes of workflows, their nodes and their runs, over one WebSocket \
                 connection. Connect with a credential (see the security schemes): without one \
                 the handshake is refused with 401, and an API key without `workflows:read` with \
                 403. Then send commands as JSON text frames, each naming its `action` (at most \
                 {MAX_COMMAND_BYTES} bytes); each is answered on the same connection with a frame \
                 naming its `type`, an `error` included: a bad command never closes the \
                 connection. A connection follows at most {MAX_SUBSCRIPTIONS} workflows and \
                 receives their changes, and the notifications of its user. No frame is over 32 \
                 KB: one that would be is sent with its large field `null` and `truncated: true`, \
                 for the client to read it over REST (`/api/v3/openapi.json`). API Gateway closes \
                 a connection after 2 hours at most (and after 10 minutes idle): reconnect and \
                 subscribe again."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "pathname": "/ws",
                "protocol": "wss",
                "title": "AWS",
                "description": "The deployed stack: its `WebSocketUrl` output.",
                "variables": {
                    "apiId": { "description": "The id of the stack's `WebSocketApi`" },
                    "region": { "default": "us-east-1", "description": "The stack's AWS region" },
                },
                "security": security,
            },
            "local": {
                "host": "127.0.0.1:3001",
                "pathname": "/ws",
                "protocol": "ws",
                "title": "Local",
                "description": "The local stack of `make dev`.",
                "security": security,
            },
        },
        "channels": {
            CHANNEL: {
                "address": "/",
                "title": "The connection",
                "description": "Everything goes over the one connection: commands and their \
                    replies, the changes of the workflows it follows, the notifications of its \
                    user.",
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": format!("{credential}; or send it as a `Sec-WebSocket-Protocol` entry."),
                                },
                            },
                        },
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Sec-WebSocket-Protocol": {
                                    "type": "string",
                                    "description": "Browsers: the credential as a subprotocol, `new WebSocket(url, [token])`; the server echoes it back as the chosen subprotocol.",
                                },
                            },
                        },
                        "bindingVersion": "0.1.0",
                    },
                },
            },
        },
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "token": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": format!("{credential} as the `token` query parameter of the connection URL: `wss://.../ws?token=...`."),
                },
                "subprotocol": {
                    "type": "httpApiKey",
                    "name": "Sec-WebSocket-Protocol",
                    "in": "header",
                    "description": format!(
                        "{credential} as an entry of the `Sec-WebSocket-Protocol` header, what a \
                         browser can send: `new WebSocket(url, [token])`. The server echoes the entry \
                         back as the chosen subprotocol, as browsers require."
                    ),
                },
            },
        },
    })
}

/// `camelCase` -> `PascalCase`.
fn pascal_id(id: &str) -> String {
    let mut chars = id.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::broadcast::{
        Message, node_deltas, node_update, run_notification, run_updates, share_notifications,
        workflow_update,
    };
    use crate::domain::principal::ShareAccess;
    use crate::domain::run::{
        ErrorKind, RetryPolicy, Run, RunStatus, Step, StepError, StepStatus, Usage,
    };
    use crate::domain::{Node, NodeStatus, Principal, Role, Workflow, WorkflowStatus};
    use crate::testing::runs::{active_workflow, chain};
    use chrono::Utc;
    use std::collections::BTreeSet;

    /// Every `$ref` string in `value`, with where it is.
    fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => found.push((at.to_string(), r.clone())),
                        _ => refs(v, &format!("{at}/{k}"), found),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, &format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        doc.pointer(reference.strip_prefix('#')?)
    }

    /// Follows `$ref`s to the schema itself.
    fn deref<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
        while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match resolve(doc, r) {
                Some(s) => schema = s,
                None => panic!("unresolved {r}"),
            }
        }
        schema
    }

    /// What of JSON Schema the document uses: `$ref`, `oneOf`, `type` (one or several),
    /// `enum`, `const`, `minimum`, `maximum`, `required`, `properties`,
    /// `additionalProperties`, `items`. Pushes why `value` does not match `schema`.
    fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = deref(doc, schema);
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|o| {
                    let mut e = Vec::new();
                    validate(doc, o, value, at, &mut e);
                    e.is_empty()
                })
                .count();
            if matching != 1 {
                errors.push(format!("{at}: {value} matches {matching} of oneOf"));
            }
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let is = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "number" => value.is_number(),
                "integer" => value.is_i64() || value.is_u64(),
                _ => false,
            };
            if !types.iter().any(|t| is(t)) {
                errors.push(format!("{at}: {value} is not of type {types:?}"));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
        if let Some(c) = schema.get("const")
            && c != value
        {
            errors.push(format!("{at}: {value} is not {c}"));
        }
        if let (Some(min), Some(n)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) && n < min
        {
            errors.push(format!("{at}: {n} < {min}"));
        }
        if let (Some(max), Some(n)) = (
            schema.get("maximum").and_then(Value::as_f64),
            value.as_f64(),
        ) && n > max
        {
            errors.push(format!("{at}: {n} > {max}"));
        }
        if let Some(object) = value.as_object() {
            for key in schema["required"].as_array().into_iter().flatten() {
                if let Some(key) = key.as_str()
                    && !object.contains_key(key)
                {
                    errors.push(format!("{at}: no required `{key}`"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, v) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(p) => validate(doc, p, v, &format!("{at}/{key}"), errors),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{at}: `{key}` is not allowed"))
                        }
                        Some(extra @ Value::Object(_)) => {
                            validate(doc, extra, v, &format!("{at}/{key}"), errors)
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, v) in array.iter().enumerate() {
                validate(doc, items, v, &format!("{at}/{i}"), errors);
            }
        }
    }

    /// The messages of the operations with `action`: id and payload schema.
    fn messages_of(doc: &Value, action: &str) -> Vec<(String, Value)> {
        let mut found = Vec::new();
        for op in doc["operations"].as_object().unwrap().values() {
            if op["action"] != action {
                continue;
            }
            for m in op["messages"].as_array().unwrap() {
                let message = deref(doc, m);
                found.push((
                    message["name"].as_str().unwrap().to_string(),
                    deref(doc, &message["payload"]).clone(),
                ));
            }
        }
        found
    }

    /// The replies any command may get: id and payload schema.
    fn replies(doc: &Value) -> Vec<(String, Value)> {
        let mut found: Vec<(String, Value)> = Vec::new();
        for op in doc["operations"].as_object().unwrap().values() {
            for m in op["reply"]["messages"].as_array().into_iter().flatten() {
                let message = deref(doc, m);
                let name = message["name"].as_str().unwrap().to_string();
                if !found.iter().any(|(n, _)| *n == name) {
                    found.push((name, deref(doc, &message["payload"]).clone()));
                }
            }
        }
        found
    }

    /// Checks `frame` against the one message of `candidates` whose payload it matches: its
    /// keys are the payload's properties (`truncated` only when it was), every required one
    /// there, and its `tag` value is the one the payload allows. Returns the message's id.
    fn check(doc: &Value, candidates: &[(String, Value)], frame: &Value, tag: &str) -> String {
        let matching: Vec<&(String, Value)> = candidates
            .iter()
            .filter(|(_, schema)| {
                let mut errors = Vec::new();
                validate(doc, schema, frame, "", &mut errors);
                errors.is_empty()
            })
            .collect();
        let [(id, schema)] = matching.as_slice() else {
            let why: Vec<_> = candidates
                .iter()
                .map(|(id, schema)| {
                    let mut errors = Vec::new();
                    validate(doc, schema, frame, "", &mut errors);
                    format!("{id}: {errors:?}")
                })
                .collect();
            panic!("{frame} matches {} messages; {why:#?}", matching.len());
        };
        let keys: BTreeSet<&str> = frame
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let properties: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let mut expected = properties.clone();
        if frame.get("truncated").is_none() {
            expected.remove("truncated");
        }
        assert_eq!(keys, expected, "{id}: {frame}");
        assert!(required.is_subset(&keys), "{id}: {frame}");
        let optional: Vec<_> = properties.difference(&required).collect();
        assert!(
            optional.iter().all(|k| **k == "truncated"),
            "{id}: only `truncated` may be absent, not {optional:?}"
        );
        // The tag's value is the one (the `type` or `action`) or one of those (an `event`)
        // the schema allows.
        let declared = &schema["properties"][tag];
        let allowed = match declared.get("const") {
            Some(c) => vec![c.clone()],
            None => declared["enum"].as_array().cloned().unwrap_or_default(),
        };
        assert!(
            allowed.contains(&frame[tag]) && (tag == "event" || allowed.len() == 1),
            "{id}: `{tag}` {} is not the schema's {declared}",
            frame[tag]
        );
        id.clone()
    }

    #[test]
    fn the_document_is_asyncapi_3_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert_eq!(doc["info"]["version"], VERSION);
        assert!(doc["info"]["title"].is_string());
        assert_eq!(doc["defaultContentType"], "application/json");
        assert_eq!(doc["servers"]["production"]["protocol"], "wss");
        assert_eq!(doc["servers"]["local"]["protocol"], "ws");
        // Every `{variable}` of a server's host is declared.
        for server in doc["servers"].as_object().unwrap().values() {
            let host = server["host"].as_str().unwrap();
            for variable in host.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                assert!(server["variables"][variable].is_object(), "{variable}");
            }
            assert!(!server["security"].as_array().unwrap().is_empty());
        }
        let mut found = Vec::new();
        refs(&doc, "", &mut found);
        assert!(found.len() > 50, "{}", found.len());
        for (at, r) in &found {
            assert!(r.starts_with("#/"), "{at}: {r} leaves the document");
            let target = resolve(&doc, r);
            assert!(
                target.is_some_and(|t| !t.is_null()),
                "{at}: {r} resolves to nothing"
            );
        }
        // Every schema is a JSON object (a failed conversion would be null).
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            assert!(schema.is_object(), "{name}");
        }
        let token = &doc["components"]["securitySchemes"]["token"];
        assert_eq!(
            (&token["type"], &token["in"], &token["name"]),
            (&json!("httpApiKey"), &json!("query"), &json!("token"))
        );
        let ws = &doc["channels"][CHANNEL]["bindings"]["ws"];
        assert!(ws["query"]["properties"]["token"].is_object());
    }

    #[test]
    fn operations_use_their_channels_messages_and_every_message_is_used() {
        let doc = document();
        let channels = doc["channels"].as_object().unwrap();
        let mut used = BTreeSet::new();
        let operations = doc["operations"].as_object().unwrap();
        for (name, op) in operations {
            assert!(
                op["action"] == "send" || op["action"] == "receive",
                "{name}"
            );
            let mut uses = vec![(&op["channel"], &op["messages"])];
            if let Some(reply) = op.get("reply") {
                assert_eq!(op["action"], "send", "{name}: a reply answers a command");
                uses.push((&reply["channel"], &reply["messages"]));
            }
            for (channel, messages) in uses {
                let channel_ref = channel["$ref"].as_str().unwrap();
                let channel_id = channel_ref.strip_prefix("#/channels/").unwrap();
                assert!(channels.contains_key(channel_id), "{name}: {channel_ref}");
                let messages = messages.as_array().unwrap();
                assert!(!messages.is_empty(), "{name}");
                for m in messages {
                    let r = m["$ref"].as_str().unwrap();
                    let id = r
                        .strip_prefix(&format!("{channel_ref}/messages/"))
                        .unwrap_or_else(|| panic!("{name}: {r} is not a message of {channel_ref}"));
                    assert!(resolve(&doc, r).is_some(), "{name}: {r}");
                    used.insert((channel_id.to_string(), id.to_string()));
                }
            }
        }
        let mut defined = BTreeSet::new();
        for (channel_id, channel) in channels {
            assert!(channel["address"].is_string());
            for (id, m) in channel["messages"].as_object().unwrap() {
                defined.insert((channel_id.clone(), id.clone()));
                assert!(deref(&doc, m)["payload"].is_object(), "{id}");
            }
        }
        assert_eq!(used, defined, "every message of a channel is used");
        let components: BTreeSet<_> = doc["components"]["messages"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let in_channels: BTreeSet<_> = defined.into_iter().map(|(_, id)| id).collect();
        assert_eq!(components, in_channels);
        // 4 commands with their replies, 7 kinds of pushed frames.
        assert_eq!(messages_of(&doc, "send").len(), 4);
        assert_eq!(replies(&doc).len(), 5);
        assert_eq!(messages_of(&doc, "receive").len(), 7);
    }

    #[test]
    fn commands_and_replies_are_their_schemas_key_for_key() {
        let doc = document();
        let sends = messages_of(&doc, "send");
        let id = crate::domain::ids::new_id();
        let mut matched = BTreeSet::new();
        for command in [
            Command::SubscribeWorkflow {
                workflow_id: id.clone(),
            },
            Command::UnsubscribeWorkflow {
                workflow_id: id.clone(),
            },
            Command::Ping,
            Command::GetStats,
        ] {
            let value = serde_json::to_value(&command).unwrap();
            matched.insert(check(&doc, &sends, &value, "action"));
            // What the schema describes is what the server reads.
            assert_eq!(
                crate::domain::realtime::parse(&value.to_string()),
                Ok(command)
            );
        }
        assert_eq!(matched.len(), sends.len());

        let answers = replies(&doc);
        let mut matched = BTreeSet::new();
        let mut all = vec![
            Reply::Subscribed {
                workflow_id: id.clone(),
            },
            Reply::Unsubscribed { workflow_id: id },
            Reply::Pong {
                timestamp: Utc::now(),
            },
            Reply::Stats {
                connections: 2,
                subscriptions: 1,
            },
        ];
        all.extend(ERROR_CODES.iter().map(|code| Reply::error(code, "why")));
        for reply in all {
            let value = serde_json::to_value(&reply).unwrap();
            matched.insert(check(&doc, &answers, &value, "type"));
        }
        assert_eq!(matched.len(), answers.len());
        let mut errors = Vec::new();
        let error = deref(&doc, &doc["components"]["messages"]["error"]["payload"]);
        validate(
            &doc,
            error,
            &json!({"type": "error", "code": "teapot", "message": "?"}),
            "",
            &mut errors,
        );
        assert!(!errors.is_empty(), "an undocumented code is refused");
    }

    #[test]
    fn the_error_codes_are_those_the_code_sends() {
        let code = regex::Regex::new(r#"Reply::error\(\s*"([a-z_]+)""#).unwrap();
        let mut sent = BTreeSet::new();
        for source in [
            include_str!("../app/realtime.rs"),
            include_str!("../domain/realtime.rs"),
        ] {
            sent.extend(code.captures_iter(source).map(|c| c[1].to_string()));
        }
        let documented: BTreeSet<String> = ERROR_CODES.iter().map(|c| c.to_string()).collect();
        assert_eq!(sent, documented);
    }

    fn frames(messages: impl IntoIterator<Item = Message>) -> Vec<Value> {
        messages
            .into_iter()
            .map(|m| serde_json::from_str(&m.frame).unwrap())
            .collect()
    }

    /// A workflow shared with two users, a run of it with two steps and their nodes.
    fn world() -> (Workflow, Run, Vec<Step>, Vec<Node>) {
        let now = Utc::now();
        let mut w = active_workflow(&Principal::user("ann", Role::Editor), "Chain", now);
        w.shares.insert("bob".into(), ShareAccess::Viewer);
        w.shares.insert("cy".into(), ShareAccess::Editor);
        let (run, steps, nodes) = chain(&w, 2, None, 3, now);
        (w, run, steps, nodes)
    }

    /// Every frame each builder of `broadcast` makes, in each case it tells apart, truncated
    /// ones included.
    fn every_frame() -> Vec<Value> {
        let now = Utc::now();
        let (w, queued, steps, nodes) = world();
        let huge = "x".repeat(40 * 1024);
        let mut out = Vec::new();

        // workflow_update: created, updated, status_changed, deleted (both ways), truncated.
        let mut renamed = w.clone();
        renamed.name = "Renamed".into();
        let mut paused = w.clone();
        paused.status = WorkflowStatus::Paused;
        let mut deleted = w.clone();
        deleted.status = WorkflowStatus::Deleted;
        let mut big = w.clone();
        big.name = huge.clone();
        for (old, new) in [
            (None, Some(&w)),
            (Some(&w), Some(&renamed)),
            (Some(&w), Some(&paused)),
            (Some(&w), Some(&deleted)),
            (Some(&w), None),
            (None, Some(&big)),
        ] {
            out.extend(frames(workflow_update(old, new)));
        }
        // Shared with two users; one of them with a changed access; truncated.
        out.extend(frames(share_notifications(None, Some(&w))));
        let mut promoted = w.clone();
        promoted.shares.insert("bob".into(), ShareAccess::Editor);
        out.extend(frames(share_notifications(Some(&w), Some(&promoted))));
        out.extend(frames(share_notifications(None, Some(&big))));

        // node_update: created, updated, status_changed, deleted, truncated.
        let node = &nodes[0];
        let mut written = node.clone();
        written.content = "Some text.".into();
        let mut done = written.clone();
        done.status = NodeStatus::Completed;
        let mut long = node.clone();
        long.content = huge.clone();
        for (old, new) in [
            (None, Some(node)),
            (Some(node), Some(&written)),
            (Some(&written), Some(&done)),
            (Some(&done), None),
            (None, Some(&long)),
        ] {
            out.extend(frames(node_update(old, new)));
        }

        // node_delta: one, and one split in two.
        out.extend(frames(node_deltas(
            &w.id,
            &node.id,
            &queued.id,
            1,
            0,
            0,
            "Once upon",
        )));
        out.extend(frames(node_deltas(
            &w.id,
            &node.id,
            &queued.id,
            1,
            1,
            9,
            &"é".repeat(9000),
        )));

        // run_update and step_update: started, retrying, succeeded, waiting for approval,
        // paused, resumed, failed (with the error), cancelled; truncated.
        let mut running = queued.clone();
        running.transition(RunStatus::Running, now).unwrap();
        let mut claimed = steps.clone();
        claimed[0]
            .start(now, std::time::Duration::from_secs(60))
            .unwrap();
        out.extend(frames(run_updates(
            Some((&queued, &steps)),
            Some((&running, &claimed)),
            now,
        )));
        let mut retrying = claimed.clone();
        retrying[0]
            .fail(
                now,
                StepError::new(ErrorKind::Throttled, "slow down"),
                &RetryPolicy::default(),
                0.5,
            )
            .unwrap();
        out.extend(frames(run_updates(
            Some((&running, &claimed)),
            Some((&running, &retrying)),
            now,
        )));
        let mut succeeded = claimed.clone();
        succeeded[0]
            .succeed(
                now,
                Usage {
                    model: Some("builtin".into()),
                    input_tokens: 10,
                    output_tokens: 20,
                    latency_ms: 30,
                },
            )
            .unwrap();
        succeeded[1].status = StepStatus::WaitingApproval;
        out.extend(frames(run_updates(
            Some((&running, &claimed)),
            Some((&running, &succeeded)),
            now,
        )));
        let mut paused = running.clone();
        paused.transition(RunStatus::Paused, now).unwrap();
        out.extend(frames(run_updates(
            Some((&running, &succeeded)),
            Some((&paused, &succeeded)),
            now,
        )));
        out.extend(frames(run_updates(
            Some((&paused, &succeeded)),
            Some((&running, &succeeded)),
            now,
        )));
        let mut failed = running.clone();
        failed.transition(RunStatus::Failed, now).unwrap();
        failed.last_error = Some(StepError::new(ErrorKind::Upstream, "the model is down"));
        let mut failed_steps = succeeded.clone();
        failed_steps[1].status = StepStatus::Failed;
        failed_steps[1].last_error = failed.last_error.clone();
        out.extend(frames(run_updates(
            Some((&running, &succeeded)),
            Some((&failed, &failed_steps)),
            now,
        )));
        let mut cancelled = running.clone();
        cancelled.transition(RunStatus::Cancelled, now).unwrap();
        let mut skipped = succeeded.clone();
        skipped[1].status = StepStatus::Skipped;
        out.extend(frames(run_updates(
            Some((&running, &succeeded)),
            Some((&cancelled, &skipped)),
            now,
        )));
        // An error too long for a frame (longer than any adapter writes).
        let mut big_failed = failed.clone();
        big_failed.last_error = Some(StepError {
            kind: ErrorKind::Internal,
            message: huge.clone(),
            retryable: false,
        });
        let mut big_steps = failed_steps.clone();
        big_steps[1].last_error = big_failed.last_error.clone();
        out.extend(frames(run_updates(
            Some((&running, &succeeded)),
            Some((&big_failed, &big_steps)),
            now,
        )));

        // The owner's notifications of the run's end.
        for end in [&succeeded_run(&running, now), &failed, &cancelled] {
            out.extend(frames(run_notification(Some(&running), Some(end))));
        }
        out
    }

    fn succeeded_run(running: &Run, now: chrono::DateTime<Utc>) -> Run {
        let mut r = running.clone();
        r.transition(RunStatus::Succeeded, now).unwrap();
        r
    }

    #[test]
    fn every_broadcast_frame_is_its_schema_key_for_key() {
        let doc = document();
        let receives = messages_of(&doc, "receive");
        let all = every_frame();
        let mut matched = BTreeSet::new();
        let mut types = BTreeSet::new();
        let mut events = BTreeSet::new();
        let mut truncated = BTreeSet::new();
        for frame in &all {
            let id = check(&doc, &receives, frame, "type");
            if frame["type"] == "notification" {
                check(&doc, &receives, frame, "event");
            }
            types.insert(frame["type"].as_str().unwrap().to_string());
            if let Some(e) = frame["event"].as_str() {
                events.insert(e.to_string());
            }
            if frame["truncated"] == true {
                truncated.insert(id.clone());
            }
            matched.insert(id);
        }
        // Every kind of frame was seen, each event, and each truncation.
        let every: BTreeSet<String> = receives.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(matched, every);
        assert_eq!(
            types,
            [
                "node_delta",
                "node_update",
                "notification",
                "run_update",
                "step_update",
                "workflow_update"
            ]
            .map(String::from)
            .into()
        );
        for e in [
            "started",
            "retrying",
            "succeeded",
            "failed",
            "cancelled",
            "paused",
            "resumed",
            "waiting_approval",
            "run_succeeded",
            "run_failed",
            "run_cancelled",
            "workflow_shared",
        ] {
            assert!(events.contains(e), "no `{e}` frame in {events:?}");
        }
        assert_eq!(
            truncated,
            [
                "nodeUpdate",
                "runUpdate",
                "stepUpdate",
                "workflowSharedNotification",
                "workflowUpdate"
            ]
            .map(String::from)
            .into()
        );
    }

    #[test]
    fn a_frame_with_a_key_its_schema_lacks_is_caught() {
        let doc = document();
        let receives = messages_of(&doc, "receive");
        let (w, ..) = world();
        let mut frame = frames(workflow_update(None, Some(&w))).remove(0);
        frame["surprise"] = json!(1);
        let caught = std::panic::catch_unwind(|| check(&doc, &receives, &frame, "type"));
        assert!(caught.is_err());
        let mut frame = frames(workflow_update(None, Some(&w))).remove(0);
        frame.as_object_mut().unwrap().remove("workflow");
        let caught = std::panic::catch_unwind(|| check(&doc, &receives, &frame, "type"));
        assert!(caught.is_err());
    }
}
