//! Environment -> one typed configuration, read once at cold start.

use std::env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The single DynamoDB table (DESIGN.md §3).
    pub table_name: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
}

/// What the identity function needs on top of [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The KMS key (id, ARN or alias) that wraps the signing keys' data keys.
    pub kms_key_id: String,
    /// The verified SES identity emails come from.
    pub mail_from: String,
    /// Base URL of links in emails.
    pub public_url: String,
}

/// The request gate's settings, as written in the template (parsed by
/// [`crate::http::GateConfig::parse`]): comma-separated CIDRs and the JSON rate-limit rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateSettings {
    pub ip_allow_list: String,
    pub ip_deny_list: String,
    pub rate_limits: String,
}

impl GateSettings {
    pub fn from_env() -> GateSettings {
        let get = |k: &str| env::var(k).unwrap_or_default();
        GateSettings {
            ip_allow_list: get("IP_ALLOW_LIST"),
            ip_deny_list: get("IP_DENY_LIST"),
            rate_limits: get("RATE_LIMITS"),
        }
    }
}

impl AuthConfig {
    pub fn from_env() -> Result<AuthConfig, String> {
        Self::from_lookup(|k| env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, String> {
        let required = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {k} is required"))
        };
        Ok(AuthConfig {
            kms_key_id: required("KMS_KEY_ID")?,
            mail_from: required("MAIL_FROM")?,
            public_url: required("PUBLIC_URL")?.trim_end_matches('/').to_string(),
        })
    }
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Self::from_lookup(|k| env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let required = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {k} is required"))
        };
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            jwt_issuer: required("JWT_ISSUER")?,
            jwt_audience: required("JWT_AUDIENCE")?,
        })
    }
}

/// Whether an HTTPS endpoint is configured for AWS clients (`AWS_ENDPOINT_URL` or a
/// service's `AWS_ENDPOINT_URL_*`): then the system's root certificates are trusted.
pub fn custom_https_endpoint() -> bool {
    custom_https_endpoint_in(env::vars())
}

fn custom_https_endpoint_in(vars: impl Iterator<Item = (String, String)>) -> bool {
    vars.filter(|(k, _)| k == "AWS_ENDPOINT_URL" || k.starts_with("AWS_ENDPOINT_URL_"))
        .any(|(_, v)| v.trim().to_ascii_lowercase().starts_with("https://"))
}

/// The table of a command-line tool run by an operator (`TABLE_NAME`).
pub fn table_name() -> Result<String, String> {
    env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "TABLE_NAME is not set".to_string())
}

/// What the worker needs on top of the table: its queues and the default model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub table_name: String,
    /// Queue URLs by priority: critical, high, normal, low.
    pub queue_urls: [String; 4],
    /// The model when neither a run nor its workflow names one (`builtin`, `openai:<model>`).
    pub default_model: String,
}

impl WorkerConfig {
    pub fn from_env() -> Result<WorkerConfig, String> {
        Self::from_lookup(|k| env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<WorkerConfig, String> {
        let required = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {k} is required"))
        };
        Ok(WorkerConfig {
            table_name: required("TABLE_NAME")?,
            queue_urls: [
                required("QUEUE_URL_CRITICAL")?,
                required("QUEUE_URL_HIGH")?,
                required("QUEUE_URL_NORMAL")?,
                required("QUEUE_URL_LOW")?,
            ],
            default_model: get("DEFAULT_MODEL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "builtin".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variables_are_named() {
        let err =
            Config::from_lookup(|k| (k != "JWT_AUDIENCE").then(|| "x".to_string())).unwrap_err();
        assert!(err.contains("JWT_AUDIENCE"));
        assert!(Config::from_lookup(|_| Some("x".into())).is_ok());
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn only_https_custom_endpoints_use_the_system_roots() {
        assert!(!custom_https_endpoint_in(vars(&[])));
        assert!(!custom_https_endpoint_in(vars(&[(
            "AWS_ENDPOINT_URL",
            "http://127.0.0.1:5000"
        )])));
        assert!(custom_https_endpoint_in(vars(&[(
            "AWS_ENDPOINT_URL",
            "https://localhost.localstack.cloud:4566"
        )])));
        assert!(custom_https_endpoint_in(vars(&[(
            "AWS_ENDPOINT_URL_DYNAMODB",
            "HTTPS://proxy"
        )])));
        assert!(!custom_https_endpoint_in(vars(&[("OTHER", "https://x")])));
    }
}
