//! Node configuration: one serde struct, every field documented with its default. The binary
//! fills it from flags and `PIXELMILL_*` environment variables.

use pixelmill_core::{Durability, Secret};
use pixelmill_sched::{RaftSecret, SchedConfig};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where the embedded stores, the scheduler's raft log and the blobs live. Default `./pixelmill-data`.
    pub data_dir: PathBuf,
    /// Base of URLs handed to clients (download links, status URLs). Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Metadata backend: `embedded` (redb file under the data dir), or `scylla://…` (a ScyllaDB or
    /// Cassandra cluster; see `ScyllaConfig::from_url` and docs/CONSISTENCY.md). Default `embedded`.
    pub meta: String,
    /// This node's region: the file `<regions_dir>/<region>.toml` (regions/README.md). A
    /// `scylla://` metadata store takes from the region files what its URL leaves out: the
    /// region's datacenter and contact points, and every region's replicas. Default: none.
    pub region: Option<String>,
    /// Where the region files are. Default `./regions`.
    pub regions_dir: PathBuf,
    /// Blob backend: `file://<path>`, `s3://BUCKET?endpoint=…` (credentials from
    /// `PIXELMILL_S3_ACCESS_KEY_ID` / `PIXELMILL_S3_SECRET_ACCESS_KEY`), or `s3://` for the
    /// bucket of the node's region file; empty means `<data_dir>/blobs`. Default empty.
    pub blob: String,
    /// Whether this node runs the replicator, which copies the blobs its region writes to the other
    /// regions' buckets (only a node on its region's bucket, `blob = "s3://"`, has any). A region
    /// needs it on at least one node. Each one works through the region's whole queue, and a copy
    /// is idempotent (the same key is the same bytes), so a second one is redundancy, not
    /// throughput. Default true.
    pub replicator: bool,
    /// When set, a download link answers 307 to a presigned URL of the blob store valid this long
    /// (S3; never past the link's own expiry) instead of streaming the bytes through the node.
    /// Clients must be able to reach the store's endpoint. Default: none (streamed).
    #[serde(with = "optional_duration_text")]
    pub download_redirect: Option<Duration>,
    /// The bootstrap tenant's HMAC secret for webhook signatures (other tenants have their own).
    /// Default: generated once and kept in `<data_dir>/webhook-secret` (mode 0600).
    #[serde(skip_serializing)]
    pub webhook_secret: Option<Secret>,
    /// Lifetime of download links. Default 90 days.
    #[serde(with = "duration_text")]
    pub link_ttl: Duration,
    /// How durably an upload is stored before its 201, when the client does not say
    /// (`Pixelmill-Durability`): `local` (this region; others copy it asynchronously) or
    /// `regions=2` (a second region holds the original and its record first; needs a node on its
    /// region's bucket, `blob = "s3://"`). docs/CONSISTENCY.md gives what each loses. Default
    /// `local`.
    #[serde(with = "durability_text")]
    pub upload_durability: Durability,
    /// Largest accepted upload, in bytes. Default 50 MiB.
    pub max_body_bytes: u64,
    /// Largest accepted image, in pixels (width × height, per frame), checked from the header before
    /// decoding. Default 50 000 000.
    pub max_pixels: u64,
    /// Most frames accepted in an animated image. Default 1000.
    pub max_frames: u32,
    /// Uploads validated and stored at once. An upload takes a slot only once its whole body
    /// has arrived (slow senders hold none); one that finds none free within 10 s gets 503
    /// `overloaded`. Default 64.
    pub max_uploads: usize,
    /// Concurrent jobs on this node. Default: the number of CPUs. 0 makes an API-only node.
    pub workers: usize,
    /// Queued jobs beyond which new jobs get 503 `overloaded`. Default 10 000.
    pub queue_bound: usize,
    /// How long a worker holds a job without renewing before the job is handed to another. Default 30 s.
    #[serde(with = "duration_text")]
    pub lease_ttl: Duration,
    /// Attempts before a job is dead-lettered and marked failed. Default 5.
    pub max_attempts: u32,
    /// How long an expired link keeps answering 410 Gone before the sweeper removes it (and its
    /// output, once no other link refers to it). Default 7 days.
    #[serde(with = "duration_text")]
    pub expired_link_grace: Duration,
    /// How often expired links and unreferenced outputs are removed. Default 60 s.
    #[serde(with = "duration_text")]
    pub sweep_interval: Duration,
    /// How long a webhook keeps being retried. Default 25 h (the contract asks for at least 24 h).
    #[serde(with = "duration_text")]
    pub webhook_retry_window: Duration,
    /// Networks webhooks may reach although they are loopback, private, link-local or otherwise
    /// refused (docs/SECURITY.md, "Outbound requests"), e.g. `["127.0.0.0/8"]`; an allowed net
    /// wins over the refusal. Default empty.
    pub webhook_allow_nets: Vec<ipnet::IpNet>,
    /// The DNS server webhook hosts are resolved with, e.g. `127.0.0.1:5353`. Default: the
    /// system's (`/etc/resolv.conf`).
    pub outbound_dns: Option<SocketAddr>,
    /// How long every node of another region may be silent (no heartbeat seen moving, by this
    /// node's clock) before this region adopts its unfinished jobs. Shorter fails over sooner;
    /// longer rides out more of a partition without moving work. Default 30 s.
    #[serde(with = "duration_text")]
    pub region_grace: Duration,
    /// How often a node with a region beats (and reads the others' beats). Default 1 s.
    #[serde(with = "duration_text")]
    pub heartbeat_interval: Duration,
    /// This node's id in the scheduler's raft group. Default 1.
    pub node_id: u64,
    /// Every node of the region's scheduler raft group, this one included: their ids and raft
    /// addresses. Empty: the scheduler is a single voter inside this node. Several nodes need
    /// metadata and blobs they all see (`meta = "scylla://…"`, a shared `blob`). Default empty.
    pub peers: Vec<RaftPeer>,
    /// Where this node's raft listener binds. Default: its own address in `peers`.
    pub raft_listen: Option<SocketAddr>,
    /// Added before every message to a peer, to test the group under network latency. Default 0.
    #[serde(with = "duration_text")]
    pub raft_message_delay: Duration,
    /// The secret every node of the region signs raft requests with (at least 32 bytes); a node
    /// with `peers` refuses to start without it. Default: none.
    #[serde(skip_serializing)]
    pub raft_secret: Option<RaftSecret>,
    /// Largest scheduler snapshot accepted from the raft leader, in bytes. Default 256 MiB.
    pub raft_max_snapshot_bytes: u64,
    /// The bootstrap tenant's render signing key (it becomes the current one, the previous
    /// staying valid). Every tenant has its own, generated with the tenant and rotated with
    /// `POST /v1/tenant/render-keys`. Default: none (the generated one stays).
    #[serde(skip_serializing)]
    pub render_signing_key: Option<Secret>,
    /// Whether render URLs sent without an API key may leave out `sig` (they still name their
    /// tenant). Default false: such renders need a signature.
    pub render_unsigned: bool,
    /// The bootstrap admin API key (of the `default` tenant). Default: none, and on the embedded
    /// store one generated on first start into `<data_dir>/bootstrap-key` (mode 0600).
    #[serde(skip_serializing)]
    pub bootstrap_key: Option<Secret>,
    /// Bytes of renditions cached in memory; 0 turns the memory tier off. Default 256 MiB.
    pub render_cache_bytes: u64,
    /// Whether renditions are also kept in the blob store as a second cache tier. Default true.
    pub render_store: bool,
    /// How long a rendition stays in the blob store tier before the sweeper removes it (a later
    /// request renders it again). Default 30 d.
    #[serde(with = "duration_text")]
    pub render_store_ttl: Duration,
    /// Renditions computed at once. Default: the number of CPUs.
    pub render_concurrency: usize,
    /// Render requests that may wait for a slot; more get 503 `overloaded`. Default 64.
    pub render_queue: usize,
    /// Longest a render request waits plus computes before it gets 503. Default 10 s.
    #[serde(with = "duration_text")]
    pub render_deadline: Duration,
    /// Estimated cost above which a render is answered 202 and run as a job. Default 1 000 000 000
    /// (about half a second of CPU; a 12 MP JPEG thumbnail is about 40 000 000).
    pub render_max_cost: u64,
    /// Whether `format=auto` answers AVIF to clients that accept it (when its encode fits
    /// `render_max_cost`; otherwise WebP or JPEG). AVIF files are the smallest, but its encoder
    /// is some thirty times slower than WebP's, which every first render of a URL pays. Default
    /// true.
    pub render_auto_avif: bool,
    /// Largest body of a JSON request (`POST /v1/jobs`, every route but uploads), in bytes; a
    /// larger one is answered 413 without being read past the limit. Default 64 KiB.
    pub max_json_body_bytes: u64,
    /// How long a client may take to send a request's headers before its connection is closed.
    /// Default 10 s.
    #[serde(with = "duration_text")]
    pub header_read_timeout: Duration,
    /// How long a request body may go without a byte before it is answered 408; a JSON body must
    /// arrive whole within it. Default 30 s.
    #[serde(with = "duration_text")]
    pub body_idle_timeout: Duration,
    /// Longest an upload's body may take to arrive, however steadily it trickles; then 408.
    /// Default 10 min.
    #[serde(with = "duration_text")]
    pub upload_body_timeout: Duration,
    /// Uploads whose bodies are being received at once (each holds a connection and a spool
    /// file, not an upload slot); more get 503 `overloaded`. Default 1024.
    pub max_open_uploads: usize,
    /// Largest number of pixels decoded from one image across all its frames (width × height ×
    /// frames), checked from the headers before decoding. Default 400 000 000.
    pub max_total_pixels: u64,
    /// Largest pixel count of an image a pipeline reads besides its input (a watermark's
    /// overlay), checked before it is loaded. Default 16 000 000.
    pub max_overlay_pixels: u64,
    /// Estimated cost (`render_max_cost`'s units) above which a job is refused at submission
    /// with 422 `job_too_costly`. Default 200 000 000 000 (about 100 s of CPU).
    pub max_job_cost: u64,
    /// Longest one attempt of a job may run the engine; past it the job fails with a message
    /// that says so. Default 10 min.
    #[serde(with = "duration_text")]
    pub job_attempt_timeout: Duration,
    /// Job event streams (`GET /v1/jobs/{id}/events`) a tenant may hold open on this node; more
    /// get 429 `too_many_streams`. Default 64.
    pub max_event_streams_per_tenant: usize,
}

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./pixelmill-data"),
            public_url: None,
            meta: "embedded".to_owned(),
            region: None,
            regions_dir: PathBuf::from("regions"),
            blob: String::new(),
            download_redirect: None,
            replicator: true,
            webhook_secret: None,
            link_ttl: Duration::from_secs(90 * 86_400),
            upload_durability: Durability::Local,
            max_body_bytes: 50 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_frames: 1000,
            max_uploads: 64,
            workers: cpus,
            queue_bound: 10_000,
            lease_ttl: Duration::from_secs(30),
            max_attempts: 5,
            expired_link_grace: Duration::from_secs(7 * 86_400),
            sweep_interval: Duration::from_secs(60),
            webhook_retry_window: Duration::from_secs(25 * 3600),
            webhook_allow_nets: Vec::new(),
            outbound_dns: None,
            region_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            node_id: 1,
            peers: Vec::new(),
            raft_listen: None,
            raft_message_delay: Duration::ZERO,
            raft_secret: None,
            raft_max_snapshot_bytes: SchedConfig::default().max_snapshot_bytes,
            render_signing_key: None,
            render_unsigned: false,
            bootstrap_key: None,
            render_cache_bytes: 256 * 1024 * 1024,
            render_store: true,
            render_store_ttl: Duration::from_secs(30 * 86_400),
            render_concurrency: cpus,
            render_queue: 64,
            render_deadline: Duration::from_secs(10),
            render_max_cost: 1_000_000_000,
            render_auto_avif: true,
            max_json_body_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            upload_body_timeout: Duration::from_secs(600),
            max_open_uploads: 1024,
            max_total_pixels: 400_000_000,
            max_overlay_pixels: 16_000_000,
            max_job_cost: 200_000_000_000,
            job_attempt_timeout: Duration::from_secs(600),
            max_event_streams_per_tenant: 64,
        }
    }
}

/// A member of the scheduler's raft group; written `ID=HOST:PORT` on the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftPeer {
    pub id: u64,
    pub addr: String,
}

impl std::str::FromStr for RaftPeer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected ID=HOST:PORT, such as 2=127.0.0.1:7102, got {s:?}");
        let (id, addr) = s.split_once('=').ok_or_else(bad)?;
        let id = id.trim().parse().map_err(|_| bad())?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(bad());
        }
        Ok(RaftPeer {
            id,
            addr: addr.to_owned(),
        })
    }
}

impl Config {
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }
}

/// `local` or `regions=2` in config files.
mod durability_text {
    use pixelmill_core::Durability;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Durability, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match d {
            Durability::Local => "local",
            Durability::TwoRegions => "regions=2",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Durability, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Durations as human text (`"90d"`, `"30s"`) in config files.
mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        pixelmill_core::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod optional_duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| pixelmill_core::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
