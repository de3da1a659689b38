//! Identifiers: ULIDs (26 Crockford base32 characters), so ids sort by creation time.

/// A new, time-ordered identifier.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// An identifier for something raised again and again from one source (a retried stream
/// record): the ULID of time `at` whose random part is taken from SHA-256 of `seed`, so the
/// same `at` and `seed` always give the same id.
pub fn derived_id(at: chrono::DateTime<chrono::Utc>, seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    let mut random = [0u8; 16];
    random.copy_from_slice(&digest[..16]);
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    ulid::Ulid::from_parts(ms, u128::from_be_bytes(random)).to_string()
}

/// `n` new identifiers in strictly increasing order, even within one millisecond, so items
/// created together sort in the order they were made.
pub fn new_ids(n: usize) -> Vec<String> {
    let mut generator = ulid::Generator::new();
    (0..n)
        .map(|_| {
            generator
                .generate()
                .unwrap_or_else(|_| ulid::Ulid::new())
                .to_string()
        })
        .collect()
}

/// Whether `s` is a well-formed id. Anything else can never name a stored item, so the HTTP
/// layer answers 400 before any lookup.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 26 && ulid::Ulid::from_string(s).is_ok()
}

/// User ids come from the identity provider (`sub` claim): any non-empty printable string of at
/// most 128 bytes without the key separator `#`.
pub fn is_valid_user_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.contains('#') && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert!(is_valid_id(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn batches_of_ids_are_strictly_increasing() {
        let ids = new_ids(500);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "abc",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "01ARZ3NDEKTSV4RRFFQ69G5FA!",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
        assert!(is_valid_id("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    }

    #[test]
    fn user_ids_exclude_separator() {
        assert!(is_valid_user_id("user-1"));
        assert!(!is_valid_user_id("a#b"));
        assert!(!is_valid_user_id(""));
    }
}
