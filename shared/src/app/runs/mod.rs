//! Use cases of chain runs: starting one ([`start`]), controlling it ([`control`]: pause,
//! resume, cancel, retry, approve), and the worker's step execution ([`worker`]). Runs follow
//! their workflow's access rules: whoever may change the workflow starts and controls its runs.

pub mod worker;

use crate::app::AppError;
use crate::app::workflows::{changeable, require_write, workflow_rejection};
use crate::domain::run::{self, PlanRequest, Run, RunStatus, StartRunRequest, Step, StepStatus};
use crate::domain::{Node, Principal, WorkflowStatus, ids};
use crate::ports::{Runs, StepMessage, StoreError, TaskQueue, Workflows};
use chrono::{DateTime, Utc};

pub struct StartRun<'a> {
    pub principal: &'a Principal,
    pub workflow_id: &'a str,
    pub body: StartRunRequest,
    pub now: DateTime<Utc>,
}

/// Starts a run: validates the request, plans its steps (pending nodes, or a chain of new
/// ones), stores the run with its steps and new nodes in one write, and queues the steps that
/// may run at once. The workflow must be `active` (409 otherwise).
pub async fn start(
    store: &(impl Workflows + Runs + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    req: StartRun<'_>,
) -> Result<(Run, Vec<Step>), AppError> {
    require_write(req.principal)?;
    let options = req.body.validate()?;
    let (workflow, nodes) = match store.get_tree(req.workflow_id).await? {
        Some((w, n)) => (Some(w), n),
        None => (None, vec![]),
    };
    let workflow = changeable(workflow, req.principal)?;
    if workflow.status != WorkflowStatus::Active {
        return Err(AppError::Conflict {
            slug: "workflow-not-active",
            detail: "only an active workflow runs: set its status to active first",
        });
    }
    let max_parallel = run::max_parallel(&workflow.settings);
    let plan = match &options.plan {
        PlanRequest::Pending {} => run::plan_pending(&nodes, max_parallel)?,
        PlanRequest::Continue {
            from_node_id,
            steps,
        } => {
            let from = match from_node_id {
                Some(id) => Some(nodes.iter().find(|n| &n.id == id).ok_or_else(|| {
                    AppError::field("plan.from_node_id", "names no node of this workflow")
                })?),
                None => None,
            };
            run::plan_continue(from, *steps, &ids::new_ids(*steps as usize))
        }
    };
    let new_nodes: Vec<Node> = plan
        .iter()
        .filter(|p| p.creates_node)
        .map(|p| p.new_node(&workflow.id, req.now))
        .collect();
    let r = Run::new(
        ids::new_id(),
        workflow.id.clone(),
        req.principal.user_id.clone(),
        &options,
        plan.len() as u32,
        req.now,
    );
    let steps = run::steps_from_plan(&r.id, &plan, &ids::new_ids(plan.len()), options.approval);
    store
        .create_run(req.principal, &r, &steps, &new_nodes, None)
        .await
        .map_err(|e| {
            workflow_rejection(e, req.principal, |w| AppError::NodeLimitReached {
                max_nodes: w.settings.max_nodes(),
            })
        })?;
    enqueue(queue, &r, run::ready_steps(&steps, max_parallel)).await?;
    Ok((r, steps))
}

/// A run and its steps, if the caller may see the workflow.
pub async fn get(
    store: &(impl Workflows + Runs + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    run_id: &str,
) -> Result<(Run, Vec<Step>), AppError> {
    crate::app::workflows::visible(store.get_workflow(workflow_id).await?, principal)?;
    store
        .get_run(workflow_id, run_id)
        .await?
        .ok_or(AppError::NotFound("run"))
}

/// What a client asks of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
    /// A failed run again, from its failed steps (the steps that succeeded never run again).
    Retry,
    /// Lets a step that waits for approval run.
    Approve {
        step_id: String,
    },
}

/// Applies `action` to a run, conditional on the run as read (409 `concurrent-change` if it
/// moved meanwhile), and queues the steps it makes ready.
pub async fn control(
    store: &(impl Workflows + Runs + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    run_id: &str,
    action: Control,
    now: DateTime<Utc>,
) -> Result<(Run, Vec<Step>), AppError> {
    require_write(principal)?;
    let workflow = changeable(store.get_workflow(workflow_id).await?, principal)?;
    let (mut r, mut steps) = store
        .get_run(workflow_id, run_id)
        .await?
        .ok_or(AppError::NotFound("run"))?;
    let version = r.version;
    let mut changed: Vec<(Step, StepStatus)> = Vec::new();
    match &action {
        Control::Pause => r.transition(RunStatus::Paused, now)?,
        Control::Resume => r.transition(RunStatus::Running, now)?,
        Control::Cancel => {
            r.transition(RunStatus::Cancelled, now)?;
            for s in steps.iter_mut().filter(|s| !s.status.is_terminal()) {
                let before = s.status;
                s.skip(now)?;
                changed.push((s.clone(), before));
            }
        }
        Control::Retry => {
            r.transition(RunStatus::Running, now)?;
            for s in steps.iter_mut().filter(|s| s.status == StepStatus::Failed) {
                s.reset_for_retry()?;
                changed.push((s.clone(), StepStatus::Failed));
            }
        }
        Control::Approve { step_id } => {
            let i = steps
                .iter()
                .position(|s| &s.id == step_id)
                .ok_or(AppError::NotFound("step"))?;
            if !run::can_approve(&steps[i], &steps) {
                return Err(AppError::Conflict {
                    slug: "step-not-approvable",
                    detail: "only a step that waits for approval, whose parent is done, can be approved",
                });
            }
            steps[i].approve()?;
            changed.push((steps[i].clone(), StepStatus::WaitingApproval));
        }
    }
    r.updated_at = now;
    store
        .update_run(&r, version, &changed)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => AppError::Conflict {
                slug: "concurrent-change",
                detail: "the run changed meanwhile; read it again",
            },
            other => other.into(),
        })?;
    r.version = version + 1;
    if matches!(r.status, RunStatus::Running | RunStatus::Queued) {
        let max_parallel = run::max_parallel(&workflow.settings);
        enqueue(queue, &r, run::ready_steps(&steps, max_parallel)).await?;
    }
    Ok((r, steps))
}

async fn enqueue(
    queue: &(impl TaskQueue + ?Sized),
    r: &Run,
    ready: Vec<&Step>,
) -> Result<(), AppError> {
    for step in ready {
        send(queue, r, step, 0).await?;
    }
    Ok(())
}

/// Queues the next attempt of `step`, visible after `delay_s`, on its run's priority queue.
pub(crate) async fn send(
    queue: &(impl TaskQueue + ?Sized),
    r: &Run,
    step: &Step,
    delay_s: u32,
) -> Result<(), AppError> {
    let message = StepMessage {
        workflow_id: r.workflow_id.clone(),
        run_id: r.id.clone(),
        step_id: step.id.clone(),
        attempt: step.attempts + 1,
    };
    queue
        .enqueue(r.priority, &r.owner_id, &message, delay_s)
        .await?;
    Ok(())
}
