//! The API Gateway HTTP API event source: matches a request to a template route, sends the
//! function a payload format 2.0 event, and maps its answer back, as API Gateway does: 502 for
//! a crashed function or a malformed answer, 504 past the function's timeout.

use super::FunctionPool;
use super::logs::LogSink;
use super::pool::InvokeError;
use super::server::{self, Reply};
use crate::template::HttpRoute;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Lambda's limit on a synchronous invocation's response.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path.
    Greedy(String),
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    segments: Vec<Segment>,
    function: String,
    route_key: String,
}

/// The template's routes, most specific first.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    default: Option<Route>,
}

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub function: String,
    pub route_key: String,
    pub path_parameters: HashMap<String, String>,
}

impl Router {
    pub fn new(routes: &[HttpRoute]) -> Router {
        let mut router = Router::default();
        for r in routes {
            let route = Route {
                method: r.method.clone(),
                segments: parse_path(&r.path),
                function: r.function.clone(),
                route_key: if r.path == "$default" {
                    "$default".into()
                } else {
                    format!("{} {}", r.method, r.path)
                },
            };
            if r.path == "$default" {
                router.default = Some(route);
            } else {
                router.routes.push(route);
            }
        }
        // API Gateway picks the most specific route: literal segments before parameters before
        // greedy ones, position by position; an exact method before ANY.
        router.routes.sort_by(|a, b| {
            rank(&a.segments)
                .cmp(&rank(&b.segments))
                .then((a.method == "ANY").cmp(&(b.method == "ANY")))
        });
        router
    }

    pub fn find(&self, method: &str, path: &str) -> Option<Matched> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for route in &self.routes {
            if route.method != method && route.method != "ANY" {
                continue;
            }
            if let Some(params) = match_segments(&route.segments, &parts) {
                return Some(Matched {
                    function: route.function.clone(),
                    route_key: route.route_key.clone(),
                    path_parameters: params,
                });
            }
        }
        self.default.as_ref().map(|d| Matched {
            function: d.function.clone(),
            route_key: d.route_key.clone(),
            path_parameters: HashMap::new(),
        })
    }
}

fn parse_path(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(name) => Segment::Greedy(name.to_string()),
                    None => Segment::Param(name.to_string()),
                },
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

fn rank(segments: &[Segment]) -> Vec<u8> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(_) => 0,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 2,
        })
        .collect()
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                let rest = parts
                    .get(i..)
                    .filter(|r| !r.is_empty() && !r[0].is_empty())?;
                params.insert(name.clone(), rest.join("/"));
                return Some(params);
            }
            Segment::Literal(l) => {
                if parts.get(i) != Some(&l.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), percent_decode(value));
            }
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct HttpApi {
    router: Router,
    functions: Arc<HashMap<String, Arc<FunctionPool>>>,
    logs: LogSink,
}

fn message(status: u16, text: &str) -> Reply {
    server::reply(
        status,
        "application/json",
        format!(r#"{{"message":"{text}"}}"#),
    )
}

impl HttpApi {
    pub fn new(
        router: Router,
        functions: Arc<HashMap<String, Arc<FunctionPool>>>,
        logs: LogSink,
    ) -> HttpApi {
        HttpApi {
            router,
            functions,
            logs,
        }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let Some(matched) = self.router.find(&method, &path) else {
            return message(404, "Not Found");
        };
        let Some(pool) = self.functions.get(&matched.function) else {
            return message(500, "Internal Server Error");
        };
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return message(413, "Request Entity Too Large"),
        };
        let event = event(&parts, body, &matched, "127.0.0.1");
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => Bytes::from(p),
            Err(_) => return message(500, "Internal Server Error"),
        };
        // The invocation runs on its own task: a client that disconnects drops this future, and
        // the instance must still be released (or replaced) when its answer comes.
        let invocation = tokio::spawn({
            let pool = pool.clone();
            async move { pool.invoke(payload).await }
        });
        let outcome = match invocation.await {
            Ok(outcome) => outcome,
            Err(_) => return message(500, "Internal Server Error"),
        };
        if let Ok(answer) = &outcome
            && answer.len() > MAX_RESPONSE_BYTES
        {
            self.logs.line(
                &pool.name,
                &format!(
                    "{method} {path}: response of {} bytes is over Lambda's 6 MB limit",
                    answer.len()
                ),
            );
            return message(502, "Internal Server Error");
        }
        match outcome {
            Ok(answer) => response(&answer).unwrap_or_else(|why| {
                self.logs.line(
                    &pool.name,
                    &format!("malformed response for {method} {path}: {why}"),
                );
                message(502, "Internal Server Error")
            }),
            Err(InvokeError::Timeout(t)) => {
                self.logs.line(
                    &pool.name,
                    &format!("{method} {path}: timed out after {t:?}"),
                );
                message(504, "Gateway Timeout")
            }
            Err(e) => {
                self.logs.line(&pool.name, &format!("{method} {path}: {e}"));
                message(502, "Internal Server Error")
            }
        }
    }
}

