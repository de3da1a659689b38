//! Handler tests: `api_workflows::handle` called with `lambda_http::Request` values, against
//! the emulator through the real DynamoDB adapter. Each test gets its own table.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod asyncapi;
mod auth;
mod bulk;
mod dead_letters;
mod harness;
mod lists;
mod nodes;
mod openapi;
mod round_trips;
mod runs;
mod schedules;
mod sharing;
mod transfer;
mod workflows;
