//! The AsyncAPI 3.0 document of the WebSocket API ([`shared::http::asyncapi`]), served here
//! beside the OpenAPI document: the WebSocket API has no HTTP route of its own to serve it.

use std::sync::OnceLock;

/// The document as JSON text, built once per instance.
pub fn document_text() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| shared::http::asyncapi::document().to_string())
}
