//! The only place backends are chosen: URLs in the config become trait objects.

use crate::replication::Peer;
use crate::{Config, NodeError};
use pixelmill_blob::{BlobStore, FsBlobStore};
use pixelmill_blob_s3::{Credentials, S3BlobStore, S3Config};
use pixelmill_core::Secret;
use pixelmill_meta::{MetaStore, RedbMetaStore};
use pixelmill_meta_scylla::{Placement, ScyllaConfig, ScyllaMetaStore};
use pixelmill_regions::Regions;
use std::path::PathBuf;
use std::sync::Arc;

/// `embedded` (or empty): redb under the data dir. `scylla://…`: a ScyllaDB or Cassandra
/// cluster, whose schema migrations are applied on the way (see `ScyllaConfig::from_url`).
pub async fn meta_store(config: &Config) -> Result<Arc<dyn MetaStore>, NodeError> {
    match config.meta.as_str() {
        "" | "embedded" => {
            let store = RedbMetaStore::open(&config.data_dir.join("meta.redb"))?;
            Ok(Arc::new(store))
        }
        _ => Ok(Arc::new(
            ScyllaMetaStore::open(scylla_config(config)?).await?,
        )),
    }
}

/// Applies the schema migrations a `scylla://` metadata store lacks (`pixelmill migrate`); the
/// versions applied. The embedded store needs none.
pub async fn migrate_meta(config: &Config) -> Result<Vec<i32>, NodeError> {
    if matches!(config.meta.as_str(), "" | "embedded") {
        return Err(NodeError::Config(
            "the embedded metadata store has no schema to migrate; migrations are for \
             scylla:// metadata stores"
                .into(),
        ));
    }
    Ok(ScyllaMetaStore::migrate_only(&scylla_config(config)?).await?)
}

/// The `scylla://` URL in `config.meta`, completed from the node's region file if it has one.
fn scylla_config(config: &Config) -> Result<ScyllaConfig, NodeError> {
    if !config.meta.starts_with("scylla://") {
        return Err(NodeError::Config(format!(
            "unsupported metadata backend {:?}: use \"embedded\" or \
             scylla://host:9042[,host:9042…][/keyspace][?local_dc=…&replication=dc:n,…]",
            config.meta
        )));
    }
    let placement = match &config.region {
        None => None,
        Some(name) => {
            let regions =
                Regions::load(&config.regions_dir).map_err(|e| NodeError::Config(e.to_string()))?;
            let region = regions
                .get(name)
                .map_err(|e| NodeError::Config(e.to_string()))?;
            Some(Placement {
                local_dc: region.datacenter.clone(),
                contact_points: region.metadata.cql.clone(),
                replication: regions.replication(),
            })
        }
    };
    ScyllaConfig::from_url_in(&config.meta, placement.as_ref()).map_err(NodeError::Config)
}

/// Empty: files under `<data_dir>/blobs`. `file:///path`: files there. `s3://BUCKET?…`: an S3
/// bucket (`S3Config::from_url`), credentials from the environment; a bare `s3://` (options
/// allowed, e.g. `s3://?part_size_mib=16`) is the bucket the node's region file names.
pub async fn blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, NodeError> {
    if config.blob.starts_with("s3://") {
        let url = match region_bucket_options(config) {
            Some(options) => region_bucket(config, options)?,
            None => config.blob.clone(),
        };
        let credentials =
            Credentials::from_env_for(config.region.as_deref()).map_err(NodeError::Config)?;
        let s3 = S3Config::from_url(&url, credentials).map_err(NodeError::Config)?;
        tracing::info!(bucket = %s3.bucket, endpoint = ?s3.endpoint, "blobs in S3");
        return Ok(Arc::new(S3BlobStore::open(s3).await?));
    }
    let root = if config.blob.is_empty() {
        config.data_dir.join("blobs")
    } else if let Some(path) = config.blob.strip_prefix("file://") {
        PathBuf::from(path)
    } else {
        return Err(NodeError::Config(format!(
            "unsupported blob backend {:?}: use file:///absolute/path, s3://BUCKET?endpoint=…, \
             s3:// for the region's bucket, or leave it empty for <data_dir>/blobs",
            config.blob
        )));
    };
    Ok(Arc::new(FsBlobStore::open(&root)?))
}

/// The options of a bare `s3://` blob URL (the region's bucket); `None` for any other URL.
fn region_bucket_options(config: &Config) -> Option<&str> {
    let rest = config.blob.strip_prefix("s3://")?;
    (rest.is_empty() || rest.starts_with('?')).then(|| rest.trim_start_matches('?'))
}

/// The other regions' buckets, when this node's blobs are its region's bucket (`--blob s3://`):
/// the stores it replicates to and reads through to. Empty otherwise: a node on its own bucket
/// or on files stands alone. No request is made here, so a region that is down does not stop
/// this one from starting.
pub fn peer_blob_stores(config: &Config) -> Result<Vec<Peer>, NodeError> {
    let mut peers = Vec::new();
    for (region, url) in peer_buckets(config)? {
        let credentials = Credentials::from_env_for(Some(&region)).map_err(NodeError::Config)?;
        let s3 = S3Config::from_url(&url, credentials)
            .map_err(|e| NodeError::Config(format!("region {region:?}'s bucket: {e}")))?;
        tracing::info!(%region, bucket = %s3.bucket, endpoint = ?s3.endpoint, "replicating to");
        peers.push(Peer {
            region,
            store: Arc::new(S3BlobStore::remote(s3)),
        });
    }
    Ok(peers)
}

