//! [`crate::ports::TextGenerator`] adapters: `builtin` (deterministic and offline, for tests and
//! a first run without any model).

pub mod builtin;

pub use builtin::Builtin;
