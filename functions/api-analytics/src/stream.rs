//! The table's stream into the analytics counters and the audit trail: each record's change is
//! counted exactly once and its audit events appended exactly once (a retried batch finds its
//! records done and adds nothing). One consumer does both, since a DynamoDB stream serves at
//! most two readers per shard without throttling and `ws-broadcast` is the other. A record that
//! cannot be read is logged and skipped (it would block its shard forever); a store failure
//! reports the record and everything after it as the batch's failures, so Lambda retries from
//! there.

use serde_json::Value;
use shared::app::analytics::{self, CountOutcome, Counted, Recorded};
use shared::app::audit::{self, RecordOutcome};
use shared::aws::dynamo::stream;
use shared::ports::{Analytics, AuditLog, Workflows};

/// Where a batch's changes go.
#[derive(Clone, Copy)]
pub struct Sinks<'a> {
    pub analytics: &'a dyn Analytics,
    pub audit: &'a dyn AuditLog,
    /// Whose chain a node's events go to (its workflow's owner).
    pub workflows: &'a dyn Workflows,
}

impl<'a, S: Analytics + AuditLog + Workflows> From<&'a S> for Sinks<'a> {
    fn from(store: &'a S) -> Sinks<'a> {
        Sinks {
            analytics: store,
            audit: store,
            workflows: store,
        }
    }
}

/// What a batch did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub records: usize,
    pub skipped: usize,
    pub counted: CountOutcome,
    pub audited: RecordOutcome,
    /// Sequence numbers to retry (the first failed record and those after it).
    pub failures: Vec<String>,
}

pub async fn process(sinks: Sinks<'_>, mut event: Value) -> Outcome {
    let records = match event.get_mut("Records").map(Value::take) {
        Some(Value::Array(records)) => records,
        _ => Vec::new(),
    };
    let mut out = Outcome {
        records: records.len(),
        ..Outcome::default()
    };
    let mut counted = Vec::new();
    let mut sequence_numbers = Vec::new();
    for record in records {
        let seq = stream::sequence_number(&record);
        let id = stream::event_id(&record).map(str::to_string);
        let by = stream::changed_by(&record);
        let what = match stream::record_note(&record) {
            Ok(Some((chain, draft))) => Ok(Some(Recorded::Note { chain, draft })),
            Ok(None) => stream::record_change(record).map(|c| {
                c.map(|change| Recorded::Change {
                    change: Box::new(change),
                    by,
                })
            }),
            Err(e) => Err(e),
        };
        match (id, what) {
            (Some(event_id), Ok(Some(what))) => {
                counted.push(Counted { event_id, what });
                sequence_numbers.push(seq);
            }
            (_, Ok(None)) => {}
            (None, Ok(Some(_))) => {
                out.skipped += 1;
                tracing::error!(sequence_number = ?seq, "stream record without eventID skipped");
            }
            (_, Err(reason)) => {
                out.skipped += 1;
                tracing::error!(sequence_number = ?seq, %reason, "stream record skipped");
            }
        }
    }
    let mut failed_at = None;
    match analytics::count(sinks.analytics, &counted).await {
        Ok(c) => out.counted = c,
        Err((at, c, e)) => {
            tracing::error!(error = %e, "counting failed: the batch is retried from this record");
            out.counted = c;
            failed_at = Some(at);
        }
    }
    match audit::record(sinks.audit, sinks.workflows, &counted).await {
        Ok(a) => out.audited = a,
        Err((at, a, e)) => {
            tracing::error!(error = %e, "auditing failed: the batch is retried from this record");
            out.audited = a;
            failed_at = Some(failed_at.map_or(at, |f| f.min(at)));
        }
    }
    if let Some(at) = failed_at {
        out.failures = sequence_numbers.into_iter().skip(at).flatten().collect();
    }
    out
}

/// [`process`] as the Lambda response: the batch item failures.
pub async fn handle(sinks: Sinks<'_>, event: Value) -> Value {
    let out = process(sinks, event).await;
    tracing::info!(
        records = out.records,
        skipped = out.skipped,
        counted = out.counted.counted,
        repeated = out.counted.repeated,
        audited = out.audited.recorded,
        audit_repeated = out.audited.repeated,
        failures = out.failures.len(),
        "batch counted"
    );
    stream::batch_response(out.failures)
}
