//! `AWS::SQS::Queue` resources: what CreateQueue needs to make them in the emulator.

use super::node::Node;
use crate::Error;
use serde_yaml_ng::Value;

/// One `AWS::SQS::Queue` of the template. Numbers left out keep SQS's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    /// `FifoQueue: true` (the local name then ends in `.fifo`, as SQS requires).
    pub fifo: bool,
    /// `VisibilityTimeout` in seconds.
    pub visibility_timeout_s: Option<u64>,
    /// `MessageRetentionPeriod` in seconds.
    pub message_retention_s: Option<u64>,
    /// `DelaySeconds`.
    pub delay_s: Option<u64>,
    /// `ReceiveMessageWaitTimeSeconds`.
    pub receive_wait_s: Option<u64>,
    /// `SqsManagedSseEnabled`.
    pub sqs_managed_sse: Option<bool>,
    /// `RedrivePolicy`: where a message goes after `max_receive_count` receives.
    pub redrive: Option<Redrive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// The dead-letter queue: the logical id of another queue of the template
    /// (`deadLetterTargetArn: !GetAtt ThatQueue.Arn`).
    pub dead_letter_queue: String,
    pub max_receive_count: u64,
}

impl QueueSpec {
    pub(crate) fn parse(logical_id: &str, resource: &Node<'_>) -> Result<QueueSpec, Error> {
        let mut spec = QueueSpec {
            logical_id: logical_id.to_owned(),
            fifo: false,
            visibility_timeout_s: None,
            message_retention_s: None,
            delay_s: None,
            receive_wait_s: None,
            sqs_managed_sse: None,
            redrive: None,
        };
        let Some(props) = resource.field("Properties")? else {
            return Ok(spec);
        };
        // Locally every queue is named by its logical id (plus the test suffix), so that `!Ref`
        // can be resolved without asking the emulator; a fixed name would be dropped silently.
        // Properties that change delivery and are not modelled are refused for the same reason.
        for unsupported in [
            "QueueName",
            "RedriveAllowPolicy",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
        ] {
            if let Some(node) = props.field(unsupported)? {
                return Err(node.error("not supported by the local provisioning (localstack/)"));
            }
        }
        let number = |key: &str| -> Result<Option<u64>, Error> {
            props.field(key)?.map(|n| n.u64()).transpose()
        };
        spec.fifo = match props.field("FifoQueue")? {
            Some(node) => node.bool()?,
            None => false,
        };
        spec.visibility_timeout_s = number("VisibilityTimeout")?;
        spec.message_retention_s = number("MessageRetentionPeriod")?;
        spec.delay_s = number("DelaySeconds")?;
        spec.receive_wait_s = number("ReceiveMessageWaitTimeSeconds")?;
        spec.sqs_managed_sse = props
            .field("SqsManagedSseEnabled")?
            .map(|n| n.bool())
            .transpose()?;
        if let Some(redrive) = props.field("RedrivePolicy")? {
            let target = redrive.required("deadLetterTargetArn")?;
            spec.redrive = Some(Redrive {
                dead_letter_queue: arn_of(&target)?,
                max_receive_count: redrive.required("maxReceiveCount")?.u64()?,
            });
        }
        Ok(spec)
    }
}

/// The logical id in `!GetAtt X.Arn` (or its long forms): the only way the local stack can
/// tell which queue of the template an ARN names.
pub(crate) fn arn_of(node: &Node<'_>) -> Result<String, Error> {
    get_att_target(node, "Arn", "queue")
}

/// The logical id `X` in `!GetAtt X.{attribute}` (or its long forms); `kind` names what `X`
/// should be in the error message.
pub(crate) fn get_att_target(
    node: &Node<'_>,
    attribute: &str,
    kind: &str,
) -> Result<String, Error> {
    let refused = || {
        node.error(format!(
            "expected `!GetAtt <{kind}>.{attribute}` naming a {kind} of this template, found {}",
            super::node::describe(node.value())
        ))
    };
    let (tag, inner) = match node.value() {
        Value::Tagged(tagged) => (
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        ),
        Value::Mapping(m) if m.len() == 1 => match m.iter().next() {
            Some((Value::String(k), v)) => (k.trim_start_matches("Fn::").to_owned(), v),
            _ => return Err(refused()),
        },
        _ => return Err(refused()),
    };
    if tag != "GetAtt" {
        return Err(refused());
    }
    let (resource, found) = match inner {
        Value::String(s) => s.split_once('.').ok_or_else(refused)?,
        Value::Sequence(v) if v.len() == 2 => match (&v[0], &v[1]) {
            (Value::String(r), Value::String(a)) => (r.as_str(), a.as_str()),
            _ => return Err(refused()),
        },
        _ => return Err(refused()),
    };
    if found != attribute {
        return Err(refused());
    }
    Ok(resource.to_owned())
}
