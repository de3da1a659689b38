//! The table's stream into the analytics counters and the audit trail: each record's change is
//! counted exactly once and its audit events appended exactly once (a retried batch finds its
//! records done and adds nothing). One consumer does both, since a DynamoDB stream serves at
//! most two readers per shard without throttling and `ws-broadcast` is the other. The same
//! records raise users' notifications (a run finished, a step waiting for approval, a share, a
//! skipped schedule fire, security notes) and start system notices, queued for the notifier;
//! a retried record raises the same notification again, which is stored once. A record that
//! cannot be read is logged and skipped (it would block its shard forever); a store failure
//! reports the record and everything after it as the batch's failures, so Lambda retries from
//! there.

use serde_json::Value;
use shared::app::analytics::{self, CountOutcome, Counted, Recorded};
use shared::app::audit::{self, RecordOutcome};
use shared::app::notify::raise::{self, Source};
use shared::aws::dynamo::stream;
use shared::domain::audit::Chain;
use shared::domain::notification::Notice;
use shared::domain::notify::triggers;
use shared::ports::{Analytics, AuditLog, NotifyQueue, NotifyStore, Workflows};

/// Where a batch's changes go.
#[derive(Clone, Copy)]
pub struct Sinks<'a> {
    pub analytics: &'a dyn Analytics,
    pub audit: &'a dyn AuditLog,
    /// Whose chain a node's events go to (its workflow's owner).
    pub workflows: &'a dyn Workflows,
    /// Where notifications are raised (none: no notifications, as in tests of the counters).
    pub notify: Option<NotifySink<'a>>,
}

/// The notifications' store and queue.
#[derive(Clone, Copy)]
pub struct NotifySink<'a> {
    pub store: &'a dyn NotifyStore,
    pub queue: &'a dyn NotifyQueue,
}

impl<'a, S: Analytics + AuditLog + Workflows> From<&'a S> for Sinks<'a> {
    fn from(store: &'a S) -> Sinks<'a> {
        Sinks {
            analytics: store,
            audit: store,
            workflows: store,
            notify: None,
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
    /// Deliveries queued.
    pub notified: usize,
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
    // Every record's sequence number, and the record each counted change or notice came from:
    // a failure is retried from its record on.
    let mut sequence_numbers = Vec::new();
    let mut counted_at = Vec::new();
    let mut notices: Vec<(usize, Notice)> = Vec::new();
    for record in records {
        let seq = stream::sequence_number(&record);
        let at = sequence_numbers.len();
        sequence_numbers.push(seq.clone());
        match stream::record_notice(&record) {
            Ok(Some(notice)) => {
                notices.push((at, notice));
                continue;
            }
            Ok(None) => {}
            Err(reason) => {
                out.skipped += 1;
                tracing::error!(sequence_number = ?seq, %reason, "stream record skipped");
                continue;
            }
        }
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
                counted_at.push(at);
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
    let mut failed_at: Option<usize> = None;
    let mut fail = |at: usize| failed_at = Some(failed_at.map_or(at, |f| f.min(at)));
    match analytics::count(sinks.analytics, &counted).await {
        Ok(c) => out.counted = c,
        Err((at, c, e)) => {
            tracing::error!(error = %e, "counting failed: the batch is retried from this record");
            out.counted = c;
            fail(counted_at[at]);
        }
    }
    match audit::record(sinks.audit, sinks.workflows, &counted).await {
        Ok(a) => out.audited = a,
        Err((at, a, e)) => {
            tracing::error!(error = %e, "auditing failed: the batch is retried from this record");
            out.audited = a;
            fail(counted_at[at]);
        }
    }
    if let Some(n) = sinks.notify {
        let now = shared::domain::time::truncate_to_millis(chrono::Utc::now());
        match notify(n, sinks.workflows, (&counted, &counted_at), &notices, now).await {
            Ok(queued) => out.notified = queued,
            Err((at, queued, e)) => {
                tracing::error!(error = %e, "notifying failed: the batch is retried from this record");
                out.notified = queued;
                fail(at);
            }
        }
    }
    if let Some(at) = failed_at {
        out.failures = sequence_numbers.into_iter().skip(at).flatten().collect();
    }
    out
}

/// Raises the notifications of `counted`'s changes and notes and starts `notices`, in the
/// batch's record order (`counted_at`: the record of each counted change; a notice carries
/// its own), so a failure is retried from its record and nothing before it is skipped; the
/// number of deliveries queued, or the record it failed at.
async fn notify(
    sink: NotifySink<'_>,
    workflows: &dyn Workflows,
    (counted, counted_at): (&[Counted], &[usize]),
    notices: &[(usize, Notice)],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, (usize, usize, shared::ports::StoreError)> {
    enum Next<'a> {
        Record(&'a Counted),
        Notice(&'a Notice),
    }
    let mut order: Vec<(usize, Next<'_>)> = counted_at
        .iter()
        .copied()
        .zip(counted.iter().map(Next::Record))
        .chain(notices.iter().map(|(at, n)| (*at, Next::Notice(n))))
        .collect();
    order.sort_by_key(|(at, _)| *at);
    let mut queued = 0;
    for (at, next) in order {
        let record = match next {
            Next::Notice(notice) => {
                raise::start_notice(sink.store, sink.queue, notice, now)
                    .await
                    .map_err(|e| (at, queued, e))?;
                continue;
            }
            Next::Record(record) => record,
        };
        let raised = match &record.what {
            Recorded::Change { change, .. } => triggers::from_change(change),
            Recorded::Note {
                chain: Chain::User(user),
                draft,
            } => triggers::from_note(user, draft).into_iter().collect(),
            Recorded::Note { .. } => Vec::new(),
        };
        for trigger in raised {
            let source = Source {
                seed: &record.event_id,
                not_before: None,
                only_channel: None,
                verification: false,
            };
            // Runs and steps know their workflow by id only: raise adds its name.
            queued += raise::raise(
                sink.store,
                sink.queue,
                &trigger,
                &source,
                Some(workflows),
                now,
            )
            .await
            .map_err(|e| (at, queued, e))?;
        }
    }
    Ok(queued)
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
        notified = out.notified,
        failures = out.failures.len(),
        "batch counted"
    );
    stream::batch_response(out.failures)
}
