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

/// The run queues' URLs by priority (critical, high, normal, low), from `QUEUE_URL_CRITICAL`,
/// `QUEUE_URL_HIGH`, `QUEUE_URL_NORMAL` and `QUEUE_URL_LOW`: the functions that queue steps
/// (api-workflows, the worker).
pub fn queue_urls() -> Result<[String; 4], String> {
    queue_urls_from(|k| env::var(k).ok())
}

pub fn queue_urls_from(get: impl Fn(&str) -> Option<String>) -> Result<[String; 4], String> {
    by_priority(&get, "QUEUE_URL")
}

/// `{prefix}_CRITICAL`, `{prefix}_HIGH`, `{prefix}_NORMAL` and `{prefix}_LOW`, each required.
fn by_priority(get: &impl Fn(&str) -> Option<String>, prefix: &str) -> Result<[String; 4], String> {
    let required = |level: &str| {
        let k = format!("{prefix}_{level}");
        get(&k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("environment variable {k} is required"))
    };
    Ok([
        required("CRITICAL")?,
        required("HIGH")?,
        required("NORMAL")?,
        required("LOW")?,
    ])
}

/// `AUDIT_RETENTION_DAYS_SECURITY` and `AUDIT_RETENTION_DAYS_DATA` (whole days, at least 1):
/// how long audit events are kept; neither set: for good.
pub fn audit_retention() -> Result<Option<crate::domain::audit::Retention>, String> {
    audit_retention_from(|k| env::var(k).ok())
}

pub fn audit_retention_from(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<crate::domain::audit::Retention>, String> {
    let days = |k: &str| -> Result<Option<u32>, String> {
        match get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(format!(
                    "{k} must be a whole number of days, at least 1: {v}"
                )),
            },
        }
    };
    match (
        days("AUDIT_RETENTION_DAYS_SECURITY")?,
        days("AUDIT_RETENTION_DAYS_DATA")?,
    ) {
        (None, None) => Ok(None),
        (Some(security_days), Some(data_days)) => Ok(Some(crate::domain::audit::Retention {
            security_days,
            data_days,
        })),
        _ => Err(
            "set both AUDIT_RETENTION_DAYS_SECURITY and AUDIT_RETENTION_DAYS_DATA, or neither"
                .into(),
        ),
    }
}

/// The step queues' dead-letter queue URLs, by priority (critical, high, normal, low), from
/// `DLQ_URL_CRITICAL`, `DLQ_URL_HIGH`, `DLQ_URL_NORMAL` and `DLQ_URL_LOW` (the admin's
/// dead-letter routes).
pub fn dead_letter_queue_urls() -> Result<[String; 4], String> {
    dead_letter_queue_urls_from(|k| env::var(k).ok())
}

pub fn dead_letter_queue_urls_from(
    get: impl Fn(&str) -> Option<String>,
) -> Result<[String; 4], String> {
    by_priority(&get, "DLQ_URL")
}

/// What the worker needs on top of the table: its queues and the default model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub table_name: String,
    /// Queue URLs by priority: critical, high, normal, low.
    pub queue_urls: [String; 4],
    /// The model when neither a run nor its workflow names one (`builtin`, `openai:<model>`).
    pub default_model: String,
    /// Base URL of the OpenAI-compatible server that `openai:<model>` runs call
    /// (`GENERATOR_URL`, e.g. `http://127.0.0.1:8088/v1`, `https://api.openai.com/v1`): http(s),
    /// without a trailing `/`. `None`: such runs fail without a retry.
    pub generator_url: Option<String>,
    /// The generator's API key sealed with KMS (`GENERATOR_API_KEY_CIPHERTEXT`, base64 of a KMS
    /// ciphertext; decrypted once per cold start). `None`: requests carry no key (a local
    /// server). The key itself is never part of the configuration, so it cannot be logged.
    pub generator_api_key_ciphertext: Option<Vec<u8>>,
    /// The KMS key that sealed the API key (`KMS_KEY_ID`: id, ARN or alias); required with a
    /// ciphertext.
    pub kms_key_id: Option<String>,
    /// The WebSocket API's stage URL (`WEBSOCKET_ENDPOINT`), whose Management API receives the
    /// live text of nodes being written; `None`: no live text.
    pub websocket_endpoint: Option<String>,
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
        let optional = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let ciphertext = optional("GENERATOR_API_KEY_CIPHERTEXT")
            .map(|b64| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| "GENERATOR_API_KEY_CIPHERTEXT must be base64".to_string())
            })
            .transpose()?;
        let kms_key_id = optional("KMS_KEY_ID");
        if ciphertext.is_some() && kms_key_id.is_none() {
            return Err("KMS_KEY_ID is required with GENERATOR_API_KEY_CIPHERTEXT".into());
        }
        Ok(WorkerConfig {
            table_name: required("TABLE_NAME")?,
            queue_urls: by_priority(&get, "QUEUE_URL")?,
            default_model: get("DEFAULT_MODEL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "builtin".into()),
            generator_url: optional("GENERATOR_URL")
                .map(|u| generator_base_url(&u))
                .transpose()?,
            generator_api_key_ciphertext: ciphertext,
            kms_key_id,
            websocket_endpoint: optional("WEBSOCKET_ENDPOINT"),
        })
    }
}

