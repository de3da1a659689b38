//! The scheduler's sweep of step messages that were lost: every run that is not over is looked
//! at (through the active-runs index, no Scan), and a step whose attempt or retry is long past
//! its lease with nothing having happened, or that is ready while its run has been quiet for
//! longer than a message can be in flight, gets its message again. Sending one too many is
//! harmless: a step is claimed with a conditional write, so a second message is dropped.
//!
//! This also covers retries waiting longer than SQS's 900 s delay: their message comes back
//! early and is left for later until its receives run out, and the sweep sends it again once
//! the retry is due.

use super::send;
use crate::app::AppError;
use crate::domain::run::{self, RunStatus, Step};
use crate::ports::{Runs, TaskQueue};
use chrono::{DateTime, Duration, Utc};

/// Longer than a step message can be in flight (the step queues' visibility timeout is 900 s)
/// or early: past this, a message that was due has been lost.
pub const GRACE: Duration = Duration::minutes(15);
/// Runs looked at per sweep.
pub const MAX_RUNS: usize = 500;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Runs that are not over, looked at.
    pub runs: usize,
    /// Step messages sent again.
    pub resent: usize,
}

/// The steps of a run whose message is presumed lost at `now`: leases (running attempts and
/// scheduled retries) over by more than [`GRACE`], and, in a queued or running run unchanged
/// for longer than that, the steps ready to run.
pub fn lost<'a>(
    run: &run::Run,
    steps: &'a [Step],
    max_parallel: usize,
    now: DateTime<Utc>,
) -> Vec<&'a Step> {
    if !matches!(run.status, RunStatus::Queued | RunStatus::Running) {
        return Vec::new();
    }
    let cutoff = now - GRACE;
    let mut out = run::expired_leases(steps, cutoff);
    if run.updated_at <= cutoff {
        out.extend(run::ready_steps(steps, max_parallel));
    }
    out
}

pub async fn sweep(
    store: &(impl Runs + ?Sized),
    queue: &(impl TaskQueue + ?Sized),
    now: DateTime<Utc>,
) -> Result<Swept, AppError> {
    let mut swept = Swept::default();
    for (workflow_id, run_id) in store.active_runs(MAX_RUNS).await? {
        let with = store
            .get_run_with(&workflow_id, &run_id, None, None)
            .await?;
        let (Some((run, steps)), Some(workflow)) = (with.run, with.workflow) else {
            continue;
        };
        swept.runs += 1;
        for step in lost(&run, &steps, run::max_parallel(&workflow.settings), now) {
            send(queue, &run, step, 0).await?;
            swept.resent += 1;
        }
    }
    Ok(swept)
}
