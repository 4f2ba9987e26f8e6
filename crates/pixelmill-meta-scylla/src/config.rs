//! What the ScyllaDB backend connects to and how strongly each class of operation is replicated.
//! Written as a URL so it fits `pixelmill serve --meta …`:
//!
//! ```text
//! scylla://10.0.0.1:9042,10.0.0.2:9042/pixelmill?local_dc=eu&replication=eu:3,us:3&link_create=each_quorum
//! ```
//!
//! docs/CONSISTENCY.md explains every default.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};

/// A consistency level, as CQL names them (`local_quorum`, `each_quorum`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level(pub Consistency);

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Level(match s.to_ascii_lowercase().as_str() {
            "one" => Consistency::One,
            "two" => Consistency::Two,
            "three" => Consistency::Three,
            "quorum" => Consistency::Quorum,
            "all" => Consistency::All,
            "local_quorum" => Consistency::LocalQuorum,
            "each_quorum" => Consistency::EachQuorum,
            "local_one" => Consistency::LocalOne,
            other => {
                return Err(format!(
                    "unknown consistency level {other:?}; use one, two, three, quorum, all, \
                     local_one, local_quorum or each_quorum"
                ))
            }
        }))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            Consistency::Any => "any",
            Consistency::One => "one",
            Consistency::Two => "two",
            Consistency::Three => "three",
            Consistency::Quorum => "quorum",
            Consistency::All => "all",
            Consistency::LocalQuorum => "local_quorum",
            Consistency::EachQuorum => "each_quorum",
            Consistency::LocalOne => "local_one",
            Consistency::Serial => "serial",
            Consistency::LocalSerial => "local_serial",
        };
        f.write_str(name)
    }
}

/// The serial level of a lightweight transaction's Paxos round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serial(pub SerialConsistency);

impl FromStr for Serial {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "serial" => Ok(Serial(SerialConsistency::Serial)),
            "local_serial" => Ok(Serial(SerialConsistency::LocalSerial)),
            other => Err(format!(
                "unknown serial consistency {other:?}; use serial or local_serial"
            )),
        }
    }
}

/// Consistency per class of operation. Defaults keep a region available on its own
/// (LOCAL_QUORUM), see docs/CONSISTENCY.md for the trade-off behind each.
#[derive(Clone, Debug, PartialEq)]
pub struct Consistencies {
    /// Storing an uploaded image's record (`upload_write`). Default LOCAL_QUORUM.
    pub upload_write: Level,
    /// Storing the record of an upload asked to survive its region's loss (`durable_write`,
    /// durability `regions=2`). Default QUORUM: a majority of every region's replicas, so at
    /// least one other region's; with three regions it still completes while one is down.
    pub durable_write: Level,
    /// The second try of an image lookup that found nothing, since it may have been uploaded
    /// in another region moments ago, or in one that is down (`image_lookup_fallback`; `none`
    /// turns it off). Default QUORUM.
    pub image_lookup_fallback: Option<Level>,
    /// Storing a job as it moves queued → running → succeeded/failed (`job_transition`).
    /// Default LOCAL_QUORUM.
    pub job_transition: Level,
    /// Creating and deleting download links (`link_create`). Default LOCAL_QUORUM.
    pub link_create: Level,
    /// Looking a link up by its token (`link_lookup`). Default LOCAL_ONE: a download is a hot
    /// read, and a miss is retried at `link_lookup_fallback`.
    pub link_lookup: Level,
    /// The second try of a lookup that found nothing, since the link may have been created in
    /// another region moments ago (`link_lookup_fallback`; `none` turns it off). Default QUORUM.
    pub link_lookup_fallback: Option<Level>,
    /// Reading images and jobs, and the sweeper's and notifier's own records (`reads`).
    /// Default LOCAL_QUORUM, so a node sees what its region just wrote.
    pub reads: Level,
    /// The outbox and the sweeper's writes (`housekeeping`). Default LOCAL_QUORUM.
    pub housekeeping: Level,
    /// The idempotency check's conditional insert (`idempotency_serial`). Default LOCAL_SERIAL:
    /// a client retries against the region it is talking to.
    pub idempotency_serial: Serial,
    /// Every conditional write of a job (`job_serial`): an attempt storing its progress only
    /// while it still holds the job, and a region adopting another's job. Default SERIAL: the
    /// parties that must agree (a region cut off from the others, and the region adopting its
    /// jobs) are in different datacenters, and one serial level per row keeps Paxos rounds of
    /// both from missing each other.
    pub job_serial: Serial,
}

