//! Creates the template's resources in the emulator: its DynamoDB tables, SQS queues (dead-letter
//! queues first), KMS keys (one per alias) and SES email identities.

use std::fmt;
use std::time::{Duration, Instant};

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, ConfigLoader};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    self as ddb, IndexStatus, KeyType, ProjectionType, ScalarAttributeType, TableStatus,
};

use crate::Error;
use crate::resolve::Resolver;
use crate::template::{
    EMAIL_IDENTITY_TYPE, KMS_ALIAS_TYPE, KeySchema, Projection, QueueSpec, StreamViewType,
    TableSpec, Template,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// Region used when neither the environment nor the AWS profile names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// How long [`create_table`] waits for a new table (and its indexes) to become ACTIVE.
pub const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// What provisioning did with one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// A table of that name was there already; it was left as it is.
    AlreadyExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub table: String,
    pub outcome: Outcome,
}

impl fmt::Display for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Created => write!(f, "table {}: created", self.table),
            Outcome::AlreadyExists => {
                write!(f, "table {}: already exists (left as it is)", self.table)
            }
        }
    }
}

/// A DynamoDB client from the standard AWS configuration (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// credentials, ...). The region comes from the environment or the AWS profile, else
/// [`DEFAULT_REGION`]; the EC2 metadata service is never asked, which would only add a timeout
/// on a developer's machine.
pub async fn dynamodb_client() -> Client {
    Client::new(&config_loader().load().await)
}

