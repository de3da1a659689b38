//! Helpers for tests in other crates that need the emulator.
//!
//! They panic instead of returning errors: a test cannot go on without its table, and the panic
//! message says what to do.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;
use ulid::Ulid;

use crate::gateway::http_api::{Router, event};
use crate::provision::{config_loader, create_table};
use crate::template::Template;
use lambda_http::{Body, Request};

/// The variable that points the SDK at the emulator.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

/// A DynamoDB client for the emulator at `AWS_ENDPOINT_URL`, and never anything else: the
/// endpoint is set explicitly (so `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` or a profile cannot send
/// it to real AWS), and dummy credentials are used when the environment has none.
///
/// Panics if `AWS_ENDPOINT_URL` is not set.
pub async fn emulator_client() -> Client {
    let endpoint =
        emulator_endpoint(std::env::var(ENDPOINT_ENV).ok()).unwrap_or_else(|e| panic!("{e}"));
    let mut loader = config_loader().endpoint_url(endpoint);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "localstack-testing",
        ));
    }
    Client::new(&loader.load().await)
}

/// The emulator endpoint from the value of `AWS_ENDPOINT_URL`, or why tests cannot run.
pub fn emulator_endpoint(value: Option<String>) -> Result<String, String> {
    value.filter(|url| !url.trim().is_empty()).ok_or_else(|| {
        format!(
            "{ENDPOINT_ENV} is not set: run the tests with `make test`, which starts the emulator"
        )
    })
}

/// A new, uniquely named table (`{prefix}-{ULID}`) made from the template's single
/// `AWS::DynamoDB::Table`, in the emulator at `AWS_ENDPOINT_URL`, ACTIVE and with its TTL set.
///
/// Panics with a clear message if `AWS_ENDPOINT_URL` is not set (tests must never reach real AWS),
/// if the template does not have exactly one table, or if the table cannot be created.
pub async fn fresh_table(prefix: &str) -> (Client, String) {
    let client = emulator_client().await;
    let template = Template::load_default()
        .unwrap_or_else(|e| panic!("fresh_table: cannot load the template: {e}"));
    let tables = template.tables();
    let [spec] = tables.as_slice() else {
        panic!(
            "fresh_table: {} has {} AWS::DynamoDB::Table resources; it makes a copy of the only one",
            template.source(),
            tables.len()
        );
    };
    let name = format!("{prefix}-{}", Ulid::new());
    create_table(&client, spec, &name)
        .await
        .unwrap_or_else(|e| panic!("fresh_table: cannot create table {name}: {e}"));
    (client, name)
}

/// The SDK configuration of [`emulator_client`], for other services' clients (KMS, SES).
pub async fn emulator_config() -> aws_config::SdkConfig {
    let endpoint =
        emulator_endpoint(std::env::var(ENDPOINT_ENV).ok()).unwrap_or_else(|e| panic!("{e}"));
    let mut loader = config_loader().endpoint_url(endpoint);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "localstack-testing",
        ));
    }
    loader.load().await
}

/// An SQS client for the emulator at `AWS_ENDPOINT_URL` (see [`emulator_client`]).
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&emulator_config().await)
}

/// Four new standard queues in the emulator through `sqs`, named `{prefix}-{level}-{ulid}`, for
/// a test's step queues: their URLs in priority order (critical, high, normal, low), as
/// `shared::aws::sqs::QueueUrls` converts them.
pub async fn step_queues(sqs: &aws_sdk_sqs::Client, prefix: &str) -> [String; 4] {
    let suffix = Ulid::new().to_string().to_lowercase();
    let mut urls: [String; 4] = Default::default();
    for (url, level) in urls.iter_mut().zip(["critical", "high", "normal", "low"]) {
        let out = sqs
            .create_queue()
            .queue_name(format!("{prefix}-{level}-{suffix}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create_queue: {e}"));
        *url = out.queue_url.unwrap_or_default();
    }
    urls
}