impl Default for Consistencies {
    fn default() -> Self {
        Self {
            upload_write: Level(Consistency::LocalQuorum),
            durable_write: Level(Consistency::Quorum),
            image_lookup_fallback: Some(Level(Consistency::Quorum)),
            job_transition: Level(Consistency::LocalQuorum),
            link_create: Level(Consistency::LocalQuorum),
            link_lookup: Level(Consistency::LocalOne),
            link_lookup_fallback: Some(Level(Consistency::Quorum)),
            reads: Level(Consistency::LocalQuorum),
            housekeeping: Level(Consistency::LocalQuorum),
            idempotency_serial: Serial(SerialConsistency::LocalSerial),
            job_serial: Serial(SerialConsistency::Serial),
        }
    }
}

/// Everything the backend needs; `ScyllaConfig::from_url` reads it from a `scylla://` URL.
#[derive(Clone, Debug, PartialEq)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`; the driver discovers the rest of the cluster.
    pub hosts: Vec<String>,
    /// The keyspace of pixelmill's tables, created by the migrations. Default `pixelmill`.
    pub keyspace: String,
    /// This node's region's datacenter: requests go to its replicas, and LOCAL_* levels count
    /// them. Default: none (any datacenter; fine for a single-datacenter cluster).
    pub local_dc: Option<String>,
    /// Replicas per datacenter of the keyspace (NetworkTopologyStrategy), one datacenter per
    /// region. Default `{local_dc: 1}`, or `{datacenter1: 1}` without one.
    pub replication: BTreeMap<String, u32>,
    pub consistency: Consistencies,
    /// The longest one request may take, retries included, before it fails as a timeout.
    /// Default 5 s.
    pub request_timeout: Duration,
    /// How long a link's rows outlive its expiry before Cassandra drops them by TTL: the sweeper
    /// deletes them (and their outputs) well before, this is the backstop. Default 30 d.
    pub link_retention: Duration,
}

/// Where a node sits, from its region file (regions/): fills in what a URL leaves out.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The node's region's datacenter.
    pub local_dc: String,
    /// CQL contact points in that datacenter.
    pub contact_points: Vec<String>,
    /// Every region's datacenter with its replicas.
    pub replication: BTreeMap<String, u32>,
}

impl ScyllaConfig {
    /// Reads `scylla://host:port[,host:port…][/keyspace][?option=value&…]`. Options:
    /// `local_dc`, `replication` (`dc:n,dc:n`), `request_timeout` (ms), `link_retention` (s),
    /// and one per consistency class (`upload_write=local_quorum`, …, `link_lookup_fallback=none`).
    pub fn from_url(url: &str) -> Result<Self, String> {
        Self::from_url_in(url, None)
    }

    /// Like [`ScyllaConfig::from_url`]; hosts, `local_dc` and `replication` the URL leaves out
    /// come from `placement` (`scylla:///keyspace` then connects to the region's own hosts).
    pub fn from_url_in(url: &str, placement: Option<&Placement>) -> Result<Self, String> {
        let rest = url.strip_prefix("scylla://").ok_or_else(|| {
            format!("{url:?} is not a scylla:// URL; write scylla://host:9042[/keyspace][?…]")
        })?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, keyspace) = location.split_once('/').unwrap_or((location, ""));
        let hosts: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:9042")
                }
            })
            .collect();
        let hosts = match (hosts.is_empty(), placement) {
            (false, _) => hosts,
            (true, Some(placement)) => placement.contact_points.clone(),
            (true, None) => {
                return Err(format!(
                    "{url:?} names no host; write scylla://host:9042, or give the node a --region \
                     whose file lists its hosts"
                ))
            }
        };
        let keyspace = if keyspace.is_empty() {
            "pixelmill"
        } else {
            keyspace
        };
        if !keyspace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "keyspace {keyspace:?} may hold only letters, digits and _"
            ));
        }
        let mut config = ScyllaConfig {
            hosts,
            keyspace: keyspace.to_owned(),
            local_dc: None,
            replication: BTreeMap::new(),
            consistency: Consistencies::default(),
            request_timeout: Duration::from_secs(5),
            link_retention: Duration::from_secs(30 * 86_400),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("option {pair:?} has no value; write name=value"))?;
            config
                .set(name, value)
                .map_err(|e| format!("{name}: {e}"))?;
        }
        if let Some(placement) = placement {
            config
                .local_dc
                .get_or_insert_with(|| placement.local_dc.clone());
            if config.replication.is_empty() {
                config.replication = placement.replication.clone();
            }
        }
        if config.replication.is_empty() {
            let dc = config
                .local_dc
                .clone()
                .unwrap_or_else(|| "datacenter1".into());
            config.replication.insert(dc, 1);
        }
        Ok(config)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let c = &mut self.consistency;
        match name {
            "local_dc" => self.local_dc = Some(value.to_owned()),
            "replication" => {
                self.replication = value
                    .split(',')
                    .map(|entry| {
                        let (dc, n) = entry
                            .split_once(':')
                            .ok_or_else(|| format!("{entry:?} is not dc:replicas"))?;
                        let n = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
                        Ok((dc.to_owned(), n))
                    })
                    .collect::<Result<_, String>>()?
            }
            "request_timeout" => self.request_timeout = Duration::from_millis(number(value)?),
            "link_retention" => self.link_retention = Duration::from_secs(number(value)?),
            "upload_write" => c.upload_write = value.parse()?,
            "durable_write" => c.durable_write = value.parse()?,
            "image_lookup_fallback" if value == "none" => c.image_lookup_fallback = None,
            "image_lookup_fallback" => c.image_lookup_fallback = Some(value.parse()?),
            "job_transition" => c.job_transition = value.parse()?,
            "link_create" => c.link_create = value.parse()?,
            "link_lookup" => c.link_lookup = value.parse()?,
            "link_lookup_fallback" if value == "none" => c.link_lookup_fallback = None,
            "link_lookup_fallback" => c.link_lookup_fallback = Some(value.parse()?),
            "reads" => c.reads = value.parse()?,
            "housekeeping" => c.housekeeping = value.parse()?,
            "idempotency_serial" => c.idempotency_serial = value.parse()?,
            "job_serial" => c.job_serial = value.parse()?,
            "adoption_serial" | "lease_serial" => {
                return Err(format!(
                    "{name} is now job_serial: every conditional write of a job runs at one serial \
                     level (mixing LOCAL_SERIAL and SERIAL on a row lets both rounds win); see \
                     docs/CONSISTENCY.md"
                ))
            }
            other => return Err(format!("unknown option {other:?}; see docs/CONSISTENCY.md")),
        }
        Ok(())
    }
}

