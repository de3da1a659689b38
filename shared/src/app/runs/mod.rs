//! Use cases of chain runs: starting one ([`start`]), reading them ([`get`], [`list`]),
//! controlling one ([`control`]: pause, resume, cancel, retry, approve), following its
//! workflow's status ([`follow_workflow`]), and the worker's step execution ([`worker`]). Runs
//! follow their workflow's access rules: viewers read them; whoever may change the workflow
//! starts and controls them.

pub mod dead_letters;
pub mod sweep;
pub mod worker;

use crate::app::AppError;
use crate::app::workflows::idempotency::{self, IdempotencyKey, Outcome};
use crate::app::workflows::{changeable, require_write, visible, workflow_rejection};
use crate::domain::run::{self, PlanRequest, Run, RunStatus, StartRunRequest, Step, StepStatus};
use crate::domain::{Node, Principal, WorkflowStatus, ids, prompt};
use crate::ports::{
    Idempotency, Page, PageKey, Runs, StepMessage, StoreError, TaskQueue, WorkflowChange,
    WorkflowUpdate, Workflows,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A run with every step, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    /// In plan order (parents before children).
    pub steps: Vec<Step>,
}

pub struct StartRun<'a> {
    pub principal: &'a Principal,
    pub workflow_id: &'a str,
    pub body: StartRunRequest,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

