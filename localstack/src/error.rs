use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong reading the template or creating its resources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the template {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{template}: not valid YAML: {source}")]
    Yaml {
        template: String,
        #[source]
        source: serde_yaml_ng::Error,
    },

    /// The template's top-level structure is wrong (no `Resources`, a resource without `Type`).
    #[error("{template}: {message}")]
    Template { template: String, message: String },

    /// One property of one resource is missing or has the wrong shape.
    #[error("{template}: resource `{resource}`, property `{property}`: {message}")]
    Property {
        template: String,
        resource: String,
        property: String,
        message: String,
    },

    #[error("no template found: {0}")]
    NotFound(String),

    /// The table exists already (CreateTable answered ResourceInUseException). Callers that only
    /// want the table to exist can ignore this one.
    #[error("table `{table}` already exists")]
    AlreadyExists { table: String },

    #[error("DynamoDB {operation} for table `{table}` failed: {message}")]
    Aws {
        operation: &'static str,
        table: String,
        message: String,
    },

    /// Creating a KMS key, alias or SES identity failed.
    #[error("{service} for `{resource}` failed: {message}")]
    Service {
        service: &'static str,
        resource: String,
        message: String,
    },

    #[error("table `{table}` was not ACTIVE within {waited:?} (last seen: {last_seen})")]
    NotActive {
        table: String,
        waited: Duration,
        last_seen: String,
    },
}

impl Error {
    /// True for [`Error::AlreadyExists`], the error a caller may ignore.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }
}
