//! The request gate every HTTP function runs first: IP allow/deny lists (CIDR), then rate
//! limits per route and per source IP, per principal or per account, from configuration.
//!
//! Configuration (environment, read once at cold start by [`crate::config::GateSettings`]):
//! - `IP_ALLOW_LIST`, `IP_DENY_LIST`: comma-separated CIDRs (`10.0.0.0/8, 2001:db8::/32`) or
//!   addresses. A deny match refuses (403); a non-empty allow list refuses everything outside
//!   it. Both apply before anything else, including authentication.
//! - `RATE_LIMITS`: a JSON array of rules,
//!   `{"route": "POST /api/v3/auth/login", "per": "ip", "algorithm": "sliding_window", "limit": 20, "period": "minute"}`.
//!   `route` is `*` (every request), `METHOD /path` or a prefix ending in `*`
//!   (`GET /api/v3/workflows*`); `per` is `ip`, `principal` (the authenticated user) or
//!   `account` (the email a login, register or reset request names); `period` is `second`,
//!   `minute`, `hour` or `day`.
//!
//! Over a limit: 429 problem+json with `Retry-After`, `RateLimit-Policy` and `RateLimit`.
//! Counters live in the table (conditional writes, TTL) so every instance shares them; a
//! per-instance [`crate::app::ratelimit::MemoryFront`] answers known refusals locally.

use super::Problem;
use crate::domain::ratelimit::{Algorithm, Decision, Limit};
use crate::ports::RateLimitStore;
use http::StatusCode;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Ip,
    Principal,
    Account,
}

impl Per {
    fn as_str(self) -> &'static str {
        match self {
            Per::Ip => "ip",
            Per::Principal => "principal",
            Per::Account => "account",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
            Period::Day => 86_400,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    route: String,
    per: Per,
    algorithm: Algorithm,
    limit: u32,
    period: Period,
}

#[derive(Debug, Clone)]
struct Rule {
    /// `None` matches every method.
    method: Option<String>,
    path: String,
    prefix: bool,
    per: Per,
    limit: Limit,
    /// Names the rule in keys and headers.
    name: String,
}

impl Rule {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && if self.prefix {
                path.starts_with(&self.path)
            } else {
                path == self.path
            }
    }
}

/// Allow/deny lists and rate limit rules.
#[derive(Debug, Clone, Default)]
pub struct GateConfig {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    rules: Vec<Rule>,
}

fn nets(var: &str, list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            IpNet::from_str(s)
                .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                .map_err(|_| format!("{var}: {s:?} is not a CIDR or an IP address"))
        })
        .collect()
}

impl GateConfig {
    pub fn from_settings(s: &crate::config::GateSettings) -> Result<GateConfig, String> {
        GateConfig::parse(&s.ip_allow_list, &s.ip_deny_list, &s.rate_limits)
    }

