//! The AsyncAPI document of the WebSocket API: public, served beside the OpenAPI document,
//! which declares its route.

use crate::harness::*;

#[tokio::test]
async fn the_asyncapi_document_is_served_without_credentials() {
    let h = Harness::new().await;
    let reply = h
        .send("GET", "/api/v3/asyncapi.json", None, None, &[])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let doc = &reply.body;
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(*doc, shared::http::asyncapi::document());
    // The commands are sent, answered on the connection; the changes are received.
    let operations = doc["operations"].as_object().unwrap();
    for command in [
        "subscribeWorkflow",
        "unsubscribeWorkflow",
        "ping",
        "getStats",
    ] {
        assert_eq!(operations[command]["action"], "send", "{command}");
        assert!(operations[command]["reply"].is_object(), "{command}");
    }
    assert_eq!(
        operations["receiveWorkflowUpdate"]["action"], "receive",
        "{operations:?}"
    );
    assert_eq!(doc["components"]["securitySchemes"]["token"]["in"], "query");

    // The same API version as the OpenAPI document.
    let openapi = h
        .send("GET", "/api/v3/openapi.json", None, None, &[])
        .await
        .ok(200)
        .clone();
    assert_eq!(doc["info"]["version"], openapi["info"]["version"]);
}

#[tokio::test]
async fn the_openapi_document_declares_the_asyncapi_route_as_public_json() {
    let h = Harness::new().await;
    let doc = h
        .send("GET", "/api/v3/openapi.json", None, None, &[])
        .await
        .ok(200)
        .clone();
    let op = &doc["paths"]["/api/v3/asyncapi.json"]["get"];
    assert!(op.is_object(), "{}", doc["paths"]);
    assert!(
        op["responses"]["200"]["content"]["application/json"].is_object(),
        "{op}"
    );
    assert_eq!(op["security"], serde_json::json!([{}]), "public: {op}");
    assert!(op["responses"]["401"].is_null(), "{op}");
}
