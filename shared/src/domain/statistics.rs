//! Statistics of one workflow, computed from its nodes.

use super::metrics;
use super::node::Node;
use super::tree;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkflowStatistics {
    pub node_count: u64,
    pub total_words: u64,
    /// Mean of the nodes' overall quality (0..=100), one decimal; 0 without nodes.
    pub average_quality: f64,
    /// Depth of the deepest node; a root has depth 1; 0 without nodes.
    pub max_depth: u64,
    pub root_count: u64,
    /// Nodes without children.
    pub leaf_count: u64,
    /// Reading time of all content at 200 words per minute.
    pub reading_minutes: f64,
}

impl WorkflowStatistics {
    pub fn of(nodes: &[Node]) -> Self {
        let node_count = nodes.len() as u64;
        let total_words = nodes.iter().map(|n| n.metrics.words).sum();
        let quality_sum: u64 = nodes.iter().map(|n| n.quality.overall as u64).sum();
        let average_quality = if node_count == 0 {
            0.0
        } else {
            (quality_sum as f64 / node_count as f64 * 10.0).round() / 10.0
        };
        let has_children: std::collections::HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.parent_id.as_deref())
            .collect();
        WorkflowStatistics {
            node_count,
            total_words,
            average_quality,
            max_depth: tree::depths(nodes).values().copied().max().unwrap_or(0),
            root_count: nodes.iter().filter(|n| n.parent_id.is_none()).count() as u64,
            leaf_count: nodes
                .iter()
                .filter(|n| !has_children.contains(n.id.as_str()))
                .count() as u64,
            reading_minutes: metrics::reading_minutes(total_words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::node::{NodeFields, NodeStatus, Priority};
    use chrono::Utc;

    fn node(id: &str, parent: Option<&str>, content: &str) -> Node {
        let fields = NodeFields {
            title: id.into(),
            content: content.into(),
            prompt: String::new(),
            priority: Priority::default(),
            status: NodeStatus::Pending,
            tags: vec![],
            metadata: Default::default(),
        };
        Node::new(
            id.into(),
            "w".into(),
            parent.map(Into::into),
            fields,
            Utc::now(),
        )
    }

    #[test]
    fn empty_workflow() {
        let s = WorkflowStatistics::of(&[]);
        assert_eq!(
            (
                s.node_count,
                s.total_words,
                s.max_depth,
                s.root_count,
                s.leaf_count
            ),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(s.average_quality, 0.0);
    }

    #[test]
    fn tree_figures() {
        let words = "word ".repeat(150);
        let nodes = [
            node("a", None, &words),
            node("b", Some("a"), &words),
            node("c", Some("b"), "One two three."),
            node("d", Some("a"), ""),
            node("e", None, ""),
        ];
        let s = WorkflowStatistics::of(&nodes);
        assert_eq!(s.node_count, 5);
        assert_eq!(s.total_words, 303);
        assert_eq!(s.max_depth, 3);
        assert_eq!(s.root_count, 2);
        assert_eq!(s.leaf_count, 3);
        assert_eq!(s.reading_minutes, 1.6);
        let mean = nodes.iter().map(|n| n.quality.overall as f64).sum::<f64>() / 5.0;
        assert_eq!(s.average_quality, (mean * 10.0).round() / 10.0);
    }
}
