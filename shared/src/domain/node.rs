//! Nodes: the documents of a workflow, each optionally continuing a parent node.

use super::error::Errors;
use super::metrics::ContentMetrics;
use super::quality::QualityScores;
use super::validate;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub const MAX_TITLE_CHARS: usize = 255;
pub const MAX_CONTENT_CHARS: usize = 100_000;
/// DynamoDB items are at most 400 KB; 100,000 characters of 4-byte UTF-8 would not fit, so the
/// content is also capped in bytes.
pub const MAX_CONTENT_BYTES: usize = 300 * 1024;
pub const MAX_PROMPT_CHARS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: String,
    pub workflow_id: String,
    /// The node this one continues; `null` for a root. Set at creation and never changed, so
    /// the nodes of a workflow always form a tree.
    pub parent_id: Option<String>,
    pub title: String,
    pub content: String,
    pub prompt: String,
    #[schema(minimum = 1, maximum = 5)]
    pub priority: Priority,
    pub status: NodeStatus,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Derived from `content`.
    pub metrics: ContentMetrics,
    /// Derived from `content`.
    pub quality: QualityScores,
    /// Number of direct children; maintained by the store.
    pub child_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// The client-editable fields of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFields {
    pub title: String,
    pub content: String,
    pub prompt: String,
    pub priority: Priority,
    pub status: NodeStatus,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
}

impl NodeFields {
    /// A node to be written later (by a run's step): a title, no content yet, `pending`.
    pub fn pending(title: impl Into<String>) -> NodeFields {
        NodeFields {
            title: title.into(),
            content: String::new(),
            prompt: String::new(),
            priority: Priority::default(),
            status: NodeStatus::Pending,
            tags: vec![],
            metadata: Map::new(),
        }
    }

    /// Checks every field, reporting paths under `prefix` (e.g. `nodes[3].`).
    pub fn validate(&self, errors: &mut Errors, prefix: &str) {
        validate::name(
            errors,
            &format!("{prefix}title"),
            &self.title,
            MAX_TITLE_CHARS,
        );
        validate_content(errors, &format!("{prefix}content"), &self.content);
        validate::text(
            errors,
            &format!("{prefix}prompt"),
            &self.prompt,
            0,
            MAX_PROMPT_CHARS,
            true,
        );
        validate::tags(errors, &format!("{prefix}tags"), &self.tags);
        validate::object(errors, &format!("{prefix}metadata"), &self.metadata);
    }
}

pub fn validate_content(errors: &mut Errors, field: &str, content: &str) {
    validate::text(errors, field, content, 0, MAX_CONTENT_CHARS, true);
    if content.len() > MAX_CONTENT_BYTES {
        errors.push(
            field,
            format!(
                "must be at most {MAX_CONTENT_BYTES} bytes of UTF-8 (got {})",
                content.len()
            ),
        );
    }
}

impl Node {
    pub fn new(
        id: String,
        workflow_id: String,
        parent_id: Option<String>,
        fields: NodeFields,
        now: DateTime<Utc>,
    ) -> Node {
        let metrics = ContentMetrics::of(&fields.content);
        Node {
            id,
            workflow_id,
            parent_id,
            quality: QualityScores::of(&fields.content, &metrics),
            metrics,
            title: fields.title,
            content: fields.content,
            prompt: fields.prompt,
            priority: fields.priority,
            status: fields.status,
            tags: fields.tags,
            metadata: fields.metadata,
            child_count: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    pub fn fields(&self) -> NodeFields {
        NodeFields {
            title: self.title.clone(),
            content: self.content.clone(),
            prompt: self.prompt.clone(),
            priority: self.priority,
            status: self.status,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// 1 (low) ..= 5 (critical); 3 when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "i64", into = "u8")]
#[schema(value_type = u8)]
pub struct Priority(u8);

impl Priority {
    pub const LOW: Priority = Priority(1);
    pub const NORMAL: Priority = Priority(3);
    pub const CRITICAL: Priority = Priority(5);

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

impl TryFrom<i64> for Priority {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if (1..=5).contains(&v) {
            Ok(Priority(v as u8))
        } else {
            Err(format!(
                "priority must be from 1 (low) to 5 (critical), got {v}"
            ))
        }
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    #[default]
    Pending,
    Generating,
    Completed,
    Failed,
    Skipped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;
    use serde_json::json;

    fn fields() -> NodeFields {
        NodeFields {
            title: "Intro".into(),
            content: "Hello world. Second sentence.".into(),
            prompt: String::new(),
            priority: Priority::default(),
            status: NodeStatus::Pending,
            tags: vec![],
            metadata: Map::new(),
        }
    }

    fn fields_in_error(f: &NodeFields) -> Vec<String> {
        let mut e = Errors::default();
        f.validate(&mut e, "nodes[0].");
        match e.into_result(()) {
            Ok(()) => vec![],
            Err(DomainError::Validation(v)) => v.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn new_node_derives_metrics_and_starts_at_version_1() {
        let n = Node::new("n".into(), "w".into(), None, fields(), Utc::now());
        assert_eq!(n.metrics.words, 4);
        assert_eq!(n.metrics.sentences, 2);
        assert!(n.quality.overall > 0);
        assert_eq!(n.version, 1);
        assert_eq!(n.child_count, 0);
    }

    #[test]
    fn limits_are_enforced_with_paths() {
        let mut f = fields();
        f.title = String::new();
        f.content = "x".repeat(MAX_CONTENT_CHARS + 1);
        f.prompt = "p".repeat(MAX_PROMPT_CHARS + 1);
        assert_eq!(
            fields_in_error(&f),
            ["nodes[0].title", "nodes[0].content", "nodes[0].prompt"]
        );
    }

    #[test]
    fn content_is_capped_in_bytes_too() {
        let mut f = fields();
        f.content = "😀".repeat(MAX_CONTENT_CHARS);
        assert_eq!(fields_in_error(&f), ["nodes[0].content"]);
    }

    #[test]
    fn priority_is_1_to_5() {
        assert_eq!(
            serde_json::from_value::<Priority>(json!(5)).unwrap(),
            Priority::CRITICAL
        );
        assert!(serde_json::from_value::<Priority>(json!(0)).is_err());
        assert!(serde_json::from_value::<Priority>(json!(6)).is_err());
        assert!(serde_json::from_value::<Priority>(json!("3")).is_err());
        assert_eq!(serde_json::to_value(Priority::LOW).unwrap(), json!(1));
    }
}
