//! TOTP (RFC 6238) with recovery codes.

use crate::harness::*;
use serde_json::{Value, json};
use shared::crypto::totp;

fn code(secret: &str, h: &Harness, step_offset: i64) -> String {
    use shared::ports::Clock;
    let t = h.clock.now().timestamp() + step_offset * 30;
    totp::code(secret, t as u64).unwrap()
}

/// Sets MFA up and enables it; returns (secret, recovery codes).
async fn enable(h: &Harness, u: &User) -> (String, Vec<String>) {
    let setup = h
        .post(
            "/api/v3/auth/mfa/totp/setup",
            Some(&u.access),
            json!({"password": PASSWORD}),
        )
        .await;
    let secret = setup.ok(200)["secret"].as_str().unwrap().to_string();
    let r = h
        .post(
            "/api/v3/auth/mfa/totp/enable",
            Some(&u.access),
            json!({"code": code(&secret, h, 0)}),
        )
        .await;
    let codes: Vec<String> = r.ok(200)["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (secret, codes)
}

async fn login_with(h: &Harness, u: &User, extra: Value) -> Reply {
    let mut body = json!({"email": u.email, "password": PASSWORD});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    h.post("/api/v3/auth/login", None, body).await
}

#[tokio::test]
async fn setup_gives_an_otpauth_uri_and_enable_needs_a_right_code() {
    let h = Harness::new().await;
    let u = h.sign_up("mfa").await;
    h.post(
        "/api/v3/auth/mfa/totp/enable",
        Some(&u.access),
        json!({"code": "123456"}),
    )
    .await
    .problem(409, "mfa-not-set-up");
    // Setting up needs the password: a stolen access token alone cannot lock the owner out.
    h.post(
        "/api/v3/auth/mfa/totp/setup",
        Some(&u.access),
        json!({"password": "not the password"}),
    )
    .await
    .problem(422, "validation-failed");
    h.post("/api/v3/auth/mfa/totp/setup", Some(&u.access), json!({}))
        .await
        .problem(422, "validation-failed");
    let setup = h
        .post(
            "/api/v3/auth/mfa/totp/setup",
            Some(&u.access),
            json!({"password": PASSWORD}),
        )
        .await;
    let setup = setup.ok(200).clone();
    let secret = setup["secret"].as_str().unwrap();
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let wrong = if code(secret, &h, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    h.post(
        "/api/v3/auth/mfa/totp/enable",
        Some(&u.access),
        json!({"code": wrong}),
    )
    .await
    .problem(422, "validation-failed");
    assert_eq!(
        h.get("/api/v3/auth/me", &u.access).await.ok(200)["mfa_enabled"],
        false
    );
    let r = h
        .post(
            "/api/v3/auth/mfa/totp/enable",
            Some(&u.access),
            json!({"code": code(secret, &h, 0)}),
        )
        .await;
    let codes = r.ok(200)["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        h.get("/api/v3/auth/me", &u.access).await.ok(200)["mfa_enabled"],
        true
    );
    // The secret is stored sealed under a KMS data key, the recovery codes as keyed hashes:
    // neither the secret, nor a code, nor a code's unkeyed hash is in the item.
    let item = h.accounts_item(&u.user_id).await;
    let stored = item.to_string();
    assert!(
        !stored.contains(secret),
        "the TOTP secret is stored in clear"
    );
    assert!(
        item["mfa"]["data_key"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    for c in &codes {
        let c = c.as_str().unwrap();
        assert!(!stored.contains(c));
        let plain = c.replace('-', "");
        for unkeyed in [
            shared::crypto::sha256_hex(&format!("{}:{plain}", u.user_id)),
            shared::crypto::sha256_hex(&plain),
        ] {
            assert!(
                !stored.contains(&unkeyed),
                "a recovery code's unkeyed hash is stored"
            );
        }
    }
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lock_everywhere_a_code_is_checked() {
    let h = Harness::new().await;
    let u = h.sign_up("mfa4").await;
    let (secret, _) = enable(&h, &u).await;
    let wrong = if code(&secret, &h, 1) == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        h.post(
            "/api/v3/auth/mfa/totp/disable",
            Some(&u.access),
            json!({"password": PASSWORD, "totp_code": wrong}),
        )
        .await
        .problem(401, "unauthorized");
    }
    assert_eq!(h.accounts_item(&u.user_id).await["failed_logins"], 5);
    // Locked now: even the right code is refused until the lock has passed.
    let r = h
        .post(
            "/api/v3/auth/mfa/totp/disable",
            Some(&u.access),
            json!({"password": PASSWORD, "totp_code": code(&secret, &h, 1)}),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(
        h.get("/api/v3/auth/me", &u.access).await.ok(200)["mfa_enabled"],
        true
    );
}

#[tokio::test]
async fn login_with_mfa_needs_a_fresh_code_or_an_unused_recovery_code() {
    let h = Harness::new().await;
    let u = h.sign_up("mfa2").await;
    let (secret, codes) = enable(&h, &u).await;
    login_with(&h, &u, json!({}))
        .await
        .problem(401, "mfa-required");
    let wrong = if code(&secret, &h, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    login_with(&h, &u, json!({"totp_code": wrong}))
        .await
        .problem(401, "unauthorized");
    // The code used to enable is spent; the next step's code works once.
    login_with(&h, &u, json!({"totp_code": code(&secret, &h, 0)}))
        .await
        .problem(401, "unauthorized");
    login_with(&h, &u, json!({"totp_code": code(&secret, &h, 1)}))
        .await
        .ok(200);
    let replay = login_with(&h, &u, json!({"totp_code": code(&secret, &h, 1)})).await;
    assert!(
        replay.problem(401, "unauthorized")["detail"]
            .as_str()
            .unwrap()
            .contains("used already")
    );
    // A wrong password with a right code is still just a wrong password, and spends no code.
    h.clock.advance(chrono::Duration::seconds(30));
    let bad = json!({"email": u.email, "password": "wrong password here", "totp_code": code(&secret, &h, 1)});
    h.post("/api/v3/auth/login", None, bad)
        .await
        .problem(401, "unauthorized");
    login_with(&h, &u, json!({"totp_code": code(&secret, &h, 1)}))
        .await
        .ok(200);
    // Recovery codes: each once, case and dashes ignored.
    login_with(&h, &u, json!({"recovery_code": codes[0].to_uppercase()}))
        .await
        .ok(200);
    login_with(&h, &u, json!({"recovery_code": codes[0]}))
        .await
        .problem(401, "unauthorized");
    login_with(&h, &u, json!({"recovery_code": codes[1].replace('-', "")}))
        .await
        .ok(200);
}

#[tokio::test]
async fn disabling_needs_the_password_and_a_code() {
    let h = Harness::new().await;
    let u = h.sign_up("mfa3").await;
    let (secret, _) = enable(&h, &u).await;
    let path = "/api/v3/auth/mfa/totp/disable";
    h.post(
        path,
        Some(&u.access),
        json!({"password": "wrong password", "totp_code": code(&secret, &h, 1)}),
    )
    .await
    .problem(422, "validation-failed");
    h.post(path, Some(&u.access), json!({"password": PASSWORD}))
        .await
        .problem(422, "validation-failed");
    let r = h
        .post(
            path,
            Some(&u.access),
            json!({"password": PASSWORD, "totp_code": code(&secret, &h, 1)}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    login_with(&h, &u, json!({})).await.ok(200);
    h.post(path, Some(&u.access), json!({"password": PASSWORD}))
        .await
        .problem(409, "mfa-disabled");
}