/// Each header's name, once, with its values that are text, in order.
pub(super) fn header_values(
    headers: &http::HeaderMap,
) -> impl Iterator<Item = (&http::HeaderName, Vec<&str>)> {
    headers.keys().map(|name| {
        let values = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (name, values)
    })
}

/// The payload format 2.0 event for one request from `source_ip`.
pub fn event(
    parts: &hyper::http::request::Parts,
    body: Bytes,
    matched: &Matched,
    source_ip: &str,
) -> ApiGatewayV2httpRequest {
    let now = chrono::Utc::now();
    let mut headers = http::HeaderMap::new();
    let mut cookies = Vec::new();
    // API Gateway joins repeated headers with commas and moves cookies to `cookies`.
    for (name, values) in header_values(&parts.headers) {
        if name == http::header::COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split("; "))
                    .map(str::to_string),
            );
            continue;
        }
        if let Ok(v) = http::HeaderValue::from_str(&values.join(",")) {
            headers.insert(name.clone(), v);
        }
    }
    let query = parts.uri.query().unwrap_or("").to_string();
    let mut e = ApiGatewayV2httpRequest::default();
    e.version = Some("2.0".into());
    e.route_key = Some(matched.route_key.clone());
    e.raw_path = Some(parts.uri.path().to_string());
    e.raw_query_string = Some(query.clone());
    e.cookies = (!cookies.is_empty()).then_some(cookies);
    e.query_string_parameters = query.parse().unwrap_or_default();
    e.path_parameters = matched.path_parameters.clone();
    let text = (!body.is_empty()).then(|| std::str::from_utf8(&body).ok().map(str::to_string));
    match text {
        None => {}
        Some(Some(t)) => e.body = Some(t),
        Some(None) => {
            e.body = Some(STANDARD.encode(&body));
            e.is_base64_encoded = true;
        }
    }
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.route_key = Some(matched.route_key.clone());
    ctx.account_id = Some("000000000000".into());
    ctx.stage = Some("$default".into());
    ctx.request_id = Some(ulid::Ulid::new().to_string());
    ctx.apiid = Some("local".into());
    ctx.domain_name = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    ctx.domain_prefix = Some("local".into());
    ctx.time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    ctx.time_epoch = now.timestamp_millis();
    ctx.http.method = parts.method.clone();
    ctx.http.path = Some(parts.uri.path().to_string());
    ctx.http.protocol = Some("HTTP/1.1".into());
    ctx.http.source_ip = Some(source_ip.into());
    ctx.http.user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    e.request_context = ctx;
    e.headers = headers;
    e
}

/// A function's answer in payload format 2.0 (the fields API Gateway reads).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionResponse {
    status_code: i64,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    multi_value_headers: HashMap<String, Vec<String>>,
    #[serde(default)]
    cookies: Vec<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

