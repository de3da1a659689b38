//! Changing and resetting passwords.

use crate::harness::*;
use chrono::Duration;
use serde_json::json;

const NEW_PASSWORD: &str = "an entirely new passphrase 2026";

#[tokio::test]
async fn changing_the_password_ends_every_session_and_token() {
    let h = Harness::new().await;
    let u = h.sign_up("chg").await;
    let key = h.api_key(&u, &["workflows:read"]).await;
    let path = "/api/v3/auth/password/change";
    h.post(
        path,
        Some(&u.access),
        json!({"current_password": "wrong one", "new_password": NEW_PASSWORD}),
    )
    .await
    .problem(422, "validation-failed");
    let weak = h
        .post(
            path,
            Some(&u.access),
            json!({"current_password": PASSWORD, "new_password": "qwertyuiop"}),
        )
        .await;
    assert_eq!(
        weak.problem(422, "validation-failed")["errors"][0]["field"],
        "new_password"
    );
    // A millisecond after the tokens were issued, so almost always within the same second:
    // they must end all the same (the cutoff is compared to the millisecond).
    h.clock.advance(Duration::milliseconds(1));
    let r = h
        .post(
            path,
            Some(&u.access),
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get("/api/v3/auth/me", &u.access)
        .await
        .problem(401, "unauthorized");
    h.get("/api/v3/auth/me", &key)
        .await
        .problem(401, "unauthorized");
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": u.refresh}),
    )
    .await
    .problem(401, "unauthorized");
    h.login(&u.email, PASSWORD)
        .await
        .problem(401, "unauthorized");
    // A token issued right after the change (same millisecond even) is good.
    let pair = h.login(&u.email, NEW_PASSWORD).await.ok(200).clone();
    h.get("/api/v3/auth/me", pair["access_token"].as_str().unwrap())
        .await
        .ok(200);
}

#[tokio::test]
async fn reset_request_answers_the_same_for_unknown_emails_and_sends_only_to_real_ones() {
    let h = Harness::new().await;
    let u = h.sign_up("rr").await;
    let ghost = unique_email("ghost");
    let known = h
        .post(
            "/api/v3/auth/password/reset-request",
            None,
            json!({"email": u.email}),
        )
        .await;
    let unknown = h
        .post(
            "/api/v3/auth/password/reset-request",
            None,
            json!({"email": ghost}),
        )
        .await;
    let malformed = h
        .post(
            "/api/v3/auth/password/reset-request",
            None,
            json!({"email": "not-an-email"}),
        )
        .await;
    assert_eq!(known.status, 202);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(
        (known.status, &known.body),
        (malformed.status, &malformed.body)
    );
    assert!(localstack::testing::emails_to(&ghost).await.is_empty());
    let mails = localstack::testing::emails_to(&u.email).await;
    assert!(mails.iter().any(|(s, b)| s.contains("reset your password") && b.contains("/reset-password?token=")));
}

