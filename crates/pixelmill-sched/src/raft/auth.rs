//! Request signatures between a region's nodes: every raft request carries, in the
//! `pixelmill-raft-auth` header, an HMAC-SHA256 under the cluster secret over its method, path,
//! receiving node, timestamp, a random nonce and the SHA-256 of its body. `guard.rs` checks it
//! before the listener reads the body.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// The header that carries a raft request's signature.
pub const RAFT_AUTH_HEADER: &str = "pixelmill-raft-auth";

/// Shortest accepted cluster secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The shared secret every node of a region signs its raft requests with. Its `Debug` shows no
/// byte of it, so it can sit in logged config structs.
#[derive(Clone, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct RaftSecret(Vec<u8>);

/// Why a text is no usable cluster secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the raft secret is {len} bytes, at least {MIN_SECRET_BYTES} are needed; generate one with `head -c 32 /dev/urandom | base64`")]
    TooShort { len: usize },
    #[error("cannot read the raft secret file {path}: {source}; check the path and that this user may read it")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl RaftSecret {
    /// The secret's bytes are the text's, less surrounding whitespace (a file's final newline).
    pub fn new(text: &str) -> Result<RaftSecret, SecretError> {
        let bytes = text.trim().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: bytes.len() });
        }
        Ok(RaftSecret(bytes.to_vec()))
    }

    pub fn from_file(path: &Path) -> Result<RaftSecret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.display().to_string(),
            source,
        })?;
        RaftSecret::new(&text)
    }

    /// A secret no other node knows: for a single voter, which has no listener and no peer.
    pub(crate) fn random() -> RaftSecret {
        RaftSecret(rand::random::<[u8; 32]>().to_vec())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

impl TryFrom<String> for RaftSecret {
    type Error = SecretError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        RaftSecret::new(&text)
    }
}

impl fmt::Debug for RaftSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftSecret(<redacted>)")
    }
}

/// The node a request is meant for: one by id, or (read-only status only) any member, for a
/// caller that does not know the id behind an address yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    Node(u64),
    Any,
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Node(id) => write!(f, "{id}"),
            Recipient::Any => f.write_str("*"),
        }
    }
}

/// A parsed `pixelmill-raft-auth` header: `to=<id|*>;ts=<unix ms>;nonce=<32 hex>;mac=<64 hex>`.
#[derive(Debug)]
pub(crate) struct Signature {
    pub(crate) to: Recipient,
    pub(crate) ts_ms: i64,
    pub(crate) nonce: u128,
    mac: Vec<u8>,
}

/// The value of the `pixelmill-raft-auth` header for a request `to` a node, signed at `now_ms`
/// (`pixelmill_core::now_ms()`) with a fresh nonce. `body` is the exact bytes sent (empty for a GET).
pub fn raft_auth_header(
    secret: &RaftSecret,
    method: &str,
    path: &str,
    to: Recipient,
    body: &[u8],
    now_ms: i64,
) -> String {
    let nonce = rand::random::<u128>();
    let mac = signed(secret, method, path, to, now_ms, nonce, body).finalize();
    format!(
        "to={to};ts={now_ms};nonce={nonce:032x};mac={}",
        hex::encode(mac.into_bytes())
    )
}

/// The MAC over everything that must not change between signer and listener, each field on its
/// own line so no two different requests sign the same text.
fn signed(
    secret: &RaftSecret,
    method: &str,
    path: &str,
    to: Recipient,
    ts_ms: i64,
    nonce: u128,
    body: &[u8],
) -> HmacSha256 {
    let mut mac = secret.mac();
    let text = format!(
        "pixelmill-raft/1\n{method}\n{path}\n{to}\n{ts_ms}\n{nonce:032x}\n{}",
        hex::encode(Sha256::digest(body))
    );
    mac.update(text.as_bytes());
    mac
}

impl Signature {
    pub(crate) fn parse(header: &str) -> Result<Signature, String> {
        let mut fields = [None; 4];
        for part in header.split(';') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not KEY=VALUE"))?;
            let slot = ["to", "ts", "nonce", "mac"]
                .iter()
                .position(|k| *k == key.trim())
                .ok_or_else(|| format!("unknown field `{key}`"))?;
            fields[slot] = Some(value.trim());
        }
        let [Some(to), Some(ts), Some(nonce), Some(mac)] = fields else {
            return Err("it needs to=, ts=, nonce= and mac=".to_owned());
        };
        let to = match to {
            "*" => Recipient::Any,
            id => Recipient::Node(id.parse().map_err(|_| format!("to=`{id}` is no node id"))?),
        };
        let nonce = match nonce.len() {
            32 => u128::from_str_radix(nonce, 16).ok(),
            _ => None,
        };
        Ok(Signature {
            to,
            ts_ms: ts.parse().map_err(|_| format!("ts=`{ts}` is no time"))?,
            nonce: nonce.ok_or("nonce= must be 32 hex digits")?,
            mac: hex::decode(mac).map_err(|_| "mac= is not hex".to_owned())?,
        })
    }

    /// Whether the MAC is right for this request, compared in constant time (`verify_slice`).
    pub(crate) fn verifies(
        &self,
        secret: &RaftSecret,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> bool {
        signed(secret, method, path, self.to, self.ts_ms, self.nonce, body)
            .verify_slice(&self.mac)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(c: char) -> RaftSecret {
        RaftSecret::new(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn a_signature_verifies_only_for_the_request_it_was_made_for() {
        let header = raft_auth_header(
            &secret('a'),
            "POST",
            "/raft/vote",
            Recipient::Node(2),
            b"{}",
            7,
        );
        let sig = Signature::parse(&header).unwrap();
        assert!(sig.verifies(&secret('a'), "POST", "/raft/vote", b"{}"));
        assert!(!sig.verifies(&secret('b'), "POST", "/raft/vote", b"{}"));
        assert!(!sig.verifies(&secret('a'), "GET", "/raft/vote", b"{}"));
        assert!(!sig.verifies(&secret('a'), "POST", "/raft/append", b"{}"));
        assert!(!sig.verifies(&secret('a'), "POST", "/raft/vote", b"{ }"));
        let retargeted = header.replace("to=2", "to=3");
        assert!(!Signature::parse(&retargeted).unwrap().verifies(
            &secret('a'),
            "POST",
            "/raft/vote",
            b"{}"
        ));
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused_and_debug_shows_none_of_it() {
        assert!(matches!(
            RaftSecret::new("short\n"),
            Err(SecretError::TooShort { len: 5 })
        ));
        let text = "x".repeat(32);
        let shown = format!("{:?}", RaftSecret::new(&format!("{text}\n")).unwrap());
        assert!(!shown.contains(&text), "{shown}");
    }

    #[test]
    fn malformed_headers_say_what_is_missing() {
        assert!(Signature::parse("to=1;ts=5").unwrap_err().contains("mac="));
        assert!(Signature::parse("to=1;ts=5;nonce=zz;mac=00")
            .unwrap_err()
            .contains("nonce"));
    }
}
