//! Opaque cursors: a store's page key as URL-safe base64 of JSON. Clients must not build them;
//! the store checks a decoded key belongs to the list it is given back to.

use crate::ports::PageKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;

pub const MAX_CURSOR_CHARS: usize = 2048;

pub fn encode(key: &PageKey) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&key.0).unwrap_or_default())
}

pub fn decode(cursor: &str) -> Option<PageKey> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).ok()?;
    Some(PageKey(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let key = PageKey(BTreeMap::from([("PK".to_string(), "WF#1".to_string())]));
        assert_eq!(decode(&encode(&key)), Some(key));
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(b"[1,2]")), None);
        assert_eq!(decode(&"A".repeat(3000)), None);
    }
}
