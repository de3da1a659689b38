//! Field checks shared by workflows and nodes.

use super::error::Errors;
use serde_json::{Map, Value};

pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;
/// Free-form JSON objects (`settings`, `metadata`) are capped so an item stays far below
/// DynamoDB's 400 KB item limit.
pub const MAX_OBJECT_BYTES: usize = 16 * 1024;

/// A text with a character range; control characters other than newline and tab are refused.
pub fn text(
    errors: &mut Errors,
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    multiline: bool,
) {
    let n = value.chars().count();
    if n < min {
        if min == 1 {
            errors.push(field, "must not be empty");
        } else {
            errors.push(field, format!("must be at least {min} characters"));
        }
    } else if n > max {
        errors.push(field, format!("must be at most {max} characters (got {n})"));
    }
    let bad = |c: char| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t'));
    if value.chars().any(bad) {
        errors.push(field, "must not contain control characters");
    }
}

/// A required name-like text: trimmed, 1..=max characters.
pub fn name(errors: &mut Errors, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        errors.push(field, "must not be empty or blank");
    } else {
        text(errors, field, value, 1, max, false);
    }
}

/// Tags: at most [`MAX_TAGS`], each 1..=[`MAX_TAG_CHARS`] characters, no duplicates.
pub fn tags(errors: &mut Errors, field: &str, tags: &[String]) {
    if tags.len() > MAX_TAGS {
        errors.push(
            field,
            format!("at most {MAX_TAGS} tags (got {})", tags.len()),
        );
    }
    for (i, tag) in tags.iter().enumerate() {
        let path = format!("{field}[{i}]");
        name(errors, &path, tag, MAX_TAG_CHARS);
        if tags[..i].contains(tag) {
            errors.push(path, "duplicate tag");
        }
    }
}

pub const MAX_KEY_CHARS: usize = 255;

/// A free-form JSON object within [`MAX_OBJECT_BYTES`], with keys of 1..=255 characters.
pub fn object(errors: &mut Errors, field: &str, object: &Map<String, Value>) {
    for key in object.keys() {
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            errors.push(
                format!("{field}.{key}"),
                format!("keys must be 1 to {MAX_KEY_CHARS} characters"),
            );
        }
    }
    if let Some((path, problem)) = first_unstorable(object, field, 1) {
        errors.push(path, problem);
    }
    let size = serde_json::to_vec(object)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_OBJECT_BYTES {
        errors.push(
            field,
            format!("must be at most {MAX_OBJECT_BYTES} bytes of JSON (got {size})"),
        );
    }
}

/// DynamoDB stores documents at most 32 levels deep, and numbers of at most 38 significant
/// digits between 1e-130 and 1e126 in magnitude; a value outside would make the write fail.
pub const MAX_DEPTH: usize = 32;

/// The path and reason of the first value of `object` that DynamoDB could not store.
fn first_unstorable(
    object: &Map<String, Value>,
    path: &str,
    depth: usize,
) -> Option<(String, String)> {
    if depth > MAX_DEPTH {
        return Some((
            path.to_string(),
            format!("must not nest more than {MAX_DEPTH} levels"),
        ));
    }
    object.iter().find_map(|(k, v)| {
        // Top-level keys are checked by `object`; DynamoDB takes no empty key at any depth (the
        // SDK cannot even read such an item back).
        if depth > 1 && k.is_empty() {
            return Some((path.to_string(), "keys must not be empty".to_string()));
        }
        unstorable(v, &format!("{path}.{k}"), depth)
    })
}

