//! `ws-broadcast`: the table's stream, as Lambda's DynamoDB event source delivers it (only
//! workflow, node and run items reach it: the template's `FilterCriteria`), becomes the
//! messages of `shared::domain::broadcast`, posted to the connections that follow each
//! workflow and, for notifications, to every connection of the user concerned. A user whose
//! share of a workflow was revoked (or whose shared workflow was deleted) stops following it
//! before anything of the batch is sent, so they do not hear of it again.
//!
//! A record that cannot be read as a change is logged and skipped: retrying it would block the
//! shard and never succeed. Only when the recipients cannot be read (the table unavailable)
//! is the batch reported failed (partial batch response), so Lambda retries it, bisecting, and
//! finally hands it to the on-failure destination. A post that fails is not retried by failing
//! the batch (that would repeat every other connection's messages): clients that missed one
//! read the state over REST.

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::app::broadcast::{Delivery, FanOut, deliver, unsubscribe_revoked};
use shared::aws::dynamo::stream;
use shared::domain::broadcast::{self, Message};
use shared::ports::{Connections, Poster};

pub struct Deps<C, P> {
    pub connections: C,
    pub poster: P,
    pub fan_out: FanOut,
}

/// What one batch came to, for the logs and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub response_failures: Vec<String>,
    pub records: usize,
    pub skipped: usize,
    pub messages: usize,
    pub delivery: Delivery,
}

/// Handles one batch of stream records (`{"Records": [...]}`), read one record at a time so
/// that one unreadable record does not fail the others.
pub async fn handle<C, P>(deps: &Deps<C, P>, event: Value, now: DateTime<Utc>) -> Value
where
    C: Connections,
    P: Poster,
{
    let outcome = process(deps, event, now).await;
    tracing::info!(
        records = outcome.records,
        skipped = outcome.skipped,
        messages = outcome.messages,
        connections = outcome.delivery.connections,
        sent = outcome.delivery.sent,
        gone = outcome.delivery.gone,
        failed = outcome.delivery.failed,
        "batch broadcast"
    );
    stream::batch_response(outcome.response_failures)
}

pub async fn process<C, P>(deps: &Deps<C, P>, event: Value, now: DateTime<Utc>) -> Outcome
where
    C: Connections,
    P: Poster,
{
    // The batch is owned: its records are moved out, not copied.
    let mut event = event;
    let records = match event.get_mut("Records").map(Value::take) {
        Some(Value::Array(records)) => records,
        _ => Vec::new(),
    };
    let mut outcome = Outcome {
        records: records.len(),
        ..Outcome::default()
    };
    let mut messages: Vec<Message> = Vec::new();
    let mut revoked = Vec::new();
    let mut sequence_numbers = Vec::new();
    for record in records {
        let seq = stream::sequence_number(&record);
        match stream::record_change(record) {
            Ok(Some(change)) => {
                messages.extend(broadcast::messages(&change, now));
                revoked.extend(broadcast::revoked_readers(&change));
            }
            Ok(None) => {}
            Err(reason) => {
                outcome.skipped += 1;
                tracing::error!(sequence_number = ?seq, %reason, "stream record skipped");
            }
        }
        sequence_numbers.extend(seq);
    }
    outcome.messages = messages.len();
    // Before anything is sent: a user whose share was revoked no longer hears of the workflow,
    // this change included.
    if let Err(e) = unsubscribe_revoked(&deps.connections, &revoked, now).await {
        tracing::error!(error = %e, "revoked readers could not be unsubscribed: the batch will be retried");
        outcome.response_failures = sequence_numbers;
        return outcome;
    }
    match deliver(
        &deps.connections,
        &deps.poster,
        &messages,
        now,
        deps.fan_out,
    )
    .await
    {
        Ok(d) => outcome.delivery = d,
        Err(e) => {
            tracing::error!(error = %e, "recipients unavailable: the batch will be retried");
            outcome.response_failures = sequence_numbers;
        }
    }
    outcome
}
