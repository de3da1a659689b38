//! Workflows: fields, limits, settings and the status machine.

use super::error::{DomainError, Errors};
use super::principal::ShareAccess;
use super::validate;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const DEFAULT_MAX_NODES: u64 = 1000;
/// Upper bound for `settings.max_nodes`: keeps export, statistics and cascade deletes bounded.
pub const MAX_MAX_NODES: u64 = 10_000;
/// `settings.timeout_s` range: a step may run at most as long as a Lambda invocation.
pub const MAX_TIMEOUT_S: u64 = 900;
pub const MAX_MODEL_CHARS: usize = 100;

/// A workflow: a tree of nodes owned by one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workflow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub status: WorkflowStatus,
    pub settings: Settings,
    pub tags: Vec<String>,
    /// Number of nodes; maintained by the store, never sent by clients.
    pub node_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency: every write of the workflow's own fields bumps it.
    pub version: u64,
    /// Users the owner shared the workflow with, and what they may do.
    #[serde(default)]
    pub shares: BTreeMap<String, ShareAccess>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Draft,
    Active,
    Paused,
    Completed,
    Error,
    Cancelled,
    Deleted,
}

impl WorkflowStatus {
    pub const ALL: [WorkflowStatus; 7] = [
        Self::Draft,
        Self::Active,
        Self::Paused,
        Self::Completed,
        Self::Error,
        Self::Cancelled,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The only legal targets from this status (DESIGN.md §2).
    pub fn allowed_targets(self) -> &'static [WorkflowStatus] {
        use WorkflowStatus::*;
        match self {
            Draft => &[Active, Deleted],
            Active => &[Paused, Completed, Cancelled, Deleted],
            Paused => &[Active, Cancelled, Deleted],
            Completed => &[Active, Deleted],
            Error => &[Draft, Active, Deleted],
            Cancelled => &[Deleted],
            Deleted => &[],
        }
    }

    pub fn can_become(self, target: WorkflowStatus) -> bool {
        self.allowed_targets().contains(&target)
    }

    /// Every status from which `target` is reachable in one step; the store makes a transition
    /// conditional on the current status being one of these, so a check and a write never race.
    pub fn sources_of(target: WorkflowStatus) -> Vec<WorkflowStatus> {
        Self::ALL
            .into_iter()
            .filter(|s| s.can_become(target))
            .collect()
    }

    /// Checks one transition; an illegal one names the allowed targets.
    pub fn transition(self, target: WorkflowStatus) -> Result<WorkflowStatus, DomainError> {
        if self.can_become(target) {
            Ok(target)
        } else {
            Err(DomainError::IllegalTransition {
                from: self,
                to: target,
                allowed: self.allowed_targets().to_vec(),
            })
        }
    }
}

impl std::fmt::Display for WorkflowStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Workflow settings: a JSON object with known keys checked for type and range (`max_nodes`,
/// `timeout_s` of a step, `model`, `priority` of its runs, `max_parallel`, `retry`,
/// `system_prompt`, `prompt_template`), and any other keys kept as given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct Settings(pub Map<String, Value>);

impl Settings {
    /// Settings as given, with `max_nodes` defaulted.
    pub fn with_defaults(mut map: Map<String, Value>) -> Self {
        map.entry("max_nodes")
            .or_insert(Value::from(DEFAULT_MAX_NODES));
        Settings(map)
    }

    pub fn max_nodes(&self) -> u64 {
        self.0
            .get("max_nodes")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_NODES)
    }

    /// Applies a JSON merge patch (RFC 7396, one level): `null` removes a key; removing
    /// `max_nodes` restores its default.
    pub fn merged(&self, patch: &Map<String, Value>) -> Settings {
        let mut map = self.0.clone();
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
        Settings::with_defaults(map)
    }

    pub fn validate(&self, errors: &mut Errors, field: &str) {
        let path = |k: &str| format!("{field}.{k}");
        if let Some(v) = self.0.get("max_nodes") {
            match v.as_u64() {
                Some(n) if (1..=MAX_MAX_NODES).contains(&n) => {}
                _ => errors.push(
                    path("max_nodes"),
                    format!("must be an integer from 1 to {MAX_MAX_NODES}"),
                ),
            }
        }
        if let Some(v) = self.0.get("timeout_s") {
            match v.as_u64() {
                Some(n) if (1..=MAX_TIMEOUT_S).contains(&n) => {}
                _ => errors.push(
                    path("timeout_s"),
                    format!("must be an integer from 1 to {MAX_TIMEOUT_S}"),
                ),
            }
        }
        if let Some(v) = self.0.get("model") {
            match v.as_str().map(super::run::ModelRef::parse) {
                Some(Ok(_)) => {}
                Some(Err(message)) => errors.push(path("model"), message),
                None => errors.push(path("model"), "must be a string"),
            }
        }
        if let Some(v) = self.0.get("priority") {
            match v.as_u64() {
                Some(p) if (1..=5).contains(&p) => {}
                _ => errors.push(
                    path("priority"),
                    "must be an integer from 1 (low) to 5 (critical)",
                ),
            }
        }
        super::run::validate_settings(errors, field, self);
        super::prompt::validate_settings(errors, field, self);
        validate::object(errors, field, &self.0);
    }
}

/// The client-editable fields of a workflow, as validated together on create and import.
pub fn validate_fields(
    errors: &mut Errors,
    prefix: &str,
    name: &str,
    description: &str,
    settings: &Settings,
    tags: &[String],
) {
    validate::name(errors, &format!("{prefix}name"), name, MAX_NAME_CHARS);
    validate::text(
        errors,
        &format!("{prefix}description"),
        description,
        0,
        MAX_DESCRIPTION_CHARS,
        true,
    );
    settings.validate(errors, &format!("{prefix}settings"));
    validate::tags(errors, &format!("{prefix}tags"), tags);
}

