//! Register, verify, log in, refresh, sessions and logout.

use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn register_verify_login_and_me() {
    let h = Harness::new().await;
    let email = unique_email("Ann");
    let r = h
        .post(
            "/api/v3/auth/register",
            None,
            json!({"email": email.to_uppercase(), "password": PASSWORD, "display_name": " Ann "}),
        )
        .await;
    let body = r.ok(202);
    assert_eq!(body["email"], email);
    assert!(body.get("user_id").is_none(), "{body}");
    // The stored password is an argon2id hash, never the password.
    let stored = h
        .stored_items()
        .await
        .into_iter()
        .find(|i| i["email"] == email.as_str())
        .unwrap();
    assert!(
        stored["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$v=19$m=12288,t=3,p=1$")
    );
    assert!(!stored.to_string().contains(PASSWORD));

    // Not verified yet: no login.
    h.login(&email, PASSWORD).await.problem(403, "forbidden");
    let mails = localstack::testing::emails_to(&email).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].0.contains("confirm your email"), "{:?}", mails[0]);
    assert!(
        mails[0]
            .1
            .contains("https://app.example.com/verify-email?token=")
    );
    let token = h.mailed_token(&email, "confirm").await;
    // The link activates the account only with the password chosen at registration.
    let wrong = h
        .post(
            "/api/v3/auth/verify-email",
            None,
            json!({"token": token, "password": "some other passphrase 2026"}),
        )
        .await;
    assert_eq!(
        wrong.problem(422, "validation-failed")["errors"][0]["field"],
        "password"
    );
    let v = h
        .post(
            "/api/v3/auth/verify-email",
            None,
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(v.ok(200)["status"], "active");
    // The token works once.
    h.post(
        "/api/v3/auth/verify-email",
        None,
        json!({"token": token, "password": PASSWORD}),
    )
    .await
    .problem(422, "validation-failed");

    let pair = h.login(&email, PASSWORD).await;
    let pair = pair.ok(200);
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let access = pair["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert!(header.kid.is_some());
    let me = h.get("/api/v3/auth/me", access).await;
    let me = me.ok(200);
    assert_eq!(me["email"], email);
    assert_eq!(me["display_name"], "Ann");
    assert_eq!(
        me["role"], "editor",
        "self-registered users are never admins"
    );
    assert_eq!(me["mfa_enabled"], false);
}

#[tokio::test]
async fn registration_refuses_bad_input_with_reasons_and_stores_nothing() {
    let h = Harness::new().await;
    let weak = h
        .post(
            "/api/v3/auth/register",
            None,
            json!({"email": unique_email("w"), "password": "password123", "display_name": "W"}),
        )
        .await;
    let p = weak.problem(422, "validation-failed");
    assert_eq!(p["errors"][0]["field"], "password");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too easy to guess"),
        "{p}"
    );
    let bad = h
        .post(
            "/api/v3/auth/register",
            None,
            json!({"email": "nope", "password": "x", "display_name": ""}),
        )
        .await;
    let fields: Vec<&str> = bad.problem(422, "validation-failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "display_name", "password"]);
    h.post(
        "/api/v3/auth/register",
        None,
        json!({"email": "a@b.co", "password": PASSWORD, "display_name": "A", "role": "admin"}),
    )
    .await
    .problem(422, "validation-failed");
    h.send("POST", "/api/v3/auth/register", None, None).await;
    assert!(h.stored_items().await.is_empty(), "nothing was written");
}

/// Registering answers the same for a new, a pending and a taken address; the inbox hears
/// which it was.
#[tokio::test]
async fn registering_answers_the_same_whatever_the_address_and_the_inbox_hears_why() {
    let h = Harness::new().await;
    let taken = h.sign_up("taken").await;
    let pending = unique_email("pending");
    let fresh = unique_email("fresh");
    let first = h.register(&pending).await;
    first.ok(202);
    let answers = [
        h.register(&fresh).await,
        h.register(&pending).await,
        h.register(&taken.email).await,
    ];
    let shape = |r: &Reply, email: &str| {
        let mut body = r.ok(202).clone();
        assert_eq!(body["email"], email);
        body["email"] = json!("");
        (r.status, body)
    };
    let expected = shape(&first, &pending);
    for (r, email) in answers.iter().zip([&fresh, &pending, &taken.email]) {
        assert_eq!(shape(r, email), expected, "{email}");
    }
    assert_eq!(
        localstack::testing::emails_to(&pending).await.len(),
        2,
        "a new link"
    );
    let notices = localstack::testing::emails_to(&taken.email).await;
    let notice = notices.last().unwrap();
    assert!(notice.0.contains("someone tried to register"), "{notice:?}");
    assert!(localstack::testing::token_in(&notice.1).is_none());
    // The taken account is as it was.
    h.login(&taken.email, PASSWORD).await.ok(200);
}

/// The review's takeover: the owner registered with A, someone else registered the address
/// with B, the newest link was opened, and B got in. A link now activates the account only
/// with the password of the registration that asked for it.
#[tokio::test]
async fn a_second_registration_cannot_set_the_password_of_a_pending_address() {
    let h = Harness::new().await;
    let email = unique_email("owner");
    const OTHER: &str = "attacker passphrase 31337";
    // The owner registers with A (PASSWORD) ...
    h.register(&email).await.ok(202);
    // ... someone else registers the same address with B.
    h.post(
        "/api/v3/auth/register",
        None,
        json!({"email": email, "password": OTHER, "display_name": "Mallory"}),
    )
    .await
    .ok(202);
    let mails = localstack::testing::emails_to(&email).await;
    let owners = localstack::testing::token_in(&mails[0].1).unwrap();
    let newest = localstack::testing::token_in(&mails[1].1).unwrap();
    // The owner opens the newest link with A: refused, nothing set.
    h.post(
        "/api/v3/auth/verify-email",
        None,
        json!({"token": newest, "password": PASSWORD}),
    )
    .await
    .problem(422, "validation-failed");
    h.login(&email, OTHER).await.problem(401, "unauthorized");
    // The owner's own link activates the account with A; B never works.
    let v = h
        .post(
            "/api/v3/auth/verify-email",
            None,
            json!({"token": owners, "password": PASSWORD}),
        )
        .await;
    assert_eq!(v.ok(200)["display_name"], "Test User");
    h.login(&email, PASSWORD).await.ok(200);
    h.login(&email, OTHER).await.problem(401, "unauthorized");
    // B's link, used with B, changes nothing on an active account.
    h.post(
        "/api/v3/auth/verify-email",
        None,
        json!({"token": newest, "password": OTHER}),
    )
    .await
    .ok(200);
    h.login(&email, PASSWORD).await.ok(200);
    h.login(&email, OTHER).await.problem(401, "unauthorized");
}

#[tokio::test]
async fn concurrent_wrong_passwords_all_count_toward_the_lock() {
    let h = Harness::new().await;
    let u = h.sign_up("burst").await;
    let tries = (0..6).map(|_| h.login(&u.email, "a wrong guess, at once"));
    for r in futures::future::join_all(tries).await {
        r.problem(401, "unauthorized");
    }
    // Locked, and answered like a wrong password.
    h.login(&u.email, PASSWORD)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn an_api_key_cannot_manage_sessions_or_keys() {
    let h = Harness::new().await;
    let u = h.sign_up("scoped").await;
    let key = h.api_key(&u, &["workflows:read"]).await;
    for (m, p) in [
        ("GET", "/api/v3/auth/sessions".to_string()),
        ("DELETE", format!("/api/v3/auth/sessions/{}", u.session_id)),
        ("GET", "/api/v3/auth/api-keys".to_string()),
        ("POST", "/api/v3/auth/logout".to_string()),
    ] {
        h.send(m, &p, Some(&key), None)
            .await
            .problem(403, "forbidden");
    }
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": u.refresh}),
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn wrong_passwords_look_like_unknown_emails_and_lock_the_account_for_longer_each_time() {
    let h = Harness::new().await;
    let u = h.sign_up("lock").await;
    let ghost = unique_email("ghost");
    let unknown = h.login(&ghost, PASSWORD).await;
    let wrong = h.login(&u.email, "not the password at all").await;
    assert_eq!(
        unknown.problem(401, "unauthorized")["detail"],
        wrong.problem(401, "unauthorized")["detail"]
    );
    for _ in 0..3 {
        h.login(&u.email, "not the password at all")
            .await
            .problem(401, "unauthorized");
    }
    // The fifth failure locks the account for a minute; even the right password waits, and
    // the answer is the one an unknown address gets (a lock must not tell that the account
    // exists). The owner learns of it by email.
    h.login(&u.email, "not the password at all")
        .await
        .problem(401, "unauthorized");
    let locked = h.login(&u.email, PASSWORD).await;
    let unknown = h.login(&ghost, PASSWORD).await;
    assert_eq!(locked.status, unknown.status);
    assert_eq!(locked.body, unknown.body);
    assert_eq!(locked.header("retry-after"), unknown.header("retry-after"));
    let notices = localstack::testing::emails_to(&u.email).await;
    assert!(
        notices
            .iter()
            .any(|(subject, _)| subject.contains("sign-in paused")),
        "{notices:?}"
    );
    h.clock.advance(chrono::Duration::seconds(61));
    // Another failure: locked for two minutes now.
    h.login(&u.email, "still not it")
        .await
        .problem(401, "unauthorized");
    h.clock.advance(chrono::Duration::seconds(119));
    h.login(&u.email, PASSWORD)
        .await
        .problem(401, "unauthorized");
    h.clock.advance(chrono::Duration::seconds(2));
    h.login(&u.email, PASSWORD).await.ok(200);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let h = Harness::new().await;
    let u = h.sign_up("rot").await;
    let first = h
        .post(
            "/api/v3/auth/refresh",
            None,
            json!({"refresh_token": u.refresh}),
        )
        .await;
    let first = first.ok(200).clone();
    assert_ne!(first["refresh_token"], u.refresh.as_str());
    assert_eq!(first["session_id"], u.session_id.as_str());
    h.get("/api/v3/auth/me", first["access_token"].as_str().unwrap())
        .await
        .ok(200);
    let second = h
        .post(
            "/api/v3/auth/refresh",
            None,
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    let second = second.ok(200).clone();

    // The first refresh token again: stolen. The whole session ends.
    let reuse = h
        .post(
            "/api/v3/auth/refresh",
            None,
            json!({"refresh_token": u.refresh}),
        )
        .await;
    assert!(
        reuse.problem(401, "unauthorized")["detail"]
            .as_str()
            .unwrap()
            .contains("reused")
    );
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": second["refresh_token"]}),
    )
    .await
    .problem(401, "unauthorized");
    // The session is over, and so is its access token.
    h.get("/api/v3/auth/sessions", &u.access)
        .await
        .problem(401, "unauthorized");

    // Garbage is refused without touching other sessions.
    let other = h.login(&u.email, PASSWORD).await.ok(200).clone();
    let sessions = h
        .get(
            "/api/v3/auth/sessions",
            other["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        sessions.ok(200)["items"].as_array().unwrap().len(),
        1,
        "only the new one"
    );
    for bad in [
        "",
        "x",
        "a.b.c",
        &format!(
            "{}.{}.wrong",
            u.user_id,
            other["session_id"].as_str().unwrap()
        ),
    ] {
        h.post("/api/v3/auth/refresh", None, json!({"refresh_token": bad}))
            .await
            .problem(401, "unauthorized");
    }
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": other["refresh_token"]}),
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_admit_one_and_revoke_the_session() {
    let h = Harness::new().await;
    let u = h.sign_up("race").await;
    let body = json!({"refresh_token": u.refresh});
    let (a, b) = tokio::join!(
        h.post("/api/v3/auth/refresh", None, body.clone()),
        h.post("/api/v3/auth/refresh", None, body.clone())
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{} / {}", a.text, b.text);
}

#[tokio::test]
async fn sessions_list_device_and_ip_and_end_one_at_a_time_or_by_logout() {
    let h = Harness::new().await;
    let u = h.sign_up("sess").await;
    let second = h.login(&u.email, PASSWORD).await.ok(200).clone();
    let list = h.get("/api/v3/auth/sessions", &u.access).await;
    let items = list.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let mine = items
        .iter()
        .find(|s| s["session_id"] == u.session_id.as_str())
        .unwrap();
    assert_eq!(mine["current"], true);
    assert_eq!(mine["device"], "harness/1.0");
    assert_eq!(mine["ip"], "203.0.113.7");
    assert!(
        mine.get("refresh_hash").is_none(),
        "no secret material is shown"
    );

    let other = second["session_id"].as_str().unwrap();
    let del = h
        .send(
            "DELETE",
            &format!("/api/v3/auth/sessions/{other}"),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    h.send(
        "DELETE",
        &format!("/api/v3/auth/sessions/{other}"),
        Some(&u.access),
        None,
    )
    .await
    .problem(404, "not-found");
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": second["refresh_token"]}),
    )
    .await
    .problem(401, "unauthorized");

    assert_eq!(
        h.send("POST", "/api/v3/auth/logout", Some(&u.access), None)
            .await
            .status,
        204
    );
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": u.refresh}),
    )
    .await
    .problem(401, "unauthorized");
}

#[tokio::test]
async fn one_user_cannot_see_or_end_anothers_sessions_or_keys() {
    let h = Harness::new().await;
    let a = h.sign_up("a").await;
    let b = h.sign_up("b").await;
    let key = h
        .post(
            "/api/v3/auth/api-keys",
            Some(&a.access),
            json!({"name": "ci", "scopes": ["workflows:read"]}),
        )
        .await
        .ok(201)
        .clone();
    let b_sessions = h.get("/api/v3/auth/sessions", &b.access).await;
    let ids: Vec<&str> = b_sessions.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.session_id.as_str()]);
    h.send(
        "DELETE",
        &format!("/api/v3/auth/sessions/{}", a.session_id),
        Some(&b.access),
        None,
    )
    .await
    .problem(404, "not-found");
    assert!(
        h.get("/api/v3/auth/api-keys", &b.access).await.ok(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    h.send(
        "DELETE",
        &format!("/api/v3/auth/api-keys/{}", key["key_id"].as_str().unwrap()),
        Some(&b.access),
        None,
    )
    .await
    .problem(404, "not-found");
    // A's session and key still work.
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": a.refresh}),
    )
    .await
    .ok(200);
    h.get("/api/v3/auth/me", key["api_key"].as_str().unwrap())
        .await
        .ok(200);
    // B's token says B, whatever B asks for.
    assert_eq!(
        h.get("/api/v3/auth/me", &b.access).await.ok(200)["user_id"],
        b.user_id.as_str()
    );
}

#[tokio::test]
async fn unauthenticated_and_unknown_requests() {
    let h = Harness::new().await;
    for (m, p) in [
        ("GET", "/api/v3/auth/me"),
        ("GET", "/api/v3/auth/sessions"),
        ("POST", "/api/v3/auth/logout"),
        ("GET", "/api/v3/auth/api-keys"),
        ("POST", "/api/v3/auth/mfa/totp/setup"),
        ("GET", "/api/v3/admin/users"),
    ] {
        h.send(m, p, None, None).await.problem(401, "unauthorized");
    }
    h.send("GET", "/api/v3/auth/nothing", None, None)
        .await
        .problem(404, "not-found");
    // Not a template route (login is POST only): no route key reaches the function, 404.
    h.send("GET", "/api/v3/auth/login", None, None)
        .await
        .problem(404, "not-found");
    h.send("POST", "/api/v3/auth/login", None, None).await;
    let health = h.send("GET", "/api/v3/auth/health", None, None).await;
    assert_eq!(health.ok(200)["service"], "api-auth");
}

#[tokio::test]
async fn answers_that_carry_secrets_are_not_kept_by_caches() {
    let h = Harness::new().await;
    let u = h.sign_up("nostore").await;
    let no_store = |what: &str, r: &Reply| {
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{what}: {}",
            r.text
        );
    };
    let login = h.login(&u.email, PASSWORD).await;
    no_store("login", &login);
    let refresh_token = login.ok(200)["refresh_token"].as_str().unwrap().to_string();
    no_store(
        "refresh",
        &h.post(
            "/api/v3/auth/refresh",
            None,
            json!({"refresh_token": refresh_token}),
        )
        .await,
    );
    no_store(
        "API key",
        &h.post(
            "/api/v3/auth/api-keys",
            Some(&u.access),
            json!({"name": "ci", "scopes": ["workflows:read"]}),
        )
        .await,
    );
    no_store(
        "TOTP setup",
        &h.post(
            "/api/v3/auth/mfa/totp/setup",
            Some(&u.access),
            json!({"password": PASSWORD}),
        )
        .await,
    );
    no_store("me", &h.get("/api/v3/auth/me", &u.access).await);
    no_store("a refused login", &h.login(&u.email, "wrong").await);
    // Public documents stay cacheable.
    let jwks = h.send("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
}

/// ASVS 3.3.1: logout ends the session, and with it the access tokens issued for it, at once;
/// so do ending one session from another and a reused refresh token.
#[tokio::test]
async fn logout_and_revocation_end_the_access_token_at_once() {
    let h = Harness::new().await;
    let u = h.sign_up("logout").await;
    h.get("/api/v3/auth/me", &u.access).await.ok(200);
    let r = h
        .post("/api/v3/auth/logout", Some(&u.access), json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get("/api/v3/auth/me", &u.access)
        .await
        .problem(401, "unauthorized");

    // A stolen refresh token used after its owner refreshed: the session ends, and so do the
    // access tokens of both.
    let pair = h.login(&u.email, PASSWORD).await.ok(200).clone();
    let refresh = |token: &str| {
        h.post(
            "/api/v3/auth/refresh",
            None,
            json!({"refresh_token": token}),
        )
    };
    let rotated = refresh(pair["refresh_token"].as_str().unwrap())
        .await
        .ok(200)
        .clone();
    refresh(pair["refresh_token"].as_str().unwrap())
        .await
        .problem(401, "unauthorized");
    for access in [&pair["access_token"], &rotated["access_token"]] {
        h.get("/api/v3/auth/me", access.as_str().unwrap())
            .await
            .problem(401, "unauthorized");
    }

    // One session ended from another.
    let a = h.login(&u.email, PASSWORD).await.ok(200).clone();
    let b = h.login(&u.email, PASSWORD).await.ok(200).clone();
    let r = h
        .send(
            "DELETE",
            &format!(
                "/api/v3/auth/sessions/{}",
                a["session_id"].as_str().unwrap()
            ),
            Some(b["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get("/api/v3/auth/me", a["access_token"].as_str().unwrap())
        .await
        .problem(401, "unauthorized");
    h.get("/api/v3/auth/me", b["access_token"].as_str().unwrap())
        .await
        .ok(200);
}

/// The review mailed a display name verbatim from the service's address ("... log in at
/// https://evil.example/x") and accepted U+2028 and U+202E in names.
#[tokio::test]
async fn names_that_read_as_links_or_reorder_text_are_refused_and_no_email_carries_a_name() {
    let h = Harness::new().await;
    for bad in [
        "Ann. URGENT: your account was breached; log in at https://evil.example/x",
        "Ann\u{2028}Smith",
        "abc\u{202E}gnp.exe",
    ] {
        let r = h
            .post(
                "/api/v3/auth/register",
                None,
                json!({"email": unique_email("name"), "password": PASSWORD, "display_name": bad}),
            )
            .await;
        assert_eq!(
            r.problem(422, "validation-failed")["errors"][0]["field"],
            "display_name",
            "{bad:?}"
        );
    }
    assert!(h.stored_items().await.is_empty());
    // Security emails carry no text of the user's choosing.
    let u = h.sign_up("named").await;
    h.register(&u.email).await.ok(202);
    h.post(
        "/api/v3/auth/password/reset-request",
        None,
        json!({"email": u.email}),
    )
    .await
    .ok(202);
    let mails = localstack::testing::emails_to(&u.email).await;
    assert_eq!(mails.len(), 3, "{mails:?}");
    for (subject, body) in mails {
        assert!(
            !subject.contains("Test User") && !body.contains("Test User"),
            "{subject}: {body}"
        );
    }
}
