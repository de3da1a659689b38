//! The formats of the credentials this product hands out, in one place: what the identity
//! service writes and what the request pipeline reads.
//!
//! - access token: an ES256 JWT with `sub`, `sid` (its session), `role`, `iss`, `aud`, `iat`
//!   (with milliseconds, as a fraction), `nbf` and `exp` ([`ACCESS_TOKEN_SECONDS`] after `iat`),
//!   signed with a low-S signature;
//! - API key: `dwc_<user_id>.<key_id>.<secret>` (sent as a bearer credential);
//! - refresh token: `<user_id>.<session_id>.<secret>`.
//!
//! Ids are ULIDs; only a hash of the secret is stored.

use super::ids;

/// Lifetime of an access token (its `exp` is this after its `iat`, never more).
pub const ACCESS_TOKEN_SECONDS: i64 = 15 * 60;

/// What distinguishes an API key from an access token in `Authorization: Bearer ...`.
pub const API_KEY_PREFIX: &str = "dwc_";

/// The API key shown (once) to its owner.
pub fn api_key(user_id: &str, key_id: &str, secret: &str) -> String {
    format!("{API_KEY_PREFIX}{user_id}.{key_id}.{secret}")
}

/// The parts of an API key: (user id, key id, secret).
pub fn parse_api_key(credential: &str) -> Option<(&str, &str, &str)> {
    parse_three(credential.strip_prefix(API_KEY_PREFIX)?)
}

/// The refresh token of a session.
pub fn refresh_token(user_id: &str, session_id: &str, secret: &str) -> String {
    format!("{user_id}.{session_id}.{secret}")
}

/// The parts of a refresh token: (user id, session id, secret).
pub fn parse_refresh_token(token: &str) -> Option<(&str, &str, &str)> {
    parse_three(token)
}

/// `<id>.<id>.<secret>`: two ULIDs and a non-empty secret.
fn parse_three(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.splitn(3, '.');
    let (first, second, secret) = (parts.next()?, parts.next()?, parts.next()?);
    (ids::is_valid_id(first) && ids::is_valid_id(second) && !secret.is_empty())
        .then_some((first, second, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const K: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAW";

    #[test]
    fn formats_read_back() {
        assert_eq!(
            parse_api_key(&api_key(U, K, "s3cret")),
            Some((U, K, "s3cret"))
        );
        assert_eq!(
            parse_refresh_token(&refresh_token(U, K, "a.b")),
            Some((U, K, "a.b"))
        );
        // An API key is not a refresh token, nor the other way round.
        assert_eq!(parse_api_key(&refresh_token(U, K, "s")), None);
        assert_eq!(parse_refresh_token(&api_key(U, K, "s")), None);
    }

    #[test]
    fn malformed_credentials_are_refused() {
        for bad in [
            "",
            "dwc_",
            "dwc_x.y.z",
            &format!("dwc_{U}.{K}."),
            &format!("dwc_{U}.{K}"),
        ] {
            assert_eq!(parse_api_key(bad), None, "{bad}");
        }
        assert_eq!(parse_refresh_token(&format!("{U}.nope.secret")), None);
    }
}
