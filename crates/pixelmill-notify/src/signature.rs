//! The `Pixelmill-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! The timestamp is part of the signed message so a captured request cannot be replayed later than
//! the receiver's tolerance; the body is signed byte for byte, so receivers must verify the raw body
//! before parsing it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], unix_seconds: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Pixelmill-Signature` header value for `body` sent at `unix_seconds`.
pub fn sign(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    sign_all(&[secret], unix_seconds, body)
}

/// The header with one `v1` per secret, in order: while a secret is being rotated, receivers that
/// know either one verify.
pub fn sign_all(secrets: &[&[u8]], unix_seconds: i64, body: &[u8]) -> String {
    let mut header = format!("t={unix_seconds}");
    for secret in secrets {
        let tag = mac(secret, unix_seconds, body).finalize().into_bytes();
        header.push_str(",v1=");
        header.push_str(&hex::encode(tag));
    }
    header
}

/// Whether `header` is a valid signature of `body` under `secret`, made no further than `tolerance`
/// from `now_unix_seconds` (either side, to allow for clock skew). Any `v1` entry may match, so a
/// sender can sign with an old and a new secret while rotating.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix_seconds: i64,
    tolerance: Duration,
) -> bool {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", tag)) => tags.extend(hex::decode(tag).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if now_unix_seconds.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let expected = mac(secret, t, body);
    // `verify_slice` compares in constant time, so the header leaks nothing about the right tag.
    tags.iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"event":"job.succeeded"}"#;
    const MINUTES_5: Duration = Duration::from_secs(300);

    #[test]
    fn signs_like_an_independent_implementation() {
        // python3: hmac.new(b"whsec_test_secret", b'1700000000.{"event":"job.succeeded"}',
        //                    hashlib.sha256).hexdigest()
        assert_eq!(
            sign(SECRET, 1_700_000_000, BODY),
            "t=1700000000,v1=6cb20f6e034911507c71b7190971c3ae32a9b34a59eaf77528a09d7c374f8457"
        );
    }

    #[test]
    fn verifies_its_own_signature_within_tolerance() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(verify(SECRET, &header, BODY, 1_700_000_000, MINUTES_5));
        assert!(verify(SECRET, &header, BODY, 1_700_000_299, MINUTES_5));
        assert!(verify(SECRET, &header, BODY, 1_699_999_701, MINUTES_5));
    }

    #[test]
    fn rejects_a_stale_timestamp() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(!verify(SECRET, &header, BODY, 1_700_000_301, MINUTES_5));
    }

    #[test]
    fn rejects_another_body_secret_or_timestamp() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(!verify(
            SECRET,
            &header,
            br#"{"event":"job.failed"}"#,
            1_700_000_000,
            MINUTES_5
        ));
        assert!(!verify(b"other", &header, BODY, 1_700_000_000, MINUTES_5));
        // The tag of one timestamp does not verify under another.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(SECRET, &moved, BODY, 1_700_000_000, MINUTES_5));
    }

    #[test]
    fn rejects_malformed_headers() {
        for header in [
            "",
            "t=1700000000",
            "v1=00",
            "t=x,v1=00",
            "t=1700000000,v1=zz",
        ] {
            assert!(
                !verify(SECRET, header, BODY, 1_700_000_000, MINUTES_5),
                "{header}"
            );
        }
    }

    #[test]
    fn accepts_any_matching_v1_during_rotation() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        let rotated = format!("t=1700000000,v1={},{}", "00".repeat(32), &header[13..]);
        assert!(verify(SECRET, &rotated, BODY, 1_700_000_000, MINUTES_5));
    }
}
