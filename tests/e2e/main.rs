//! End-to-end: real HTTP over TCP to the local gateway, which runs the real function binaries
//! against the emulator, all started as `make dev` starts them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod identity;
mod instances;
mod isolation;
mod notifications;
mod realtime;
mod routes;
mod runs;
mod schedules;
