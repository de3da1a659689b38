//! Adapters: implementations of [`crate::ports`] over AWS services.

pub mod dynamo;
