//! Builds expressions with placeholders for every name and value, so no attribute ever collides
//! with a DynamoDB reserved word (`name`, `status`, ...).

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

#[derive(Default)]
pub struct Expr {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// A placeholder for one attribute name (`#n0`); the name may contain any character.
    pub fn name(&mut self, attribute: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == attribute) {
            return k.clone();
        }
        let k = format!("#n{}", self.names.len());
        self.names.insert(k.clone(), attribute.to_string());
        k
    }

    /// A document path of map keys (`#n1.#n2` for `settings` -> `max_nodes`).
    pub fn path(&mut self, segments: &[&str]) -> String {
        segments
            .iter()
            .map(|s| self.name(s))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// A placeholder for a value (`:v3`).
    pub fn value(&mut self, v: AttributeValue) -> String {
        let k = format!(":v{}", self.values.len());
        self.values.insert(k.clone(), v);
        k
    }

    pub fn s(&mut self, v: impl Into<String>) -> String {
        self.value(AttributeValue::S(v.into()))
    }

    pub fn n(&mut self, v: impl ToString) -> String {
        self.value(AttributeValue::N(v.to_string()))
    }

    pub fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values_opt(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reused_and_paths_split() {
        let mut e = Expr::default();
        assert_eq!(e.name("status"), "#n0");
        assert_eq!(e.name("status"), "#n0");
        assert_eq!(e.path(&["settings", "a.b"]), "#n1.#n2");
        assert_eq!(e.names["#n2"], "a.b");
        assert_eq!(e.s("x"), ":v0");
        assert_eq!(e.n(3), ":v1");
        assert_eq!(e.values[":v1"], AttributeValue::N("3".into()));
    }
}
