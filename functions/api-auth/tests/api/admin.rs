//! The admin API and the first admin.

use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn only_admins_use_the_admin_api_and_the_first_user_is_no_admin() {
    let h = Harness::new().await;
    let first = h.sign_up("first").await;
    assert_eq!(
        h.get("/api/v3/auth/me", &first.access).await.ok(200)["role"],
        "editor"
    );
    let uid = &first.user_id;
    for (m, p) in [
        ("GET", "/api/v3/admin/users".to_string()),
        ("GET", format!("/api/v3/admin/users/{uid}")),
        ("POST", format!("/api/v3/admin/users/{uid}/suspend")),
        ("PUT", format!("/api/v3/admin/users/{uid}/role")),
        ("DELETE", format!("/api/v3/admin/users/{uid}")),
    ] {
        let body = (m != "GET" && m != "DELETE").then(|| json!({"role": "admin"}));
        h.send(m, &p, Some(&first.access), body)
            .await
            .problem(403, "forbidden");
    }
    assert_eq!(
        h.get("/api/v3/auth/me", &first.access).await.ok(200)["role"],
        "editor"
    );
    // `dwc-admin promote` makes an admin of a verified account.
    let unverified = unique_email("nv");
    h.register(&unverified).await.ok(202);
    let e = shared::app::auth::admin::promote(h.accounts.as_ref(), &unverified, chrono::Utc::now())
        .await;
    assert!(e.is_err());
    shared::app::auth::admin::promote(h.accounts.as_ref(), &first.email, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        h.get("/api/v3/auth/me", &first.access).await.ok(200)["role"],
        "admin"
    );
}

