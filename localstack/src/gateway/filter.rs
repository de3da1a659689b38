//! Lambda event filtering (`FilterCriteria`) for the stream event source: a record is
//! delivered when it matches any of the event's filter patterns, and dropped (counting as
//! processed) when it matches none.
//!
//! A pattern is matched against the record as the function receives it: each key of the
//! pattern names a field of the record, a nested object descends into it, and a list gives the
//! values allowed there (any of them). Supported, as Lambda (EventBridge patterns) does: exact
//! values, `prefix`, `suffix`, `equals-ignore-case`, `exists`, `anything-but` (a value, a list,
//! or `{"prefix": ...}`) and `numeric` (`[">", 0, "<=", 5]`). A record field holding a list
//! matches when any of its items does. Anything else matches nothing.

use serde_json::Value;

/// Whether `record` passes `filters` (no filter at all lets everything through).
pub fn matches_any(filters: &[Value], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|f| matches(f, record))
}

/// Whether `record` matches one pattern.
pub fn matches(pattern: &Value, record: &Value) -> bool {
    field_matches(pattern, Some(record))
}

/// `pattern` (an object of fields, or a list of allowed values) against the value found at its
/// place in the record (`None`: the record has no such field).
fn field_matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(key, sub)| field_matches(sub, value.and_then(|v| v.get(key)))),
        Value::Array(allowed) => allowed.iter().any(|rule| rule_matches(rule, value)),
        // Lambda requires lists at the leaves; a bare value is read as a list of one.
        scalar => rule_matches(scalar, value),
    }
}

/// One allowed value (or operator) against a field.
fn rule_matches(rule: &Value, value: Option<&Value>) -> bool {
    if let Value::Object(op) = rule
        && let Some(Value::Bool(wanted)) = op.get("exists")
    {
        return value.is_some() == *wanted;
    }
    let Some(value) = value else {
        return false;
    };
    if let Value::Array(items) = value {
        return items.iter().any(|item| rule_matches(rule, Some(item)));
    }
    match rule {
        Value::Object(op) => operator_matches(op, value),
        Value::Number(n) => value.as_f64().is_some_and(|v| Some(v) == n.as_f64()),
        exact => exact == value,
    }
}

fn operator_matches(op: &serde_json::Map<String, Value>, value: &Value) -> bool {
    let text = value.as_str();
    let Some((name, arg)) = op.iter().next().filter(|_| op.len() == 1) else {
        return false;
    };
    match (name.as_str(), arg) {
        ("prefix", Value::String(p)) => text.is_some_and(|t| t.starts_with(p.as_str())),
        ("suffix", Value::String(s)) => text.is_some_and(|t| t.ends_with(s.as_str())),
        ("equals-ignore-case", Value::String(s)) => text.is_some_and(|t| t.eq_ignore_ascii_case(s)),
        ("anything-but", Value::Array(excluded)) => {
            !excluded.iter().any(|e| rule_matches(e, Some(value)))
        }
        ("anything-but", Value::Object(inner)) => !operator_matches(inner, value),
        ("anything-but", excluded) => !rule_matches(excluded, Some(value)),
        ("numeric", Value::Array(conditions)) => value
            .as_f64()
            .is_some_and(|v| numeric_matches(conditions, v)),
        _ => false,
    }
}

