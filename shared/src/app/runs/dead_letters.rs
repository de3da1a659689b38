//! The admin's view of the step queues' dead-letter queues: list what is in one ([`list`]) and
//! move its messages back to their step queue ([`redrive`]). The emulator has no
//! `StartMessageMoveTask`, so moving is receive, send, then delete: a message leaves the
//! dead-letter queue only once its copy is in the step queue. A delete that fails after the
//! send leaves the message in both; it may then run twice, which the worker tolerates (a
//! duplicate finds its step claimed or done). Admins only (403 for anyone else, before
//! anything else is looked at).

use crate::app::AppError;
use crate::domain::Principal;
use crate::ports::{DeadLetter, DeadLetters, StepMessage, StepQueue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// Messages a list shows at most (one `ReceiveMessage`).
pub const MAX_LIST: u32 = 10;
/// Messages a redrive moves when the body does not say.
pub const DEFAULT_REDRIVE: u32 = 100;
/// Messages one redrive moves at most.
pub const MAX_REDRIVE: u32 = 1000;
/// How long a received message stays hidden if it is neither deleted nor released (a crash):
/// short, so it is soon back in the dead-letter queue.
pub const RECEIVE_VISIBILITY_S: u32 = 30;
/// How long a redrive's receive waits for a message (long polling asks every SQS server, so an
/// empty answer means empty).
pub const REDRIVE_WAIT_S: u32 = 1;

/// A dead-letter message's body: the step message when it is one, the text otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DeadLetterBody {
    Step(StepMessage),
    Raw(String),
}

/// One message of a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub message_id: String,
    pub body: DeadLetterBody,
    /// Receives so far (those on the step queue included).
    pub approximate_receive_count: u32,
    /// When the message was first sent to its step queue.
    pub sent_at: Option<DateTime<Utc>>,
}

/// What a dead-letter queue holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub queue: StepQueue,
    /// About how many messages the queue holds (SQS's `ApproximateNumberOfMessages`).
    pub approximate_messages: u64,
    /// Up to `limit` of them, peeked: they stay in the queue.
    pub messages: Vec<DeadLetterView>,
}

/// `POST /api/v3/admin/dead-letters/{queue}/redrive`'s body (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Messages to move at most: 1..=1000, default 100.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_messages: Option<u32>,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RedriveResult {
    /// Messages now back in the step queue (and gone from the dead-letter queue).
    pub moved: u32,
    /// About how many messages the dead-letter queue still holds.
    pub remaining_approx: u64,
}

fn queue_named(name: &str) -> Result<StepQueue, AppError> {
    StepQueue::parse(name).ok_or(AppError::NotFound("dead-letter queue"))
}

fn view(m: &DeadLetter) -> DeadLetterView {
    DeadLetterView {
        message_id: m.message_id.clone(),
        body: match serde_json::from_str::<StepMessage>(&m.body) {
            Ok(step) => DeadLetterBody::Step(step),
            Err(_) => DeadLetterBody::Raw(m.body.clone()),
        },
        approximate_receive_count: m.receive_count,
        sent_at: m.sent_at,
    }
}

/// Up to `limit` (1..=10) messages of the dead-letter queue named `queue`, and about how many
/// it holds. The messages are received, then released at once, so a list hides nothing
/// (should the release fail, they are back after [`RECEIVE_VISIBILITY_S`]).
pub async fn list(
    dead_letters: &(impl DeadLetters + ?Sized),
    principal: &Principal,
    queue: &str,
    limit: u32,
) -> Result<DeadLetterList, AppError> {
    crate::app::require_admin(principal, crate::app::ADMIN_API)?;
    let queue = queue_named(queue)?;
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(AppError::field(
            "limit",
            format!("must be from 1 to {MAX_LIST}"),
        ));
    }
    let received = dead_letters
        .receive(queue, limit, RECEIVE_VISIBILITY_S, 0)
        .await?;
    let messages = received.iter().map(view).collect();
    let held: Vec<&DeadLetter> = received.iter().collect();
    if let Err(e) = dead_letters.release(queue, &held).await {
        tracing::warn!(queue = queue.as_str(), error = %e, "dead letters: release after a list failed");
    }
    // Counted after the release, so the peeked messages are counted too.
    let approximate_messages = dead_letters.approximate_count(queue).await?;
    Ok(DeadLetterList {
        queue,
        approximate_messages,
        messages,
    })
}

pub struct Redrive<'a> {
    pub principal: &'a Principal,
    pub queue: &'a str,
    pub body: RedriveRequest,
    /// The longest the moving may take: it stops (answering what it moved) once this has
    /// passed, well inside the function's timeout; the caller redrives again for the rest.
    pub budget: Duration,
}

/// Moves up to `max_messages` messages of a dead-letter queue back to its step queue, 10 at a
/// time: receive, send each to the step queue (body, group, attributes), delete only those
/// sent. Messages whose send failed are released and the redrive stops there. A failed call
/// answers the error (503 when SQS is unavailable); what was moved before stays moved.
pub async fn redrive(
    dead_letters: &(impl DeadLetters + ?Sized),
    req: Redrive<'_>,
) -> Result<RedriveResult, AppError> {
    crate::app::require_admin(req.principal, crate::app::ADMIN_API)?;
    let queue = queue_named(req.queue)?;
    let max = req.body.max_messages.unwrap_or(DEFAULT_REDRIVE);
    if !(1..=MAX_REDRIVE).contains(&max) {
        return Err(AppError::field(
            "max_messages",
            format!("must be from 1 to {MAX_REDRIVE}"),
        ));
    }
    let started = Instant::now();
    let mut moved = 0u32;
    while moved < max && started.elapsed() < req.budget {
        let batch = dead_letters
            .receive(
                queue,
                (max - moved).min(10),
                RECEIVE_VISIBILITY_S,
                REDRIVE_WAIT_S,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        let sent = match dead_letters.send_to_source(queue, &batch).await {
            Ok(sent) => sent,
            Err(e) => {
                let all: Vec<&DeadLetter> = batch.iter().collect();
                release(dead_letters, queue, &all).await;
                return Err(e.into());
            }
        };
        let mut done: Vec<&DeadLetter> = Vec::new();
        let mut failed: Vec<&DeadLetter> = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            if sent.get(i).copied().unwrap_or(false) {
                done.push(m);
            } else {
                failed.push(m);
            }
        }
        dead_letters.delete(queue, &done).await?;
        moved += done.len() as u32;
        if !failed.is_empty() {
            release(dead_letters, queue, &failed).await;
            break;
        }
    }
    Ok(RedriveResult {
        moved,
        remaining_approx: dead_letters.approximate_count(queue).await?,
    })
}

/// Makes messages visible again; a failure only delays them by [`RECEIVE_VISIBILITY_S`].
async fn release(dead_letters: &(impl DeadLetters + ?Sized), queue: StepQueue, m: &[&DeadLetter]) {
    if let Err(e) = dead_letters.release(queue, m).await {
        tracing::warn!(queue = queue.as_str(), error = %e, "dead letters: release failed");
    }
}