fn number(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_hosts_keyspace_replication_and_levels() {
        let config = ScyllaConfig::from_url(
            "scylla://10.0.0.1,10.0.0.2:9043/media?local_dc=eu&replication=eu:3,us:2\
             &link_create=each_quorum&link_lookup_fallback=none&request_timeout=2500",
        )
        .unwrap();
        assert_eq!(config.hosts, ["10.0.0.1:9042", "10.0.0.2:9043"]);
        assert_eq!(config.keyspace, "media");
        assert_eq!(config.local_dc.as_deref(), Some("eu"));
        assert_eq!(
            config.replication,
            BTreeMap::from([("eu".into(), 3), ("us".into(), 2)])
        );
        assert_eq!(
            config.consistency.link_create,
            Level(Consistency::EachQuorum)
        );
        assert_eq!(config.consistency.link_lookup_fallback, None);
        assert_eq!(
            config.consistency.upload_write,
            Level(Consistency::LocalQuorum)
        );
        assert_eq!(config.request_timeout, Duration::from_millis(2500));

        let plain = ScyllaConfig::from_url("scylla://127.0.0.1:9042").unwrap();
        assert_eq!(plain.keyspace, "pixelmill");
        assert_eq!(
            plain.replication,
            BTreeMap::from([("datacenter1".into(), 1)])
        );
    }

    #[test]
    fn a_region_fills_in_what_the_url_leaves_out() {
        let placement = Placement {
            local_dc: "dc2".into(),
            contact_points: vec!["127.0.0.2:9042".into()],
            replication: BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 3)]),
        };
        let placed = ScyllaConfig::from_url_in("scylla:///media", Some(&placement)).unwrap();
        assert_eq!(placed.hosts, ["127.0.0.2:9042"]);
        assert_eq!(placed.keyspace, "media");
        assert_eq!(placed.local_dc.as_deref(), Some("dc2"));
        assert_eq!(placed.replication, placement.replication);

        let url = "scylla://10.0.0.9/media?local_dc=dc1&replication=dc1:1";
        let explicit = ScyllaConfig::from_url_in(url, Some(&placement)).unwrap();
        assert_eq!(explicit.hosts, ["10.0.0.9:9042"]);
        assert_eq!(explicit.local_dc.as_deref(), Some("dc1"));
        assert_eq!(explicit.replication, BTreeMap::from([("dc1".into(), 1)]));
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        for (url, says) in [
            ("cassandra://x", "scylla://"),
            ("scylla:///ks", "names no host"),
            ("scylla://h/ks-1", "letters, digits"),
            ("scylla://h?link_create=strong", "unknown consistency"),
            (
                "scylla://h?idempotency_serial=quorum",
                "serial or local_serial",
            ),
            ("scylla://h?replication=eu", "dc:replicas"),
            ("scylla://h?colour=blue", "unknown option"),
            ("scylla://h?local_dc", "no value"),
        ] {
            let err = ScyllaConfig::from_url(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