/// `[">", 0, "<=", 5]`: every comparison holds.
fn numeric_matches(conditions: &[Value], v: f64) -> bool {
    if conditions.is_empty() || !conditions.len().is_multiple_of(2) {
        return false;
    }
    conditions.chunks(2).all(|pair| {
        let (Some(op), Some(n)) = (pair[0].as_str(), pair[1].as_f64()) else {
            return false;
        };
        match op {
            "=" => v == n,
            "<" => v < n,
            "<=" => v <= n,
            ">" => v > n,
            ">=" => v >= n,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(pk: &str, event: &str) -> Value {
        json!({
            "eventName": event,
            "dynamodb": {
                "Keys": {"PK": {"S": pk}, "SK": {"S": "META"}},
                "NewImage": {"PK": {"S": pk}, "n": {"N": "3"}, "tags": {"SS": ["a", "b"]}},
                "SizeBytes": 120,
            },
        })
    }

    #[test]
    fn prefixes_are_or_and_nested_keys_are_and() {
        let pattern = json!({"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "WF#"}, {"prefix": "RUN#"}, {"prefix": "SHARE#"}]}}}});
        assert!(matches(&pattern, &record("WF#1", "INSERT")));
        assert!(matches(&pattern, &record("RUN#9", "MODIFY")));
        assert!(!matches(&pattern, &record("USER#1", "INSERT")));
        let both = json!({"eventName": ["MODIFY"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "WF#"}]}}}});
        assert!(matches(&both, &record("WF#1", "MODIFY")));
        assert!(!matches(&both, &record("WF#1", "INSERT")));
        // Several filters: any.
        let filters = [json!({"eventName": ["REMOVE"]}), both];
        assert!(matches_any(&filters, &record("USER#1", "REMOVE")));
        assert!(!matches_any(&filters, &record("USER#1", "INSERT")));
        assert!(matches_any(&[], &record("USER#1", "INSERT")));
    }

    #[test]
    fn exact_values_exists_and_anything_but() {
        let r = record("WF#1", "INSERT");
        assert!(matches(&json!({"eventName": ["INSERT", "MODIFY"]}), &r));
        assert!(!matches(&json!({"eventName": ["insert"]}), &r));
        assert!(matches(
            &json!({"eventName": [{"equals-ignore-case": "insert"}]}),
            &r
        ));
        assert!(matches(
            &json!({"dynamodb": {"NewImage": {"n": [{"exists": true}]}}}),
            &r
        ));
        assert!(matches(
            &json!({"dynamodb": {"OldImage": [{"exists": false}]}}),
            &r
        ));
        assert!(!matches(
            &json!({"dynamodb": {"OldImage": {"n": [{"exists": true}]}}}),
            &r
        ));
        assert!(matches(
            &json!({"eventName": [{"anything-but": "REMOVE"}]}),
            &r
        ));
        assert!(!matches(
            &json!({"eventName": [{"anything-but": ["INSERT", "REMOVE"]}]}),
            &r
        ));
        assert!(matches(
            &json!({"dynamodb": {"Keys": {"PK": {"S": [{"anything-but": {"prefix": "USER#"}}]}}}}),
            &r
        ));
        assert!(!matches(
            &json!({"dynamodb": {"Keys": {"PK": {"S": [{"anything-but": {"prefix": "WF#"}}]}}}}),
            &r
        ));
        // anything-but needs the field to be there.
        assert!(!matches(&json!({"missing": [{"anything-but": "x"}]}), &r));
        assert!(matches(
            &json!({"dynamodb": {"Keys": {"SK": {"S": [{"suffix": "TA"}]}}}}),
            &r
        ));
        // A list in the record: any item.
        assert!(matches(
            &json!({"dynamodb": {"NewImage": {"tags": {"SS": ["b"]}}}}),
            &r
        ));
        assert!(!matches(
            &json!({"dynamodb": {"NewImage": {"tags": {"SS": ["c"]}}}}),
            &r
        ));
        // Unknown operators match nothing.
        assert!(!matches(
            &json!({"eventName": [{"cidr": "10.0.0.0/8"}]}),
            &r
        ));
    }

    #[test]
    fn numeric_ranges() {
        let r = record("WF#1", "INSERT");
        assert!(matches(
            &json!({"dynamodb": {"SizeBytes": [{"numeric": [">", 100, "<=", 120]}]}}),
            &r
        ));
        assert!(!matches(
            &json!({"dynamodb": {"SizeBytes": [{"numeric": ["<", 100]}]}}),
            &r
        ));
        assert!(matches(&json!({"dynamodb": {"SizeBytes": [120]}}), &r));
        assert!(matches(
            &json!({"dynamodb": {"SizeBytes": [{"numeric": ["=", 120.0]}]}}),
            &r
        ));
        // DynamoDB numbers are strings: numeric does not apply (as in Lambda).
        assert!(!matches(
            &json!({"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 1]}]}}}}),
            &r
        ));
        assert!(!matches(
            &json!({"dynamodb": {"SizeBytes": [{"numeric": [">"]}]}}),
            &r
        ));
    }
}
