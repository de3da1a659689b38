//! API keys, the published signing keys, rotation, and tokens that must be refused.

use crate::harness::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use serde_json::json;

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_act_within_their_owner() {
    let h = Harness::new().await;
    let u = h.sign_up("keys").await;
    let path = "/api/v3/auth/api-keys";
    h.post(
        path,
        Some(&u.access),
        json!({"name": "x", "scopes": ["admin"]}),
    )
    .await
    .problem(422, "validation-failed");
    h.post(path, Some(&u.access), json!({"name": "x", "scopes": []}))
        .await
        .problem(422, "validation-failed");
    h.post(
        path,
        Some(&u.access),
        json!({"name": "x", "scopes": ["workflows:read"], "expires_at": "2000-01-01T00:00:00Z"}),
    )
    .await
    .problem(422, "validation-failed");
    let created = h
        .post(
            path,
            Some(&u.access),
            json!({"name": "ci", "scopes": ["workflows:read", "workflows:write"]}),
        )
        .await;
    let created = created.ok(201).clone();
    let secret = created["api_key"].as_str().unwrap();
    assert!(secret.starts_with(&format!("dwc_{}.", u.user_id)));
    let listed = h.get(path, &u.access).await;
    let items = listed.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "ci");
    assert!(
        items[0].get("api_key").is_none()
            && !listed.text.contains(secret.rsplit('.').next().unwrap())
    );
    let stored = h.stored_items().await;
    assert!(
        !serde_json::to_string(&stored)
            .unwrap()
            .contains(secret.rsplit('.').next().unwrap()),
        "only a hash is stored"
    );

    // The key authenticates as its owner; it cannot mint more keys.
    assert_eq!(
        h.get("/api/v3/auth/me", secret).await.ok(200)["user_id"],
        u.user_id.as_str()
    );
    h.post(
        path,
        Some(secret),
        json!({"name": "more", "scopes": ["workflows:read"]}),
    )
    .await
    .problem(403, "forbidden");
    let tampered = format!("{}x", secret);
    h.get("/api/v3/auth/me", &tampered)
        .await
        .problem(401, "unauthorized");

    let del = h
        .send(
            "DELETE",
            &format!("{path}/{}", created["key_id"].as_str().unwrap()),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    h.get("/api/v3/auth/me", secret)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn an_api_key_stops_at_its_expiry() {
    let h = Harness::new().await;
    let u = h.sign_up("exp").await;
    let at = (chrono::Utc::now() + Duration::hours(1)).to_rfc3339();
    let key = h
        .post(
            "/api/v3/auth/api-keys",
            Some(&u.access),
            json!({"name": "short", "scopes": ["workflows:read"], "expires_at": at}),
        )
        .await
        .ok(201)["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    h.get("/api/v3/auth/me", &key).await.ok(200);
    h.clock.advance(Duration::hours(2));
    h.get("/api/v3/auth/me", &key)
        .await
        .problem(401, "unauthorized");
}

#[tokio::test]
async fn jwks_publishes_the_keys_and_rotation_keeps_old_tokens_valid() {
    let h = Harness::new().await;
    let u = h.sign_up("rot").await;
    h.get("/api/v3/auth/me", &u.access).await.ok(200);
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let jwks = h.send("GET", "/.well-known/jwks.json", None, None).await;
    let keys = jwks.ok(200)["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], kid(&u.access).as_str());
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none(), "no private part");
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    // The stored private key is encrypted: no PKCS#8 in clear.
    let stored = h.signing_key_items().await;
    assert!(stored[0]["encrypted_private_key"].as_str().unwrap().len() > 100);
    assert!(stored[0]["encrypted_data_key"].is_string());

    // Only admins rotate.
    h.post(
        "/api/v3/admin/signing-keys/rotate",
        Some(&u.access),
        json!({}),
    )
    .await
    .problem(403, "forbidden");
    let admin = h.admin("root").await;
    let rotated = h
        .post(
            "/api/v3/admin/signing-keys/rotate",
            Some(&admin.access),
            json!({}),
        )
        .await;
    let new_kid = rotated.ok(200)["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, kid(&u.access));
    let both = h
        .send("GET", "/api/v3/auth/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(both.ok(200)["keys"].as_array().unwrap().len(), 2);

    // New tokens carry the new kid (this signer activates keys at once; deployments wait two
    // minutes). A verifier reloads its keys at most once a minute: it knows the new key once
    // its minute is over.
    let fresh = h.login(&u.email, PASSWORD).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(kid(&fresh), new_kid);
    h.get("/api/v3/auth/me", &fresh)
        .await
        .problem(401, "unauthorized");
    h.clock.advance(Duration::seconds(60));
    h.get("/api/v3/auth/me", &fresh).await.ok(200);
    h.get("/api/v3/auth/me", &u.access).await.ok(200);
}

#[tokio::test]
async fn forged_and_mangled_tokens_are_refused() {
    let h = Harness::new().await;
    let u = h.sign_up("forge").await;
    let parts: Vec<&str> = u.access.split('.').collect();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();

    let mut admin_claims = claims.clone();
    admin_claims["sub"] = json!("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    let tampered = format!("{}.{}.{}", parts[0], b64(admin_claims), parts[2]);
    let mut unknown_kid_header = header.clone();
    unknown_kid_header["kid"] = json!("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let unknown_kid = format!("{}.{}.{}", b64(unknown_kid_header), parts[1], parts[2]);
    // HS256 with the published public key as the secret (algorithm confusion).
    let jwks = h
        .send("GET", "/.well-known/jwks.json", None, None)
        .await
        .body
        .clone();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = header["kid"].as_str().map(String::from);
    let confused = jsonwebtoken::encode(
        &hs,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks["keys"][0].to_string().as_bytes()),
    )
    .unwrap();
    for (what, token) in [
        ("alg none", none),
        ("tampered", tampered),
        ("unknown kid", unknown_kid),
        ("HS256", confused),
        ("garbage", "abc".to_string()),
    ] {
        let r = h.get("/api/v3/auth/me", &token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
    }
    h.get("/api/v3/auth/me", &u.access).await.ok(200);
}
