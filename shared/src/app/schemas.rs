//! OpenAPI schemas of request fields whose rules one attribute cannot state: tags, id lists and
//! the free-form JSON objects (`settings`, `metadata`). Where JSON Schema cannot state a rule
//! exactly, the schema is the wider shape and the rule is in the description (a document
//! narrower than the server would call accepted requests invalid).

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, Schema};

/// One line of text, no control characters (what `validate::text` accepts).
pub const LINE: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// Text that may hold line breaks and tabs, no other control characters.
pub const TEXT: &str = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$";
/// A name: one line, and not only white space (what `validate::name` accepts).
pub const NAME: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x1f\\x7f-\\x9f\\s][^\\x00-\\x1f\\x7f-\\x9f]*$";

fn schema(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::Object(Object::new())))
}

fn name(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": NAME})
}

/// At most 20 distinct tags of 1 to 50 characters.
pub fn tags() -> RefOr<Schema> {
    schema(json!({"type": "array", "maxItems": 20, "uniqueItems": true, "items": name(50)}))
}

/// Any JSON object with keys of 1 to 255 characters. The server also caps it at 16 KiB of JSON
/// and 32 levels, refuses empty keys of nested objects and numbers DynamoDB cannot store
/// (beyond 1e125, below 1e-130 in magnitude), which JSON Schema cannot state: such a body is a
/// 422 naming the field.
fn free_object(known: Value) -> Value {
    json!({
        "type": "object",
        "properties": known,
        "propertyNames": {"minLength": 1, "maxLength": 255},
        "description": "Free-form JSON: at most 16 KiB and 32 levels; no empty keys in nested objects; numbers 0 or between 1e-130 and 1e125 in magnitude"
    })
}

/// Workflow settings: `max_nodes`, `timeout_s`, `model`, and free keys.
pub fn settings() -> RefOr<Schema> {
    schema(free_object(json!({
        "max_nodes": {"type": "integer", "minimum": 1, "maximum": 10000},
        "timeout_s": {"type": "integer", "minimum": 1, "maximum": 900},
        "model": name(100)
    })))
}

/// A node's free-form metadata.
pub fn metadata() -> RefOr<Schema> {
    schema(free_object(json!({})))
}

/// What `ulid::Ulid::from_string` accepts: 26 Crockford base-32 digits, the first at most 7.
pub const ID: &str = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$";

/// 1 to 100 distinct workflow ids; one that names no workflow the caller may see (malformed
/// ones included) is reported in the results as `not_found`, not refused.
pub fn workflow_ids() -> RefOr<Schema> {
    schema(json!({
        "type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": true,
        "items": {"type": "string"}
    }))
}
