//! lambda_http glue shared by every HTTP function: authentication, problem+json errors, JSON
//! bodies with limits, conditional and idempotent request headers, opaque cursors.

pub mod asyncapi;
pub mod auth;
pub mod cursor;
pub mod docs;
pub mod limits;
pub mod openapi;
pub mod pipeline;
pub mod problem;
pub mod request;
pub mod response;
pub mod wiring;

pub use auth::{AuthError, Authenticator, JwtVerifier, KeyRing};
pub use limits::{Gate, GateConfig, Per};
pub use problem::Problem;
