//! Pure types and rules of the product: no AWS types, no I/O, no async.
//!
//! Everything a client can send is validated here, so the same limits hold for every function
//! and every entry point (create, patch, import).

pub mod account;
pub mod analytics;
pub mod audit;
pub mod broadcast;
pub mod canonical;
pub mod credentials;
pub mod error;
pub mod histogram;
pub mod ids;
pub mod metrics;
pub mod node;
pub mod notification;
pub mod notify;
pub mod principal;
pub mod prompt;
pub mod quality;
pub mod ratelimit;
pub mod realtime;
pub mod run;
pub mod schedule;
pub mod statistics;
pub mod time;
pub mod tree;
pub mod validate;
pub mod workflow;

pub use error::{DomainError, FieldError};
pub use metrics::ContentMetrics;
pub use node::{Node, NodeFields, NodeStatus, Priority};
pub use principal::{Access, Principal, Role, Scope, ShareAccess};
pub use quality::QualityScores;
pub use statistics::WorkflowStatistics;
pub use workflow::{Settings, Workflow, WorkflowStatus};
