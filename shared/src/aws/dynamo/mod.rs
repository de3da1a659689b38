//! The DynamoDB adapter: one table (DESIGN.md §3), keys designed from the access patterns below.
//!
//! # Items
//!
//! | item | `PK` | `SK` | `GSI1PK` | `GSI1SK` |
//! | --- | --- | --- | --- | --- |
//! | workflow | `WF#<workflow_id>` | `#WORKFLOW` | `OWNER#<owner_id>` (absent once deleted) | `WF#<created_at>#<workflow_id>` |
//! | node | `WF#<workflow_id>` | `NODE#<node_id>` | | |
//! | idempotency record | `IDEM#<owner_id>#<key>` | `#IDEMPOTENCY` | | |
//! | share entry | `SHARE#<workflow_id>` | `USER#<user_id>` | `OWNER#<user_id>` | `WF#<workflow created_at>#<workflow_id>` |
//!
//! Runs (`store/runs.rs`) and WebSocket connections with their subscriptions
//! (`store/connections.rs`) document their items and access patterns in their own modules.
//!
//! A workflow and its nodes share one partition, so "a workflow with its nodes" is one Query;
//! `#WORKFLOW` sorts before `NODE#`, so the workflow comes first. Node ids are ULIDs, so nodes
//! come in creation order (parents before children). A workflow's `shares` map (user ->
//! `viewer`/`editor`) sits on its item, so every read of the workflow knows who may see it; the
//! share entries, in their own partitions, only put shared workflows in their users' lists. `created_at` in `GSI1SK` is UTC with
//! milliseconds and fixed width, so the index sorts by creation time. Deleting a workflow removes
//! its `GSI1` keys (a sparse index), so lists never see it. Idempotency records expire through
//! the table's TTL attribute `expires_at` (epoch seconds).
//!
//! # Access patterns
//!
//! | pattern | request | key condition |
//! | --- | --- | --- |
//! | get a workflow | GetItem | `PK = WF#<id> AND SK = #WORKFLOW` |
//! | get several workflows (bulk) | BatchGetItem | the keys above, one per id |
//! | get a workflow with all its nodes (export, statistics, cascade delete) | Query | `PK = WF#<id>` |
//! | list a user's workflows (own and shared), newest first, by creation time range | Query on `GSI1`, backwards; BatchGetItem of the shared ones on the page | `GSI1PK = OWNER#<user> AND GSI1SK BETWEEN WF#<after>#~ AND WF#<before>#` (status, tag and name words as a filter; share entries pass it and are filtered once read) |
//! | share / unshare a workflow | TransactWriteItems | Update `shares.<user>` on the workflow (owner or admin, not deleted) + Put / Delete the share entry |
//! | get one node with its workflow | BatchGetItem | `PK = WF#<id>` with `SK = #WORKFLOW` and `SK = NODE#<node_id>` |
//! | list a workflow's nodes, first page | Query | `PK = WF#<id>` (the workflow item first, then nodes) |
//! | list a workflow's nodes, later pages | GetItem + Query, concurrently | the workflow's key; `PK = WF#<id>` from the page key |
//! | create a workflow with nodes | TransactWriteItems | Put each item `attribute_not_exists(PK)`; the idempotency record in the same transaction |
//! | change a workflow (patch, status, delete) | UpdateItem | `PK = WF#<id> AND SK = #WORKFLOW`, conditional on owner, not deleted, version and/or source status |
//! | bulk status changes | TransactWriteItems | one conditional Update per workflow; rejected ones are reported and the rest retried |
//! | add a node | TransactWriteItems | workflow `node_count < settings.max_nodes`, parent exists (`child_count + 1`), node new |
//! | update a node | TransactWriteItems | ConditionCheck the workflow (owner, not deleted), Put the node if at the version read |
//! | delete nodes | TransactWriteItems (chunks of 98, deepest first) | each node at the child count read; workflow `node_count - n`; parent `child_count - 1` |
//! | read an idempotency record | GetItem | `PK = IDEM#<owner>#<key> AND SK = #IDEMPOTENCY` |
//! | check a rate limit ([`ratelimit`]) | GetItem (consistent), PutItem only if admitted | `PK = RL#<key> AND SK = #RATE`, Put conditional on the version read |
//!
//! Accounts, sessions, API keys, one-time tokens and signing keys: see [`accounts`].
//!
//! No request path scans.

pub mod accounts;
mod expr;
mod items;
mod keys;
pub mod ratelimit;
pub(crate) mod stamp;
mod store;
pub mod stream;
mod table;

pub use accounts::DynamoAccounts;
pub use ratelimit::DynamoRateLimits;
pub use store::{AUDIT_MAX_APPEND, DynamoStore, WORKFLOW_FIELDS};
