//! Use-case tests over the in-memory fakes of [`shared::testing`]: no emulator, no network.
//! They prove what a caller of each use case sees and what the fakes hold afterwards; the
//! adapters' own behaviour against DynamoDB is tested in `dynamo.rs` and `mocked.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "usecases/auth.rs"]
mod auth;
#[path = "usecases/broadcast.rs"]
mod broadcast;
#[path = "usecases/dead_letters.rs"]
mod dead_letters;
#[path = "usecases/runs.rs"]
mod runs;
#[path = "usecases/worker.rs"]
mod worker;
#[path = "usecases/workflows.rs"]
mod workflows;
