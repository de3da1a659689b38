//! The domain crate every Document Workflow Chain function links.
//!
//! Layers (DESIGN.md §1): [`domain`] (pure rules) <- [`app`] (use cases over [`ports`]) <-
//! [`aws`] (adapters) and [`http`] (lambda_http glue). Functions wire them in their `main.rs`.

pub mod app;
pub mod aws;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod domain;
pub mod emf;
pub mod generators;
pub mod http;
pub mod ports;
#[cfg(feature = "testing")]
pub mod testing;
