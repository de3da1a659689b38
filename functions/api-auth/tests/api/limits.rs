//! The gate: IP lists and rate limits per IP and per account, for every algorithm.

use crate::harness::*;
use serde_json::json;

fn rule(route: &str, per: &str, algorithm: &str, limit: u32) -> String {
    format!(
        r#"{{"route":"{route}","per":"{per}","algorithm":"{algorithm}","limit":{limit},"period":"minute"}}"#
    )
}

#[tokio::test]
async fn concurrent_requests_against_a_limit_of_k_admit_exactly_k_for_each_algorithm() {
    for algorithm in [
        "token_bucket",
        "sliding_window",
        "fixed_window",
        "leaky_bucket",
    ] {
        let rules = format!(
            "[{}]",
            rule(
                "POST /api/v3/auth/password/reset-request",
                "ip",
                algorithm,
                4
            )
        );
        let h = Harness::with_gate("", "", &rules).await;
        let requests = (0..12).map(|i| {
            h.send_from(
                "198.51.100.9",
                "POST",
                "/api/v3/auth/password/reset-request",
                None,
                Some(json!({"email": format!("u{i}@example.com")})),
            )
        });
        let replies = futures::future::join_all(requests).await;
        let admitted = replies.iter().filter(|r| r.status == 202).count();
        assert_eq!(
            admitted,
            4,
            "{algorithm}: {:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        let refused = replies.iter().find(|r| r.status == 429).unwrap();
        refused.problem(429, "rate-limited");
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        // A sliding window can take up to two windows to let the next request in.
        assert!(
            (1..=120).contains(&retry),
            "{algorithm}: Retry-After {retry}"
        );
        assert!(
            refused
                .header("ratelimit-policy")
                .unwrap()
                .contains(";q=4;w=60"),
            "{algorithm}"
        );
        assert!(
            refused.header("ratelimit").unwrap().contains(";r=0;"),
            "{algorithm}"
        );
        // Another address has its own budget.
        h.send_from(
            "198.51.100.10",
            "POST",
            "/api/v3/auth/password/reset-request",
            None,
            Some(json!({"email": "x@example.com"})),
        )
        .await
        .ok(202);
    }
}

#[tokio::test]
async fn login_is_limited_per_account_whatever_the_address() {
    let rules = format!(
        "[{}]",
        rule("POST /api/v3/auth/login", "account", "sliding_window", 3)
    );
    let h = Harness::with_gate("", "", &rules).await;
    let u = h.sign_up("limited").await;
    for i in 0..2 {
        h.send_from(
            &format!("192.0.2.{i}"),
            "POST",
            "/api/v3/auth/login",
            None,
            Some(json!({"email": u.email, "password": "wrong guess here"})),
        )
        .await
        .problem(401, "unauthorized");
    }
    // Another address and the email in capitals: the same account's limit.
    let r = h
        .send_from(
            "192.0.2.77",
            "POST",
            "/api/v3/auth/login",
            None,
            Some(json!({"email": format!(" {} ", u.email.to_uppercase()), "password": PASSWORD})),
        )
        .await;
    r.problem(429, "rate-limited");
    assert!(r.header("retry-after").is_some());
    // Other accounts are not affected.
    let other = h.sign_up("free").await;
    h.login(&other.email, PASSWORD).await.ok(200);
    // An address nobody registered is counted too, and no counter names an address in clear.
    let ghost = unique_email("ghost");
    h.login(&ghost, "wrong guess here")
        .await
        .problem(401, "unauthorized");
    let counters: Vec<String> = h
        .all_items()
        .await
        .into_iter()
        .filter(|i| i["PK"].as_str().unwrap_or_default().starts_with("RL#"))
        .map(|i| i.to_string())
        .collect();
    assert!(counters.len() >= 3, "{counters:?}");
    for email in [&u.email, &other.email, &ghost] {
        assert!(
            !counters.iter().any(|c| c.contains(email.as_str())),
            "{email} stored in clear: {counters:?}"
        );
    }
}

#[tokio::test]
async fn an_ipv6_client_is_counted_by_its_64() {
    let rules = format!(
        "[{}]",
        rule(
            "POST /api/v3/auth/password/reset-request",
            "ip",
            "fixed_window",
            2
        )
    );
    let h = Harness::with_gate("", "", &rules).await;
    let from = |ip: &'static str| {
        h.send_from(
            ip,
            "POST",
            "/api/v3/auth/password/reset-request",
            None,
            Some(json!({"email": "nobody@example.com"})),
        )
    };
    from("2001:db8:5:6::1").await.ok(202);
    from("2001:db8:5:6::2").await.ok(202);
    // A new address in the same /64 is the same client.
    from("2001:db8:5:6:ffff::9")
        .await
        .problem(429, "rate-limited");
    from("2001:db8:5:7::1").await.ok(202);
}

#[tokio::test]
async fn ip_lists_apply_before_anything_else() {
    let h = Harness::with_gate("203.0.113.0/24, 2001:db8::/32", "203.0.113.66", "").await;
    h.send_from("203.0.113.66", "GET", "/api/v3/auth/health", None, None)
        .await
        .problem(403, "forbidden");
    h.send_from(
        "198.51.100.1",
        "POST",
        "/api/v3/auth/register",
        None,
        Some(json!({"email": unique_email("x"), "password": PASSWORD, "display_name": "X"})),
    )
    .await
    .problem(403, "forbidden");
    assert!(h.stored_items().await.is_empty());
    h.send_from("2001:db8::1", "GET", "/api/v3/auth/health", None, None)
        .await
        .ok(200);
    h.send_from("203.0.113.5", "GET", "/api/v3/auth/health", None, None)
        .await
        .ok(200);
}
