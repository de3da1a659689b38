//! Where a channel delivers: the target each kind takes, checked when the channel is saved.
//!
//! URLs are checked by hand (a small, strict subset of RFC 3986: ASCII only, no userinfo, no
//! fragment, no backslash), and their host must be public unless the local stack allows
//! otherwise. A host name can still resolve to a private address (or be rebound to one), so the
//! sender checks the addresses it connects to with [`is_public_ip`] as well.

use crate::domain::FieldError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use super::ChannelKind;

/// The longest email address (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest webhook URL.
pub const MAX_URL_CHARS: usize = 2048;

const FIELD: &str = "target";

/// Checks a channel's target for its kind; `allow_http` lets `http://` (and loopback or private
/// hosts) through, for the local stack and tests only. Errors carry the field name `target`.
pub fn check_target(kind: ChannelKind, target: &str, allow_http: bool) -> Result<(), FieldError> {
    let result = match kind {
        ChannelKind::Email => check_email(target),
        ChannelKind::Sms => check_phone(target),
        ChannelKind::Push => check_endpoint_arn(target),
        ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Discord => {
            check_url(target, allow_http)
        }
    };
    result.map_err(|message| FieldError::new(FIELD, message))
}

fn check_email(s: &str) -> Result<(), String> {
    const SHAPE: &str = "must be an email address such as ann@example.com";
    if s.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!(
            "must be an email address of at most {MAX_EMAIL_CHARS} characters"
        ));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
    {
        return Err(SHAPE.into());
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SHAPE.into());
    };
    let labels_ok = domain.split('.').all(|l| !l.is_empty());
    if local.is_empty() || !domain.contains('.') || !labels_ok {
        return Err(SHAPE.into());
    }
    Ok(())
}

fn check_phone(s: &str) -> Result<(), String> {
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"^\+[1-9][0-9]{6,14}$")
            .unwrap_or_else(|_| unreachable!("the pattern is a constant"))
    });
    if pattern.is_match(s) {
        Ok(())
    } else {
        Err("must be a phone number in E.164 form, such as +14155550123".into())
    }
}

fn check_endpoint_arn(s: &str) -> Result<(), String> {
    // Application names: up to 256 ASCII letters, digits, '_', '-', '.' (SNS CreatePlatformApplication).
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(
            r"^arn:aws(?:-[a-z]+)*:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9]{12}:endpoint/(?:APNS|APNS_SANDBOX|GCM|ADM|BAIDU|WNS|MPNS)/[A-Za-z0-9_.\-]{1,256}/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        )
        .unwrap_or_else(|_| unreachable!("the pattern is a constant"))
    });
    if pattern.is_match(s) {
        Ok(())
    } else {
        Err("must be an SNS platform endpoint ARN (arn:aws:sns:<region>:<account>:endpoint/<platform>/<application>/<id>)".into())
    }
}

fn check_url(s: &str, allow_http: bool) -> Result<(), String> {
    if s.len() > MAX_URL_CHARS {
        return Err(format!(
            "must be a URL of at most {MAX_URL_CHARS} characters"
        ));
    }
    // ASCII only (percent-encode the rest), and nothing parsers disagree on.
    if s.chars().any(|c| {
        !c.is_ascii_graphic() || matches!(c, '\\' | '"' | '<' | '>' | '{' | '}' | '^' | '`' | '|')
    }) {
        return Err(
            "must be a URL without spaces, control or non-ASCII characters (percent-encode them)"
                .into(),
        );
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("must be an absolute https:// URL".into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err("must be an https:// URL".into()),
    }
    if s.contains('#') {
        return Err("must not have a fragment (#...)".into());
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry a user name or password".into());
    }
    let (host, port) = split_host_port(authority)?;
    if let Some(port) = port
        && !port.is_empty()
        && (port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535))
    {
        return Err("must have a port between 1 and 65535".into());
    }
    match host {
        Host::Ip(ip) => {
            if !allow_http && !is_public_ip(ip) {
                return Err(
                    "must not point to a loopback, private or otherwise non-public address".into(),
                );
            }
        }
        Host::Name(name) => {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let labels: Vec<&str> = name.split('.').collect();
            let label_ok = |l: &&str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if name.is_empty() || name.len() > 253 || !labels.iter().all(label_ok) {
                return Err("must have a valid host name".into());
            }
            // A numeric last label is an address in disguise (`2130706433`, `0x7f.1`):
            // resolvers read those as IPv4, so only the dotted-quad form is accepted.
            let last = labels.last().copied().unwrap_or_default();
            if last.bytes().all(|b| b.is_ascii_digit()) || is_hex_number(last) {
                match name.parse::<Ipv4Addr>() {
                    Ok(ip) if allow_http || is_public_ip(IpAddr::V4(ip)) => {}
                    Ok(_) => {
                        return Err(
                            "must not point to a loopback, private or otherwise non-public address"
                                .into(),
                        );
                    }
                    Err(_) => {
                        return Err(
                            "must have a valid host name or dotted-quad IPv4 address".into()
                        );
                    }
                }
            } else if !allow_http {
                let internal = ["localhost", "internal", "local"].contains(&last);
                if internal || labels.len() < 2 {
                    return Err("must name a public host (not localhost, *.internal, *.local or a single-label name)".into());
                }
            }
        }
    }
    Ok(())
}

