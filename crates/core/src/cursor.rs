//! Opaque pagination cursors: a page's `next_cursor` names the keyset position after its last
//! item. Clients pass it back as `cursor` and must not read into it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The cursor after an item ordered by `(at, id)`.
pub fn encode(at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

/// The position a cursor names; `None` for anything this engine did not hand out.
pub fn decode(cursor: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (at, id) = raw.split_once(':')?;
    Some((at.parse().ok()?, id.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_garbage() {
        let c = super::encode(1_700_000_000_123, "a-b:c");
        assert_eq!(super::decode(&c), Some((1_700_000_000_123, "a-b:c".to_string())));
        assert_eq!(super::decode("not a cursor"), None);
        assert_eq!(super::decode(&super::encode(1, "x")[1..]), None);
    }
}