/// The HTTP response for a function's answer; `Err` says why it is malformed.
fn response(answer: &[u8]) -> Result<Reply, String> {
    let value: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| format!("not JSON: {e}"))?;
    // Payload 2.0: an answer without statusCode is the body of a 200 JSON response.
    if value.get("statusCode").is_none() {
        return Ok(server::reply(200, "application/json", answer.to_vec()));
    }
    let r: FunctionResponse =
        serde_json::from_value(value).map_err(|e| format!("not a response: {e}"))?;
    let status = u16::try_from(r.status_code)
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or("statusCode out of range")?;
    let body = match &r.body {
        None => Bytes::new(),
        Some(b) if r.is_base64_encoded => Bytes::from(
            STANDARD
                .decode(b)
                .map_err(|e| format!("bad base64 body: {e}"))?,
        ),
        Some(b) => Bytes::copy_from_slice(b.as_bytes()),
    };
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = hyper::StatusCode::from_u16(status).map_err(|e| e.to_string())?;
    let headers = out.headers_mut();
    let pairs = r.headers.iter().chain(
        r.multi_value_headers
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k, v))),
    );
    for (k, v) in pairs {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("bad header name {k:?}: {e}"))?;
        let value =
            http::HeaderValue::from_str(v).map_err(|e| format!("bad header value for {k}: {e}"))?;
        headers.append(name, value);
    }
    for c in &r.cookies {
        let value = http::HeaderValue::from_str(c).map_err(|e| format!("bad cookie: {e}"))?;
        headers.append(http::header::SET_COOKIE, value);
    }
    if !out.headers().contains_key(http::header::CONTENT_TYPE) {
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str, function: &str) -> HttpRoute {
        HttpRoute {
            function: function.into(),
            event: "e".into(),
            method: method.into(),
            path: path.into(),
        }
    }

    #[test]
    fn most_specific_route_wins_and_parameters_are_extracted() {
        let router = Router::new(&[
            route("GET", "/api/v3/workflows/{id}", "F"),
            route("POST", "/api/v3/workflows/bulk", "B"),
            route("GET", "/api/v3/workflows/{id}/nodes/{node_id}", "F"),
            route("ANY", "/files/{path+}", "G"),
        ]);
        let m = router.find("GET", "/api/v3/workflows/abc").unwrap();
        assert_eq!(m.route_key, "GET /api/v3/workflows/{id}");
        assert_eq!(m.path_parameters["id"], "abc");
        assert_eq!(
            router
                .find("POST", "/api/v3/workflows/bulk")
                .unwrap()
                .function,
            "B"
        );
        assert_eq!(
            router
                .find("GET", "/api/v3/workflows/bulk")
                .unwrap()
                .path_parameters["id"],
            "bulk"
        );
        let m = router
            .find("GET", "/api/v3/workflows/w%20x/nodes/n1")
            .unwrap();
        assert_eq!(
            (
                m.path_parameters["id"].as_str(),
                m.path_parameters["node_id"].as_str()
            ),
            ("w x", "n1")
        );
        assert_eq!(
            router
                .find("DELETE", "/files/a/b/c")
                .unwrap()
                .path_parameters["path"],
            "a/b/c"
        );
        assert!(router.find("PUT", "/api/v3/workflows/abc").is_none());
        assert!(router.find("GET", "/api/v3/workflows/abc/extra").is_none());
        assert!(router.find("GET", "/api/v3/workflows/").is_none());
    }

    fn futures_body(r: Reply) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.into_body().collect()).unwrap().to_bytes()
    }

    #[test]
    fn answers_are_mapped_or_refused() {
        let ok = response(br#"{"statusCode":201,"headers":{"etag":"\"1\""},"body":"{\"a\":1}","isBase64Encoded":false}"#).unwrap();
        assert_eq!(ok.status(), 201);
        assert_eq!(ok.headers()["etag"], "\"1\"");
        let plain = response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(plain.status(), 200);
        let b64 = response(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#).unwrap();
        let body = futures_body(b64);
        assert_eq!(body, Bytes::from_static(b"hi"));
        assert!(response(b"not json").is_err());
        assert!(response(br#"{"statusCode":99}"#).is_err());
    }
}
