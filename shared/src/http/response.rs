//! Building JSON responses.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => raw_json(status, text),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            super::Problem::internal().into_response()
        }
    }
}

/// A JSON body already serialised (an idempotent replay).
pub fn raw_json(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Body::Text(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A page of a list: `{"items", "next_cursor"}`, the cursor opaque.
pub fn page<T: Serialize + utoipa::ToSchema>(page: crate::ports::Page<T>) -> Response<Body> {
    json(
        StatusCode::OK,
        &crate::app::workflows::requests::ListResponse {
            items: page.items,
            next_cursor: page.next.as_ref().map(super::cursor::encode),
        },
    )
}

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut r: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

pub fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
