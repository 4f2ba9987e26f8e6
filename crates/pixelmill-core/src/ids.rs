use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares a string newtype id with a prefix and `bits` of randomness from the OS-seeded CSPRNG.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $bytes:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                let mut raw = [0u8; $bytes];
                rand::rng().fill_bytes(&mut raw);
                Self(format!("{}{}", $prefix, hex::encode(raw)))
            }

            /// Wraps an id received from a client or a store; no validation beyond non-emptiness
            /// is needed because ids are only ever used as lookup keys.
            pub fn from_string(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

random_id!(
    /// An uploaded original. 128 random bits.
    ImageId, "img_", 16
);
random_id!(
    /// An asynchronous job. 128 random bits.
    JobId, "job_", 16
);
random_id!(
    /// A download link token: 256 random bits, so links cannot be guessed or enumerated.
    LinkToken, "", 32
);
impl LinkToken {
    /// A token as a client sent it, if it has the shape `generate` gives every token (64
    /// lowercase hex digits); anything else names no link, and needs no lookup to say so.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        (s.len() == 64 && s.bytes().all(hex)).then(|| Self(s.to_owned()))
    }
}

random_id!(
    /// A notification event; reused on every retry so receivers can drop duplicates.
    EventId, "evt_", 16
);

impl EventId {
    /// The event id of a job reaching a final status is derived from the job and status, so a
    /// job re-run after a crash produces the same id and receivers see a duplicate, not a new event.
    pub fn for_job_outcome(job: &JobId, event: &str) -> Self {
        let digest = crate::sha256_hex(format!("{job}/{event}").as_bytes());
        Self(format!("evt_{}", &digest[..32]))
    }
}

/// The owner of every record. One default tenant until API keys land; every record carries it so
/// tenant isolation needs no migration later.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub const DEFAULT: &'static str = "default";

    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of a blob in a `BlobStore`. Keys are content addresses: `orig/<sha256>` for originals,
/// `out/<sha256 of input + canonical pipeline + output>` for outputs, so writing twice is harmless.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn original(sha256_hex: &str) -> Self {
        Self(format!("orig/{sha256_hex}"))
    }

    pub fn output(content_address: &str) -> Self {
        Self(format!("out/{content_address}"))
    }

    /// Where renditions live, so the sweeper can find them.
    pub const RENDITION_PREFIX: &'static str = "render/";

    /// A real-time rendition, addressed by the hash of its input and its canonical request.
    pub fn rendition(cache_key: &str) -> Self {
        Self(format!("{}{cache_key}", Self::RENDITION_PREFIX))
    }

    pub fn from_string(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_carry_256_bits() {
        let t = LinkToken::generate();
        assert_eq!(t.as_str().len(), 64);
        assert_eq!(LinkToken::parse(t.as_str()), Some(t.clone()));
        assert_ne!(t, LinkToken::generate());
    }

    #[test]
    fn strings_that_cannot_be_link_tokens_do_not_parse() {
        let good = "0123456789abcdef".repeat(4);
        assert!(LinkToken::parse(&good).is_some());
        for junk in [
            "",
            "abc",
            &good[1..],
            &format!("{good}0"),
            &good.to_uppercase(),
            &format!("{}g", &good[1..]),
            &format!("../{}", &good[3..]),
        ] {
            assert_eq!(LinkToken::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn outcome_event_ids_are_stable_per_job_and_event() {
        let job = JobId::generate();
        assert_eq!(
            EventId::for_job_outcome(&job, "job.succeeded"),
            EventId::for_job_outcome(&job, "job.succeeded")
        );
        assert_ne!(
            EventId::for_job_outcome(&job, "job.succeeded"),
            EventId::for_job_outcome(&job, "job.failed")
        );
    }
}
