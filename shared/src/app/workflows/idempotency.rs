//! `Idempotency-Key`: the same key with the same request replays the first response; the same
//! key with another request is refused (DESIGN.md §6). Keys are per user and kept 24 hours.

use crate::app::AppError;
use crate::ports::{IdempotencyRecord, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

pub const RETENTION_HOURS: i64 = 24;
pub const MAX_KEY_CHARS: usize = 255;

/// A key as the client sent it, with a hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Checks the header value: 1..=255 visible ASCII characters.
    pub fn new(key: &str, request_hash: String) -> Result<Self, AppError> {
        if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(AppError::field(
                "Idempotency-Key",
                format!("must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
            ));
        }
        Ok(IdempotencyKey {
            key: key.to_string(),
            request_hash,
        })
    }
}

/// A use case's answer to a creating request: made now, or replayed from an earlier request
/// with the same key.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Created(T),
    Replayed { status: u16, body: String },
}

/// What an earlier request with the same key left for a replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Body {
        status: u16,
        body: String,
    },
    /// The response was too large to keep: the use case reads the resource at `location`
    /// again and answers with it as it is now.
    Location {
        status: u16,
        location: String,
    },
}

impl Stored {
    /// The replay, reading the resource again through `read` when only its location was kept.
    pub async fn into_outcome<T, F, Fut, R>(self, read: F) -> Result<Outcome<T>, AppError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<R, AppError>>,
        R: Serialize,
    {
        match self {
            Stored::Body { status, body } => Ok(Outcome::Replayed { status, body }),
            Stored::Location { status, location } => {
                let value = read(location).await?;
                let body =
                    serde_json::to_string(&value).map_err(|e| AppError::Internal(e.to_string()))?;
                Ok(Outcome::Replayed { status, body })
            }
        }
    }
}

/// Responses up to this size are kept whole for replay; larger ones by their location only
/// (a DynamoDB item holds at most 400 KB).
pub const MAX_STORED_BODY_BYTES: usize = 64 * 1024;

/// The record to store with a new item, holding the response the client gets.
pub fn record<T: Serialize>(
    owner_id: &str,
    key: Option<&IdempotencyKey>,
    status: u16,
    body: &T,
    location: String,
    now: DateTime<Utc>,
) -> Result<Option<IdempotencyRecord>, AppError> {
    let Some(key) = key else { return Ok(None) };
    let mut body = serde_json::to_string(body).map_err(|e| AppError::Internal(e.to_string()))?;
    if body.len() > MAX_STORED_BODY_BYTES {
        body.clear();
    }
    Ok(Some(IdempotencyRecord {
        owner_id: owner_id.to_string(),
        key: key.key.clone(),
        request_hash: key.request_hash.clone(),
        status,
        body,
        location,
        created_at: now,
        expires_at: now + Duration::hours(RETENTION_HOURS),
    }))
}

/// What a key already in use means for this request.
pub fn replay(existing: &IdempotencyRecord, key: &IdempotencyKey) -> Result<Stored, AppError> {
    if existing.request_hash != key.request_hash {
        Err(AppError::IdempotencyKeyReused)
    } else if existing.body.is_empty() {
        Ok(Stored::Location {
            status: existing.status,
            location: existing.location.clone(),
        })
    } else {
        Ok(Stored::Body {
            status: existing.status,
            body: existing.body.clone(),
        })
    }
}

/// Turns a store error into a replay when it says the key was used, else into an error.
pub fn on_store_error(
    err: StoreError,
    key: Option<&IdempotencyKey>,
    other: impl FnOnce(StoreError) -> AppError,
) -> Result<Stored, AppError> {
    match (err, key) {
        (StoreError::IdempotencyKeyUsed(existing), Some(key)) => replay(&existing, key),
        (err, _) => Err(other(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hash: &str) -> IdempotencyKey {
        IdempotencyKey::new("k-1", hash.into()).unwrap()
    }

    #[test]
    fn same_request_replays_other_request_is_refused() {
        let now = Utc::now();
        let r = record(
            "u",
            Some(&key("h1")),
            201,
            &serde_json::json!({"id": 1}),
            "w1".into(),
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.expires_at, now + Duration::hours(24));
        assert_eq!(
            replay(&r, &key("h1")).unwrap(),
            Stored::Body {
                status: 201,
                body: r#"{"id":1}"#.into()
            }
        );
        assert!(matches!(
            replay(&r, &key("h2")),
            Err(AppError::IdempotencyKeyReused)
        ));
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::new("", "h".into()).is_err());
        assert!(IdempotencyKey::new("a b", "h".into()).is_err());
        assert!(IdempotencyKey::new(&"k".repeat(256), "h".into()).is_err());
        assert!(IdempotencyKey::new("7c1a-uuid", "h".into()).is_ok());
    }
}
