//! Environment -> one typed configuration, read once at cold start.

use std::env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The single DynamoDB table (DESIGN.md §3).
    pub table_name: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// JWKS JSON with the ES256 public keys that verify access tokens.
    pub jwt_public_keys: String,
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
            jwt_public_keys: required("JWT_PUBLIC_KEYS")?,
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
}
