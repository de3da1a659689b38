//! The `changed_by` stamp: every write of a workflow, node, run or schedule item (`WF#`,
//! `RUN#`, `SCHED#`) carries
//! who made it and from where ([`crate::context::changed_by`], or the system outside a
//! request), so the audit trail derived from the table's stream knows the actor of each change
//! without a second write. [`super::table::Table`] stamps every put, update and transaction it
//! sends; nothing else writes those items.

use super::items::Item;
use super::keys::PK;
use crate::domain::audit::ChangedBy;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use std::collections::HashMap;

pub const CHANGED_BY: &str = "changed_by";
const NAME: &str = "#dwc_changed_by";
const VALUE: &str = ":dwc_changed_by";

/// Whether an item with this partition key is stamped.
fn stamped(pk: Option<&AttributeValue>) -> bool {
    matches!(pk, Some(AttributeValue::S(s))
        if s.starts_with("WF#") || s.starts_with("RUN#") || s.starts_with("SCHED#"))
}

fn value() -> Option<AttributeValue> {
    let by = crate::context::changed_by().unwrap_or_else(ChangedBy::system);
    serde_dynamo::to_attribute_value(by).ok()
}

/// Stamps an item about to be put.
pub fn put(item: &mut Item) {
    if stamped(item.get(PK))
        && let Some(v) = value()
    {
        item.insert(CHANGED_BY.into(), v);
    }
}

/// Stamps an update of the item with `key`: `SET changed_by` joins the expression's `SET`
/// clause (or starts one).
pub fn update(
    key: &Item,
    expression: &mut String,
    names: &mut Option<HashMap<String, String>>,
    values: &mut Option<HashMap<String, AttributeValue>>,
) {
    if !stamped(key.get(PK)) {
        return;
    }
    let Some(v) = value() else {
        return;
    };
    names
        .get_or_insert_with(HashMap::new)
        .insert(NAME.into(), CHANGED_BY.into());
    values
        .get_or_insert_with(HashMap::new)
        .insert(VALUE.into(), v);
    *expression = with_set(expression, &format!("{NAME} = {VALUE}"));
}

/// Stamps each put and update of a transaction.
pub fn transaction(actions: &mut [TransactWriteItem]) {
    for a in actions {
        if let Some(p) = &mut a.put {
            put(&mut p.item);
        }
        if let Some(u) = &mut a.update {
            update(
                &u.key,
                &mut u.update_expression,
                &mut u.expression_attribute_names,
                &mut u.expression_attribute_values,
            );
        }
    }
}

/// `expression` with `action` in its `SET` clause. Clause keywords are the only bare words of
/// the expressions this adapter writes (names and values are placeholders).
fn with_set(expression: &str, action: &str) -> String {
    let at = expression.match_indices("SET ").map(|(i, _)| i).find(|&i| {
        expression[..i]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace)
    });
    match at {
        Some(i) => format!("{}SET {action}, {}", &expression[..i], &expression[i + 4..]),
        None => format!("SET {action} {expression}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_joins_the_set_clause_or_starts_one() {
        let a = "#c = :c";
        assert_eq!(
            with_set("SET #a = :a, #b = :b", a),
            "SET #c = :c, #a = :a, #b = :b"
        );
        assert_eq!(
            with_set("REMOVE #x SET #a = :a", a),
            "REMOVE #x SET #c = :c, #a = :a"
        );
        assert_eq!(with_set("ADD #n :one", a), "SET #c = :c ADD #n :one");
        assert_eq!(with_set("REMOVE #OFFSET", a), "SET #c = :c REMOVE #OFFSET");
    }

    #[tokio::test]
    async fn writes_of_workflows_and_runs_are_stamped_with_the_request_or_the_system() {
        use crate::domain::audit::Actor;
        let mut run: Item = HashMap::from([(PK.into(), AttributeValue::S("RUN#1".into()))]);
        put(&mut run);
        let by: ChangedBy =
            serde_dynamo::from_attribute_value(run[CHANGED_BY].clone()).expect("a stamp");
        assert_eq!(by, ChangedBy::system());

        let alice = ChangedBy {
            actor: Actor::user("alice"),
            source_ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8".into()),
            request_id: Some("r-1".into()),
        };
        let key: Item = HashMap::from([(PK.into(), AttributeValue::S("WF#1".into()))]);
        let (mut expr, mut names, mut values) = ("SET #a = :a".to_string(), None, None);
        crate::context::with_changed_by(alice.clone(), async {
            update(&key, &mut expr, &mut names, &mut values)
        })
        .await;
        assert_eq!(expr, format!("SET {NAME} = {VALUE}, #a = :a"));
        let stamped: ChangedBy =
            serde_dynamo::from_attribute_value(values.expect("values")[VALUE].clone())
                .expect("a stamp");
        assert_eq!(stamped, alice);

        // Accounts and other items are not stamped.
        let mut account: Item = HashMap::from([(PK.into(), AttributeValue::S("USER#1".into()))]);
        put(&mut account);
        assert!(!account.contains_key(CHANGED_BY));
    }
}
