//! The region files: `regions/<name>.toml`, one per region, read alike by every node of every
//! region. regions/README.md describes the format.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

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
    /// The region's API nodes, if it lists them (geo-DNS answers with them).
    pub api: Option<Api>,
    /// Which clients the region serves first, and where they go when it cannot.
    pub clients: Option<Clients>,
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

/// A region's API nodes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Each node's API address, `IP:PORT`: what geo-DNS health-checks (`/readyz`) and answers.
    pub nodes: Vec<SocketAddr>,
}

/// The clients a region serves first.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clients {
    /// Networks whose clients this region serves while it is healthy.
    pub prefixes: Vec<IpNet>,
    /// Other regions, nearest first, that serve those clients while this one cannot.
    #[serde(default)]
    pub fallback: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    datacenter: String,
    metadata: Metadata,
    blobs: Option<Blobs>,
    api: Option<Api>,
    clients: Option<Clients>,
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
            let invalid = |message| RegionError::Invalid {
                path: dir.join(format!("{}.toml", region.name)),
                message,
            };
            if let Some(other) = seen.insert(&region.datacenter, &region.name) {
                return Err(invalid(format!(
                    "datacenter {:?} is region {other:?}'s too; each region has its own",
                    region.datacenter
                )));
            }
            let fallback = region.clients.iter().flat_map(|c| &c.fallback);
            for name in fallback {
                if name == &region.name || !regions.contains_key(name) {
                    return Err(invalid(format!(
                        "clients.fallback names {name:?}, which is not another region here; \
                         list other regions' file names, nearest first"
                    )));
                }
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

    /// The region whose client prefixes hold `client` most specifically (longest prefix).
    pub fn home_of(&self, client: IpAddr) -> Option<&Region> {
        self.regions
            .values()
            .flat_map(|r| {
                let prefixes = r.clients.iter().flat_map(|c| &c.prefixes);
                prefixes
                    .filter(|p| p.contains(&client))
                    .map(move |p| (p.prefix_len(), r))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, region)| region)
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
    if file.api.as_ref().is_some_and(|api| api.nodes.is_empty()) {
        return Err("api.nodes lists no node; add the region's API addresses, IP:PORT".into());
    }
    Ok(Region {
        name: name.to_owned(),
        datacenter: file.datacenter,
        metadata: file.metadata,
        blobs: file.blobs,
        api: file.api,
        clients: file.clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's own regions/: the one-machine layout of cluster/net/layout, where region
    /// I (in the layout's order) has its datacenter dcI and its servers on 10.77.I.0/24.
    #[test]
    fn the_shipped_region_files_follow_the_one_machine_layout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let regions = Regions::load(&root.join("regions")).unwrap();
        let layout = std::fs::read_to_string(root.join("cluster/net/layout")).unwrap();
        let order = layout
            .lines()
            .find_map(|l| l.strip_prefix("PM_REGIONS=("))
            .and_then(|l| l.strip_suffix(')'))
            .expect("PM_REGIONS=(…) in cluster/net/layout");
        let names: Vec<&str> = order.split_whitespace().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        let files: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            files, sorted,
            "regions/ and cluster/net/layout list other regions"
        );
        for (i, name) in names.iter().enumerate() {
            let i = i + 1;
            let region = regions.get(name).unwrap();
            assert_eq!(region.datacenter, format!("dc{i}"));
            assert_eq!(region.metadata.cql, [format!("10.77.{i}.10:9042")]);
            let s3 = &region.blobs.as_ref().unwrap().s3;
            assert_eq!(
                *s3,
                format!("s3://pixelmill-{name}?endpoint=http://10.77.{i}.20:9000")
            );
            let nodes: Vec<String> = region
                .api
                .as_ref()
                .unwrap()
                .nodes
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(
                nodes,
                (1..=3)
                    .map(|k| format!("10.77.{i}.{k}:8080"))
                    .collect::<Vec<_>>()
            );
            let client: IpAddr = format!("10.77.{}.1", 100 + i).parse().unwrap();
            assert_eq!(
                regions.home_of(client).map(|r| r.name.as_str()),
                Some(*name)
            );
        }
        let unknown = regions.get("mars").unwrap_err().to_string();
        assert!(unknown.contains("known regions: ap, eu, us"), "{unknown}");
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
            (
                "datacenter = \"dc1\"\n[metadata]\ncql = [\"h\"]\nreplicas = 1\n[api]\nnodes = []",
                "lists no node",
            ),
            (
                "datacenter = \"dc1\"\n[metadata]\ncql = [\"h\"]\nreplicas = 1\n[api]\nnodes = [\"api.example:80\"]",
                "invalid socket address",
            ),
            (
                "datacenter = \"dc1\"\n[metadata]\ncql = [\"h\"]\nreplicas = 1\n[clients]\nprefixes = [\"10.0.0.0/8\"]\nfallback = [\"mars\"]",
                "not another region",
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
