//! The `pixelmill` binary: `serve` runs every role in one process; `process` runs the engine on a
//! file. Flags also read `PIXELMILL_<NAME>` environment variables.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use pixelmill_core::{IccMode, OutputFormat, OutputSpec, PipelineStep};
use pixelmill_node::{Config, Node, RaftPeer};
use pixelmill_sched::MembershipChange;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "pixelmill",
    version,
    about = "Image processing service: upload, filter pipelines, webhooks, expiring download links"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node with every role (API, scheduler, workers, notifier, sweeper, replicator) on embedded storage.
    Serve(Box<ServeArgs>),
    /// Run a filter pipeline on a file, offline, with the same engine.
    Process(ProcessArgs),
    /// Inspect or change a region's scheduler raft group through any member's raft listener.
    Raft {
        /// A member's raft address, HOST:PORT (its --raft-listen or its entry in --peers)
        #[arg(long, env = "PIXELMILL_RAFT_AT")]
        at: String,
        #[command(subcommand)]
        action: RaftAction,
    },
    /// Apply the schema migrations a scylla:// metadata store lacks (serve also does, at start).
    Migrate {
        /// The metadata store, as for `serve --meta`
        #[arg(long, env = "PIXELMILL_META")]
        meta: String,
        #[command(flatten)]
        region: RegionArgs,
    },
}

#[derive(Subcommand)]
enum RaftAction {
    /// Print the group as that member sees it (leader, term, indexes, voters, learners), as JSON.
    Status,
    /// Start replicating to a new node as a non-voting learner; returns once it has caught up.
    AddLearner {
        /// The new node, ID=HOST:PORT (its raft listener; start it with --peers listing only itself)
        node: RaftPeer,
    },
    /// Make a caught-up learner a voter.
    Promote { id: u64 },
    /// Take a node out of the group (voter or learner).
    Remove { id: u64 },
}

/// Where a node sits among the regions (regions/README.md).
#[derive(Args)]
struct RegionArgs {
    /// This node's region, a file <regions-dir>/<region>.toml; a scylla:// store takes its datacenter, hosts and every region's replicas from those files [default: none]
    #[arg(long, env = "PIXELMILL_REGION")]
    region: Option<String>,
    /// Directory of the region files [default: ./regions]
    #[arg(long, env = "PIXELMILL_REGIONS_DIR")]
    regions_dir: Option<PathBuf>,
}

impl RegionArgs {
    fn apply(self, config: &mut Config) {
        config.region = self.region.or(config.region.take());
        if let Some(dir) = self.regions_dir {
            config.regions_dir = dir;
        }
    }
}

/// Each flag overrides the built-in default shown in its help.
#[derive(Args)]
struct ServeArgs {
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
    webhook_secret: Option<String>,
    /// Lifetime of download links, e.g. 3s, 12h, 90d [default: 90d]
    #[arg(long, env = "PIXELMILL_LINK_TTL", value_parser = duration)]
    link_ttl: Option<Duration>,
    /// Largest upload in bytes [default: 52428800]
    #[arg(long, env = "PIXELMILL_MAX_BODY_BYTES")]
    max_body_bytes: Option<u64>,
    /// Largest image in pixels per frame [default: 50000000]
    #[arg(long, env = "PIXELMILL_MAX_PIXELS")]
    max_pixels: Option<u64>,
    /// Most frames in an animated image [default: 1000]
    #[arg(long, env = "PIXELMILL_MAX_FRAMES")]
    max_frames: Option<u32>,
    /// Uploads taken at once; more get 503 overloaded [default: 64]
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
    /// Key for signed render URLs; when set, /render needs sig=<hex HMAC-SHA256> [default: unsigned]
    #[arg(long, env = "PIXELMILL_RENDER_SIGNING_KEY", hide_env_values = true)]
    render_signing_key: Option<String>,
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
}

#[derive(Args)]
struct ProcessArgs {
    /// Input image (format sniffed from its bytes)
    input: PathBuf,
    /// Output file; its extension picks the format unless --format is given
    #[arg(short, long)]
    output: PathBuf,
    /// Pipeline in compact form, e.g. 'resize:width=300|sepia|expr:expr="r = 255 - r"'
    #[arg(long, default_value = "")]
    ops: String,
    /// Output format: jpeg, png, webp, gif, avif, tiff, bmp or original
    #[arg(long)]
    format: Option<String>,
    /// Quality 1-100 for lossy formats
    #[arg(long)]
    quality: Option<u8>,
    /// Progressive JPEG instead of baseline
    #[arg(long)]
    progressive: bool,
    /// PNG compression effort 0 (fastest) to 9 (smallest) [default: the fast setting]
    #[arg(long)]
    compression: Option<u8>,
    /// Keep an embedded ICC profile (embedded in JPEG, PNG, WebP) instead of converting to sRGB
    #[arg(long)]
    keep_icc: bool,
    /// A file standing in for a stored image the pipeline reads, e.g. `--image logo=logo.png`
    /// with `--ops watermark:image=logo`; repeat for several
    #[arg(long = "image", value_name = "ID=PATH", value_parser = image_file)]
    images: Vec<(String, PathBuf)>,
}