/// Lower-cased name words, space-separated with a leading and trailing space, so a store can
/// match a query word as a word prefix with a plain `contains(" word")`.
pub fn search_text(name: &str) -> String {
    let mut out = String::from(" ");
    for word in search_words(name) {
        out.push_str(&word);
        out.push(' ');
    }
    out
}

/// Splits text into lower-case words (letters and digits), the unit of `q` matching.
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Filters of the workflow list; all given ones must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowFilter {
    pub status: Option<WorkflowStatus>,
    pub tag: Option<String>,
    /// Lower-case words; each must start a word of the name.
    pub name_words: Vec<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

impl WorkflowFilter {
    /// Whether `w` passes the filters other than the creation time range (which lists apply
    /// through their keys).
    pub fn matches(&self, w: &Workflow) -> bool {
        let text = search_text(&w.name);
        self.status.is_none_or(|s| s == w.status)
            && self.tag.as_ref().is_none_or(|t| w.tags.contains(t))
            && self
                .name_words
                .iter()
                .all(|word| text.contains(&format!(" {word}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkflowStatus::*;
    use serde_json::json;

    #[test]
    fn only_the_documented_transitions_are_legal() {
        let legal = [
            (Draft, Active),
            (Draft, Deleted),
            (Active, Paused),
            (Active, Completed),
            (Active, Cancelled),
            (Active, Deleted),
            (Paused, Active),
            (Paused, Cancelled),
            (Paused, Deleted),
            (Completed, Active),
            (Completed, Deleted),
            (Error, Draft),
            (Error, Active),
            (Error, Deleted),
            (Cancelled, Deleted),
        ];
        for from in WorkflowStatus::ALL {
            for to in WorkflowStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn illegal_transition_names_allowed_targets() {
        match Cancelled.transition(Active) {
            Err(DomainError::IllegalTransition { allowed, .. }) => {
                assert_eq!(allowed, vec![Deleted])
            }
            other => panic!("{other:?}"),
        }
        assert!(Deleted.allowed_targets().is_empty());
    }

    #[test]
    fn sources_of_inverts_the_machine() {
        assert_eq!(WorkflowStatus::sources_of(Paused), vec![Active]);
        assert_eq!(
            WorkflowStatus::sources_of(Active),
            vec![Draft, Paused, Completed, Error]
        );
        assert_eq!(WorkflowStatus::sources_of(Deleted).len(), 6);
    }

    #[test]
    fn status_strings_round_trip() {
        for s in WorkflowStatus::ALL {
            assert_eq!(WorkflowStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(WorkflowStatus::parse("Active"), None);
    }

    fn errors_of(settings: Value) -> Vec<String> {
        let mut e = Errors::default();
        let map = settings.as_object().unwrap().clone();
        Settings(map).validate(&mut e, "settings");
        match e.into_result(()) {
            Ok(()) => vec![],
            Err(DomainError::Validation(v)) => v.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_known_keys_are_checked_free_keys_kept() {
        assert!(
            errors_of(json!({"max_nodes": 5, "timeout_s": 30, "model": "openai:gpt-4o-mini", "anything": [1, 2]}))
                .is_empty()
        );
        // A model is a provider reference; runs' own keys are checked here too.
        assert_eq!(errors_of(json!({"model": "gpt"})), ["settings.model"]);
        assert_eq!(errors_of(json!({"priority": 6})), ["settings.priority"]);
        assert_eq!(
            errors_of(json!({"max_parallel": 0})),
            ["settings.max_parallel"]
        );
        assert_eq!(
            errors_of(json!({"retry": {"interval_s": 0}})),
            ["settings.retry.interval_s"]
        );
        assert_eq!(
            errors_of(json!({"prompt_template": "{{ nope }}"})),
            ["settings.prompt_template"]
        );
        assert_eq!(errors_of(json!({"max_nodes": 0})), ["settings.max_nodes"]);
        assert_eq!(
            errors_of(json!({"max_nodes": 10001})),
            ["settings.max_nodes"]
        );
        assert_eq!(errors_of(json!({"max_nodes": "5"})), ["settings.max_nodes"]);
        assert_eq!(errors_of(json!({"timeout_s": 901})), ["settings.timeout_s"]);
        assert_eq!(errors_of(json!({"model": 3})), ["settings.model"]);
    }

    #[test]
    fn settings_default_and_merge() {
        let s = Settings::with_defaults(Map::new());
        assert_eq!(s.max_nodes(), 1000);
        let patch = json!({"max_nodes": 10, "model": "m"})
            .as_object()
            .unwrap()
            .clone();
        let s2 = s.merged(&patch);
        assert_eq!(s2.max_nodes(), 10);
        let remove = json!({"max_nodes": null, "model": null})
            .as_object()
            .unwrap()
            .clone();
        let s3 = s2.merged(&remove);
        assert_eq!(s3.max_nodes(), 1000);
        assert!(!s3.0.contains_key("model"));
    }

    #[test]
    fn search_text_is_lowercase_words() {
        assert_eq!(
            search_text("Quarterly  Report-2026!"),
            " quarterly report 2026 "
        );
        assert_eq!(search_words("Hello, WORLD"), ["hello", "world"]);
    }

    #[test]
    fn field_validation_collects_every_error_with_paths() {
        let mut e = Errors::default();
        validate_fields(
            &mut e,
            "",
            "",
            &"d".repeat(1001),
            &Settings::default(),
            &["".into()],
        );
        match e.into_result(()) {
            Err(DomainError::Validation(v)) => {
                let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(fields, ["name", "description", "tags[0]"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
