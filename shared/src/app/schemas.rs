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

/// What `ModelRef::parse` accepts.
pub const MODEL: &str = "^(builtin|openai:[A-Za-z0-9._:-]+|bedrock:[A-Za-z0-9._:/-]+)$";

/// Workflow settings: the known keys of runs and nodes, and free keys. A `prompt_template` must
/// also render (minijinja, with only the variables named), which JSON Schema cannot state.
pub fn settings() -> RefOr<Schema> {
    let positive_delay = json!({"type": "number", "exclusiveMinimum": 0, "maximum": 3600});
    schema(free_object(json!({
        "max_nodes": {"type": "integer", "minimum": 1, "maximum": 10000},
        "timeout_s": {"type": "integer", "minimum": 1, "maximum": 900,
            "description": "Limit of one step's model call in seconds (default 120)"},
        "model": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": MODEL,
            "description": "The runs' model: builtin, openai:<model> or bedrock:<model id>"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5,
            "description": "Priority of the runs that do not give one (default 3)"},
        "max_parallel": {"type": "integer", "minimum": 1, "maximum": 16,
            "description": "Steps of one run at once (default 4)"},
        "retry": {"type": "object", "additionalProperties": false,
            "description": "Retries of failed steps, as Step Functions' Retry",
            "properties": {
                "interval_s": positive_delay,
                "backoff_rate": {"type": "number", "minimum": 1, "maximum": 10},
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
                "max_delay_s": positive_delay
            }},
        "system_prompt": {"type": "string", "maxLength": 10000},
        "prompt_template": {"type": "string", "maxLength": 10000,
            "description": "minijinja; variables parent.title, parent.content, node.title, node.prompt, workflow.name; must render"}
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
