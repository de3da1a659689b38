//! Adapter tests of [`shared::aws::dynamo::DynamoStore`] through the real AWS SDK against the
//! emulator (DESIGN.md §7): at least one per access pattern of the table in
//! `shared/src/aws/dynamo/mod.rs`, each on a table of its own made from the template.
//!
//! They need the emulator at `AWS_ENDPOINT_URL` (`make test` starts it), for instance:
//!
//! ```text
//! MOTO_PORT=5077 PROVISION_CMD=true localstack/start.sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:5077 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//!   AWS_SECRET_ACCESS_KEY=test cargo nextest run -p shared --test dynamo
//! ```

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "dynamo/changes.rs"]
mod changes;
#[path = "dynamo/connections.rs"]
mod connections;
#[path = "dynamo/create.rs"]
mod create;
#[path = "dynamo/lists.rs"]
mod lists;
#[path = "dynamo/nodes.rs"]
mod nodes;
#[path = "dynamo/reads.rs"]
mod reads;
#[path = "dynamo/runs.rs"]
mod runs;
#[path = "dynamo/shares.rs"]
mod shares;
#[path = "dynamo/support.rs"]
mod support;
