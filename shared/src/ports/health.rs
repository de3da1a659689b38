//! The health checker's view of a dependency: reachable or not, how long the check took, and
//! what it saw.

use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use utoipa::ToSchema;

/// One check of one dependency.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Check {
    /// `table`, `queue:<name>`, `key`, `generator`.
    pub name: String,
    pub ok: bool,
    /// How long the check took.
    pub latency_ms: f64,
    /// What it found (queue depths, the key's state) or why it failed.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Checks one or more dependencies; never fails (a failure is a check that is not `ok`).
pub trait Probe: Send + Sync {
    fn probe(&self) -> Pin<Box<dyn Future<Output = Vec<Check>> + Send + '_>>;
}