#[tokio::test]
async fn admins_list_search_and_change_roles() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    let ann = h.sign_up("annie").await;
    let ben = h.sign_up("benny").await;
    let all = h.get("/api/v3/admin/users", &admin.access).await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 3);
    let found = h.get("/api/v3/admin/users?q=ANNIE-", &admin.access).await;
    let items = found.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], ann.user_id.as_str());
    assert!(items[0].get("password_hash").is_none());
    let page = h
        .get("/api/v3/admin/users?limit=1", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = h
        .get(
            &format!(
                "/api/v3/admin/users?limit=2&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            &admin.access,
        )
        .await;
    assert_eq!(next.ok(200)["items"].as_array().unwrap().len(), 2);
    h.get("/api/v3/admin/users?status=bogus", &admin.access)
        .await
        .problem(400, "invalid-parameter");
    h.get("/api/v3/admin/users?cursor=bogus", &admin.access)
        .await
        .problem(400, "invalid-parameter");
    let viewers = h
        .get("/api/v3/admin/users?role=viewer", &admin.access)
        .await;
    assert!(viewers.ok(200)["items"].as_array().unwrap().is_empty());

    let r = h
        .send(
            "PUT",
            &format!("/api/v3/admin/users/{}/role", ben.user_id),
            Some(&admin.access),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.ok(200)["role"], "viewer");
    // The role holds at once, even for tokens issued before.
    assert_eq!(
        h.get("/api/v3/auth/me", &ben.access).await.ok(200)["role"],
        "viewer"
    );
    h.post(
        "/api/v3/auth/api-keys",
        Some(&ben.access),
        json!({"name": "k", "scopes": ["workflows:write"]}),
    )
    .await
    .problem(422, "validation-failed");
    h.send(
        "PUT",
        &format!("/api/v3/admin/users/{}/role", ben.user_id),
        Some(&admin.access),
        Some(json!({"role": "root"})),
    )
    .await
    .problem(422, "validation-failed");
    h.send(
        "PUT",
        &format!("/api/v3/admin/users/{}/role", admin.user_id),
        Some(&admin.access),
        Some(json!({"role": "viewer"})),
    )
    .await
    .problem(409, "own-account");
    h.get(
        "/api/v3/admin/users/01ARZ3NDEKTSV4RRFFQ69G5FAV",
        &admin.access,
    )
    .await
    .problem(404, "not-found");
    let one = h
        .get(
            &format!("/api/v3/admin/users/{}", ann.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(one.ok(200)["email"], ann.email.as_str());
}

#[tokio::test]
async fn suspension_stops_tokens_and_keys_at_once_and_reactivation_lets_them_log_in_again() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    let u = h.sign_up("sus").await;
    let key = h.api_key(&u, &["workflows:read"]).await;
    let r = h
        .post(
            &format!("/api/v3/admin/users/{}/suspend", u.user_id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.ok(200)["status"], "suspended");
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
    h.login(&u.email, PASSWORD).await.problem(403, "forbidden");
    h.post(
        &format!("/api/v3/admin/users/{}/suspend", admin.user_id),
        Some(&admin.access),
        json!({}),
    )
    .await
    .problem(409, "own-account");

    let r = h
        .post(
            &format!("/api/v3/admin/users/{}/reactivate", u.user_id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.ok(200)["status"], "active");
    h.clock.advance(chrono::Duration::seconds(2));
    let pair = h.login(&u.email, PASSWORD).await.ok(200).clone();
    h.get("/api/v3/auth/me", pair["access_token"].as_str().unwrap())
        .await
        .ok(200);
    // Suspension ended every credential: keys made before it stay revoked.
    h.get("/api/v3/auth/me", &key)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn an_admin_resets_a_users_mfa() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    let u = h.sign_up("lost").await;
    let setup = h
        .post(
            "/api/v3/auth/mfa/totp/setup",
            Some(&u.access),
            json!({"password": PASSWORD}),
        )
        .await;
    let secret = setup.ok(200)["secret"].as_str().unwrap().to_string();
    use shared::ports::Clock;
    let code = shared::crypto::totp::code(&secret, h.clock.now().timestamp() as u64).unwrap();
    h.post(
        "/api/v3/auth/mfa/totp/enable",
        Some(&u.access),
        json!({"code": code}),
    )
    .await
    .ok(200);
    h.login(&u.email, PASSWORD)
        .await
        .problem(401, "mfa-required");
    let path = format!("/api/v3/admin/users/{}/mfa", u.user_id);
    h.send("DELETE", &path, Some(&u.access), None)
        .await
        .problem(403, "forbidden");
    // An admin's API key cannot: turning off someone's second factor or ending their sessions
    // needs a signed-in admin.
    let admin_key = h.api_key(&admin, &["admin"]).await;
    h.send("DELETE", &path, Some(&admin_key), None)
        .await
        .problem(403, "forbidden");
    h.send(
        "DELETE",
        &format!("/api/v3/admin/users/{}/sessions", u.user_id),
        Some(&admin_key),
        None,
    )
    .await
    .problem(403, "forbidden");
    h.login(&u.email, PASSWORD)
        .await
        .problem(401, "mfa-required");
    let r = h.send("DELETE", &path, Some(&admin.access), None).await;
    assert_eq!(r.ok(200)["mfa_enabled"], false);
    h.login(&u.email, PASSWORD).await.ok(200);
}

#[tokio::test]
async fn ending_all_sessions_and_deleting_a_user() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    let u = h.sign_up("gone").await;
    h.clock.advance(chrono::Duration::seconds(2));
    let r = h
        .send(
            "DELETE",
            &format!("/api/v3/admin/users/{}/sessions", u.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get("/api/v3/auth/me", &u.access)
        .await
        .problem(401, "unauthorized");
    h.post(
        "/api/v3/auth/refresh",
        None,
        json!({"refresh_token": u.refresh}),
    )
    .await
    .problem(401, "unauthorized");
    h.clock.advance(chrono::Duration::seconds(2));
    let pair = h.login(&u.email, PASSWORD).await.ok(200).clone();

    let r = h
        .send(
            "DELETE",
            &format!("/api/v3/admin/users/{}", u.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    h.get("/api/v3/auth/me", pair["access_token"].as_str().unwrap())
        .await
        .problem(401, "unauthorized");
    h.login(&u.email, PASSWORD)
        .await
        .problem(401, "unauthorized");
    let left: Vec<_> = h
        .stored_items()
        .await
        .into_iter()
        .filter(|i| i.to_string().contains(&u.user_id))
        .filter(|i| !i["PK"].as_str().unwrap_or_default().starts_with("TOKEN#"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The email is free again.
    h.register(&u.email).await.ok(202);
}

#[tokio::test]
async fn a_pending_account_cannot_be_reactivated_past_its_email_check() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    let email = unique_email("unconfirmed");
    h.register(&email).await.ok(202);
    let users = h
        .get(&format!("/api/v3/admin/users?q={email}"), &admin.access)
        .await;
    let user_id = users.ok(200)["items"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    for action in ["reactivate", "suspend"] {
        h.post(
            &format!("/api/v3/admin/users/{user_id}/{action}"),
            Some(&admin.access),
            json!({}),
        )
        .await
        .problem(409, "account-pending");
    }
    let r = h
        .get(&format!("/api/v3/admin/users/{user_id}"), &admin.access)
        .await;
    assert_eq!(r.ok(200)["status"], "pending");
    h.login(&email, PASSWORD).await.problem(403, "forbidden");
}

#[tokio::test]
async fn a_cursor_of_one_search_is_refused_by_another_not_a_server_error() {
    let h = Harness::new().await;
    let admin = h.admin("boss").await;
    for name in ["ann", "anna", "annie"] {
        h.sign_up(name).await;
    }
    let page = h
        .get("/api/v3/admin/users?q=ann&limit=1", &admin.access)
        .await;
    let cursor = page.ok(200)["next_cursor"].as_str().unwrap().to_string();
    let r = h
        .get(
            &format!("/api/v3/admin/users?q=boss&limit=1&cursor={cursor}"),
            &admin.access,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // The same cursor with its own search goes on.
    h.get(
        &format!("/api/v3/admin/users?q=ann&limit=1&cursor={cursor}"),
        &admin.access,
    )
    .await
    .ok(200);
}