/// Creates `template`'s queues in the emulator at `AWS_ENDPOINT_URL`, each named by its logical
/// id followed by `suffix` (dead-letter queues first, as [`crate::provision::provision_queues`]
/// does), and returns the resolver that names them: its `queue_url` and `queue_arn` are the
/// emulator's. A gateway started by [`crate::gateway::start_dev`] with the same suffix does this
/// itself, so each test stack gets queues of its own.
pub async fn provision_queues(template: &Template, suffix: &str) -> crate::resolve::Resolver {
    let endpoint =
        emulator_endpoint(std::env::var(ENDPOINT_ENV).ok()).unwrap_or_else(|e| panic!("{e}"));
    let resolver = crate::resolve::Resolver::new(
        template,
        &Default::default(),
        suffix,
        &crate::provision::region_of(&emulator_config().await),
    )
    .with_endpoint(&endpoint);
    crate::provision::provision_queues(&sqs_client().await, template, &resolver)
        .await
        .unwrap_or_else(|e| panic!("provision_queues: {e}"));
    resolver
}

/// A new KMS key in the emulator, by a new alias (`alias/{prefix}-{ULID}`), as the template's
/// `SigningKeysKeyAlias` is locally.
pub async fn fresh_kms_alias(prefix: &str) -> String {
    fresh_key(prefix, None).await
}

/// A new KMS HMAC key (`HMAC_256`, `GENERATE_VERIFY_MAC`) by a new alias, as the template's
/// `AuditKeyAlias` is locally.
pub async fn fresh_hmac_alias(prefix: &str) -> String {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    fresh_key(
        prefix,
        Some((KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac)),
    )
    .await
}

async fn fresh_key(
    prefix: &str,
    spec: Option<(
        aws_sdk_kms::types::KeySpec,
        aws_sdk_kms::types::KeyUsageType,
    )>,
) -> String {
    let kms = aws_sdk_kms::Client::new(&emulator_config().await);
    let (key_spec, key_usage) = spec.unzip();
    let key = kms
        .create_key()
        .set_key_spec(key_spec)
        .set_key_usage(key_usage)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create a KMS key: {e:?}"));
    let key_id = key.key_metadata.map(|m| m.key_id).unwrap_or_default();
    let alias = format!("alias/{prefix}-{}", Ulid::new());
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create alias {alias}: {e:?}"));
    alias
}

/// Makes `address` a verified SES identity in the emulator (sending from it then works).
pub async fn ses_identity(address: &str) {
    let ses = aws_sdk_sesv2::Client::new(&emulator_config().await);
    if let Err(e) = ses
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
        && !e
            .as_service_error()
            .is_some_and(|s| s.is_already_exists_exception())
    {
        panic!("create SES identity {address}: {e:?}");
    }
}

