//! The table's stream into the analytics counters: each record's change is counted exactly
//! once (a retried batch finds its records counted and adds nothing). A record that cannot be
//! read is logged and skipped (it would block its shard forever); a store failure reports the
//! record and everything after it as the batch's failures, so Lambda retries from there.

use serde_json::Value;
use shared::app::analytics::{self, CountOutcome, Counted};
use shared::aws::dynamo::stream;
use shared::ports::Analytics;

/// What a batch did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub records: usize,
    pub skipped: usize,
    pub counted: CountOutcome,
    /// Sequence numbers to retry (the first failed record and those after it).
    pub failures: Vec<String>,
}

pub async fn process(analytics: &(impl Analytics + ?Sized), mut event: Value) -> Outcome {
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
        match (id, stream::record_change(record)) {
            (Some(event_id), Ok(Some(change))) => {
                counted.push(Counted { event_id, change });
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
    match analytics::count(analytics, counted).await {
        Ok(c) => out.counted = c,
        Err((failed_at, c, e)) => {
            tracing::error!(error = %e, "counting failed: the batch is retried from this record");
            out.counted = c;
            out.failures = sequence_numbers
                .into_iter()
                .skip(failed_at)
                .flatten()
                .collect();
        }
    }
    out
}

/// [`process`] as the Lambda response: the batch item failures.
pub async fn handle(analytics: &(impl Analytics + ?Sized), event: Value) -> Value {
    let out = process(analytics, event).await;
    tracing::info!(
        records = out.records,
        skipped = out.skipped,
        counted = out.counted.counted,
        repeated = out.counted.repeated,
        failures = out.failures.len(),
        "batch counted"
    );
    stream::batch_response(out.failures)
}