/// Starts a run: validates the request, plans its steps (pending nodes, or a chain of new
/// ones), checks that every step's prompt renders, stores the run with its steps, its new
/// nodes and the idempotency record in one write, and queues the steps that may run at once.
/// The workflow must be `active` (409 otherwise). The same `Idempotency-Key` with the same
/// body answers the first response again, whatever happened since.
pub async fn start(
    store: &(impl Workflows + Runs + Idempotency + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    req: StartRun<'_>,
) -> Result<Outcome<RunDetail>, AppError> {
    require_write(req.principal)?;
    // A replay must not depend on the plan: the pending nodes of the first request are no
    // longer pending. Look the key up before planning.
    if let Some(key) = &req.idempotency
        && let Some(existing) = store
            .get_idempotency(&req.principal.user_id, &key.key, req.now)
            .await?
    {
        return idempotency::replay(&existing, key)?
            .into_outcome(|location| read_location(store, req.principal, location))
            .await;
    }
    let mut options = req.body.validate()?;
    let (workflow, mut nodes) = match store.get_tree(req.workflow_id).await? {
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
    if req.body.priority.is_none() {
        options.priority = run::default_priority(&workflow.settings);
    }
    let max_parallel = run::max_parallel(&workflow.settings);
    if let PlanRequest::Pending {} = options.plan {
        // Nodes that runs not yet over will write count as not pending (the prompts below
        // read only titles and text).
        nodes = not_busy(nodes, &busy_nodes(store, &workflow.id).await?);
    }
    let plan = match &options.plan {
        PlanRequest::Pending {} => {
            let mut plan = run::plan_pending(&nodes, max_parallel)?;
            // Parents come first, so the steps kept never wait for a step left out.
            plan.truncate(MAX_PENDING_STEPS);
            plan
        }
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
    check_prompts(&workflow, &nodes, &new_nodes, &plan)?;
    let r = Run::new(
        ids::new_id(),
        workflow.id.clone(),
        req.principal.user_id.clone(),
        &options,
        plan.len() as u32,
        req.now,
    );
    let steps = run::steps_from_plan(&r.id, &plan, &ids::new_ids(plan.len()), options.approval);
    let detail = RunDetail { run: r, steps };
    let record = idempotency::record(
        &req.principal.user_id,
        req.idempotency.as_ref(),
        202,
        &detail,
        format!("{}/{}", workflow.id, detail.run.id),
        req.now,
    )?;
    if let Err(e) = store
        .create_run(
            req.principal,
            &detail.run,
            &detail.steps,
            &new_nodes,
            workflow.settings.max_nodes(),
            record.as_ref(),
        )
        .await
    {
        let on_error = |e| {
            workflow_rejection(e, req.principal, |w| AppError::NodeLimitReached {
                max_nodes: w.settings.max_nodes(),
            })
        };
        return idempotency::on_store_error(e, req.idempotency.as_ref(), on_error)?
            .into_outcome(|location| read_location(store, req.principal, location))
            .await;
    }
    enqueue(
        queue,
        &detail.run,
        run::ready_steps(&detail.steps, max_parallel),
    )
    .await?;
    Ok(Outcome::Created(detail))
}

/// Steps of one `pending` run at most (a run keeps its steps in one item); the pending nodes
/// beyond them, parents first, are left for the next run.
pub const MAX_PENDING_STEPS: usize = 100;

/// The nodes that runs not yet over will write (their steps not done): a second `pending` run
/// must not generate them again. Reads the workflow's latest runs (one Query a page) and the
/// steps of those not over. (Two starts at the very same instant can still both plan a node:
/// a read, not a condition, decides.)
async fn busy_nodes(
    store: &(impl Runs + ?Sized),
    workflow_id: &str,
) -> Result<std::collections::HashSet<String>, AppError> {
    let mut busy = std::collections::HashSet::new();
    let mut after: Option<PageKey> = None;
    for _ in 0..FOLLOW_PAGES {
        let page = store.list_runs(workflow_id, 100, after.as_ref()).await?;
        for listed in page.items.iter().filter(|r| !r.status.is_terminal()) {
            if let Some((_, steps)) = store.get_run(workflow_id, &listed.id).await? {
                busy.extend(
                    steps
                        .into_iter()
                        .filter(|s| !s.status.is_terminal())
                        .map(|s| s.node_id),
                );
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(busy)
}

/// `nodes` with the busy ones, and the pending nodes below them, no longer counted as pending
/// (a child waits for the run that writes its parent).
fn not_busy(mut nodes: Vec<Node>, busy: &std::collections::HashSet<String>) -> Vec<Node> {
    if busy.is_empty() {
        return nodes;
    }
    let mut held: std::collections::HashSet<String> = busy.clone();
    loop {
        let mut grew = false;
        for n in &nodes {
            if n.status == crate::domain::NodeStatus::Pending
                && !held.contains(&n.id)
                && n.parent_id.as_ref().is_some_and(|p| held.contains(p))
            {
                held.insert(n.id.clone());
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    for n in &mut nodes {
        if held.contains(&n.id) && n.status == crate::domain::NodeStatus::Pending {
            n.status = crate::domain::NodeStatus::Generating;
        }
    }
    nodes
}

/// Renders the prompt of every step that has its text now (the first of a chain, and pending
/// nodes whose parent is written), and the template once with sample values otherwise, so
/// that a template error is a 422 here and never a failed step later.
fn check_prompts(
    workflow: &crate::domain::Workflow,
    nodes: &[Node],
    new_nodes: &[Node],
    plan: &[run::StepPlan],
) -> Result<(), AppError> {
    let mut errors = crate::domain::error::Errors::default();
    prompt::validate_settings(&mut errors, "settings", &workflow.settings);
    errors.into_result(())?;
    let find = |id: &str| nodes.iter().chain(new_nodes).find(|n| n.id == id);
    for p in plan {
        let Some(node) = find(&p.node_id) else {
            continue;
        };
        let parent = p.parent_node_id.as_deref().and_then(find);
        prompt::render(
            &workflow.settings,
            &prompt::Variables {
                workflow_name: &workflow.name,
                node,
                parent,
            },
        )
        .map_err(|message| AppError::field("settings.prompt_template", message))?;
    }
    Ok(())
}

/// The run a replay names (`{workflow_id}/{run_id}`), as it is now.
async fn read_location(
    store: &(impl Workflows + Runs + ?Sized),
    principal: &Principal,
    location: String,
) -> Result<RunDetail, AppError> {
    let (workflow_id, run_id) = location
        .split_once('/')
        .ok_or_else(|| AppError::Internal(format!("idempotency location {location:?}")))?;
    get(store, principal, workflow_id, run_id).await
}

/// A run and its steps, if the caller may see the workflow.
pub async fn get(
    store: &(impl Workflows + Runs + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    run_id: &str,
) -> Result<RunDetail, AppError> {
    let read = store.get_run_with(workflow_id, run_id, None, None).await?;
    visible(read.workflow, principal)?;
    let (run, steps) = read.run.ok_or(AppError::NotFound("run"))?;
    Ok(RunDetail { run, steps })
}

/// A page of the workflow's runs, newest first (without their steps).
pub async fn list(
    store: &(impl Workflows + Runs + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    limit: u32,
    after: Option<PageKey>,
) -> Result<Page<Run>, AppError> {
    visible(store.get_workflow(workflow_id).await?, principal)?;
    Ok(store.list_runs(workflow_id, limit, after.as_ref()).await?)
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
/// moved meanwhile), and queues the steps it makes ready. Resume and approve need the workflow
/// `active` (409 `workflow-not-active`); retry also takes a workflow in `error` (the status a
/// failed run gave it) and makes it `active` again.
pub async fn control(
    store: &(impl Workflows + Runs + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    principal: &Principal,
    workflow_id: &str,
    run_id: &str,
    action: Control,
    now: DateTime<Utc>,
) -> Result<RunDetail, AppError> {
    require_write(principal)?;
    let read = store.get_run_with(workflow_id, run_id, None, None).await?;
    let workflow = changeable(read.workflow, principal)?;
    let (r, steps) = read.run.ok_or(AppError::NotFound("run"))?;
    match (&action, workflow.status) {
        (Control::Pause | Control::Cancel, _) | (_, WorkflowStatus::Active) => {}
        // The run's failure set the workflow to `error`: retrying it makes it active again.
        (Control::Retry, WorkflowStatus::Error) => {
            let change = WorkflowChange {
                id: workflow.id.clone(),
                actor: principal.clone(),
                expected_version: None,
                allowed_from: vec![WorkflowStatus::Error],
                max_nodes: None,
                update: WorkflowUpdate {
                    status: Some(WorkflowStatus::Active),
                    ..Default::default()
                },
                now,
            };
            store.change_workflow(&change).await.map_err(|e| {
                workflow_rejection(e, principal, |_| AppError::Conflict {
                    slug: "concurrent-change",
                    detail: "the workflow changed meanwhile; read it again",
                })
            })?;
        }
        _ => {
            return Err(AppError::Conflict {
                slug: "workflow-not-active",
                detail: "the workflow is not active: set its status to active first",
            });
        }
    }
    let version = r.version;
    let (mut r, steps, changed) = decide(r, steps, &action, now)?;
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
    Ok(RunDetail { run: r, steps })
}

/// The run and steps after `action`, with each changed step and the status it had.
#[allow(clippy::type_complexity)]
fn decide(
    mut r: Run,
    mut steps: Vec<Step>,
    action: &Control,
    now: DateTime<Utc>,
) -> Result<(Run, Vec<Step>, Vec<(Step, StepStatus)>), AppError> {
    let mut changed: Vec<(Step, StepStatus)> = Vec::new();
    match action {
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
    Ok((r, steps, changed))
}

/// Pages of runs [`follow_workflow`] reads at most (newest first): runs older than that are
/// left to the worker, which pauses or cancels a run when its next step finds the workflow
/// not active.
const FOLLOW_PAGES: usize = 5;

/// Pauses (workflow `paused`) or cancels (`cancelled`, `deleted`) the workflow's runs that
/// are not over; the number changed. A run that moves meanwhile is left as it is: the worker
/// applies the same rule when it next takes one of its steps.
pub async fn follow_workflow(
    store: &(impl Runs + ?Sized),
    workflow_id: &str,
    status: WorkflowStatus,
    now: DateTime<Utc>,
) -> Result<u32, AppError> {
    let Some(action) = following(status) else {
        return Ok(0);
    };
    let mut changed = 0;
    let mut after: Option<PageKey> = None;
    for _ in 0..FOLLOW_PAGES {
        let page = store.list_runs(workflow_id, 100, after.as_ref()).await?;
        for listed in page.items.iter().filter(|r| follows(r.status, &action)) {
            let Some((r, steps)) = store.get_run(workflow_id, &listed.id).await? else {
                continue;
            };
            if !follows(r.status, &action) {
                continue;
            }
            let version = r.version;
            let (r, _, steps) = decide(r, steps, &action, now)?;
            match store.update_run(&r, version, &steps).await {
                Ok(()) => changed += 1,
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(changed)
}

/// What a workflow's status asks of its runs.
pub fn following(status: WorkflowStatus) -> Option<Control> {
    match status {
        WorkflowStatus::Paused => Some(Control::Pause),
        WorkflowStatus::Cancelled | WorkflowStatus::Deleted => Some(Control::Cancel),
        _ => None,
    }
}

/// Whether a run in `status` is changed by `action` (pause: queued or running; cancel: any
/// run not over).
fn follows(status: RunStatus, action: &Control) -> bool {
    match action {
        Control::Pause => matches!(status, RunStatus::Queued | RunStatus::Running),
        Control::Cancel => !status.is_terminal(),
        _ => false,
    }
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
    let message = StepMessage::next_attempt(r, step);
    queue
        .enqueue(r.priority, &r.owner_id, &message, delay_s)
        .await?;
    Ok(())
}