/// (region, `s3://` URL with this node's options) of every other region that names a bucket,
/// nearest first: the order of this region's `clients.fallback`, then by name.
fn peer_buckets(config: &Config) -> Result<Vec<(String, String)>, NodeError> {
    let (Some(options), Some(name)) = (region_bucket_options(config), config.region.as_deref())
    else {
        return Ok(Vec::new());
    };
    let regions =
        Regions::load(&config.regions_dir).map_err(|e| NodeError::Config(e.to_string()))?;
    let nearest: Vec<&str> = regions
        .get(name)
        .ok()
        .and_then(|r| r.clients.as_ref())
        .map(|c| c.fallback.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut peers: Vec<_> = regions.iter().filter(|r| r.name != name).collect();
    peers.sort_by_key(|r| {
        nearest
            .iter()
            .position(|n| *n == r.name)
            .unwrap_or(usize::MAX)
    });
    Ok(peers
        .into_iter()
        .filter_map(|r| Some((r.name.clone(), with_options(&r.blobs.as_ref()?.s3, options))))
        .collect())
}

/// `url` with `extra` options appended (later options win).
fn with_options(url: &str, extra: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    match extra {
        "" => url.to_owned(),
        extra => format!("{url}{separator}{extra}"),
    }
}

/// The node's region's `blobs.s3` URL with `extra` options appended (later options win).
fn region_bucket(config: &Config, extra: &str) -> Result<String, NodeError> {
    let name = config.region.as_deref().ok_or_else(|| {
        NodeError::Config(
            "--blob s3:// takes the bucket from the node's region file; give --region, or a \
             bucket: s3://BUCKET?endpoint=…"
                .into(),
        )
    })?;
    let regions =
        Regions::load(&config.regions_dir).map_err(|e| NodeError::Config(e.to_string()))?;
    let region = regions
        .get(name)
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let blobs = region.blobs.as_ref().ok_or_else(|| {
        NodeError::Config(format!(
            "region {name:?} names no bucket: add [blobs] s3 = \"s3://BUCKET?endpoint=…\" to its \
             file (regions/README.md), or give --blob s3://BUCKET?endpoint=…"
        ))
    })?;
    Ok(with_options(&blobs.s3, extra))
}

/// The webhook secret from config, or one generated on first start and kept in the data dir so
/// receivers keep verifying across restarts: the bootstrap tenant's.
pub fn webhook_secret(config: &Config) -> Result<String, NodeError> {
    let configured = config.webhook_secret.as_ref().map(Secret::expose);
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.to_owned());
    }
    let path = config.data_dir.join("webhook-secret");
    let (secret, created) = crate::access::secret_file(&path)?;
    if created {
        tracing::info!(path = %path.display(), "generated a webhook secret; receivers verify signatures with it");
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_region(region: Option<&str>) -> Config {
        Config {
            region: region.map(str::to_owned),
            regions_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../regions")),
            ..Config::default()
        }
    }

    #[test]
    fn a_bare_s3_url_is_the_regions_bucket_with_the_nodes_options_after() {
        let config = in_region(Some("us"));
        assert_eq!(
            region_bucket(&config, "").unwrap(),
            "s3://pixelmill-us?endpoint=http://10.77.2.20:9000"
        );
        assert_eq!(
            region_bucket(&config, "part_size_mib=16").unwrap(),
            "s3://pixelmill-us?endpoint=http://10.77.2.20:9000&part_size_mib=16"
        );
        let err = region_bucket(&in_region(None), "").unwrap_err().to_string();
        assert!(err.contains("--region"), "{err}");
    }

    #[test]
    fn only_a_node_on_its_regions_bucket_has_peers() {
        let on = |blob: &str, region| Config {
            blob: blob.to_owned(),
            ..in_region(region)
        };
        let regions = |config: &Config| peer_buckets(config).unwrap();
        let (eu, us, ap) = (
            "s3://pixelmill-eu?endpoint=http://10.77.1.20:9000",
            "s3://pixelmill-us?endpoint=http://10.77.2.20:9000",
            "s3://pixelmill-ap?endpoint=http://10.77.3.20:9000",
        );
        assert_eq!(
            regions(&on("s3://", Some("eu"))),
            [("us".into(), us.into()), ("ap".into(), ap.into())],
            "nearest first"
        );
        assert_eq!(
            regions(&on("s3://?part_size_mib=16", Some("us"))),
            [
                ("eu".into(), format!("{eu}&part_size_mib=16")),
                ("ap".into(), format!("{ap}&part_size_mib=16"))
            ]
        );
        assert!(regions(&on(
            "s3://own-bucket?endpoint=http://10.77.1.20:9000",
            Some("eu")
        ))
        .is_empty());
        assert!(regions(&on("", Some("eu"))).is_empty());
        assert!(regions(&on("s3://", None)).is_empty());
    }
}