/// The emails SES sent to `to`, as the emulator keeps them: (subject, body), oldest first.
/// Read from `localstack/moto_server.py`'s `/_dwc/ses/messages` (moto's own
/// `/moto-api/data.json` has them too, but serialises every object of every service).
pub async fn emails_to(to: &str) -> Vec<(String, String)> {
    let endpoint =
        emulator_endpoint(std::env::var(ENDPOINT_ENV).ok()).unwrap_or_else(|e| panic!("{e}"));
    let query = to
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace('@', "%40")
        .replace('&', "%26");
    let data = http_get_json(&endpoint, &format!("/_dwc/ses/messages?to={query}")).await;
    data.as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_string(),
                m["body"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// What SNS sent to `to` (an E.164 phone number: SMS; a platform endpoint ARN: push), as the
/// emulator keeps it (`localstack/moto_server.py`'s `/_dwc/sns/messages`), oldest first.
pub async fn sns_messages_to(to: &str) -> Vec<String> {
    let endpoint =
        emulator_endpoint(std::env::var(ENDPOINT_ENV).ok()).unwrap_or_else(|e| panic!("{e}"));
    let query: String = form_urlencoded::byte_serialize(to.as_bytes()).collect();
    let data = http_get_json(&endpoint, &format!("/_dwc/sns/messages?to={query}")).await;
    data.as_array()
        .into_iter()
        .flatten()
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The token in the newest email to `to` whose subject has `subject` (the value of `?token=`
/// in its link), waiting for it up to 10 s.
pub async fn emailed_token(to: &str, subject: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let found = emails_to(to)
            .await
            .into_iter()
            .rev()
            .find(|(s, _)| s.contains(subject));
        if let Some((_, body)) = found {
            return token_in(&body).unwrap_or_else(|| panic!("no token in the email: {body}"));
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no '{subject}' email to {to}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The token in an email from the identity service (the value of `?token=` in its link).
pub fn token_in(body: &str) -> Option<String> {
    let start = body.find("?token=")? + "?token=".len();
    Some(body[start..].split_whitespace().next()?.to_string())
}

/// GET `path` of an `http://host:port` endpoint, parsed as JSON (Null when that fails).
async fn http_get_json(endpoint: &str, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut stream) = tokio::net::TcpStream::connect(host).await else {
        return serde_json::Value::Null;
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return serde_json::Value::Null;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Requests as API Gateway hands them to a function: matched against the template's HTTP
/// routes by the local gateway's own router, and turned into the payload 2.0 event it sends
/// (route key, path parameters, headers, query, source IP). Handler tests send these, so a
/// handler sees exactly what it sees behind API Gateway.
pub struct ApiGatewayEvents {
    router: Router,
}

impl ApiGatewayEvents {
    /// Panics if `infra/sam-template.yaml` cannot be read.
    pub fn from_template() -> ApiGatewayEvents {
        let template = Template::load_default().unwrap_or_else(|e| panic!("template: {e}"));
        ApiGatewayEvents {
            router: Router::new(&template.http_routes()),
        }
    }

    /// The event for one request, or `None` when no template route matches it (API Gateway
    /// answers 404 itself, without calling a function).
    pub fn event(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        source_ip: &str,
    ) -> Option<aws_lambda_events::apigw::ApiGatewayV2httpRequest> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder
            .body(())
            .unwrap_or_else(|e| panic!("request {method} {uri}: {e}"))
            .into_parts();
        let matched = self.router.find(method, parts.uri.path())?;
        Some(event(
            &parts,
            bytes::Bytes::copy_from_slice(body),
            &matched,
            source_ip,
        ))
    }
}

/// The request as API Gateway would hand it to the function: routed by the template (route key,
/// path parameters), or, for a path no template route matches, with no route key at all.
pub fn gateway_request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Body,
    source_ip: &str,
) -> Request {
    static EVENTS: std::sync::OnceLock<ApiGatewayEvents> = std::sync::OnceLock::new();
    let events = EVENTS.get_or_init(ApiGatewayEvents::from_template);
    let bytes: &[u8] = match &body {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    match events.event(method, uri, headers, bytes, source_ip) {
        Some(event) => lambda_http::request::from_str(
            &serde_json::to_string(&event).expect("an event serialises"),
        )
        .expect("the gateway's event is a lambda_http request"),
        None => {
            let mut req = http::Request::builder().method(method).uri(uri);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(body).expect("a valid request")
        }
    }
}

/// The template's HTTP route keys (`"GET /api/v3/workflows/{id}"`) that reach `function` (its
/// logical id).
pub fn template_route_keys(function: &str) -> std::collections::BTreeSet<String> {
    Template::load_default()
        .unwrap_or_else(|e| panic!("template: {e}"))
        .http_routes()
        .into_iter()
        .filter(|r| r.function == function)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Every record of `table`'s stream so far (all shards, from the trim horizon), as Lambda's
/// DynamoDB event source would hand them to a function: `{"Records": [...]}`.
pub async fn stream_event(table: &str) -> serde_json::Value {
    let sdk = emulator_config().await;
    let dynamodb = Client::new(&sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let arn = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("stream_event: DescribeTable {table}: {e:?}"))
        .table
        .and_then(|t| t.latest_stream_arn)
        .unwrap_or_else(|| panic!("stream_event: {table} has no stream"));
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("stream_event: DescribeStream: {e:?}"))
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let Some(shard_id) = shard.shard_id else {
            continue;
        };
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard_id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("stream_event: GetShardIterator: {e:?}"))
            .shard_iterator;
        while let Some(it) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap_or_else(|e| panic!("stream_event: GetRecords: {e:?}"));
            let got = page.records.unwrap_or_default();
            if got.is_empty() {
                break;
            }
            let region = sdk.region().map_or("us-east-1", |r| r.as_ref());
            records.extend(
                got.iter()
                    .map(|r| crate::gateway::streams::lambda_record(r, &arn, region)),
            );
            iterator = page.next_shard_iterator;
        }
    }
    serde_json::json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_refuse_to_run_without_an_emulator_endpoint() {
        for missing in [None, Some(String::new()), Some("  ".to_string())] {
            let err = emulator_endpoint(missing).unwrap_err();
            assert_eq!(
                err,
                "AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts the emulator"
            );
        }
        assert_eq!(
            emulator_endpoint(Some("http://127.0.0.1:5000".into())).unwrap(),
            "http://127.0.0.1:5000"
        );
    }
}