/// `aws_config::defaults` with the region chain described at [`dynamodb_client`].
pub(crate) fn config_loader() -> ConfigLoader {
    let region = RegionProviderChain::first_try(
        aws_config::environment::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
    .or_else(Region::from_static(DEFAULT_REGION));
    aws_config::defaults(BehaviorVersion::latest()).region(region)
}

/// Creates every table of the template, each named by its logical id (locally `TABLE_NAME` is
/// `!Ref WorkflowTable`, i.e. `WorkflowTable`). Returns one line per table saying whether it was
/// created or already existed; tables that exist are left as they are.
pub async fn provision_all(client: &Client, template: &Template) -> Result<Vec<String>, Error> {
    let done = provision_tables(client, template).await?;
    Ok(done.iter().map(ToString::to_string).collect())
}

/// [`provision_all`], with the outcome of each table as data.
pub async fn provision_tables(
    client: &Client,
    template: &Template,
) -> Result<Vec<Provisioned>, Error> {
    provision_tables_with_suffix(client, template, "").await
}

/// Like [`provision_tables`], each table named by its logical id followed by `suffix` (the
/// names [`crate::resolve::Resolver`] gives the functions), so isolated runs share one emulator.
pub async fn provision_tables_with_suffix(
    client: &Client,
    template: &Template,
    suffix: &str,
) -> Result<Vec<Provisioned>, Error> {
    let mut done = Vec::new();
    for spec in template.tables() {
        let name = format!("{}{suffix}", spec.logical_id);
        let outcome = match create_table(client, &spec, &name).await {
            Ok(()) => Outcome::Created,
            Err(e) if e.is_already_exists() => Outcome::AlreadyExists,
            Err(e) => return Err(e),
        };
        done.push(Provisioned {
            table: name,
            outcome,
        });
    }
    Ok(done)
}

/// Creates table `table_name` as `spec` describes it, waits until it and its indexes are ACTIVE,
/// then turns on its TTL (a separate call: CreateTable has no TTL parameter, and moto ignores a
/// TTL given in a CloudFormation template). The table is always PAY_PER_REQUEST: capacity means
/// nothing to an emulator, and PROVISIONED would need throughput for the table and every index.
///
/// A table of that name already existing is [`Error::AlreadyExists`].
pub async fn create_table(
    client: &Client,
    spec: &TableSpec,
    table_name: &str,
) -> Result<(), Error> {
    let build_error = |e: BuildError| Error::Aws {
        operation: "CreateTable",
        table: table_name.to_owned(),
        message: format!("cannot build the request: {e}"),
    };

    let attribute_definitions = spec
        .attribute_definitions
        .iter()
        .map(|d| {
            ddb::AttributeDefinition::builder()
                .attribute_name(&d.name)
                .attribute_type(ScalarAttributeType::from(d.attribute_type.as_str()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    let global_secondary_indexes = spec
        .global_secondary_indexes
        .iter()
        .map(|gsi| {
            ddb::GlobalSecondaryIndex::builder()
                .index_name(&gsi.name)
                .set_key_schema(Some(key_schema(&gsi.key_schema)?))
                .projection(projection(&gsi.projection))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    let stream = spec.stream_view_type.map(|view| {
        ddb::StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(stream_view_type(view))
            .build()
    });

    let created = client
        .create_table()
        .table_name(table_name)
        .billing_mode(ddb::BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attribute_definitions))
        .set_key_schema(Some(key_schema(&spec.key_schema).map_err(build_error)?))
        // DynamoDB rejects an empty list of indexes; leave it out instead.
        .set_global_secondary_indexes(
            (!global_secondary_indexes.is_empty()).then_some(global_secondary_indexes),
        )
        .set_stream_specification(stream.transpose().map_err(build_error)?)
        .send()
        .await;
    if let Err(err) = created {
        if err
            .as_service_error()
            .is_some_and(|e| e.is_resource_in_use_exception())
        {
            return Err(Error::AlreadyExists {
                table: table_name.to_owned(),
            });
        }
        return Err(aws_error("CreateTable", table_name, &err));
    }

    wait_until_active(client, table_name, ACTIVE_TIMEOUT).await?;

    if let Some(attribute) = &spec.ttl_attribute {
        let ttl = ddb::TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|e| Error::Aws {
                operation: "UpdateTimeToLive",
                table: table_name.to_owned(),
                message: format!("cannot build the request: {e}"),
            })?;
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|err| aws_error("UpdateTimeToLive", table_name, &err))?;
    }
    Ok(())
}

/// Polls DescribeTable until the table and all its global secondary indexes are ACTIVE, or
/// `timeout` has passed.
pub async fn wait_until_active(
    client: &Client,
    table_name: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        let last_seen = match client.describe_table().table_name(table_name).send().await {
            Ok(out) => match out.table() {
                Some(table) => {
                    let status = table.table_status();
                    // An index whose status is not reported (some emulators) counts as ready.
                    let pending: Vec<&str> = table
                        .global_secondary_indexes()
                        .iter()
                        .filter(|i| i.index_status().is_some_and(|s| *s != IndexStatus::Active))
                        .map(|i| i.index_name().unwrap_or("?"))
                        .collect();
                    if status == Some(&TableStatus::Active) && pending.is_empty() {
                        return Ok(());
                    }
                    format!(
                        "table status {}, indexes not yet ACTIVE: {pending:?}",
                        status.map_or("(none)", TableStatus::as_str)
                    )
                }
                None => "DescribeTable returned no table".to_owned(),
            },
            // Right after CreateTable, DynamoDB may not know the table yet: keep polling.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                "not found".to_owned()
            }
            Err(err) => return Err(aws_error("DescribeTable", table_name, &err)),
        };

        let waited = started.elapsed();
        if waited >= timeout {
            return Err(Error::NotActive {
                table: table_name.to_owned(),
                waited,
                last_seen,
            });
        }
        tokio::time::sleep(delay.min(timeout - waited)).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

fn key_schema(keys: &KeySchema) -> Result<Vec<ddb::KeySchemaElement>, BuildError> {
    let mut elements = vec![
        ddb::KeySchemaElement::builder()
            .attribute_name(&keys.partition_key)
            .key_type(KeyType::Hash)
            .build()?,
    ];
    if let Some(sort_key) = &keys.sort_key {
        elements.push(
            ddb::KeySchemaElement::builder()
                .attribute_name(sort_key)
                .key_type(KeyType::Range)
                .build()?,
        );
    }
    Ok(elements)
}

fn projection(projection: &Projection) -> ddb::Projection {
    match projection {
        Projection::All => ddb::Projection::builder()
            .projection_type(ProjectionType::All)
            .build(),
        Projection::KeysOnly => ddb::Projection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build(),
        Projection::Include(attributes) => ddb::Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(attributes.clone()))
            .build(),
    }
}

fn stream_view_type(view: StreamViewType) -> ddb::StreamViewType {
    ddb::StreamViewType::from(view.as_str())
}

fn aws_error<E, R>(operation: &'static str, table: &str, err: &SdkError<E, R>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: fmt::Debug,
{
    let message = match err.as_service_error() {
        // What DynamoDB said, e.g. "ValidationException: One or more parameter values ...".
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("(no message)")
        ),
        // Otherwise the chain of causes, e.g. "dispatch failure: io error: ... Connection
        // refused (os error 111)".
        None => {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.ends_with(&text) {
                    message = format!("{message}: {text}");
                }
                source = cause.source();
            }
            message
        }
    };
    Error::Aws {
        operation,
        table: table.to_owned(),
        message,
    }
}

/// The SDK configuration for the emulator at `endpoint_url`, with the same dummy credentials the
/// functions get when none are set (the SDK would otherwise look for instance credentials).
pub async fn emulator_sdk_config(endpoint_url: &str) -> aws_config::SdkConfig {
    let mut loader = config_loader().endpoint_url(endpoint_url);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "local-emulator",
        ));
    }
    loader.load().await
}

