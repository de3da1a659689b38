//! Handler tests of api-auth against the emulator: the real SDK, KMS and SES in moto.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod admin;
mod audit;
mod flows;
mod harness;
mod keys;
mod limits;
mod mfa;
mod notifications;
mod openapi;
mod passwords;
