//! Every /api/v3 route needs a valid ES256 access token; anything else is a 401 and changes
//! nothing.

use crate::harness::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::testing::TestKeys;

async fn create_with_token(h: &Harness, token: &str) -> Reply {
    h.account(ALICE).await;
    let auth = format!("Bearer {token}");
    h.send(
        "POST",
        "/api/v3/workflows",
        None,
        Some(json!({"name": "x"})),
        &[("authorization", auth.as_str())],
    )
    .await
}

fn claims_with(h: &Harness, key: &str, value: Value) -> String {
    let mut claims = TestKeys::claims(ALICE);
    claims[key] = value;
    h.keys.sign(&claims)
}

#[tokio::test]
async fn bad_tokens_are_refused_and_nothing_is_written() {
    let h = Harness::new().await;
    let now = chrono::Utc::now().timestamp();
    let valid = h.keys.token(ALICE);
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut claims = TestKeys::claims("mallory");
    claims["roles"] = json!(["admin"]);
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        payload
    );
    let public_key_bytes = h.keys.jwk().to_string();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(h.keys.kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &TestKeys::claims(ALICE),
        &EncodingKey::from_secret(public_key_bytes.as_bytes()),
    )
    .unwrap();
    let other_key = TestKeys::generate("other-key").token(ALICE);
    let same_kid_other_key = TestKeys::generate(&h.keys.kid).token(ALICE);
    let mut no_sub = TestKeys::claims(ALICE);
    no_sub.as_object_mut().unwrap().remove("sub");
    let cases: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        ("HS256 signed with the public key", hs256),
        (
            "wrong audience",
            claims_with(&h, "aud", json!("someone-else")),
        ),
        (
            "wrong issuer",
            claims_with(&h, "iss", json!("https://evil.example")),
        ),
        (
            "expired beyond the skew",
            claims_with(&h, "exp", json!(now - 120)),
        ),
        ("not yet valid", claims_with(&h, "nbf", json!(now + 600))),
        (
            "tampered payload",
            format!("{head}.{forged_payload}.{signature}"),
        ),
        ("unknown kid", other_key),
        ("right kid, wrong key", same_kid_other_key),
        ("no subject", h.keys.sign(&no_sub)),
        ("garbage", "not-a-jwt".to_string()),
    ];
    for (name, token) in cases {
        let r = create_with_token(&h, &token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        r.problem(401, "unauthorized");
        assert!(
            r.header("www-authenticate").unwrap().starts_with("Bearer"),
            "{name}"
        );
        assert!(
            !r.text.contains(&token),
            "{name}: the token must not be echoed"
        );
    }
    let missing = h.send("GET", "/api/v3/workflows", None, None, &[]).await;
    missing.problem(401, "unauthorized");
    let basic = h
        .send(
            "GET",
            "/api/v3/workflows",
            None,
            None,
            &[("authorization", "Basic YWxpY2U6cHc=")],
        )
        .await;
    basic.problem(401, "unauthorized");
    assert!(
        h.items().await.is_empty(),
        "a refused request wrote something"
    );
}

#[tokio::test]
async fn clock_skew_up_to_a_minute_is_tolerated() {
    let h = Harness::new().await;
    let now = chrono::Utc::now().timestamp();
    let r = create_with_token(&h, &claims_with(&h, "exp", json!(now - 30))).await;
    r.ok(201);
}

#[tokio::test]
async fn public_routes_need_no_token_and_make_no_aws_call() {
    let h = Harness::new().await;
    let r = h.send("GET", "/health", None, None, &[]).await;
    assert_eq!(r.ok(200)["status"], "ok");
    let r = h.send("GET", "/api/v3/openapi.json", None, None, &[]).await;
    assert!(r.ok(200)["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(h.counter.take().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = Harness::new().await;
    h.get("/api/v3/nothing", ALICE)
        .await
        .problem(404, "not-found");
    // No template route is `PUT /api/v3/workflows`: API Gateway answers that itself, and a
    // request that reaches the function without a route key it knows is a 404 too.
    h.send("PUT", "/api/v3/workflows", Some(ALICE), None, &[])
        .await
        .problem(404, "not-found");
    // A route key of another function (or none at all) is not this function's either.
    let req = localstack::testing::gateway_request(
        "POST",
        "/api/v3/auth/login",
        &[("content-type", "application/json")],
        lambda_http::Body::Text("{}".into()),
        "203.0.113.9",
    );
    let response = api_workflows::handle(&h.api, req).await;
    assert_eq!(response.status(), 404);
}