/// The region of an SDK configuration ([`DEFAULT_REGION`] when it has none).
pub fn region_of(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map_or(DEFAULT_REGION, |r| r.as_ref())
        .to_owned()
}

/// Creates every `AWS::SQS::Queue` of the template under the names [`Resolver`] gives them
/// (logical id plus suffix), dead-letter queues first so that each `RedrivePolicy` can name its
/// target's ARN. A queue that exists already is left as it is. Returns one line per queue.
pub async fn provision_queues(
    sqs: &aws_sdk_sqs::Client,
    template: &Template,
    resolver: &Resolver,
) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    // Logical id -> ARN, as the emulator reports it, of the queues made or found so far.
    let mut arns: Vec<(String, String)> = Vec::new();
    for spec in template.queues() {
        let name = resolver
            .name(&spec.logical_id)
            .unwrap_or_default()
            .to_owned();
        let failed = |operation: &str, message: String| Error::Service {
            service: "SQS",
            resource: name.clone(),
            message: format!("{operation}: {message}"),
        };
        let existing = sqs.get_queue_url().queue_name(&name).send().await;
        let (url, line) = match existing {
            Ok(out) => (
                out.queue_url.unwrap_or_default(),
                format!("queue {name}: already exists (left as it is)"),
            ),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_queue_does_not_exist()) =>
            {
                let dlq_arn = match &spec.redrive {
                    Some(redrive) => Some(
                        arns.iter()
                            .find(|(id, _)| *id == redrive.dead_letter_queue)
                            .map(|(_, arn)| arn.clone())
                            .ok_or_else(|| {
                                failed(
                                    "RedrivePolicy",
                                    format!(
                                        "dead-letter queue `{}` was not created first",
                                        redrive.dead_letter_queue
                                    ),
                                )
                            })?,
                    ),
                    None => None,
                };
                let created = sqs
                    .create_queue()
                    .queue_name(&name)
                    .set_attributes(Some(queue_attributes(&spec, dlq_arn.as_deref())))
                    .send()
                    .await
                    .map_err(|e| failed("CreateQueue", sdk_message(&e)))?;
                (
                    created.queue_url.unwrap_or_default(),
                    format!("queue {name}: created"),
                )
            }
            Err(e) => return Err(failed("GetQueueUrl", sdk_message(&e))),
        };
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| failed("GetQueueAttributes", sdk_message(&e)))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| failed("GetQueueAttributes", "no QueueArn".into()))?;
        arns.push((spec.logical_id.clone(), arn));
        lines.push(line);
    }
    Ok(lines)
}