fn is_hex_number(label: &str) -> bool {
    label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// The host and the port text (after `:`) of an authority; IPv6 literals in brackets.
fn split_host_port(authority: &str) -> Result<(Host<'_>, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return Err("must have a valid host (unclosed IPv6 bracket)".into());
        };
        let ip: Ipv6Addr = literal
            .parse()
            .map_err(|_| "must have a valid IPv6 address in brackets (no zone)".to_string())?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| "must have a valid host and port".to_string())?,
            ),
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("must have a host".into());
    }
    Ok((Host::Name(host), port))
}

/// Whether `ip` is an ordinary public unicast address: not unspecified, loopback, private
/// (RFC 1918), shared (100.64/10), link-local, unique-local (fc00::/7), site-local, multicast,
/// broadcast, documentation, benchmarking or reserved, looking through IPv4-mapped, NAT64 and
/// 6to4 IPv6 addresses to the IPv4 address inside.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 (2002::/16) carries one in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated), ::/96
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] & 0xfff0) == 0x3ff0 // documentation (3fff::/20)
        || (s[0] == 0x2001 && s[1] == 0) // Teredo (2001::/32): tunnels to IPv4
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID (2001:10::/28)
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020) // ORCHIDv2 (2001:20::/28)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 (64:ff9b:1::/48)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only
    !blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: ChannelKind, target: &str) -> bool {
        check_target(kind, target, false).is_ok()
    }

    #[test]
    fn emails_must_be_plausible() {
        use ChannelKind::Email;
        assert!(ok(Email, "ann@example.com"));
        assert!(ok(Email, "ann.lee+alerts@mail.example.co.uk"));
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "ann@@example.com",
            "ann@b@example.com",
            "ann lee@example.com",
            "ann@example.com\r\nBcc: x@y.z",
            "Ann <ann@example.com>",
            "ann@example.com,bob@example.com",
            "ann@example..com",
            "ann@.example.com",
        ] {
            let e = check_target(Email, bad, false).unwrap_err();
            assert_eq!(e.field, "target", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_CHARS));
        assert!(!ok(Email, &long));
    }

    #[test]
    fn phone_numbers_are_e164() {
        use ChannelKind::Sms;
        assert!(ok(Sms, "+14155550123"));
        assert!(ok(Sms, "+33612345678"));
        for bad in [
            "14155550123",
            "+04155550123",
            "+1 415 555 0123",
            "+12345",
            "+1234567890123456",
            "+1415555012a",
        ] {
            assert!(!ok(Sms, bad), "{bad}");
        }
    }

    #[test]
    fn push_targets_are_platform_endpoint_arns() {
        use ChannelKind::Push;
        let id = "0c2b6a4e-5f1d-3c8a-9b7e-2d4f6a8c0e1b";
        assert!(ok(
            Push,
            &format!("arn:aws:sns:eu-west-1:123456789012:endpoint/APNS/my-app/{id}")
        ));
        assert!(ok(
            Push,
            &format!("arn:aws:sns:us-east-1:000000000000:endpoint/GCM/app.android_1/{id}")
        ));
        assert!(ok(
            Push,
            &format!("arn:aws-cn:sns:cn-north-1:123456789012:endpoint/APNS_SANDBOX/app/{id}")
        ));
        assert!(ok(
            Push,
            &format!("arn:aws-us-gov:sns:us-gov-west-1:123456789012:endpoint/ADM/app/{id}")
        ));
        for bad in [
            // A topic, not an endpoint.
            "arn:aws:sns:eu-west-1:123456789012:alerts".to_string(),
            format!("arn:aws:sns:eu-west-1:123456789012:endpoint/SMS/app/{id}"),
            format!("arn:aws:sns:eu-west-1:12345678901:endpoint/GCM/app/{id}"),
            format!("arn:aws:sqs:eu-west-1:123456789012:endpoint/GCM/app/{id}"),
            "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/app/not-a-uuid".to_string(),
            format!("arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/my app/{id}"),
        ] {
            assert!(!ok(Push, &bad), "{bad}");
        }
    }

    #[test]
    fn webhook_urls_are_public_https_without_credentials_or_fragment() {
        for kind in [
            ChannelKind::Webhook,
            ChannelKind::Slack,
            ChannelKind::Teams,
            ChannelKind::Discord,
        ] {
            assert!(ok(kind, "https://hooks.slack.com/services/T000/B000/XXXX"));
            assert!(ok(kind, "https://example.com:8443/hook?x=1&y=%20"));
            assert!(ok(kind, "HTTPS://Example.COM./hook"));
            assert!(ok(kind, "https://93.184.216.34/hook"));
            assert!(ok(
                kind,
                "https://[2606:2800:220:1:248:1893:25c8:1946]:443/hook"
            ));
            for bad in [
                "http://example.com/hook",
                "ftp://example.com/hook",
                "example.com/hook",
                "https://",
                "https:///path",
                "https://user:pass@example.com/hook",
                "https://user@example.com/hook",
                "https://example.com/hook#frag",
                "https://exa mple.com/hook",
                "https://example.com/ho ok",
                "https://example.com\\@evil.com/",
                "https://exämple.com/",
                "https://example.com:0/",
                "https://example.com:65536/",
                "https://example.com:x/",
                "https://localhost/hook",
                "https://api.localhost/hook",
                "https://metadata.google.internal/computeMetadata",
                "https://printer.local/",
                "https://intranet/hook",
                "https://127.0.0.1/hook",
                "https://10.1.2.3/hook",
                "https://172.16.0.1/hook",
                "https://192.168.1.1/hook",
                "https://169.254.169.254/latest/meta-data",
                "https://100.64.0.1/",
                "https://0.0.0.0/",
                "https://224.0.0.1/",
                "https://255.255.255.255/",
                "https://2130706433/",
                "https://0x7f.1/",
                "https://127.1/",
                "https://[::1]/hook",
                "https://[::]/hook",
                "https://[fd00::1]/hook",
                "https://[fe80::1]/hook",
                "https://[fe80::1%25eth0]/hook",
                "https://[ff02::1]/hook",
                "https://[::ffff:127.0.0.1]/hook",
                "https://[::ffff:10.0.0.1]/hook",
                "https://[64:ff9b::a00:1]/hook",
                "https://[2002:c0a8:101::1]/hook",
                "https://[::1/hook",
            ] {
                let e = check_target(kind, bad, false);
                assert!(e.is_err(), "{kind} {bad}");
                assert_eq!(e.unwrap_err().field, "target");
            }
            let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
            assert!(!ok(kind, &long));
        }
    }

    #[test]
    fn the_local_stack_may_use_http_and_private_hosts() {
        let kind = ChannelKind::Webhook;
        for url in [
            "http://localhost:4566/hook",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:8080/hook",
            "http://host.docker.internal:9000/",
            "http://receiver/hook",
        ] {
            assert!(check_target(kind, url, true).is_ok(), "{url}");
            assert!(check_target(kind, url, false).is_err(), "{url}");
        }
        // Still no credentials, fragments or other schemes.
        assert!(check_target(kind, "http://u:p@localhost/", true).is_err());
        assert!(check_target(kind, "http://localhost/#x", true).is_err());
        assert!(check_target(kind, "file:///etc/passwd", true).is_err());
    }

    #[test]
    fn public_addresses_are_told_from_the_rest() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.53",
            "172.31.255.255",
            "198.18.0.1",
            "fc00::1",
            "::",
            "2001:db8::1",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn tunnels_and_reserved_ipv6_ranges_are_not_public() {
        for ip in [
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "3fff::1",
            "64:ff9b:1::a00:1",
            "2001:10::1",
            "2001:20::1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert!(!is_public_ip(ip), "{ip}");
        }
        for ip in ["2606:4700::1111", "2a00:1450:4001:80b::200e"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert!(is_public_ip(ip), "{ip}");
        }
    }
}
