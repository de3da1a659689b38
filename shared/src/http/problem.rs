//! RFC 9457 problem details (`application/problem+json`), one stable `type` per kind of error.

use crate::app::AppError;
use crate::domain::FieldError;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem; `type` is `urn:dwc:problem:<slug>` and never changes for the same kind of error.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The offending fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Further members particular to the problem (`current_version`, `allowed`, ...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    #[schema(ignore)]
    headers: Vec<(header::HeaderName, String)>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            problem_type: format!("urn:dwc:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: vec![],
            extensions: Map::new(),
            headers: vec![],
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_string(), value);
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "Validation failed",
            detail,
        )
        .with_errors(errors)
    }

    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
            format!("{name}: {message}"),
        )
        .with_errors(vec![FieldError::new(name, message)])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")
    }

    pub fn not_found(what: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found"),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request could not be completed; it has been logged",
        )
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut response = Response::new(Body::Text(body));
        *response.status_mut() = self.status_code();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

impl From<crate::http::AuthError> for Problem {
    fn from(e: crate::http::AuthError) -> Self {
        match e {
            crate::http::AuthError::Unavailable(cause) => AppError::Unavailable(cause).into(),
            other => Problem::unauthorized(other.to_string()),
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        use StatusCode as S;
        match e {
            AppError::Validation(errors) => Problem::validation(errors),
            AppError::NotFound(what) => Problem::not_found(what),
            AppError::Forbidden(why) => Problem::forbidden(why),
            AppError::Unauthorized(why) => Problem::new(
                S::UNAUTHORIZED,
                "unauthorized",
                "Authentication failed",
                why,
            ),
            AppError::MfaRequired => Problem::new(
                S::UNAUTHORIZED,
                "mfa-required",
                "Second factor required",
                "this account uses two-factor authentication: send totp_code or recovery_code",
            ),
            AppError::Locked { retry_after_s } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "account-locked",
                "Account locked",
                format!("too many failed logins; try again in {retry_after_s} s"),
            )
            .with("retry_after", json!(retry_after_s))
            .with_header(header::RETRY_AFTER, retry_after_s.to_string()),
            AppError::Conflict { slug, detail } => {
                Problem::new(S::CONFLICT, slug, "Conflict", detail)
            }
            AppError::VersionConflict { current_version } => Problem::new(
                S::CONFLICT,
                "version-conflict",
                "Version conflict",
                format!("the resource is at version {current_version}; read it again and retry"),
            )
            .with("current_version", json!(current_version)),
            AppError::IllegalTransition { from, to, allowed } => Problem::new(
                S::CONFLICT,
                "illegal-transition",
                "Illegal status transition",
                format!(
                    "cannot go from {from} to {to}; allowed from {from}: {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            )
            .with("current_status", json!(from))
            .with("allowed", json!(allowed)),
            AppError::NodeLimitReached { max_nodes } => Problem::new(
                S::CONFLICT,
                "node-limit-reached",
                "Node limit reached",
                format!("the workflow already has settings.max_nodes = {max_nodes} nodes"),
            )
            .with("max_nodes", json!(max_nodes)),
            AppError::MaxNodesBelowCount { node_count } => Problem::new(
                S::CONFLICT,
                "max-nodes-below-count",
                "max_nodes below node count",
                format!("settings.max_nodes cannot be below the workflow's {node_count} nodes"),
            )
            .with("node_count", json!(node_count)),
            AppError::NodeHasChildren { child_count } => Problem::new(
                S::CONFLICT,
                "node-has-children",
                "Node has children",
                format!(
                    "the node has {child_count} children; delete them first or pass ?cascade=true"
                ),
            )
            .with("child_count", json!(child_count)),
            AppError::TreeChanged => Problem::new(
                S::CONFLICT,
                "tree-changed",
                "Tree changed",
                "nodes were added or removed meanwhile; repeat the request",
            ),
            AppError::IdempotencyKeyReused => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used with a different request",
            ),
            AppError::PreconditionRequired => Problem::new(
                S::PRECONDITION_REQUIRED,
                "precondition-required",
                "Precondition required",
                "send If-Match with the version you read (its ETag), or expected_version in the body",
            ),
            AppError::BadCursor => Problem::bad_parameter("cursor", "is not a cursor of this list"),
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "the store is busy; retry shortly",
                )
                .with_header(header::RETRY_AFTER, "1")
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Problem::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(p: Problem) -> (u16, Value, Response<Body>) {
        let status = p.status;
        let r = p.into_response();
        let v: Value = serde_json::from_slice(r.body().as_ref()).unwrap();
        (status, v, r)
    }

    #[test]
    fn illegal_transition_names_allowed_targets() {
        let (status, v, r) = body(
            AppError::IllegalTransition {
                from: "cancelled",
                to: "active",
                allowed: vec!["deleted"],
            }
            .into(),
        );
        assert_eq!(status, 409);
        assert_eq!(v["type"], "urn:dwc:problem:illegal-transition");
        assert_eq!(v["allowed"], json!(["deleted"]));
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }

    #[test]
    fn validation_lists_fields_and_internal_hides_cause() {
        let (status, v, _) =
            body(AppError::Validation(vec![FieldError::new("name", "must not be empty")]).into());
        assert_eq!(status, 422);
        assert_eq!(v["errors"][0]["field"], "name");
        let (status, v, _) = body(AppError::Internal("secret detail".into()).into());
        assert_eq!(status, 500);
        assert!(!v.to_string().contains("secret"));
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let (_, _, r) = body(Problem::unauthorized("missing token"));
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}