/// An OpenAI-compatible base URL, checked (http or https, a host, no query) and without its
/// trailing `/`, so `{base}/chat/completions` is the endpoint.
pub fn generator_base_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let shape = || format!("GENERATOR_URL must be an http(s) URL with a host, not {url:?}");
    let uri: http::Uri = url.parse().map_err(|_| shape())?;
    // Credentials in the URL would be logged with it: the key has a variable of its own.
    let host_ok = uri
        .authority()
        .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    match uri.scheme_str() {
        Some("http" | "https") if host_ok && uri.query().is_none() => Ok(url.to_string()),
        _ => Err(shape()),
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

    fn worker_env(extra: &[(&str, &str)]) -> Result<WorkerConfig, String> {
        let mut env: std::collections::HashMap<String, String> = [
            "TABLE_NAME",
            "QUEUE_URL_CRITICAL",
            "QUEUE_URL_HIGH",
            "QUEUE_URL_NORMAL",
            "QUEUE_URL_LOW",
        ]
        .iter()
        .map(|k| (k.to_string(), "x".to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        WorkerConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn the_worker_reads_its_generator_settings() {
        let c = worker_env(&[]).unwrap();
        assert_eq!(c.default_model, "builtin");
        assert_eq!(
            (
                c.generator_url,
                c.generator_api_key_ciphertext,
                c.kms_key_id
            ),
            (None, None, None)
        );
        let c = worker_env(&[
            ("GENERATOR_URL", "http://127.0.0.1:8088/v1/"),
            ("GENERATOR_API_KEY_CIPHERTEXT", "AQID"),
            ("KMS_KEY_ID", "alias/dwc"),
        ])
        .unwrap();
        assert_eq!(c.generator_url.as_deref(), Some("http://127.0.0.1:8088/v1"));
        assert_eq!(c.generator_api_key_ciphertext, Some(vec![1, 2, 3]));
        let empty = worker_env(&[("GENERATOR_URL", ""), ("GENERATOR_API_KEY_CIPHERTEXT", " ")]);
        assert_eq!(empty.unwrap().generator_url, None);
        for bad in [
            "ftp://h/v1",
            "localhost:8088",
            "http://",
            "https://h/v1?k=1",
        ] {
            let err = worker_env(&[("GENERATOR_URL", bad)]).unwrap_err();
            assert!(err.contains("GENERATOR_URL"), "{bad}: {err}");
        }
        assert!(worker_env(&[("GENERATOR_API_KEY_CIPHERTEXT", "!!")]).is_err());
        let err = worker_env(&[("GENERATOR_API_KEY_CIPHERTEXT", "AQID")]).unwrap_err();
        assert!(err.contains("KMS_KEY_ID"));
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

    #[test]
    fn audit_retention_is_both_days_or_neither() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(audit_retention_from(env(&[])), Ok(None));
        let both = env(&[
            ("AUDIT_RETENTION_DAYS_SECURITY", "400"),
            ("AUDIT_RETENTION_DAYS_DATA", "90"),
        ]);
        assert_eq!(
            audit_retention_from(both),
            Ok(Some(crate::domain::audit::Retention {
                security_days: 400,
                data_days: 90
            }))
        );
        let one = env(&[("AUDIT_RETENTION_DAYS_DATA", "90")]);
        assert!(audit_retention_from(one).is_err());
        let zero = env(&[
            ("AUDIT_RETENTION_DAYS_SECURITY", "0"),
            ("AUDIT_RETENTION_DAYS_DATA", "90"),
        ]);
        let err = audit_retention_from(zero).unwrap_err();
        assert!(err.contains("AUDIT_RETENTION_DAYS_SECURITY"), "{err}");
    }
}

/// Whether webhook, Slack, Teams and Discord URLs may be plain http or reach private and
/// loopback addresses (`NOTIFY_ALLOW_PRIVATE_TARGETS=true`, the template's
/// `NotifyAllowPrivateTargets` parameter, `false` by default). Only against an emulator
/// (`AWS_ENDPOINT_URL` set, as the local stack sets it): in AWS the setting is ignored, with a
/// warning, so a mistaken parameter cannot open the VPC, the metadata service or the Lambda
/// Runtime API to users' URLs.
pub fn notify_allow_private_targets() -> bool {
    let asked = env::var("NOTIFY_ALLOW_PRIVATE_TARGETS").is_ok_and(|v| v == "true");
    let emulated = env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());
    if asked && !emulated {
        tracing::warn!(
            "NOTIFY_ALLOW_PRIVATE_TARGETS=true is ignored outside the local stack (no AWS_ENDPOINT_URL)"
        );
    }
    asked && emulated
}

/// The KMS key that wraps webhook signing secrets (`NOTIFY_KMS_KEY_ID`).
pub fn notify_kms_key_id() -> Result<String, String> {
    env::var("NOTIFY_KMS_KEY_ID")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "environment variable NOTIFY_KMS_KEY_ID is required".to_string())
}

/// The notifications queue's URL (`NOTIFY_QUEUE_URL`): where `analytics-stream` queues
/// deliveries, and the notifier its retries; `None` when unset (no notifications).
pub fn notify_queue_url() -> Option<String> {
    env::var("NOTIFY_QUEUE_URL").ok().filter(|v| !v.is_empty())
}

/// The notifier's configuration.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub table_name: String,
    pub queue_url: String,
    /// Email is sent from this verified SES identity (`MAIL_FROM`).
    pub mail_from: String,
    /// The key that opens webhook signing secrets (`NOTIFY_KMS_KEY_ID`).
    pub kms_key_id: String,
    pub allow_private_targets: bool,
}

impl NotifierConfig {
    pub fn from_env() -> Result<NotifierConfig, String> {
        let required = |k: &str| {
            env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {k} is required"))
        };
        Ok(NotifierConfig {
            table_name: required("TABLE_NAME")?,
            queue_url: required("NOTIFY_QUEUE_URL")?,
            mail_from: required("MAIL_FROM")?,
            kms_key_id: notify_kms_key_id()?,
            allow_private_targets: notify_allow_private_targets(),
        })
    }
}