fn unstorable(value: &Value, path: &str, depth: usize) -> Option<(String, String)> {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let magnitude = f.abs();
            let fits = f == 0.0 || (1e-130..1e126).contains(&magnitude);
            (!fits).then(|| {
                (
                    path.to_string(),
                    "numbers must be 0 or between 1e-130 and 1e125 in magnitude".to_string(),
                )
            })
        }
        Value::Array(items) if depth + 1 > MAX_DEPTH => Some((
            path.to_string(),
            format!("must not nest more than {MAX_DEPTH} levels"),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| unstorable(v, &format!("{path}[{i}]"), depth + 1)),
        Value::Object(map) => first_unstorable(map, path, depth + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;

    fn check(f: impl FnOnce(&mut Errors)) -> Vec<String> {
        let mut e = Errors::default();
        f(&mut e);
        match e.into_result(()) {
            Ok(()) => vec![],
            Err(DomainError::Validation(v)) => v
                .into_iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        assert!(check(|e| text(e, "t", &"é".repeat(10), 0, 10, false)).is_empty());
        assert_eq!(
            check(|e| text(e, "t", &"é".repeat(11), 0, 10, false)),
            ["t: must be at most 10 characters (got 11)"]
        );
    }

    #[test]
    fn control_characters_are_refused_except_newlines_in_multiline() {
        assert_eq!(check(|e| text(e, "t", "a\u{0}b", 0, 10, true)).len(), 1);
        assert!(check(|e| text(e, "t", "a\nb", 0, 10, true)).is_empty());
        assert_eq!(check(|e| text(e, "t", "a\nb", 0, 10, false)).len(), 1);
    }

    #[test]
    fn blank_names_are_refused() {
        assert_eq!(
            check(|e| name(e, "name", "   ", 255)),
            ["name: must not be empty or blank"]
        );
    }

    #[test]
    fn tags_are_limited_and_unique() {
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(
            check(|e| tags(e, "tags", &many)),
            ["tags: at most 20 tags (got 21)"]
        );
        let dup = vec!["a".to_string(), "a".to_string()];
        assert_eq!(check(|e| tags(e, "tags", &dup)), ["tags[1]: duplicate tag"]);
        let long = vec!["x".repeat(51)];
        assert_eq!(check(|e| tags(e, "tags", &long)).len(), 1);
    }

    #[test]
    fn values_dynamodb_cannot_store_are_refused() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            check(|e| object(e, "settings", &m(serde_json::json!({"a": 1e200})))).len(),
            1
        );
        assert_eq!(
            check(|e| object(e, "settings", &m(serde_json::json!({"a": [1e-200]})))),
            ["settings.a[0]: numbers must be 0 or between 1e-130 and 1e125 in magnitude"]
        );
        assert!(
            check(|e| object(
                e,
                "settings",
                &m(serde_json::json!({"a": 0.0, "b": 1.5e100, "c": u64::MAX, "d": -3}))
            ))
            .is_empty()
        );
        let mut deep = serde_json::json!(1);
        for _ in 0..40 {
            deep = serde_json::json!({"k": deep});
        }
        assert_eq!(
            check(|e| object(e, "metadata", deep.as_object().unwrap())).len(),
            1
        );
        let mut ok = serde_json::json!(1);
        for _ in 0..30 {
            ok = serde_json::json!({"k": ok});
        }
        assert!(check(|e| object(e, "metadata", ok.as_object().unwrap())).is_empty());
    }

    #[test]
    fn nested_keys_must_not_be_empty() {
        let nested: Map<String, Value> =
            serde_json::from_str(r#"{"a": {"b": [{"": 1}]}}"#).unwrap();
        assert_eq!(
            check(|e| object(e, "metadata", &nested)),
            ["metadata.a.b[0]: keys must not be empty"]
        );
        let fine: Map<String, Value> = serde_json::from_str(r#"{"a": {"b": 1}}"#).unwrap();
        assert!(check(|e| object(e, "metadata", &fine)).is_empty());
    }

    #[test]
    fn objects_are_size_limited() {
        let mut m = Map::new();
        m.insert("k".into(), Value::String("x".repeat(MAX_OBJECT_BYTES)));
        assert_eq!(check(|e| object(e, "metadata", &m)).len(), 1);
        let mut empty_key = Map::new();
        empty_key.insert(String::new(), Value::Null);
        assert_eq!(
            check(|e| object(e, "metadata", &empty_key)),
            ["metadata.: keys must be 1 to 255 characters"]
        );
    }
}
