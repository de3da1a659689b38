//! `GET /docs`: a page that renders the API's documents — the OpenAPI ones of `api-workflows`,
//! `api-auth` and `api-analytics` and the AsyncAPI one of the WebSocket API — in the browser,
//! with nothing fetched from elsewhere: its script and styles are in the page, and its
//! Content-Security-Policy allows only that script (by its SHA-256 hash), inline styles, and
//! requests to the page's own origin (the documents).
//!
//! The script reads each document with `fetch` and draws, per OpenAPI document, its title and
//! every path with its methods (summary, description, parameters, request body schema,
//! responses), and per AsyncAPI document its channels with their messages and its operations.
//! Every text of a document goes in through `textContent`, never as markup.

use base64::Engine;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The documents the page renders, in order: (path, kind).
pub const DOCUMENTS: &[(&str, &str)] = &[
    ("/api/v3/openapi.json", "openapi"),
    ("/api/v3/auth/openapi.json", "openapi"),
    ("/api/v3/analytics/openapi.json", "openapi"),
    ("/api/v3/asyncapi.json", "asyncapi"),
];

/// The renderer (the page's one script).
const SCRIPT: &str = include_str!("docs.js");

const HEAD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Document Workflow Chain API</title>
<style>
  body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #16191f; background: #fafafa; }
  header { padding: 12px 20px; background: #232f3e; color: #fff; }
  header h1 { margin: 0; font-size: 18px; }
  header nav a { color: #d5dbdb; margin-right: 14px; font-size: 13px; }
  main { padding: 8px 20px 40px; max-width: 1100px; }
  section.document { margin-top: 24px; }
  section.document > h2 { border-bottom: 2px solid #232f3e; padding-bottom: 4px; }
  .version { color: #5f6b7a; font-size: 13px; margin-left: 8px; }
  .description { white-space: pre-wrap; color: #333; }
  details.route, details.channel, details.operation { background: #fff; border: 1px solid #d5dbdb; border-radius: 4px; margin: 6px 0; }
  details > summary { cursor: pointer; padding: 6px 10px; list-style: none; }
  details > div { padding: 4px 12px 10px; border-top: 1px solid #eaeded; }
  .method { display: inline-block; min-width: 62px; text-align: center; font-weight: 700; font-size: 12px; color: #fff; border-radius: 3px; padding: 1px 6px; margin-right: 8px; }
  .GET { background: #0972d3; } .POST { background: #037f0c; } .PUT { background: #8d6605; }
  .PATCH { background: #7d3ca7; } .DELETE { background: #d91515; } .HEAD, .OPTIONS { background: #5f6b7a; }
  .send { background: #037f0c; } .receive { background: #0972d3; }
  .path { font-family: ui-monospace, Menlo, Consolas, monospace; font-weight: 600; }
  .summary { color: #5f6b7a; margin-left: 10px; }
  table { border-collapse: collapse; margin: 4px 0 8px; }
  th, td { border: 1px solid #e0e4e4; padding: 3px 8px; text-align: left; vertical-align: top; font-size: 13px; }
  code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; background: #f2f3f3; padding: 0 3px; }
  h4 { margin: 8px 0 2px; font-size: 13px; }
  .error { color: #d91515; font-weight: 600; }
  .deprecated { text-decoration: line-through; }
</style>
</head>
<body>
<header><h1>Document Workflow Chain API</h1><nav id="nav"></nav></header>
<main id="docs"><p id="loading">Loading the API documents…</p></main>
<script>"#;

const TAIL: &str = "</script>\n</body>\n</html>\n";

static PAGE: LazyLock<String> = LazyLock::new(|| format!("{HEAD}{SCRIPT}{TAIL}"));

/// The Content-Security-Policy of the page: its own script (by hash), inline styles, and
/// requests to its origin only.
static POLICY: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
});

/// The `GET /docs` answer: the page, `text/html`, with its Content-Security-Policy.
pub fn page() -> Response<Body> {
    let mut r = Response::new(Body::Text(PAGE.clone()));
    *r.status_mut() = StatusCode::OK;
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(policy) = HeaderValue::from_str(&POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    fn body(r: &Response<Body>) -> String {
        match r.body() {
            Body::Text(t) => t.clone(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn the_page_fetches_nothing_from_elsewhere_and_has_a_strict_policy() {
        let r = page();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let html = body(&r);
        // No asset from another origin (the SVG namespace is a name, not a URL fetched: there
        // is none here either).
        for scheme in ["http://", "https://", "//cdn", "src=\"//"] {
            assert!(!html.contains(scheme), "the page names {scheme}");
        }
        assert!(!html.contains("<link"), "no stylesheet links");
        assert_eq!(html.matches("<script").count(), 1, "one inline script");
        assert!(!html.contains("<script src"));
        // Each document it renders.
        for (path, _) in DOCUMENTS {
            assert!(html.contains(path), "{path}");
        }
        // No markup from document text: the renderer never uses innerHTML and friends.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "the script uses {sink}");
        }

        let policy = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-eval"));
        assert!(!policy.contains("script-src 'unsafe-inline'"));
        // The hash in the policy is the hash of the page's script, exactly as it stands there.
        let start = html.find("<script>").unwrap() + "<script>".len();
        let end = html.find("</script>").unwrap();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(&html.as_bytes()[start..end]));
        assert!(
            policy.contains(&format!("script-src 'sha256-{hash}'")),
            "{policy}"
        );
    }
}
