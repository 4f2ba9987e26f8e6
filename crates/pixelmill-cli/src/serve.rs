//! `pixelmill serve`: a node with every role; each flag overrides a default of `Config`.

use crate::admin::RaftSecretArgs;
use crate::{duration, RegionArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use pixelmill_core::Durability;
use pixelmill_node::{Config, Node, RaftPeer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Each flag overrides the built-in default shown in its help.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "PIXELMILL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for metadata, blobs and the scheduler log [default: ./pixelmill-data]
    #[arg(long, env = "PIXELMILL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Base URL put in download links and status URLs [default: http://<listen>]
    #[arg(long, env = "PIXELMILL_PUBLIC_URL")]
    public_url: Option<String>,
    /// Metadata backend: embedded, or scylla://[host:9042,…]/[keyspace][?local_dc=…&replication=dc:n,…&<class>=<level>] (docs/CONSISTENCY.md; with --region, hosts, local_dc and replication default to the region files) [default: embedded]
    #[arg(long, env = "PIXELMILL_META")]
    meta: Option<String>,
    #[command(flatten)]
    region: RegionArgs,
    /// Blob backend: file:///path, s3://BUCKET?endpoint=URL, or s3:// for the region's bucket;
    /// S3 credentials from PIXELMILL_S3_ACCESS_KEY_ID / PIXELMILL_S3_SECRET_ACCESS_KEY
    /// [default: <data-dir>/blobs]
    #[arg(long, env = "PIXELMILL_BLOB")]
    blob: Option<String>,
    /// Run the replicator here: copy the blobs this region writes to the other regions' buckets (with --blob s3://) [default: true]
    #[arg(long, env = "PIXELMILL_REPLICATOR")]
    replicator: Option<bool>,
    /// Answer download links with a 307 to a presigned S3 URL valid this long, e.g. 5m, instead of streaming through the node [default: streamed]
    #[arg(long, env = "PIXELMILL_DOWNLOAD_REDIRECT", value_parser = duration)]
    download_redirect: Option<Duration>,
    /// HMAC secret for webhook signatures [default: generated into <data-dir>/webhook-secret]
    #[arg(long, env = "PIXELMILL_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<pixelmill_core::Secret>,
    /// Lifetime of download links, e.g. 3s, 12h, 90d [default: 90d]
    #[arg(long, env = "PIXELMILL_LINK_TTL", value_parser = duration)]
    link_ttl: Option<Duration>,
    /// How durably an upload is stored before its 201 when the client does not say: local, or regions=2 (a second region holds it first) [default: local]
    #[arg(long, env = "PIXELMILL_UPLOAD_DURABILITY")]
    upload_durability: Option<Durability>,
    /// Largest upload in bytes [default: 52428800]
    #[arg(long, env = "PIXELMILL_MAX_BODY_BYTES")]
    max_body_bytes: Option<u64>,
    /// Largest image in pixels per frame [default: 50000000]
    #[arg(long, env = "PIXELMILL_MAX_PIXELS")]
    max_pixels: Option<u64>,
    /// Most frames in an animated image [default: 1000]
    #[arg(long, env = "PIXELMILL_MAX_FRAMES")]
    max_frames: Option<u32>,
    /// Uploads validated and stored at once (once their body is in); more wait, then 503 [default: 64]
    #[arg(long, env = "PIXELMILL_MAX_UPLOADS")]
    max_uploads: Option<usize>,
    /// Concurrent jobs; 0 runs an API-only node [default: number of CPUs]
    #[arg(long, env = "PIXELMILL_WORKERS")]
    workers: Option<usize>,
    /// Waiting jobs beyond which new jobs get 503 overloaded [default: 10000]
    #[arg(long, env = "PIXELMILL_QUEUE_BOUND")]
    queue_bound: Option<usize>,
    /// How long a worker holds a job without renewing its lease [default: 30s]
    #[arg(long, env = "PIXELMILL_LEASE_TTL", value_parser = duration)]
    lease_ttl: Option<Duration>,
    /// How long every node of another region may be silent before this region adopts its unfinished jobs [default: 30s]
    #[arg(long, env = "PIXELMILL_REGION_GRACE", value_parser = duration)]
    region_grace: Option<Duration>,
    /// How often a node with a region writes its heartbeat and reads the other regions' [default: 1s]
    #[arg(long, env = "PIXELMILL_HEARTBEAT_INTERVAL", value_parser = duration)]
    heartbeat_interval: Option<Duration>,
    /// This node's id in the region's scheduler raft group [default: 1]
    #[arg(long, env = "PIXELMILL_NODE_ID")]
    node_id: Option<u64>,
    /// Every node of the region's scheduler raft group, this one included: ID=HOST:PORT, comma-separated, e.g. 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 [default: none, a single-voter scheduler]
    #[arg(long, env = "PIXELMILL_PEERS", value_delimiter = ',')]
    peers: Vec<RaftPeer>,
    /// Address the raft listener binds [default: this node's entry in --peers]
    #[arg(long, env = "PIXELMILL_RAFT_LISTEN")]
    raft_listen: Option<SocketAddr>,
    /// Testing: delay added before every message to a raft peer, e.g. 30ms [default: 0]
    #[arg(long, env = "PIXELMILL_RAFT_MESSAGE_DELAY", value_parser = duration)]
    raft_message_delay: Option<Duration>,
    #[command(flatten)]
    raft_secret: RaftSecretArgs,
    /// Largest scheduler snapshot accepted from the raft leader, in bytes [default: 268435456]
    #[arg(long, env = "PIXELMILL_RAFT_MAX_SNAPSHOT_BYTES")]
    raft_max_snapshot_bytes: Option<u64>,
    /// Attempts before a job fails for good [default: 5]
    #[arg(long, env = "PIXELMILL_MAX_ATTEMPTS")]
    max_attempts: Option<u32>,
    /// How long expired links answer 410 before they and their outputs are removed [default: 7d]
    #[arg(long, env = "PIXELMILL_EXPIRED_LINK_GRACE", value_parser = duration)]
    expired_link_grace: Option<Duration>,
    /// How often expired links and outputs are removed [default: 60s]
    #[arg(long, env = "PIXELMILL_SWEEP_INTERVAL", value_parser = duration)]
    sweep_interval: Option<Duration>,
    /// How long failed webhooks keep being retried [default: 25h]
    #[arg(long, env = "PIXELMILL_WEBHOOK_RETRY_WINDOW", value_parser = duration)]
    webhook_retry_window: Option<Duration>,
    /// Networks webhooks may reach although loopback, private, link-local or otherwise refused: CIDRs, comma-separated, e.g. 127.0.0.0/8,fd00::/8 (docs/SECURITY.md) [default: none]
    #[arg(long, env = "PIXELMILL_WEBHOOK_ALLOW_NETS", value_delimiter = ',', value_parser = pixelmill_outbound::parse_allow_net)]
    webhook_allow_nets: Vec<ipnet::IpNet>,
    /// DNS server that resolves webhook hosts, e.g. 127.0.0.1:5353 [default: the system's, /etc/resolv.conf]
    #[arg(long, env = "PIXELMILL_OUTBOUND_DNS")]
    outbound_dns: Option<SocketAddr>,
    /// The bootstrap tenant's render signing key [default: generated with the tenant]
    #[arg(long, env = "PIXELMILL_RENDER_SIGNING_KEY", hide_env_values = true)]
    render_signing_key: Option<pixelmill_core::Secret>,
    /// Let render URLs without an API key leave out sig (they still name tenant=) [default: false]
    #[arg(long, env = "PIXELMILL_RENDER_UNSIGNED")]
    render_unsigned: Option<bool>,
    /// The bootstrap admin API key [default: generated into <data-dir>/bootstrap-key on the embedded store]
    #[arg(long, env = "PIXELMILL_BOOTSTRAP_KEY", hide_env_values = true)]
    bootstrap_key: Option<pixelmill_core::Secret>,
    /// Bytes of renditions cached in memory; 0 disables [default: 268435456]
    #[arg(long, env = "PIXELMILL_RENDER_CACHE_BYTES")]
    render_cache_bytes: Option<u64>,
    /// Keep renditions in the blob store as a second cache tier [default: true]
    #[arg(long, env = "PIXELMILL_RENDER_STORE")]
    render_store: Option<bool>,
    /// How long a rendition stays in the blob store tier before it is swept [default: 30d]
    #[arg(long, env = "PIXELMILL_RENDER_STORE_TTL", value_parser = duration)]
    render_store_ttl: Option<Duration>,
    /// Renditions computed at once [default: number of CPUs]
    #[arg(long, env = "PIXELMILL_RENDER_CONCURRENCY")]
    render_concurrency: Option<usize>,
    /// Render requests that may wait for a slot; more get 503 overloaded [default: 64]
    #[arg(long, env = "PIXELMILL_RENDER_QUEUE")]
    render_queue: Option<usize>,
    /// Longest a render waits plus computes before it gets 503 [default: 10s]
    #[arg(long, env = "PIXELMILL_RENDER_DEADLINE", value_parser = duration)]
    render_deadline: Option<Duration>,
    /// Estimated cost above which a render becomes an async job (202) [default: 1000000000]
    #[arg(long, env = "PIXELMILL_RENDER_MAX_COST")]
    render_max_cost: Option<u64>,
    /// Whether format=auto answers AVIF to clients that accept it (its encoder is slow) [default: true]
    #[arg(long, env = "PIXELMILL_RENDER_AUTO_AVIF")]
    render_auto_avif: Option<bool>,
    /// Largest JSON request body in bytes; larger ones get 413 [default: 65536]
    #[arg(long, env = "PIXELMILL_MAX_JSON_BODY_BYTES")]
    max_json_body_bytes: Option<u64>,
    /// Time a client has to send a request's headers before the connection closes [default: 10s]
    #[arg(long, env = "PIXELMILL_HEADER_READ_TIMEOUT", value_parser = duration)]
    header_read_timeout: Option<Duration>,
    /// Time a request body may send nothing before it gets 408 [default: 30s]
    #[arg(long, env = "PIXELMILL_BODY_IDLE_TIMEOUT", value_parser = duration)]
    body_idle_timeout: Option<Duration>,
    /// Longest an upload body may take to arrive before it gets 408 [default: 10m]
    #[arg(long, env = "PIXELMILL_UPLOAD_BODY_TIMEOUT", value_parser = duration)]
    upload_body_timeout: Option<Duration>,
    /// Upload bodies received at once; more get 503 overloaded [default: 1024]
    #[arg(long, env = "PIXELMILL_MAX_OPEN_UPLOADS")]
    max_open_uploads: Option<usize>,
    /// Most pixels decoded from one image, all frames together [default: 400000000]
    #[arg(long, env = "PIXELMILL_MAX_TOTAL_PIXELS")]
    max_total_pixels: Option<u64>,
    /// Most pixels of an image a pipeline reads besides its input (a watermark) [default: 16000000]
    #[arg(long, env = "PIXELMILL_MAX_OVERLAY_PIXELS")]
    max_overlay_pixels: Option<u64>,
    /// Estimated cost above which a job is refused with 422 [default: 200000000000]
    #[arg(long, env = "PIXELMILL_MAX_JOB_COST")]
    max_job_cost: Option<u64>,
    /// Longest one job attempt may run the engine [default: 10m]
    #[arg(long, env = "PIXELMILL_JOB_ATTEMPT_TIMEOUT", value_parser = duration)]
    job_attempt_timeout: Option<Duration>,
    /// Job event streams a tenant may hold open on this node; more get 429 [default: 64]
    #[arg(long, env = "PIXELMILL_MAX_EVENT_STREAMS_PER_TENANT")]
    max_event_streams_per_tenant: Option<usize>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<Config> {
        let mut c = Config::default();
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(
            listen,
            data_dir,
            meta,
            blob,
            replicator,
            link_ttl,
            upload_durability,
            max_body_bytes,
            max_pixels,
            max_frames,
            max_uploads,
            workers,
            queue_bound,
            lease_ttl,
            region_grace,
            heartbeat_interval,
            max_attempts,
            node_id,
            raft_message_delay,
            raft_max_snapshot_bytes,
            expired_link_grace,
            sweep_interval,
            webhook_retry_window,
            render_cache_bytes,
            render_store,
            render_store_ttl,
            render_concurrency,
            render_queue,
            render_deadline,
            render_max_cost,
            render_auto_avif,
            render_unsigned
        );
        set!(
            max_json_body_bytes,
            header_read_timeout,
            body_idle_timeout,
            upload_body_timeout,
            max_open_uploads,
            max_total_pixels,
            max_overlay_pixels,
            max_job_cost,
            job_attempt_timeout,
            max_event_streams_per_tenant
        );
        c.render_signing_key = self.render_signing_key.or(c.render_signing_key);
        c.bootstrap_key = self.bootstrap_key.or(c.bootstrap_key);
        c.public_url = self.public_url.or(c.public_url);
        c.download_redirect = self.download_redirect.or(c.download_redirect);
        c.webhook_secret = self.webhook_secret.or(c.webhook_secret);
        c.raft_listen = self.raft_listen.or(c.raft_listen);
        c.peers = self.peers;
        c.webhook_allow_nets = self.webhook_allow_nets;
        c.outbound_dns = self.outbound_dns.or(c.outbound_dns);
        c.raft_secret = self.raft_secret.load()?;
        self.region.apply(&mut c);
        Ok(c)
    }
}

pub async fn serve(config: Config) -> Result<()> {
    let mut node = Node::start(config)
        .await
        .context("pixelmill could not start")?;
    println!("pixelmill listening on http://{}", node.addr);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = node.wait() => bail!("the node stopped because one of its roles kept failing; see the log above"),
    }
    tracing::info!("shutting down");
    node.shutdown().await?;
    Ok(())
}