fn image_file(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((id, path)) if !id.is_empty() && !path.is_empty() => Ok((id.to_owned(), path.into())),
        _ => Err(format!("expected ID=PATH, e.g. logo=logo.png, got {s:?}")),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    pixelmill_core::parse_duration(s).map_err(|e| e.to_string())
}

impl ServeArgs {
    fn into_config(self) -> Config {
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
            max_body_bytes,
            max_pixels,
            max_frames,
            max_uploads,
            workers,
            queue_bound,
            lease_ttl,
            max_attempts,
            node_id,
            raft_message_delay,
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
            render_auto_avif
        );
        c.render_signing_key = self.render_signing_key.or(c.render_signing_key);
        c.public_url = self.public_url.or(c.public_url);
        c.download_redirect = self.download_redirect.or(c.download_redirect);
        c.webhook_secret = self.webhook_secret.or(c.webhook_secret);
        c.raft_listen = self.raft_listen.or(c.raft_listen);
        c.peers = self.peers;
        self.region.apply(&mut c);
        c
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    pixelmill_engine::keep_freed_buffers_mapped();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve((*args).into_config()).await,
        Command::Process(args) => process(args),
        Command::Raft { at, action } => raft(&at, action).await,
        Command::Migrate { meta, region } => {
            let mut config = Config {
                meta,
                ..Config::default()
            };
            region.apply(&mut config);
            let applied = pixelmill_node::migrate_meta(&config)
                .await
                .context("the migration failed")?;
            println!("schema migrations applied: {applied:?} (an empty list: it was up to date)");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<()> {
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

async fn raft(at: &str, action: RaftAction) -> Result<()> {
    let change = match action {
        RaftAction::Status => None,
        RaftAction::AddLearner { node } => Some(MembershipChange::AddLearner {
            id: node.id,
            addr: node.addr,
        }),
        RaftAction::Promote { id } => Some(MembershipChange::Promote { id }),
        RaftAction::Remove { id } => Some(MembershipChange::Remove { id }),
    };
    let status = match change {
        None => pixelmill_sched::cluster_status_at(at).await?,
        Some(change) => pixelmill_sched::change_membership_at(at, &change).await?,
    };
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

fn process(args: ProcessArgs) -> Result<()> {
    let steps = if args.ops.trim().is_empty() {
        Vec::new()
    } else {
        PipelineStep::parse_compact(&args.ops)?
    };
    let format = match args.format.as_deref() {
        Some(name) => name.to_owned(),
        None => match args.output.extension().and_then(|e| e.to_str()) {
            Some("jpg") => "jpeg".to_owned(),
            Some("tif") => "tiff".to_owned(),
            Some(ext) => ext.to_ascii_lowercase(),
            None => "original".to_owned(),
        },
    };
    let format: OutputFormat = serde_json::from_value(serde_json::Value::String(format.clone()))
        .with_context(|| {
            format!(
                "unknown output format {format:?}: use jpeg, png, webp, gif, avif, tiff, bmp or \
                 original"
            )
        })?;
    let output = OutputSpec {
        format,
        quality: args.quality,
        progressive: args.progressive,
        compression: args.compression,
        icc: if args.keep_icc {
            IccMode::Keep
        } else {
            IccMode::Srgb
        },
    };
    pixelmill_engine::check_output(&output).map_err(anyhow::Error::msg)?;
    let mut pipeline = pixelmill_engine::Registry::builtin().compile(&steps)?;
    let limits = pixelmill_engine::Limits::default();
    let referenced: Vec<(String, String)> = pipeline
        .referenced_images()
        .iter()
        .map(|r| (r.id.to_owned(), format!("step {} ({})", r.step, r.op)))
        .collect();
    for (id, step) in referenced {
        let (_, path) = args
            .images
            .iter()
            .find(|(name, _)| *name == id)
            .with_context(|| {
                format!("{step} reads image {id:?}; give its file with --image {id}=PATH")
            })?;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        pipeline.attach_image(&id, &bytes, &limits)?;
    }
    let input = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let rendered = pixelmill_engine::process(&input, &pipeline, &output, &limits)?;
    std::fs::write(&args.output, &rendered.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{} → {} ({} {}x{}, {} bytes)",
        args.input.display(),
        args.output.display(),
        rendered.format.as_str(),
        rendered.width,
        rendered.height,
        rendered.bytes.len()
    );
    Ok(())
}
