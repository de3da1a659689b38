//! Handler tests of api-auth against the emulator: the real SDK, KMS and SES in moto.

mod admin;
mod flows;
mod harness;
mod keys;
mod limits;
mod mfa;
mod openapi;
mod passwords;