/// CreateQueue's attributes for `spec`; `dead_letter_arn` is its redrive target's ARN.
pub fn queue_attributes(
    spec: &QueueSpec,
    dead_letter_arn: Option<&str>,
) -> std::collections::HashMap<QueueAttributeName, String> {
    let mut attributes = std::collections::HashMap::new();
    let numbers = [
        (
            QueueAttributeName::VisibilityTimeout,
            spec.visibility_timeout_s,
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            spec.message_retention_s,
        ),
        (QueueAttributeName::DelaySeconds, spec.delay_s),
        (
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            spec.receive_wait_s,
        ),
    ];
    for (key, value) in numbers {
        if let Some(value) = value {
            attributes.insert(key, value.to_string());
        }
    }
    if let Some(sse) = spec.sqs_managed_sse {
        attributes.insert(QueueAttributeName::SqsManagedSseEnabled, sse.to_string());
    }
    if spec.fifo {
        attributes.insert(QueueAttributeName::FifoQueue, "true".into());
    }
    if let (Some(redrive), Some(arn)) = (&spec.redrive, dead_letter_arn) {
        attributes.insert(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({
                "deadLetterTargetArn": arn,
                "maxReceiveCount": redrive.max_receive_count,
            })
            .to_string(),
        );
    }
    attributes
}

/// What a service said (`Code: message`), or the chain of causes of a transport error.
pub(crate) fn sdk_message<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: fmt::Debug,
{
    match aws_error("", "", err) {
        Error::Aws { message, .. } => message,
        other => other.to_string(),
    }
}

/// Creates the template's queues (see [`provision_queues`]), a KMS key for each
/// `AWS::KMS::Alias` of the template, under the alias name the functions get through `!Ref`
/// (see [`Resolver`]), and each `AWS::SES::EmailIdentity`. What exists already is left as it is.
/// Returns one line per resource.
pub async fn provision_services(
    template: &Template,
    resolver: &Resolver,
    endpoint_url: &str,
) -> Result<Vec<String>, Error> {
    let sdk = emulator_sdk_config(endpoint_url).await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let mut lines = provision_queues(&aws_sdk_sqs::Client::new(&sdk), template, resolver).await?;
    for r in template.resources() {
        match r.resource_type.as_str() {
            KMS_ALIAS_TYPE => {
                let alias = resolver.name(&r.logical_id).unwrap_or_default().to_string();
                let failed = |message: String| Error::Service {
                    service: "KMS",
                    resource: alias.clone(),
                    message,
                };
                if kms.describe_key().key_id(&alias).send().await.is_ok() {
                    lines.push(format!("key {alias}: already exists (left as it is)"));
                    continue;
                }
                // The key's kind as the template gives it (an HMAC key for the audit seals).
                let (spec, usage) = template.alias_key_spec(&r.logical_id);
                let key = kms
                    .create_key()
                    .description(format!("local stand-in for {}", r.logical_id))
                    .set_key_spec(spec.map(|s| aws_sdk_kms::types::KeySpec::from(s.as_str())))
                    .set_key_usage(
                        usage.map(|u| aws_sdk_kms::types::KeyUsageType::from(u.as_str())),
                    )
                    .send()
                    .await
                    .map_err(|e| failed(format!("{e:?}")))?;
                let key_id = key
                    .key_metadata
                    .map(|m| m.key_id)
                    .ok_or_else(|| failed("CreateKey returned no key".into()))?;
                match kms
                    .create_alias()
                    .alias_name(&alias)
                    .target_key_id(&key_id)
                    .send()
                    .await
                {
                    Ok(_) => lines.push(format!("key {alias}: created ({key_id})")),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        lines.push(format!("key {alias}: already exists (left as it is)"));
                    }
                    Err(e) => return Err(failed(format!("{e:?}"))),
                }
            }
            EMAIL_IDENTITY_TYPE => {
                let value = r
                    .properties
                    .as_mapping()
                    .and_then(|m| m.get("EmailIdentity"))
                    .cloned()
                    .unwrap_or(serde_yaml_ng::Value::Null);
                let identity =
                    resolver.string(&format!("{}.EmailIdentity", r.logical_id), &value)?;
                match ses
                    .create_email_identity()
                    .email_identity(&identity)
                    .send()
                    .await
                {
                    Ok(_) => lines.push(format!("email identity {identity}: created")),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        lines.push(format!("email identity {identity}: already exists"));
                    }
                    Err(e) => {
                        return Err(Error::Service {
                            service: "SES",
                            resource: identity,
                            message: format!("{e:?}"),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(lines)
}
