//! Adapter tests of [`shared::aws::dynamo::DynamoRateLimits`] through the real AWS SDK against
//! the emulator: every algorithm under concurrent checks of one key, each test on a table of its
//! own made from the template. Time is given explicitly (`now_ms`), never slept through.
//!
//! They need the emulator at `AWS_ENDPOINT_URL` (`make test` starts it), for instance:
//!
//! ```text
//! localstack/.venv/bin/moto_server -H 127.0.0.1 -p 5088 &
//! AWS_ENDPOINT_URL=http://127.0.0.1:5088 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//!   AWS_SECRET_ACCESS_KEY=test cargo nextest run -p shared --test ratelimit
//! ```

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::app::ratelimit::MemoryFront;
use shared::aws::dynamo::DynamoRateLimits;
use shared::domain::ratelimit::{Algorithm, Decision, Limit, decide};
use shared::http::limits::rate_limit_headers;
use shared::ports::RateLimitStore;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

const CAPACITY: u32 = 5;
const CALLERS: usize = 20;
const PERIOD: Duration = Duration::from_secs(60);
const KEY: &str = "route:POST /api/v3/workflows|user:alice";

/// Now, from the wall clock, so that the items' TTL lies in the future (the emulator may remove
/// expired items); the tests move time on from there explicitly.
fn start_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch");
    since.as_millis() as i64
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

async fn store() -> (Client, String, Arc<DynamoRateLimits>) {
    let (client, table) = localstack::testing::fresh_table("ratelimit").await;
    let store = Arc::new(DynamoRateLimits::new(client.clone(), table.clone()));
    (client, table, store)
}

/// `CALLERS` concurrent checks of `key` at `now_ms`, on a multi-thread runtime.
async fn concurrent_checks<S: RateLimitStore + 'static>(
    store: &Arc<S>,
    key: &str,
    limit: Limit,
    now_ms: i64,
) -> Vec<Decision> {
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let store = Arc::clone(store);
        let key = key.to_string();
        set.spawn(async move { store.check(&key, &limit, now_ms).await });
    }
    let mut decisions = Vec::new();
    while let Some(joined) = set.join_next().await {
        decisions.push(joined.expect("task").expect("check"));
    }
    decisions
}

fn admitted(decisions: &[Decision]) -> usize {
    decisions.iter().filter(|d| d.allowed).count()
}

async fn raw_item(client: &Client, table: &str, key: &str) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(format!("RL#{key}")))
        .key("SK", AttributeValue::S("#RATE".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the counter item")
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not a number in {item:?}"))
}

/// What the limit answers a request after `CAPACITY` at one instant, decided in memory.
fn first_refusal(limit: &Limit, now_ms: i64) -> Decision {
    let mut state = None;
    for _ in 0..CAPACITY {
        let d = decide(limit, state, now_ms);
        assert!(d.allowed);
        state = Some(d.new_state);
    }
    decide(limit, state, now_ms)
}

/// The whole story for one algorithm: a concurrent burst admits exactly the capacity, the
/// refused callers are told when to come back, refusals write nothing, the item carries its TTL,
/// and once the time has come requests are admitted again.
async fn exactly_the_capacity_under_concurrency(algorithm: Algorithm) {
    let (client, table, store) = store().await;
    let limit = Limit::new(algorithm, CAPACITY, PERIOD).expect("limit");
    let t0 = start_ms();

    let decisions = concurrent_checks(&store, KEY, limit, t0).await;
    assert_eq!(admitted(&decisions), CAPACITY as usize, "{algorithm:?}");
    let expected = first_refusal(&limit, t0);
    let wait = expected.retry_after.expect("a refusal has a retry_after");
    for d in decisions.iter().filter(|d| !d.allowed) {
        assert_eq!(d.retry_after, Some(wait), "{algorithm:?}");
        assert_eq!(d.remaining, 0, "{algorithm:?}");
        assert!(
            rate_limit_headers(d, &limit, "default")
                .iter()
                .any(|(h, _)| *h == "Retry-After")
        );
    }

    // One write per admission, none for the refusals; the TTL lies after the state matters.
    let item = raw_item(&client, &table, KEY).await;
    assert_eq!(
        number(&item, "version"),
        i64::from(CAPACITY),
        "{algorithm:?}"
    );
    let expires_at = number(&item, "expires_at");
    let matters_until_s = (t0 + ms(expected.reset_after)) / 1000;
    assert!(
        expires_at > matters_until_s && expires_at <= matters_until_s + 120,
        "{algorithm:?}: expires_at {expires_at}, state matters until {matters_until_s}"
    );
    assert!(item.get("state").is_some_and(|s| s.as_m().is_ok()));

    // Refused right up to the retry time, admitted at it.
    let before = store
        .check(KEY, &limit, t0 + ms(wait) - 1)
        .await
        .expect("check");
    assert!(!before.allowed, "{algorithm:?}");
    let at = store
        .check(KEY, &limit, t0 + ms(wait))
        .await
        .expect("check");
    assert!(at.allowed, "{algorithm:?}");
    assert_eq!(number(&raw_item(&client, &table, KEY).await, "version"), 6);

    // Long after, the whole capacity again, still exactly.
    let later = t0 + 3 * ms(PERIOD);
    let decisions = concurrent_checks(&store, KEY, limit, later).await;
    assert_eq!(admitted(&decisions), CAPACITY as usize, "{algorithm:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_bucket_admits_exactly_its_capacity_under_concurrency() {
    exactly_the_capacity_under_concurrency(Algorithm::TokenBucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sliding_window_admits_exactly_its_capacity_under_concurrency() {
    exactly_the_capacity_under_concurrency(Algorithm::SlidingWindow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fixed_window_admits_exactly_its_capacity_under_concurrency() {
    exactly_the_capacity_under_concurrency(Algorithm::FixedWindow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaky_bucket_admits_exactly_its_capacity_under_concurrency() {
    exactly_the_capacity_under_concurrency(Algorithm::LeakyBucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_counted_apart() {
    let (_, _, store) = store().await;
    let limit = Limit::new(Algorithm::FixedWindow, 1, PERIOD).expect("limit");
    let t0 = start_ms();
    assert!(store.check("user:alice", &limit, t0).await.unwrap().allowed);
    assert!(store.check("user:bob", &limit, t0).await.unwrap().allowed);
    assert!(!store.check("user:alice", &limit, t0).await.unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_front_refuses_without_the_table_until_the_retry_time() {
    let (client, table, store) = store().await;
    let front = Arc::new(MemoryFront::new(Arc::clone(&store)));
    let limit = Limit::new(Algorithm::TokenBucket, CAPACITY, PERIOD).expect("limit");
    let t0 = start_ms();

    let decisions = concurrent_checks(&front, KEY, limit, t0).await;
    assert_eq!(admitted(&decisions), CAPACITY as usize);
    let wait = first_refusal(&limit, t0).retry_after.expect("retry_after");

    // With the counter gone from the table the store alone would admit; the front still
    // refuses, so it did not ask the table.
    client
        .delete_item()
        .table_name(&table)
        .key("PK", AttributeValue::S(format!("RL#{KEY}")))
        .key("SK", AttributeValue::S("#RATE".into()))
        .send()
        .await
        .expect("delete item");
    let d = front.check(KEY, &limit, t0 + ms(wait) - 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(Duration::from_millis(1)));
    // At the retry time it asks the table again.
    assert!(
        front
            .check(KEY, &limit, t0 + ms(wait))
            .await
            .unwrap()
            .allowed
    );
}
