//! Who may call: tenants, their API keys and their signing secrets.
//!
//! An API key is `key_<16 hex>.<64 hex>`: the part before the dot is the key's id (its record's
//! partition key, so a request costs one lookup by key), the rest 256 random bits. Only the key's
//! SHA-256 is stored: a fast hash is enough for a secret of that much entropy, and a slow password
//! hash per request would cost more than the request.

use crate::{sha256_hex, TenantId, UnixMillis};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a key may do: a tenant key works on its tenant's resources; an admin key also on the
/// operator endpoints (keys, regions, metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Tenant,
    Admin,
}

/// The public half of an API key: safe to log, list and revoke by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    pub fn from_string(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole API key as a client presents it. `Debug` never shows the secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new key: an id and 256 random bits from the OS-seeded CSPRNG.
    pub fn generate() -> ApiKey {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        ApiKey(format!("key_{}.{}", hex::encode(id), hex::encode(secret)))
    }

    /// Any bearer token: keys of this format name their record; anything else can only be a
    /// bootstrap key, which is compared by hash alone.
    pub fn from_bearer(token: &str) -> ApiKey {
        ApiKey(token.to_owned())
    }

    /// The record to look up, when the key has this format.
    pub fn id(&self) -> Option<ApiKeyId> {
        let (id, secret) = self.0.split_once('.')?;
        let well_formed = id.len() == 20
            && id.starts_with("key_")
            && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
            && secret.len() == 64;
        well_formed.then(|| ApiKeyId(id.to_owned()))
    }

    /// What is stored instead of the key.
    pub fn sha256(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }

    /// The key itself, for showing it once to whoever created it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "ApiKey({id}.<redacted>)"),
            None => f.write_str("ApiKey(<redacted>)"),
        }
    }
}

/// A stored API key. Partition key: id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant: TenantId,
    pub role: Role,
    /// Hex SHA-256 of the whole key; the key itself is never stored.
    pub sha256: String,
    /// The operator's note on what the key is for.
    #[serde(default)]
    pub label: Option<String>,
    pub created_at: UnixMillis,
    /// Set when revoked: the record stays so that listings show it and lookups refuse it.
    #[serde(default)]
    pub revoked_at: Option<UnixMillis>,
}

impl ApiKeyRecord {
    pub fn new(key: &ApiKey, tenant: TenantId, role: Role, now: UnixMillis) -> Option<Self> {
        Some(ApiKeyRecord {
            id: key.id()?,
            tenant,
            role,
            sha256: key.sha256(),
            label: None,
            created_at: now,
            revoked_at: None,
        })
    }
}

/// A symmetric secret a tenant signs with (render URLs) or verifies with (webhooks). `Debug`
/// redacts it: whoever holds it can forge the tenant's URLs or webhooks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// Names the secret in listings and rotations; not secret.
    pub id: String,
    /// 256 random bits, hex.
    pub secret: String,
    pub created_at: UnixMillis,
}

impl SigningSecret {
    pub fn generate(prefix: &str, now: UnixMillis) -> SigningSecret {
        let mut id = [0u8; 4];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        SigningSecret {
            id: format!("{prefix}{}", hex::encode(id)),
            secret: hex::encode(secret),
            created_at: now,
        }
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSecret")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A secret from configuration (a key, a signing secret): `Debug` prints `<redacted>`, so a
/// struct holding one can derive `Debug` without leaking it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_owned())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How many signing secrets of one kind are valid at once: the current one and the one it
/// replaced, so clients can move over without a moment where nothing verifies.
pub const VALID_SECRETS: usize = 2;

/// A tenant's own settings. Partition key: id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    /// Render URL signing keys, newest first; at most `VALID_SECRETS`.
    pub render_keys: Vec<SigningSecret>,
    /// Webhook signing secrets, newest first (webhooks are signed with the first); at most
    /// `VALID_SECRETS`.
    pub webhook_secrets: Vec<SigningSecret>,
    pub created_at: UnixMillis,
}

impl TenantRecord {
    /// A new tenant with fresh secrets of both kinds.
    pub fn new(id: TenantId, now: UnixMillis) -> TenantRecord {
        TenantRecord {
            id,
            render_keys: vec![SigningSecret::generate("rk_", now)],
            webhook_secrets: vec![SigningSecret::generate("whs_", now)],
            created_at: now,
        }
    }
}

/// Puts `fresh` first and keeps the one it replaces valid; older ones stop verifying.
pub fn rotate(secrets: &mut Vec<SigningSecret>, fresh: SigningSecret) {
    secrets.insert(0, fresh);
    secrets.truncate(VALID_SECRETS);
}

impl TenantId {
    /// A tenant name from a client: 1 to 64 of `a-z 0-9 - _`, so it is safe in URLs, keys and logs.
    pub fn parse(s: &str) -> Result<TenantId, String> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(TenantId::new(s))
        } else {
            Err(format!(
                "tenant {s:?} is not a valid name; use 1 to 64 characters of a-z, 0-9, - and _"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_name_their_record_and_carry_256_bits() {
        let key = ApiKey::generate();
        let id = key.id().expect("a generated key has an id");
        assert!(key.expose().starts_with(&format!("{id}.")));
        assert_eq!(key.expose().len() - id.as_str().len() - 1, 64);
        assert_ne!(ApiKey::generate().expose(), key.expose());
    }

    #[test]
    fn other_tokens_have_no_record_id() {
        for token in [
            "",
            "secret",
            "key_0011223344556677",
            "key_zz11223344556677.00",
            "a.b",
        ] {
            assert_eq!(ApiKey::from_bearer(token).id(), None, "{token}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let key = ApiKey::generate();
        let secret = key.expose().split_once('.').unwrap().1.to_owned();
        assert!(!format!("{key:?}").contains(&secret));
        let signing = SigningSecret::generate("rk_", 0);
        assert!(!format!("{signing:?}").contains(&signing.secret));
        let tenant = TenantRecord::new(TenantId::new("t"), 0);
        assert!(!format!("{tenant:?}").contains(&tenant.render_keys[0].secret));
        assert_eq!(
            format!("{:?}", Some(Secret::from("hunter2"))),
            "Some(<redacted>)"
        );
    }

    #[test]
    fn rotation_keeps_the_current_and_the_previous_secret() {
        let mut secrets = vec![SigningSecret::generate("rk_", 1)];
        let first = secrets[0].clone();
        rotate(&mut secrets, SigningSecret::generate("rk_", 2));
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[1], first);
        rotate(&mut secrets, SigningSecret::generate("rk_", 3));
        assert_eq!(secrets.len(), 2);
        assert!(!secrets.contains(&first));
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!(TenantId::parse("acme-01_x").is_ok());
        for bad in ["", "Acme", "a/b", "a b", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }
}
