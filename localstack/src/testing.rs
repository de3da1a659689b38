//! Helpers for tests in other crates that need the emulator.
//!
//! They panic instead of returning errors: a test cannot go on without its table, and the panic
//! message says what to do.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;
use ulid::Ulid;

use crate::provision::{config_loader, create_table};
use crate::template::Template;

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
