//! `api-workflows`: the HTTP API for workflows, their nodes and their runs under
//! `/api/v3/workflows` (with their runs and schedules), and the admin's view of the step queues' dead-letter queues under
//! `/api/v3/admin/dead-letters`.
//!
//! The function is its routes ([`Route`]: the template's route keys, and a handler each, in
//! `routes`); the request pipeline
//! (gate, routing on the template's route key, limits, authentication, problem+json) is
//! [`shared::http::pipeline`]. `main.rs` only wires AWS clients into [`Api`].

pub mod asyncapi;
pub mod openapi;
mod routes;

use lambda_http::{Body, Request, Response};
use shared::http::pipeline::{self, Pipeline};
use shared::ports::{Accounts, DeadLetters, Schedules, TaskQueue, Triggers, WorkflowStore};
use std::sync::Arc;

/// What the handler needs from the world, built once per cold start.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<dyn WorkflowStore>,
    /// The priority queues that carry run steps to the worker.
    pub queue: Arc<dyn TaskQueue>,
    /// The step queues' dead-letter queues (admins list and redrive them).
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Users' schedules of runs, and the EventBridge Scheduler schedules that fire them.
    pub schedules: Arc<dyn Schedules>,
    pub triggers: Arc<dyn Triggers>,
    /// Accounts: who a workflow is shared with.
    pub accounts: Arc<dyn Accounts>,
    /// Gate, authenticator and clock.
    pub pipeline: Pipeline,
}

/// One variant per route of this function in `infra/sam-template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Docs,
    OpenApi,
    AsyncApi,
    CreateWorkflow,
    ListWorkflows,
    Bulk,
    Import,
    GetWorkflow,
    UpdateWorkflow,
    DeleteWorkflow,
    ChangeStatus,
    Statistics,
    Export,
    CreateNode,
    ListNodes,
    GetNode,
    UpdateNode,
    DeleteNode,
    ListShares,
    Share,
    Unshare,
    StartRun,
    ListRuns,
    GetRun,
    PauseRun,
    ResumeRun,
    CancelRun,
    RetryRun,
    ApproveStep,
    CreateSchedule,
    ListSchedules,
    GetSchedule,
    UpdateSchedule,
    DeleteSchedule,
    ListDeadLetters,
    RedriveDeadLetters,
}

impl AsRef<Pipeline> for Api {
    fn as_ref(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Handles one API Gateway (HTTP API, payload 2.0) request.
pub async fn handle(api: &Api, req: Request) -> Response<Body> {
    pipeline::handle::<Route>(api, req).await
}
