//! The OpenAPI document and the template's routes describe the same API.

use crate::harness::*;
use shared::http::pipeline::Routes;
use std::collections::BTreeSet;

#[tokio::test]
async fn openapi_has_exactly_the_template_routes() {
    let h = Harness::new().await;
    let doc = h.send("GET", "/api/v3/auth/openapi.json", None, None).await;
    let doc = doc.ok(200).clone();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let template = localstack::template::Template::load_default().unwrap();
    let routed: BTreeSet<(String, String)> = template
        .http_routes()
        .into_iter()
        .filter(|r| r.function == "ApiAuthFunction")
        .map(|r| (r.method, r.path))
        // The root JWKS is the same document as the one under /api/v3/auth.
        .filter(|(_, p)| p != "/.well-known/jwks.json")
        .collect();
    assert_eq!(documented, routed);
    assert_eq!(routed.len(), 44);
    // The function's route table is the template's routes for it, key for key: every route
    // API Gateway sends here has a handler, and the handler knows no route it does not send.
    let table: BTreeSet<String> = <api_auth::Route as Routes>::TABLE
        .iter()
        .map(|(key, _)| key.to_string())
        .collect();
    assert_eq!(
        table,
        localstack::testing::template_route_keys("ApiAuthFunction")
    );
}
