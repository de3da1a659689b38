//! The node tree: ordering new nodes parent-first, depths, roots, leaves and subtrees.

use super::error::Errors;
use super::node::Node;
use std::collections::HashMap;

/// A node to be created together with others, naming its parent by a key local to the request
/// (`ref` on create, the exported `id` on import) or an existing node.
pub struct Draft<'a> {
    pub key: Option<&'a str>,
    pub parent_key: Option<&'a str>,
}

/// Orders drafts so every parent comes before its children, or reports each draft whose key is
/// a duplicate, whose parent key names no draft, or that sits on a cycle. `field` names the list
/// in error paths (`nodes[3].parent_ref`).
pub fn parent_first_order(
    drafts: &[Draft<'_>],
    field: &str,
    key_name: &str,
    parent_name: &str,
) -> Result<Vec<usize>, Errors> {
    let mut errors = Errors::default();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        if let Some(k) = d.key
            && by_key.insert(k, i).is_some()
        {
            errors.push(
                format!("{field}[{i}].{key_name}"),
                "duplicate; each must be unique in this request",
            );
        }
    }
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.iter().enumerate() {
        match d.parent_key {
            None => parent.push(None),
            Some(p) => match by_key.get(p) {
                Some(&j) => parent.push(Some(j)),
                None => {
                    parent.push(None);
                    errors.push(
                        format!("{field}[{i}].{parent_name}"),
                        format!("names no node in this request: {p:?}"),
                    );
                }
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Stable: a list already ordered parent-first keeps its order (so an export re-imports in
    // the same order); otherwise each node is moved after its ancestors.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    let mut state = vec![State::New; drafts.len()];
    let mut order = Vec::with_capacity(drafts.len());
    for start in 0..drafts.len() {
        let mut path = vec![start];
        while let Some(&top) = path.last() {
            if state[top] == State::Done {
                path.pop();
                continue;
            }
            state[top] = State::OnPath;
            match parent[top] {
                Some(p) if state[p] == State::New => path.push(p),
                Some(p) if state[p] == State::OnPath => {
                    for &i in &path {
                        errors.push(format!("{field}[{i}].{parent_name}"), "forms a cycle");
                        state[i] = State::Done;
                    }
                    path.clear();
                }
                _ => {
                    state[top] = State::Done;
                    order.push(top);
                    path.pop();
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(order)
}

/// Depth of every node (a root has depth 1), for a consistent tree. A node whose parent is
/// missing counts as a root.
pub fn depths(nodes: &[Node]) -> HashMap<&str, u64> {
    let parent: HashMap<&str, Option<&str>> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.parent_id.as_deref()))
        .collect();
    let mut depth: HashMap<&str, u64> = HashMap::with_capacity(nodes.len());
    for n in nodes {
        // Walk up until a known depth or a root, then fill in on the way back.
        let mut chain = vec![n.id.as_str()];
        let mut base = 0;
        while let Some(&top) = chain.last() {
            if let Some(&d) = depth.get(top) {
                chain.pop();
                base = d;
                break;
            }
            match parent.get(top).copied().flatten() {
                Some(p) if parent.contains_key(p) && chain.len() <= nodes.len() => chain.push(p),
                _ => break,
            }
        }
        for (k, id) in chain.iter().rev().enumerate() {
            depth.insert(id, base + k as u64 + 1);
        }
    }
    depth
}

/// The node `root_id` and all its descendants, deepest first, so deleting in this order never
/// leaves a node without its parent.
pub fn subtree_deepest_first<'a>(nodes: &'a [Node], root_id: &str) -> Vec<&'a Node> {
    let mut children: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in nodes {
        if let Some(p) = n.parent_id.as_deref() {
            children.entry(p).or_default().push(n);
        }
    }
    let Some(root) = nodes.iter().find(|n| n.id == root_id) else {
        return vec![];
    };
    let mut levels: Vec<Vec<&Node>> = vec![vec![root]];
    loop {
        let next: Vec<&Node> = levels
            .last()
            .into_iter()
            .flatten()
            .flat_map(|n| children.get(n.id.as_str()).into_iter().flatten().copied())
            .collect();
        if next.is_empty() || levels.len() > nodes.len() {
            break;
        }
        levels.push(next);
    }
    levels.into_iter().rev().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::node::NodeFields;
    use chrono::Utc;

    pub(crate) fn node(id: &str, parent: Option<&str>) -> Node {
        let fields = NodeFields::pending(id);
        Node::new(
            id.into(),
            "w".into(),
            parent.map(Into::into),
            fields,
            Utc::now(),
        )
    }

    fn drafts<'a>(pairs: &'a [(&'a str, Option<&'a str>)]) -> Vec<Draft<'a>> {
        pairs
            .iter()
            .map(|(k, p)| Draft {
                key: Some(k),
                parent_key: *p,
            })
            .collect()
    }

    fn error_fields(e: Errors) -> Vec<String> {
        match e.into_result(()) {
            Err(crate::domain::DomainError::Validation(v)) => v
                .into_iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn orders_parents_before_children() {
        let pairs = [
            ("c", Some("b")),
            ("b", Some("a")),
            ("a", None),
            ("d", Some("a")),
        ];
        let order = parent_first_order(&drafts(&pairs), "nodes", "ref", "parent_ref").unwrap();
        let pos = |k: &str| order.iter().position(|&i| pairs[i].0 == k).unwrap();
        assert!(pos("a") < pos("b") && pos("b") < pos("c") && pos("a") < pos("d"));
    }

    #[test]
    fn a_parent_first_list_keeps_its_order() {
        let pairs = [
            ("a", None),
            ("x", None),
            ("b", Some("a")),
            ("c", Some("x")),
            ("d", Some("b")),
        ];
        let order = parent_first_order(&drafts(&pairs), "nodes", "ref", "parent_ref").unwrap();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn unknown_parent_duplicate_key_and_cycle_are_reported() {
        let e = parent_first_order(&drafts(&[("a", Some("zz"))]), "nodes", "ref", "parent_ref")
            .unwrap_err();
        assert_eq!(
            error_fields(e),
            ["nodes[0].parent_ref: names no node in this request: \"zz\""]
        );
        let e = parent_first_order(
            &drafts(&[("a", None), ("a", None)]),
            "nodes",
            "ref",
            "parent_ref",
        )
        .unwrap_err();
        assert_eq!(
            error_fields(e),
            ["nodes[1].ref: duplicate; each must be unique in this request"]
        );
        let e = parent_first_order(
            &drafts(&[("r", None), ("a", Some("b")), ("b", Some("a"))]),
            "nodes",
            "ref",
            "parent_ref",
        )
        .unwrap_err();
        assert_eq!(error_fields(e).len(), 2);
    }

    #[test]
    fn depths_of_a_tree() {
        let nodes = [
            node("a", None),
            node("b", Some("a")),
            node("c", Some("b")),
            node("d", None),
        ];
        let d = depths(&nodes);
        assert_eq!((d["a"], d["b"], d["c"], d["d"]), (1, 2, 3, 1));
    }

    #[test]
    fn subtree_is_deepest_first() {
        let nodes = [
            node("a", None),
            node("b", Some("a")),
            node("c", Some("b")),
            node("d", Some("a")),
            node("x", None),
        ];
        let ids: Vec<_> = subtree_deepest_first(&nodes, "a")
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(ids, ["c", "b", "d", "a"]);
        assert!(subtree_deepest_first(&nodes, "missing").is_empty());
        assert_eq!(subtree_deepest_first(&nodes, "x").len(), 1);
    }
}
