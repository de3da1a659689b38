//! Reading requests: JSON bodies (size, media type, syntax and shape checked, with the path of
//! the offending field), conditional and idempotency headers, query strings and ids.

use super::problem::Problem;
use crate::app::IdempotencyKey;
use crate::domain::{FieldError, ids};
use http::{StatusCode, header};
use lambda_http::{Body, Request};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Parses a JSON body into `T`, which refuses unknown fields.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!(
                "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                bytes.len()
            ),
        ));
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ct != "application/json" && !ct.ends_with("+json") {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("send Content-Type: application/json (got {ct:?})"),
            ));
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-json",
            "Malformed JSON",
            "a JSON body is required",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { String::new() } else { path };
            Problem::validation(vec![FieldError::new(
                field,
                strip_position(&inner.to_string()),
            )])
        } else {
            malformed(&inner)
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(e: &serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-json",
        "Malformed JSON",
        e.to_string(),
    )
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The version in `If-Match` (`"3"`, `W/"3"` or `3`), if sent.
pub fn if_match(req: &Request) -> Result<Option<u64>, Problem> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>().map(Some).map_err(|_| {
        Problem::bad_parameter(
            "If-Match",
            "must be the ETag of the resource, a quoted version like \"3\"",
        )
    })
}

/// The `Idempotency-Key`, bound to a hash of the method, path and body it came with.
pub fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let mut hash = Sha256::new();
    hash.update(req.method().as_str());
    hash.update(b" ");
    hash.update(req.uri().path());
    hash.update(b"\n");
    hash.update(body_bytes(req));
    let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    IdempotencyKey::new(v.to_str().unwrap_or(""), digest)
        .map(Some)
        .map_err(|e| match e {
            crate::app::AppError::Validation(errors) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                "Idempotency-Key is malformed",
            )
            .with_errors(errors),
            other => other.into(),
        })
}

/// Query parameters; only `allowed` names may appear, each at most once.
pub fn query(req: &Request, allowed: &[&str]) -> Result<HashMap<String, String>, Problem> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(Problem::bad_parameter(
                &k,
                format!("unknown query parameter; allowed: {}", allowed.join(", ")),
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Problem::bad_parameter(&k, "given more than once"));
        }
    }
    Ok(out)
}

/// `limit`: 1..=`max`, `default` when absent.
pub fn limit(q: &HashMap<String, String>, default: u32, max: u32) -> Result<u32, Problem> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Problem::bad_parameter(
                "limit",
                format!("must be an integer from 1 to {max}"),
            )),
        },
    }
}

/// `cursor`, decoded; a value that is not one of ours is a 400.
pub fn cursor(q: &HashMap<String, String>) -> Result<Option<crate::ports::PageKey>, Problem> {
    match q.get("cursor") {
        None => Ok(None),
        Some(c) => super::cursor::decode(c)
            .map(Some)
            .ok_or_else(|| Problem::bad_parameter("cursor", "is not a cursor of this list")),
    }
}

/// A path id; malformed ids can never exist, so they are refused before any lookup.
pub fn id<'a>(name: &str, value: &'a str) -> Result<&'a str, Problem> {
    if ids::is_valid_id(value) {
        Ok(value)
    } else {
        Err(Problem::bad_parameter(
            name,
            "is not a valid id (26 characters, ULID)",
        ))
    }
}

/// `true`/`false` query flags.
pub fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, Problem> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Problem::bad_parameter(name, "must be true or false")),
    }
}

/// An RFC 3339 time parameter, in UTC.
pub fn time(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    q.get(name)
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .map_err(|_| {
                    Problem::bad_parameter(
                        name,
                        "must be an RFC 3339 time like 2026-01-31T12:00:00Z",
                    )
                })
        })
        .transpose()
}
