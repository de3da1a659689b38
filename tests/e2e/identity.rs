//! The identity issue's "done when", over HTTP through the gateway: a new user registers,
//! verifies through the emailed token, logs in with MFA, refreshes, creates and shares a
//! workflow, and an admin (made with `dwc-admin`) suspends them.

use e2e::{PASSWORD, Stack};
use serde_json::json;
use shared::crypto::totp;

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

/// `dwc-admin promote <email>` against this stack's table, as an operator would run it.
fn promote(s: &Stack, email: &str) {
    let bin = localstack::gateway::default_bin_dir().join("dwc-admin");
    let out = std::process::Command::new(&bin)
        .args(["promote", email])
        .env("TABLE_NAME", format!("WorkflowTable{}", s.suffix))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --workspace --bins)", bin.display()));
    assert!(
        out.status.success(),
        "dwc-admin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is now an admin"));
}

#[tokio::test]
async fn register_verify_mfa_refresh_share_and_suspend() {
    let s = Stack::start().await;
    // Register; the verification email is read back from the emulator's SES.
    let email = format!("dana-{}@example.com", ulid::Ulid::new()).to_lowercase();
    let r = s
        .send_as(
            "POST",
            "/api/v3/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "display_name": "Dana"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let token = localstack::testing::emailed_token(&email, "confirm").await;
    let r = s
        .send_as(
            "POST",
            "/api/v3/auth/verify-email",
            None,
            Some(json!({"token": token, "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("active")),
        "{}",
        r.text
    );
    let login = s.login(&email, PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let access = login.body["access_token"].as_str().unwrap().to_string();

    // Turn MFA on; from then on login needs a code.
    let setup = s
        .send_as(
            "POST",
            "/api/v3/auth/mfa/totp/setup",
            Some(&access),
            Some(json!({"password": PASSWORD})),
            &[],
        )
        .await;
    let secret = setup.body["secret"].as_str().unwrap().to_string();
    assert!(
        setup.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let enable = s
        .send_as(
            "POST",
            "/api/v3/auth/mfa/totp/enable",
            Some(&access),
            Some(json!({"code": totp::code(&secret, now()).unwrap()})),
            &[],
        )
        .await;
    assert_eq!(
        enable.body["recovery_codes"].as_array().map(Vec::len),
        Some(10),
        "{}",
        enable.text
    );
    let without = s.login(&email, PASSWORD).await;
    assert_eq!(
        (without.status, without.body["type"].as_str()),
        (401, Some("urn:dwc:problem:mfa-required"))
    );
    let with = s
        .send_as("POST", "/api/v3/auth/login", None, Some(json!({"email": email, "password": PASSWORD, "totp_code": totp::code(&secret, now() + 30).unwrap()})), &[])
        .await;
    assert_eq!(with.status, 200, "{}", with.text);

    // Refresh: a new pair; the old refresh token is spent.
    let refreshed = s
        .send_as(
            "POST",
            "/api/v3/auth/refresh",
            None,
            Some(json!({"refresh_token": with.body["refresh_token"]})),
            &[],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let access = refreshed.body["access_token"].as_str().unwrap().to_string();

    // Create a workflow with the token api-auth issued, and share it with Erin.
    let created = s
        .send_as(
            "POST",
            "/api/v3/workflows",
            Some(&access),
            Some(json!({"name": "Shared chain"})),
            &[],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let erin = s.user("erin").await;
    let shared = s
        .send_as(
            "POST",
            &format!("/api/v3/workflows/{id}/shares"),
            Some(&access),
            Some(json!({"email": erin.email, "access": "viewer"})),
            &[],
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.text);
    let list = s.get("/api/v3/workflows", "erin").await;
    assert_eq!(list.body["items"][0]["id"], id.as_str(), "{}", list.text);
    let patch = s
        .send(
            "PATCH",
            &format!("/api/v3/workflows/{id}"),
            Some("erin"),
            Some(json!({"name": "mine now", "expected_version": 1})),
            &[],
        )
        .await;
    assert_eq!(patch.status, 403, "{}", patch.text);

    // The first admin is made with dwc-admin; the admin suspends Dana: at once, her token stops
    // working in every function.
    let root = s.user("root").await;
    promote(&s, &root.email);
    let me = s
        .send_as(
            "GET",
            "/api/v3/auth/me",
            Some(&root.access_token),
            None,
            &[],
        )
        .await;
    assert_eq!(me.body["role"], "admin", "{}", me.text);
    let dana_id = refreshed.body["refresh_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let suspended = s
        .send_as(
            "POST",
            &format!("/api/v3/admin/users/{dana_id}/suspend"),
            Some(&root.access_token),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(
        (suspended.status, suspended.body["status"].as_str()),
        (200, Some("suspended")),
        "{}",
        suspended.text
    );
    let r = s
        .send_as("GET", "/api/v3/workflows", Some(&access), None, &[])
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s
        .send_as("GET", "/api/v3/auth/me", Some(&access), None, &[])
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    // Erin still reads the workflow shared with her.
    assert_eq!(
        s.get(&format!("/api/v3/workflows/{id}"), "erin")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_templates_login_limit_answers_429_with_retry_after() {
    let s = Stack::start().await;
    let u = s.user("limited").await;
    // The template allows 10 logins per account and minute (RateLimitsAuth); the sign-up used one.
    for i in 0..9 {
        let r = s.login(&u.email, PASSWORD).await;
        assert_eq!(r.status, 200, "login {i}: {}", r.text);
    }
    let last = s.login(&u.email, PASSWORD).await;
    assert_eq!(
        (last.status, last.body["type"].as_str()),
        (429, Some("urn:dwc:problem:rate-limited")),
        "{}",
        last.text
    );
    assert!(last.header("retry-after").is_some());
    assert!(last.header("ratelimit").unwrap().contains(";r=0;"));
}

#[tokio::test]
async fn jwks_is_public_and_matches_the_tokens() {
    let s = Stack::start().await;
    let u = s.user("kid").await;
    let jwks = s
        .send("GET", "/.well-known/jwks.json", None, None, &[])
        .await;
    assert_eq!(jwks.status, 200);
    let kid = jsonwebtoken_kid(&u.access_token);
    assert!(
        jwks.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str()),
        "{}",
        jwks.text
    );
}

fn jsonwebtoken_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}
