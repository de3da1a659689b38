//! Errors the domain rules produce. The HTTP layer maps each to one problem type.

use serde::Serialize;

/// One offending input value, named by its JSON path (`nodes[2].title`, `settings.max_nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the offending value, from the root of the request body or query.
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// The input breaks one or more limits; every offending field is listed.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// A status change the status machine does not allow.
    #[error("illegal transition from {from} to {to}")]
    IllegalTransition {
        from: crate::domain::WorkflowStatus,
        to: crate::domain::WorkflowStatus,
        allowed: Vec<crate::domain::WorkflowStatus>,
    },
}

/// Collects field errors so that one response lists every problem, not only the first.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    pub fn extend(&mut self, other: Errors) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(value)` when nothing was pushed, else the collected validation error.
    pub fn into_result<T>(self, value: T) -> Result<T, DomainError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(DomainError::Validation(self.0))
        }
    }
}
