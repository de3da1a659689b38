//! Canonical JSON: the same value always gives the same text, whatever order a map came in
//! (serde_json keeps insertion order under `preserve_order`, and a store hands maps back in its
//! own order). What is hashed is written this way.

use serde_json::Value;

/// `v` as compact JSON with every object's keys sorted.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                write(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter_and_escapes_hold() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x\"",null],"x":true}}"#).expect("json");
        let b = json!({"a": {"x": true, "y": [1, "x\"", null]}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&b),
            r#"{"a":{"x":true,"y":[1,"x\"",null]},"b":1}"#
        );
        assert_ne!(canonical(&json!({"a": 1})), canonical(&json!({"a": 2})));
    }
}
