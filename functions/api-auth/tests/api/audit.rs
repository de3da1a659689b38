//! The audit events the identity service leaves (sign-ins and their failures, credential
//! changes, keys, admin actions): each once, in the right chain, with who did it and from
//! where (the request's IP, user agent and request id), and no secret or address in clear.

use crate::harness::*;
use serde_json::json;
use shared::domain::audit::{ActorKind, Chain, Draft, Outcome};

/// The one note of `action` (fails if there are more or none).
fn one(h: &Harness, action: &str) -> (Chain, Draft) {
    let found = h.audit.of(action);
    assert_eq!(found.len(), 1, "{action}: {:#?}", h.audit.notes());
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn sign_ins_and_credential_changes_are_noted_once_with_who_and_from_where() {
    let h = Harness::new().await;
    let u = h.sign_up("audited").await;
    let mine = Chain::User(u.user_id.clone());

    let (chain, registered) = one(&h, "account.registered");
    assert_eq!(chain, mine);
    // Registering has no caller yet: the new account is the actor.
    assert_eq!(registered.actor.kind, ActorKind::User);
    assert_eq!(registered.actor.id.as_deref(), Some(u.user_id.as_str()));
    assert_eq!(registered.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(registered.user_agent.as_deref(), Some("harness/1.0"));
    assert!(registered.request_id.is_some(), "{registered:?}");
    assert_eq!(one(&h, "account.email_verified").0, mine);
    let (_, login) = one(&h, "auth.login_succeeded");
    assert_eq!(login.target.kind, "session");
    assert_eq!(login.target.id, u.session_id);
    assert_eq!(login.outcome, Outcome::Success);

    // A wrong password: a failure in the account's chain.
    h.login(&u.email, "not the password at all").await;
    let (chain, failed) = one(&h, "auth.login_failed");
    assert_eq!(chain, mine);
    assert_eq!(failed.outcome, Outcome::Failure);
    assert_eq!(failed.detail["reason"], "password");
    assert_eq!(failed.detail["failures_in_a_row"], 1);
    // An unknown address: the system's chain, the address only as a hash.
    h.login("nobody-at-all@example.com", "whatever it is 123")
        .await;
    let unknown: Vec<_> = h
        .audit
        .of("auth.login_failed")
        .into_iter()
        .filter(|(c, _)| *c == Chain::System)
        .collect();
    assert_eq!(unknown.len(), 1, "{:#?}", h.audit.notes());
    assert_eq!(unknown[0].1.detail["reason"], "unknown_email");
    assert_eq!(unknown[0].1.actor.kind, ActorKind::Unknown);
    let drafts: Vec<Draft> = h.audit.notes().into_iter().map(|(_, d)| d).collect();
    let text = serde_json::to_string(&drafts).unwrap();
    assert!(!text.contains("nobody-at-all"), "{text}");
    assert!(!text.contains("not the password"), "{text}");

    // An API key: created and revoked by the signed-in user, the key as target.
    let created = h
        .post(
            "/api/v3/auth/api-keys",
            Some(&u.access),
            json!({"name": "ci", "scopes": ["workflows:read"]}),
        )
        .await;
    let key_id = created.ok(201)["key_id"].as_str().unwrap().to_string();
    let (_, key) = one(&h, "api_key.created");
    assert_eq!(key.target.id, key_id);
    assert_eq!(key.actor.id.as_deref(), Some(u.user_id.as_str()));
    assert_eq!(key.detail["scopes"], json!(["workflows:read"]));
    h.send(
        "DELETE",
        &format!("/api/v3/auth/api-keys/{key_id}"),
        Some(&u.access),
        None,
    )
    .await;
    assert_eq!(one(&h, "api_key.revoked").1.target.id, key_id);

    // A password change; a refused one (wrong current password) notes nothing.
    let change = |current: &str| json!({"current_password": current, "new_password": "another fine passphrase 42"});
    h.post(
        "/api/v3/auth/password/change",
        Some(&u.access),
        change("wrong wrong wrong"),
    )
    .await;
    assert!(h.audit.of("account.password_changed").is_empty());
    let r = h
        .post(
            "/api/v3/auth/password/change",
            Some(&u.access),
            change(PASSWORD),
        )
        .await;
    r.ok(204);
    assert_eq!(one(&h, "account.password_changed").0, mine);
}

#[tokio::test]
async fn admin_actions_are_noted_in_the_target_accounts_chain_as_the_admins() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    let u = h.sign_up("managed").await;
    let theirs = Chain::User(u.user_id.clone());
    let path = |p: &str| format!("/api/v3/admin/users/{}{p}", u.user_id);
    h.send(
        "PUT",
        &path("/role"),
        Some(&admin.access),
        Some(json!({"role": "viewer"})),
    )
    .await
    .ok(200);
    h.post(&path("/suspend"), Some(&admin.access), json!({}))
        .await
        .ok(200);
    h.post(&path("/reactivate"), Some(&admin.access), json!({}))
        .await
        .ok(200);
    for action in [
        "account.role_changed",
        "account.suspended",
        "account.reactivated",
    ] {
        let (chain, d) = one(&h, action);
        assert_eq!(chain, theirs, "{action}");
        assert_eq!(
            d.actor.id.as_deref(),
            Some(admin.user_id.as_str()),
            "{action}"
        );
        assert_eq!(d.target.id, u.user_id, "{action}");
    }
    assert_eq!(
        one(&h, "account.role_changed").1.detail,
        serde_json::from_value::<serde_json::Map<String, serde_json::Value>>(
            json!({"from": "editor", "to": "viewer"})
        )
        .unwrap()
    );
    // Setting the role it has already changes nothing and notes nothing.
    h.send(
        "PUT",
        &path("/role"),
        Some(&admin.access),
        Some(json!({"role": "viewer"})),
    )
    .await
    .ok(200);
    assert_eq!(h.audit.of("account.role_changed").len(), 1);

    let rotated = h
        .post(
            "/api/v3/admin/signing-keys/rotate",
            Some(&admin.access),
            json!({}),
        )
        .await;
    let kid = rotated.ok(200)["kid"].as_str().unwrap().to_string();
    let (chain, d) = one(&h, "signing_key.rotated");
    assert_eq!(chain, Chain::System);
    assert_eq!(d.target.id, kid);
    h.send("DELETE", &path(""), Some(&admin.access), None)
        .await
        .ok(204);
    assert_eq!(one(&h, "account.deleted").0, theirs);
}

#[tokio::test]
async fn refusals_are_noted_403s_each_and_gate_refusals_sampled() {
    let rules = r#"[{"route":"POST /api/v3/auth/password/reset-request","per":"ip","algorithm":"fixed_window","limit":1,"period":"minute"}]"#;
    let h = Harness::with_gate("", "192.0.2.0/24", rules).await;
    let u = h.sign_up("curious").await;

    // A signed-in editor asks for the admin API: 403, noted in their chain, every time.
    for _ in 0..2 {
        let r = h.get("/api/v3/admin/users", &u.access).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let denied = h.audit.of("access.denied");
    assert_eq!(denied.len(), 2, "{:#?}", h.audit.notes());
    let (chain, d) = &denied[0];
    assert_eq!(*chain, Chain::User(u.user_id.clone()));
    assert_eq!(d.outcome, Outcome::Denied);
    assert_eq!(d.target.id, "GET /api/v3/admin/users");
    assert_eq!(d.actor.id.as_deref(), Some(u.user_id.as_str()));
    assert_eq!(d.source_ip.as_deref(), Some("203.0.113.7"));

    // An address on the deny list: the system's chain, the first of many.
    for _ in 0..3 {
        let r = h
            .send_from("192.0.2.44", "GET", "/api/v3/auth/health", None, None)
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let (chain, d) = one(&h, "access.ip_denied");
    assert_eq!(chain, Chain::System);
    assert_eq!(d.source_ip.as_deref(), Some("192.0.2.44"));
    assert_eq!(d.detail["sampled_one_in"], 100);

    // A rate limit: the first refusal is noted, the next ones only one in 100.
    for _ in 0..4 {
        h.send_from(
            "198.51.100.23",
            "POST",
            "/api/v3/auth/password/reset-request",
            None,
            Some(json!({"email": "someone@example.com"})),
        )
        .await;
    }
    let (chain, d) = one(&h, "access.rate_limited");
    assert_eq!(chain, Chain::System);
    assert_eq!(d.detail["status"], 429);
    assert_eq!(d.target.id, "POST /api/v3/auth/password/reset-request");
}
