//! The region files: `regions/<name>.toml`, one per region, read alike by every node of every
//! region. regions/README.md describes the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One region, from `<name>.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The file's name without `.toml`.
    pub name: String,
    /// The region's datacenter in the metadata cluster.
    pub datacenter: String,
    pub metadata: Metadata,
    /// Where the region keeps its blobs, if it names a place.
    pub blobs: Option<Blobs>,
}

/// How a region keeps its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// CQL contact points (`host:port`) in the region's datacenter.
    pub cql: Vec<String>,
    /// Copies of each metadata row kept in the region's datacenter.
    pub replicas: u32,
}

/// Where a region keeps its blobs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blobs {
    /// The region's bucket as an `s3://BUCKET?endpoint=…` URL, without credentials (those come
    /// from the environment). A node with `--blob s3://` uses it.
    pub s3: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    datacenter: String,
    metadata: Metadata,
    blobs: Option<Blobs>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid region file: {message}; see regions/README.md")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{0} holds no region files (<name>.toml); point --regions-dir at the regions/ directory"
    )]
    Empty(PathBuf),
    #[error("there is no region {name:?} in {dir}; known regions: {known}")]
    Unknown {
        name: String,
        dir: PathBuf,
        known: String,
    },
}

/// Every region, by name.
#[derive(Clone, Debug)]
pub struct Regions {
    dir: PathBuf,
    regions: BTreeMap<String, Region>,
}

impl Regions {
    /// Reads every `*.toml` in `dir`. Each region needs its own datacenter.
    pub fn load(dir: &Path) -> Result<Self, RegionError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RegionError::Io { path, source }
        };
        let mut regions = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let (Some(name), Some("toml")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let region = parse(name, &text).map_err(|message| RegionError::Invalid {
                path: path.clone(),
                message,
            })?;
            regions.insert(name.to_owned(), region);
        }
        if regions.is_empty() {
            return Err(RegionError::Empty(dir.to_owned()));
        }
        let mut seen = BTreeMap::new();
        for region in regions.values() {
            if let Some(other) = seen.insert(&region.datacenter, &region.name) {
                return Err(RegionError::Invalid {
                    path: dir.join(format!("{}.toml", region.name)),
                    message: format!(
                        "datacenter {:?} is region {other:?}'s too; each region has its own",
                        region.datacenter
                    ),
                });
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            regions,
        })
    }

    pub fn get(&self, name: &str) -> Result<&Region, RegionError> {
        self.regions.get(name).ok_or_else(|| RegionError::Unknown {
            name: name.to_owned(),
            dir: self.dir.clone(),
            known: self
                .regions
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Every region, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// The metadata keyspace's replication: each region's datacenter with its replicas.
    pub fn replication(&self) -> BTreeMap<String, u32> {
        self.regions
            .values()
            .map(|r| (r.datacenter.clone(), r.metadata.replicas))
            .collect()
    }
}

fn parse(name: &str, text: &str) -> Result<Region, String> {
    let file: RegionFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    if file.datacenter.is_empty() {
        return Err("datacenter is empty; name the region's datacenter".into());
    }
    if file.metadata.cql.is_empty() {
        return Err("metadata.cql lists no host; add the datacenter's CQL contact points".into());
    }
    if file.metadata.replicas == 0 {
        return Err("metadata.replicas is 0; a region keeps at least one copy".into());
    }
    if let Some(blobs) = &file.blobs {
        if !blobs.s3.starts_with("s3://") || blobs.s3.len() == "s3://".len() {
            return Err(format!(
                "blobs.s3 = {:?} is not an s3://BUCKET URL; write e.g. \"s3://images-eu?endpoint=https://s3.example\"",
                blobs.s3
            ));
        }
    }
    Ok(Region {
        name: name.to_owned(),
        datacenter: file.datacenter,
        metadata: file.metadata,
        blobs: file.blobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's own regions/ (the loopback cluster's two datacenters).
    #[test]
    fn the_shipped_region_files_describe_the_loopback_cluster() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../regions");
        let regions = Regions::load(&dir).unwrap();
        assert_eq!(
            regions.replication(),
            BTreeMap::from([("dc1".into(), 1), ("dc2".into(), 1)])
        );
        assert_eq!(regions.get("us").unwrap().metadata.cql, ["127.0.0.2:9042"]);
        let eu_blobs = regions.get("eu").unwrap().blobs.as_ref().unwrap();
        assert_eq!(
            eu_blobs.s3,
            "s3://pixelmill-eu?endpoint=http://127.0.0.1:9101"
        );
        let unknown = regions.get("mars").unwrap_err().to_string();
        assert!(unknown.contains("known regions: eu, us"), "{unknown}");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, says) in [
            ("datacenter = \"dc1\"", "missing field `metadata`"),
            (
                "datacenter = \"\"\n[metadata]\ncql = [\"h:9042\"]\nreplicas = 1",
                "datacenter is empty",
            ),
            (
                "datacenter = \"dc1\"\n[metadata]\ncql = []\nreplicas = 1",
                "no host",
            ),
            (
                "datacenter = \"dc1\"\n[metadata]\ncql = [\"h:9042\"]\nreplicas = 0",
                "at least one copy",
            ),
            (
                "datacenter = \"dc1\"\nbucket = 3\n[metadata]\ncql = [\"h\"]\nreplicas = 1",
                "unknown field `bucket`",
            ),
            (
                "datacenter = \"dc1\"\n[metadata]\ncql = [\"h\"]\nreplicas = 1\n[blobs]\ns3 = \"bucket\"",
                "not an s3://BUCKET URL",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("eu.toml"), text).unwrap();
            let err = Regions::load(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains("eu.toml"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn each_region_needs_its_own_datacenter_and_a_dir_needs_regions() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Regions::load(dir.path()),
            Err(RegionError::Empty(_))
        ));
        let file = "datacenter = \"dc1\"\n[metadata]\ncql = [\"h:9042\"]\nreplicas = 3\n";
        std::fs::write(dir.path().join("eu.toml"), file).unwrap();
        std::fs::write(dir.path().join("us.toml"), file).unwrap();
        let err = Regions::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("each region has its own"), "{err}");
    }
}
