//! Use cases: one request struct in, one response out (RORO). They take ports, never clients,
//! and decide what every store outcome means for the caller.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod broadcast;
pub mod error;
pub mod operations;
pub mod ratelimit;
pub mod realtime;
pub mod runs;
pub mod schedules;
pub mod schemas;
pub mod workflows;

pub use error::AppError;
pub use workflows::idempotency::{IdempotencyKey, Outcome};
