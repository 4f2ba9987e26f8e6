//! The only place backends are chosen: URLs in the config become trait objects.

use crate::{Config, NodeError};
use pixelmill_blob::{BlobStore, FsBlobStore};
use pixelmill_meta::{MetaStore, RedbMetaStore};
use std::path::PathBuf;
use std::sync::Arc;

pub fn meta_store(config: &Config) -> Result<Arc<dyn MetaStore>, NodeError> {
    match config.meta.as_str() {
        "" | "embedded" => {
            let store = RedbMetaStore::open(&config.data_dir.join("meta.redb"))?;
            Ok(Arc::new(store))
        }
        other => Err(NodeError::Config(format!(
            "unsupported metadata backend {other:?}: use \"embedded\" (scylla:// arrives with the ScyllaDB backend)"
        ))),
    }
}

pub fn blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, NodeError> {
    let root = if config.blob.is_empty() {
        config.data_dir.join("blobs")
    } else if let Some(path) = config.blob.strip_prefix("file://") {
        PathBuf::from(path)
    } else {
        return Err(NodeError::Config(format!(
            "unsupported blob backend {:?}: use file:///absolute/path or leave it empty for <data_dir>/blobs \
             (s3:// arrives with the S3 backend)",
            config.blob
        )));
    };
    Ok(Arc::new(FsBlobStore::open(&root)?))
}

/// The webhook secret from config, or one generated on first start and kept in the data dir so
/// receivers keep verifying across restarts.
pub fn webhook_secret(config: &Config) -> Result<String, NodeError> {
    if let Some(secret) = config.webhook_secret.as_ref().filter(|s| !s.is_empty()) {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join("webhook-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_owned());
    }
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let secret = hex::encode(raw);
    std::fs::write(&path, &secret)
        .map_err(|e| NodeError::Io(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated a webhook secret; receivers verify signatures with it");
    Ok(secret)
}
