//! What every function's OpenAPI document says the same way, so a client generated from it is
//! right about the request pipeline ([`super::pipeline`]) and not only about the handlers:
//!
//! - the bearer security scheme ([`BearerAuth`]);
//! - errors are `application/problem+json` (RFC 9457), never `application/json`;
//! - the answers any operation can give without its handler deciding: 403 (IP lists), 429
//!   (rate limits, with `Retry-After`), 503 (a throttled or unreachable dependency), 401 where
//!   a credential is needed, 400 where there are parameters, 404 where the path names
//!   something, and 400/413/415/422 where there is a body;
//! - path ids are ULIDs (26 characters of Crockford base 32), and the parameters every route
//!   reads through [`super::request`] (`If-Match`, `Idempotency-Key`, `limit`, `cursor`, times)
//!   have the limits those helpers enforce.

use serde_json::{Map, Value, json};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The `bearer` security scheme: an access token (JWT) or an API key.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token (JWT) or an API key (dwc_...)"))
                    .build(),
            ),
        );
    }
}

const PROBLEM: &str = "application/problem+json";
use crate::app::schemas::ID as ID_PATTERN;
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// The schema of a parameter read by one of the shared request helpers, by its name.
fn shared_parameter(name: &str) -> Option<Value> {
    Some(match name {
        "If-Match" => json!({
            "type": "string", "pattern": "^(W/)?\"?[0-9]{1,19}\"?$",
            "description": "The ETag read (a quoted version like \"3\")"
        }),
        "Idempotency-Key" => json!({
            "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$",
            "description": "1 to 255 visible ASCII characters"
        }),
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": 100}),
        "cursor" => json!({
            "type": "string", "pattern": "^[A-Za-z0-9_-]+$",
            "description": "`next_cursor` of the previous page, as given"
        }),
        "created_after" | "created_before" => json!({"type": "string", "format": "date-time"}),
        _ => return None,
    })
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn add(responses: &mut Map<String, Value>, status: &str, description: &str) {
    responses
        .entry(status.to_string())
        .or_insert_with(|| problem_response(description));
}

/// Rewrites a generated document (as JSON) to say what the pipeline does; see the module docs.
pub fn finish(doc: &mut Value) {
    let global_security = doc
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let path_names_something = path.contains('{');
        for method in METHODS {
            let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
                continue;
            };
            let secured = match op.get("security").and_then(Value::as_array) {
                Some(s) => s
                    .iter()
                    .any(|r| r.as_object().is_some_and(|o| !o.is_empty())),
                None => global_security,
            };
            let has_body = op.contains_key("requestBody");
            let mut has_params = false;
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                has_params = !params.is_empty();
                for p in params.iter_mut() {
                    let is_path = p.get("in").and_then(Value::as_str) == Some("path");
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                    if is_path && (name == "id" || name.ends_with("_id")) {
                        p["schema"] = json!({
                            "type": "string", "minLength": 26, "maxLength": 26, "pattern": ID_PATTERN
                        });
                        p["description"] = json!("A ULID (26 characters)");
                    } else if let Some(schema) = shared_parameter(name) {
                        p["schema"] = schema;
                    }
                }
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            let Some(responses) = responses else { continue };
            // Errors are problem+json.
            for (status, response) in responses.iter_mut() {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
                    && let Some(schema) = content.remove("application/json")
                {
                    content.insert(PROBLEM.to_string(), schema);
                }
            }
            add(
                responses,
                "403",
                "The source address is refused by the IP lists, or the caller may not do this",
            );
            add(
                responses,
                "429",
                "Over a rate limit: `Retry-After`, `RateLimit-Policy` and `RateLimit` say when to try again",
            );
            add(
                responses,
                "503",
                "A dependency is throttled or unreachable: retry after `Retry-After`",
            );
            if secured {
                add(
                    responses,
                    "401",
                    "No credential, or one that is invalid, expired or revoked",
                );
            }
            if has_params || has_body {
                add(responses, "400", "A malformed parameter or body");
            }
            if path_names_something {
                add(
                    responses,
                    "404",
                    "No such resource, or not one the caller may see",
                );
            }
            if has_body {
                add(responses, "413", "The body is over 1 MiB");
                add(responses, "415", "A Content-Type other than JSON");
                add(
                    responses,
                    "422",
                    "The body breaks a rule: every offending field is listed",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_problem_json_and_pipeline_answers_are_added() {
        let mut doc = json!({
            "security": [{"bearer": []}],
            "paths": {
                "/things/{id}": {"patch": {
                    "parameters": [{"in": "path", "name": "id", "schema": {"type": "string"}}],
                    "requestBody": {},
                    "responses": {
                        "200": {"content": {"application/json": {}}},
                        "409": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
                    }
                }},
                "/health": {"get": {"security": [{}], "responses": {"200": {}}}}
            }
        });
        finish(&mut doc);
        let op = &doc["paths"]["/things/{id}"]["patch"];
        assert!(op["responses"]["200"]["content"]["application/json"].is_object());
        assert!(op["responses"]["409"]["content"][PROBLEM].is_object());
        assert!(op["responses"]["409"]["content"]["application/json"].is_null());
        for status in [
            "400", "401", "403", "404", "413", "415", "422", "429", "503",
        ] {
            assert!(op["responses"][status].is_object(), "{status}");
        }
        assert_eq!(op["parameters"][0]["schema"]["pattern"], ID_PATTERN);
        let health = &doc["paths"]["/health"]["get"]["responses"];
        assert!(health["401"].is_null() && health["404"].is_null() && health["400"].is_null());
        assert!(health["429"].is_object() && health["503"].is_object());
    }
}