#[tokio::test]
async fn reset_tokens_are_single_use_expire_and_survive_a_weak_password() {
    let h = Harness::new().await;
    let u = h.sign_up("reset").await;
    h.post(
        "/api/v3/auth/password/reset-request",
        None,
        json!({"email": u.email}),
    )
    .await
    .ok(202);
    let token = h.mailed_token(&u.email, "reset").await;
    let path = "/api/v3/auth/password/reset";
    // A weak password is refused and the token stays usable.
    h.post(
        path,
        None,
        json!({"token": token, "new_password": "letmein"}),
    )
    .await
    .problem(422, "validation-failed");
    h.clock.advance(Duration::seconds(2));
    let r = h
        .post(
            path,
            None,
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Used once: gone.
    h.post(
        path,
        None,
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await
    .problem(422, "validation-failed");
    // The reset ended the old session.
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": u.refresh}),
    )
    .await
    .problem(401, "unauthorized");
    h.clock.advance(Duration::seconds(2));
    h.login(&u.email, NEW_PASSWORD).await.ok(200);

    // A token past its hour is refused.
    h.post(
        "/api/v3/auth/password/reset-request",
        None,
        json!({"email": u.email}),
    )
    .await
    .ok(202);
    let late = h.mailed_token(&u.email, "reset").await;
    assert_ne!(late, token);
    h.clock.advance(Duration::minutes(61));
    h.post(
        path,
        None,
        json!({"token": late, "new_password": "yet another passphrase 99"}),
    )
    .await
    .problem(422, "validation-failed");
    h.login(&u.email, NEW_PASSWORD).await.ok(200);
    // A verification token is no reset token.
    h.post(
        path,
        None,
        json!({"token": "made-up-token", "new_password": "yet another passphrase 99"}),
    )
    .await
    .problem(422, "validation-failed");
}

/// Register, login and reset-request send mail for some addresses and not for others; each
/// takes at least the floor, whatever the address, so timing does not tell which exist.
#[tokio::test]
async fn answers_that_may_send_mail_take_the_floor_whatever_the_address() {
    let floor = api_auth::ANSWER_FLOOR;
    let h = Harness::new().await.with_answer_floor(floor);
    let u = h.sign_up("timing").await;
    let ghost = unique_email("ghost");
    let long = "x".repeat(300);
    for (what, path, body) in [
        (
            "reset, known",
            "/api/v3/auth/password/reset-request",
            json!({"email": u.email}),
        ),
        (
            "reset, unknown",
            "/api/v3/auth/password/reset-request",
            json!({"email": ghost}),
        ),
        (
            "login, unknown",
            "/api/v3/auth/login",
            json!({"email": ghost, "password": PASSWORD}),
        ),
        (
            "login, too long",
            "/api/v3/auth/login",
            json!({"email": u.email, "password": long}),
        ),
        (
            "register, taken",
            "/api/v3/auth/register",
            json!({"email": u.email, "password": PASSWORD, "display_name": "X"}),
        ),
        (
            "register, new",
            "/api/v3/auth/register",
            json!({"email": unique_email("new"), "password": PASSWORD, "display_name": "X"}),
        ),
    ] {
        let started = std::time::Instant::now();
        let r = h.post(path, None, body).await;
        let took = started.elapsed();
        assert!(r.status < 500, "{what}: {}", r.text);
        assert!(
            took >= floor,
            "{what} answered in {took:?}, under the floor {floor:?}"
        );
    }
}

#[tokio::test]
async fn a_reset_or_a_password_change_ends_every_outstanding_reset_link() {
    let h = Harness::new().await;
    let u = h.sign_up("links").await;
    let request = || {
        h.post(
            "/api/v3/auth/password/reset-request",
            None,
            json!({"email": u.email}),
        )
    };
    let reset_links = || async {
        localstack::testing::emails_to(&u.email)
            .await
            .into_iter()
            .filter(|(subject, _)| subject.contains("reset your password"))
            .filter_map(|(_, body)| localstack::testing::token_in(&body))
            .collect::<Vec<_>>()
    };
    let reset = |token: String, password: &'static str| {
        h.post(
            "/api/v3/auth/password/reset",
            None,
            json!({"token": token, "new_password": password}),
        )
    };
    request().await.ok(202);
    h.clock.advance(Duration::milliseconds(1));
    request().await.ok(202);
    let links = reset_links().await;
    assert_eq!(links.len(), 2);
    h.clock.advance(Duration::milliseconds(1));
    let r = reset(links[0].clone(), NEW_PASSWORD).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The other link was sent before the reset: it is over.
    reset(links[1].clone(), "yet another passphrase 2027")
        .await
        .problem(422, "validation-failed");
    h.login(&u.email, NEW_PASSWORD).await.ok(200);

    // A link sent before a password change is over after it.
    let access = h.login(&u.email, NEW_PASSWORD).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    request().await.ok(202);
    let link = reset_links().await.pop().unwrap();
    h.clock.advance(Duration::milliseconds(1));
    let r = h
        .post(
            "/api/v3/auth/password/change",
            Some(&access),
            json!({"current_password": NEW_PASSWORD, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    reset(link, "yet another passphrase 2027")
        .await
        .problem(422, "validation-failed");
    h.login(&u.email, PASSWORD).await.ok(200);
}
