//! Request signing: with a secret configured (globally or per job), every call carries
//! `X-Cronhook-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, so a
//! target can check that the call came from cronhook, unaltered and recently.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header a signature travels in.
pub const HEADER: &str = "x-cronhook-signature";

/// The header value for `body` sent at `timestamp_ms`.
pub fn signature(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp_ms},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // python3: hmac.new(b"0123456789abcdef-secret", b'1700000000000.{"a":1}', "sha256")
        assert_eq!(
            signature("0123456789abcdef-secret", 1_700_000_000_000, br#"{"a":1}"#),
            "t=1700000000000,v1=9eee5221415e11201ca98d3dabb7e1ebda2f32c6a6f3bdaaa82fe2f3b1b064e0"
        );
    }

    #[test]
    fn any_change_changes_it() {
        let base = signature("0123456789abcdef-secret", 1, b"body");
        assert_ne!(base, signature("0123456789abcdef-secreT", 1, b"body"));
        assert_ne!(base, signature("0123456789abcdef-secret", 2, b"body"));
        assert_ne!(base, signature("0123456789abcdef-secret", 1, b"bodY"));
    }
}
