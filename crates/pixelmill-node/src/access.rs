//! The node's side of access control: its bootstrap admin key, and the bootstrap tenant's
//! secrets taken from the configuration.

use crate::{Config, NodeError};
use pixelmill_core::{now_ms, Secret, SigningSecret, TenantId, TenantRecord};
use pixelmill_meta::{SecretKind, Tenants};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The bootstrap admin key: `PIXELMILL_BOOTSTRAP_KEY` when set; on the embedded store, one
/// generated on first start into `<data_dir>/bootstrap-key`; else none (stored keys only).
pub fn bootstrap_key(config: &Config) -> Result<Option<String>, NodeError> {
    let configured = config.bootstrap_key.as_ref().map(Secret::expose);
    if let Some(key) = configured.filter(|k| !k.is_empty()) {
        if key.len() < 16 {
            return Err(NodeError::Config(
                "PIXELMILL_BOOTSTRAP_KEY is shorter than 16 characters; use a random key of 32 \
                 bytes or more, e.g. `openssl rand -hex 32`"
                    .to_owned(),
            ));
        }
        return Ok(Some(key.to_owned()));
    }
    if config.meta != "embedded" {
        tracing::warn!(
            "no PIXELMILL_BOOTSTRAP_KEY on a shared metadata store: only stored API keys work on \
             this node; set the same bootstrap key on every node to administer it"
        );
        return Ok(None);
    }
    let path = config.data_dir.join("bootstrap-key");
    let (key, created) = secret_file(&path)?;
    if created {
        tracing::info!(path = %path.display(),
            "generated a bootstrap admin API key; send it as `Authorization: Bearer $(cat {})`",
            path.display());
    } else {
        tracing::info!(path = %path.display(), "the bootstrap admin API key is in this file");
    }
    Ok(Some(key))
}

/// A secret kept in `path` (mode 0600): read if present, else generated (256 random bits, hex).
/// Answers whether it was created.
pub fn secret_file(path: &Path) -> Result<(String, bool), NodeError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok((existing.trim().to_owned(), false));
    }
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let secret = hex::encode(raw);
    let io = |e: std::io::Error| NodeError::Io(format!("cannot write {}: {e}", path.display()));
    // Created with 0600, never readable by others even for a moment.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(secret.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok((secret, true))
}

/// Makes the configured secrets the bootstrap tenant's current ones (rotating out what it had,
/// so the one they replace keeps verifying): every node of a cluster is given the same, so they
/// converge on one record.
pub async fn seed_bootstrap_tenant(
    tenants: &Tenants,
    webhook_secret: &str,
    render_key: Option<&str>,
) -> Result<(), NodeError> {
    let id = TenantId::default();
    let now = now_ms();
    let configured = |prefix: &str, secret: &str| SigningSecret {
        id: format!(
            "{prefix}configured-{}",
            &pixelmill_core::sha256_hex(secret.as_bytes())[..8]
        ),
        secret: secret.to_owned(),
        created_at: now,
    };
    let mut fresh = TenantRecord::new(id.clone(), now);
    fresh.webhook_secrets = vec![configured("whs_", webhook_secret)];
    if let Some(key) = render_key {
        fresh.render_keys = vec![configured("rk_", key)];
    }
    let meta_err =
        |e: pixelmill_meta::MetaError| NodeError::Io(format!("seeding the bootstrap tenant: {e}"));
    let stored = tenants.create(fresh).await.map_err(meta_err)?;
    let current =
        |secrets: &[SigningSecret], want: &str| secrets.first().is_some_and(|s| s.secret == want);
    if !current(&stored.webhook_secrets, webhook_secret) {
        tenants
            .rotate(&id, SecretKind::Webhook, configured("whs_", webhook_secret))
            .await
            .map_err(meta_err)?;
    }
    if let Some(key) = render_key.filter(|key| !current(&stored.render_keys, key)) {
        tenants
            .rotate(&id, SecretKind::Render, configured("rk_", key))
            .await
            .map_err(meta_err)?;
    }
    Ok(())
}
