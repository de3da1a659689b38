//! Runs the system on one machine (DESIGN.md §5).
//!
//! `infra/sam-template.yaml` is the single source of truth: [`template`] reads it into a typed
//! model, [`provision`] creates its resources in the AWS emulator (moto server or LocalStack,
//! reached through `AWS_ENDPOINT_URL`), and [`testing`] gives other crates' tests a fresh table
//! built from the same template. No list of tables, keys or indexes is kept anywhere else.

mod error;
pub mod gateway;
pub mod provision;
pub mod resolve;
pub mod template;
pub mod testing;

pub use error::Error;
