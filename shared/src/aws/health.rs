//! [`Probe`]s of the dependencies the health checker (`GET /status`) reports: the table, each
//! step queue with its dead-letter queue, the KMS key, and the generator's endpoint. Each is
//! timed and bounded by [`TIMEOUT`]; a failure is a check that is not `ok`, with the reason.

use crate::aws::errors::classify;
use crate::aws::sqs::QueueUrls;
use crate::ports::{Check, Probe, StepQueue};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Longest a check may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

type Probing<'a> = Pin<Box<dyn Future<Output = Vec<Check>> + Send + 'a>>;

/// Times `f`; `Err` (or running past [`TIMEOUT`]) is a failed check.
async fn timed<F>(name: String, f: F) -> Check
where
    F: Future<Output = Result<(bool, Value), String>>,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(TIMEOUT, f).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    let (ok, detail) = match outcome {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => (false, json!({"error": e})),
        Err(_) => (
            false,
            json!({"error": format!("no answer within {TIMEOUT:?}")}),
        ),
    };
    Check {
        name,
        ok,
        latency_ms,
        detail,
    }
}

/// The table answers a strongly consistent GetItem (of a key nothing is stored under).
pub struct TableProbe {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl Probe for TableProbe {
    fn probe(&self) -> Probing<'_> {
        Box::pin(async move {
            let check = timed("table".into(), async {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key("PK", AttributeValue::S("#HEALTH".into()))
                    .key("SK", AttributeValue::S("#HEALTH".into()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| classify(e).to_string())?;
                Ok((true, json!({"table": self.table})))
            })
            .await;
            vec![check]
        })
    }
}

/// Each step queue and its dead-letter queue: messages waiting, in flight, delayed, dead. A
/// queue is `ok` when it answers and its dead-letter queue is empty.
pub struct QueueProbe {
    pub client: aws_sdk_sqs::Client,
    pub sources: QueueUrls,
    pub dead_letters: QueueUrls,
}

impl QueueProbe {
    async fn counts(&self, url: &str) -> Result<[u64; 3], String> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| classify(e).to_string())?;
        let attrs = out.attributes.unwrap_or_default();
        let get =
            |n: QueueAttributeName| attrs.get(&n).and_then(|v| v.parse().ok()).unwrap_or(0u64);
        Ok([
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ])
    }
}

impl Probe for QueueProbe {
    fn probe(&self) -> Probing<'_> {
        Box::pin(async move {
            let checks = StepQueue::ALL.map(|q| {
                timed(format!("queue:{}", q.as_str()), async move {
                    let (source, dead) = tokio::join!(
                        self.counts(self.sources.by_name(q)),
                        self.counts(self.dead_letters.by_name(q))
                    );
                    let [visible, in_flight, delayed] = source?;
                    let dead = dead?[0];
                    Ok((
                        dead == 0,
                        json!({"visible": visible, "in_flight": in_flight, "delayed": delayed,
                               "dead_letters": dead}),
                    ))
                })
            });
            futures_util::future::join_all(checks).await
        })
    }
}

/// The KMS key (an id, ARN or alias) is enabled.
pub struct KeyProbe {
    pub client: aws_sdk_kms::Client,
    pub key_id: String,
}

impl Probe for KeyProbe {
    fn probe(&self) -> Probing<'_> {
        Box::pin(async move {
            let check = timed("key".into(), async {
                let out = self
                    .client
                    .describe_key()
                    .key_id(&self.key_id)
                    .send()
                    .await
                    .map_err(|e| classify(e).to_string())?;
                let meta = out.key_metadata.ok_or("no key metadata")?;
                let state = meta
                    .key_state
                    .as_ref()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                Ok((meta.enabled, json!({"key": self.key_id, "state": state})))
            })
            .await;
            vec![check]
        })
    }
}

/// The generator's endpoint (`GENERATOR_URL`) accepts a TCP connection; without one
/// configured, the check says so and is `ok` (the built-in generator needs none).
pub struct GeneratorProbe {
    pub url: Option<String>,
}

impl Probe for GeneratorProbe {
    fn probe(&self) -> Probing<'_> {
        Box::pin(async move {
            let Some(url) = self.url.as_deref().filter(|u| !u.is_empty()) else {
                return vec![Check {
                    name: "generator".into(),
                    ok: true,
                    latency_ms: 0.0,
                    detail: json!({"endpoint": null, "note": "no GENERATOR_URL: the built-in or Bedrock generator"}),
                }];
            };
            let check = timed("generator".into(), async move {
                let uri: http::Uri = url.parse().map_err(|e| format!("GENERATOR_URL: {e}"))?;
                let host = uri.host().ok_or("GENERATOR_URL has no host")?;
                let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                    Some("http") => 80,
                    _ => 443,
                });
                tokio::net::TcpStream::connect((host, port))
                    .await
                    .map_err(|e| format!("connect {host}:{port}: {e}"))?;
                Ok((true, json!({"endpoint": format!("{host}:{port}")})))
            })
            .await;
            vec![check]
        })
    }
}