    pub fn parse(allow: &str, deny: &str, rules: &str) -> Result<GateConfig, String> {
        let specs: Vec<RuleSpec> = if rules.trim().is_empty() {
            vec![]
        } else {
            serde_json::from_str(rules).map_err(|e| format!("RATE_LIMITS: {e}"))?
        };
        let rules = specs
            .into_iter()
            .map(|s| {
                let limit = Limit::new(s.algorithm, s.limit, s.period.duration())
                    .map_err(|e| format!("RATE_LIMITS rule {}: {e}", s.route))?;
                let (method, path) = match s.route.trim() {
                    "*" => (None, "*".to_string()),
                    r => match r.split_once(' ') {
                        Some((m, p)) => (Some(m.to_ascii_uppercase()), p.trim().to_string()),
                        None => {
                            return Err(format!(
                                "RATE_LIMITS route {r:?}: write `*` or `METHOD /path`"
                            ));
                        }
                    },
                };
                let prefix = path.ends_with('*');
                Ok(Rule {
                    name: format!(
                        "{}-{}-{}-{}",
                        s.route.replace(['*', ' '], ""),
                        s.per.as_str(),
                        s.limit,
                        s.period.duration().as_secs()
                    ),
                    method,
                    path: path.trim_end_matches('*').to_string(),
                    prefix,
                    per: s.per,
                    limit,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(GateConfig {
            allow: nets("IP_ALLOW_LIST", allow)?,
            deny: nets("IP_DENY_LIST", deny)?,
            rules,
        })
    }
}

/// The gate of one function: configuration plus the shared counters.
#[derive(Clone)]
pub struct Gate {
    config: Arc<GateConfig>,
    store: Option<Arc<dyn RateLimitStore>>,
}

impl Gate {
    pub fn new(config: GateConfig, store: Arc<dyn RateLimitStore>) -> Gate {
        Gate {
            config: Arc::new(config),
            store: Some(store),
        }
    }

    /// A gate that lets everything through (tests of other concerns).
    #[cfg(any(test, feature = "testing"))]
    pub fn open() -> Gate {
        Gate {
            config: Arc::new(GateConfig::default()),
            store: None,
        }
    }

    /// Refuses a source address the lists exclude (403), before anything else.
    pub fn admit_ip(&self, ip: Option<&str>) -> Result<(), Problem> {
        let c = &self.config;
        if c.allow.is_empty() && c.deny.is_empty() {
            return Ok(());
        }
        let addr = ip.and_then(|s| IpAddr::from_str(s).ok());
        let denied = match addr {
            Some(a) => {
                c.deny.iter().any(|n| n.contains(&a))
                    || (!c.allow.is_empty() && !c.allow.iter().any(|n| n.contains(&a)))
            }
            None => !c.allow.is_empty(),
        };
        if denied {
            Err(Problem::forbidden(
                "requests from this address are not accepted",
            ))
        } else {
            Ok(())
        }
    }

    /// Counts one request of `subject` (an IP, a user id, an email) against every rule for
    /// `per` that matches the route; the first refusal is a 429.
    pub async fn limit(
        &self,
        method: &str,
        path: &str,
        per: Per,
        subject: &str,
        now_ms: i64,
    ) -> Result<(), Problem> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        // As the functions route it: `/api/v3/auth/login/` is the login route too.
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        for rule in self
            .config
            .rules
            .iter()
            .filter(|r| r.per == per && r.matches(method, path))
        {
            let key = format!(
                "{}|{}:{}",
                rule.name,
                per.as_str(),
                subject_key(per, subject)
            );
            let decision = match store.check(&key, &rule.limit, now_ms).await {
                Ok(d) => d,
                Err(e) => {
                    // The limiter must not take the API down with it: let the request through.
                    tracing::warn!(error = %e, rule = %rule.name, "rate limit store unavailable");
                    continue;
                }
            };
            if !decision.allowed {
                let mut p = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    format!(
                        "more than {} requests per {} s from this {}; retry after the time in Retry-After",
                        rule.limit.capacity(),
                        rule.limit.period().as_secs(),
                        per.as_str()
                    ),
                )
                .with("limit", json!(rule.limit.capacity()))
                .with("policy", json!(rule.name));
                for (name, value) in rate_limit_headers(&decision, &rule.limit, &rule.name) {
                    if let Ok(n) = http::HeaderName::from_bytes(name.as_bytes()) {
                        p = p.with_header(n, value);
                    }
                }
                return Err(p);
            }
        }
        Ok(())
    }

    /// Whether any rule counts `per` subjects (so callers can skip work to find the subject).
    pub fn counts(&self, per: Per) -> bool {
        self.store.is_some() && self.config.rules.iter().any(|r| r.per == per)
    }
}

/// The caller's address as API Gateway saw it (payload 2.0 `requestContext.http.sourceIp`).
pub fn source_ip(req: &lambda_http::Request) -> Option<String> {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// What a counter is keyed by, as written to the table: an IPv6 client by its /64 (one
/// subscriber's network; its addresses are free to pick), an account by a hash of the email
/// attempted (known or not, no address is stored in clear), a principal by its user id.
pub fn subject_key(per: Per, subject: &str) -> String {
    match per {
        Per::Ip => match subject.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
            Ok(IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .map_or_else(String::new, |v4| v4.to_string()),
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            Err(_) => subject.to_string(),
        },
        Per::Account => {
            crate::crypto::sha256_hex(&format!("rate-limit:{subject}"))[..32].to_string()
        }
        Per::Principal => subject.to_string(),
    }
}

/// Every rate limit header of an answer (draft-ietf-httpapi-ratelimit-headers):
/// `RateLimit-Policy` (the policy's name, quota `q` and window `w` in seconds), `RateLimit`
/// (remaining quota `r` and seconds `t` until it resets) and, for a refusal, `Retry-After`
/// (whole seconds, at least 1). Seconds are rounded up.
pub fn rate_limit_headers(
    decision: &Decision,
    limit: &Limit,
    policy: &str,
) -> Vec<(&'static str, String)> {
    let name = sf_string(policy);
    let mut h = vec![
        (
            "RateLimit-Policy",
            format!(
                "{name};q={};w={}",
                limit.capacity(),
                ceil_seconds(limit.period())
            ),
        ),
        (
            "RateLimit",
            format!(
                "{name};r={};t={}",
                decision.remaining,
                ceil_seconds(decision.reset_after)
            ),
        ),
    ];
    if let Some(wait) = decision.retry_after {
        h.push(("Retry-After", ceil_seconds(wait).max(1).to_string()));
    }
    h
}

/// Whole seconds, rounded up.
fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A structured field String (RFC 8941 §3.3.3): printable ASCII, `"` and `\` escaped; other
/// characters are dropped.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_emails_never_in_clear() {
        let a = subject_key(Per::Ip, "2001:db8:1:2:aaaa::1");
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(subject_key(Per::Ip, "2001:db8:1:2:ffff:ffff:ffff:ffff"), a);
        assert_ne!(subject_key(Per::Ip, "2001:db8:1:3::1"), a);
        assert_eq!(subject_key(Per::Ip, "198.51.100.7"), "198.51.100.7");
        assert_eq!(subject_key(Per::Ip, "::ffff:198.51.100.7"), "198.51.100.7");
        let account = subject_key(Per::Account, "ann@example.com");
        assert!(!account.contains("ann") && account.len() == 32, "{account}");
        assert_eq!(account, subject_key(Per::Account, "ann@example.com"));
        assert_ne!(account, subject_key(Per::Account, "bob@example.com"));
        assert_eq!(
            subject_key(Per::Principal, "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            "01ARZ3NDEKTSV4RRFFQ69G5FAV"
        );
    }

    #[test]
    fn headers_follow_the_ratelimit_draft() {
        use crate::domain::ratelimit::decide;
        let l = Limit::new(Algorithm::FixedWindow, 5, Duration::from_secs(60)).unwrap();
        let mut state = None;
        let mut ds = Vec::new();
        for _ in 0..6 {
            let d = decide(&l, state, 30_500);
            if d.allowed {
                state = Some(d.new_state);
            }
            ds.push(d);
        }
        assert_eq!(
            rate_limit_headers(&ds[0], &l, "default"),
            [
                ("RateLimit-Policy", "\"default\";q=5;w=60".to_string()),
                ("RateLimit", "\"default\";r=4;t=30".to_string()),
            ]
        );
        // 29.5 s to wait: rounded up.
        assert_eq!(
            rate_limit_headers(&ds[5], &l, "default")[2],
            ("Retry-After", "30".to_string())
        );
        // Sub-second periods and waits round up to a whole second; names are sf-strings.
        let l = Limit::new(Algorithm::TokenBucket, 2, Duration::from_millis(300)).unwrap();
        let mut d = decide(&l, None, 0);
        d.retry_after = Some(Duration::from_millis(1));
        let h = rate_limit_headers(&d, &l, "a\"b\\c\u{e9}\n");
        assert_eq!(h[0].1, "\"a\\\"b\\\\c\";q=2;w=1");
        assert_eq!(h[2], ("Retry-After", "1".to_string()));
    }

    #[test]
    fn configuration_parses_and_explains_mistakes() {
        let c = GateConfig::parse(
            "10.0.0.0/8, 192.168.1.7",
            "10.1.0.0/16",
            r#"[{"route":"POST /api/v3/auth/login","per":"ip","algorithm":"sliding_window","limit":5,"period":"minute"},
                {"route":"*","per":"principal","algorithm":"token_bucket","limit":600,"period":"minute"},
                {"route":"GET /api/v3/workflows*","per":"principal","algorithm":"fixed_window","limit":10,"period":"hour"}]"#,
        )
        .unwrap();
        assert_eq!(c.rules.len(), 3);
        assert!(c.rules[0].matches("POST", "/api/v3/auth/login"));
        assert!(!c.rules[0].matches("GET", "/api/v3/auth/login"));
        assert!(c.rules[1].matches("DELETE", "/anything"));
        assert!(c.rules[2].matches("GET", "/api/v3/workflows/01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        assert!(
            GateConfig::parse("10.0.0.0/33", "", "")
                .unwrap_err()
                .contains("IP_ALLOW_LIST")
        );
        assert!(GateConfig::parse("", "", r#"[{"route":"login","per":"ip","algorithm":"fixed_window","limit":1,"period":"minute"}]"#).is_err());
        assert!(GateConfig::parse("", "", r#"[{"route":"*","per":"ip","algorithm":"fixed_window","limit":0,"period":"minute"}]"#).is_err());
        assert!(GateConfig::parse("", "", r#"[{"route":"*","per":"nobody","algorithm":"fixed_window","limit":1,"period":"minute"}]"#).is_err());
    }

    #[test]
    fn deny_wins_and_a_non_empty_allow_list_excludes_the_rest() {
        let gate = |allow: &str, deny: &str| Gate {
            config: Arc::new(GateConfig::parse(allow, deny, "").unwrap()),
            store: None,
        };
        let g = gate("10.0.0.0/8", "10.1.0.0/16");
        assert!(g.admit_ip(Some("10.2.3.4")).is_ok());
        assert_eq!(g.admit_ip(Some("10.1.3.4")).unwrap_err().status, 403);
        assert_eq!(g.admit_ip(Some("8.8.8.8")).unwrap_err().status, 403);
        assert_eq!(g.admit_ip(None).unwrap_err().status, 403);
        let g = gate("", "127.0.0.1, ::1");
        assert_eq!(g.admit_ip(Some("127.0.0.1")).unwrap_err().status, 403);
        assert!(g.admit_ip(Some("127.0.0.2")).is_ok());
        assert!(g.admit_ip(None).is_ok());
        assert!(Gate::open().admit_ip(Some("1.2.3.4")).is_ok());
    }
}
