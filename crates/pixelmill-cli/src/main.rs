//! The `pixelmill` binary: `serve` runs every role in one process; `process` runs the engine on
//! a file; the client commands (`upload`, `job`, `wait`, `get`) talk to a node or, through
//! geo-DNS, to the nearest healthy region; the rest are for operators. Flags also read
//! `PIXELMILL_<NAME>` environment variables.

mod admin;
mod keys;
mod process;
mod remote;
mod serve;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pixelmill_node::Config;
use std::net::{IpAddr, SocketAddr};
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
    Serve(Box<serve::ServeArgs>),
    /// Run a filter pipeline on a file, offline, with the same engine.
    Process(process::ProcessArgs),
    /// Upload an image; prints it (its id, size, hash).
    Upload {
        file: PathBuf,
        /// `regions=2`: answered only once a second region holds the original [default: the node's setting]
        #[arg(long)]
        durability: Option<String>,
        #[command(flatten)]
        connect: remote::Connect,
    },
    /// Submit a job, or look at one.
    Job {
        #[command(subcommand)]
        action: remote::JobAction,
        #[command(flatten)]
        connect: remote::Connect,
    },
    /// Wait until a job has finished; prints it, and exits 1 when it failed.
    Wait {
        job: String,
        /// How long to wait, e.g. 10m
        #[arg(long, value_parser = duration, default_value = "10m")]
        timeout: Duration,
        #[command(flatten)]
        connect: remote::Connect,
    },
    /// Save what a download link, or a finished job's link, points at.
    Get {
        /// A download link (…/d/TOKEN) or a job id
        what: String,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        connect: remote::Connect,
    },
    /// Ask a DNS server for a name's addresses (as a client of --client-subnet would).
    Resolve {
        name: String,
        /// The DNS server, ADDRESS:PORT
        #[arg(long, env = "PIXELMILL_DNS")]
        dns: SocketAddr,
        /// Ask on behalf of this client network (EDNS client subnet), e.g. 10.77.101.0/24
        #[arg(long)]
        client_subnet: Option<ipnet::IpNet>,
        /// The local address to ask from
        #[arg(long)]
        bind: Option<IpAddr>,
    },
    /// Inspect or change a region's scheduler raft group through any member's raft listener.
    Raft {
        /// A member's raft address, HOST:PORT (its --raft-listen or its entry in --peers)
        #[arg(long, env = "PIXELMILL_RAFT_AT")]
        at: String,
        #[command(flatten)]
        secret: admin::RaftSecretArgs,
        #[command(subcommand)]
        action: admin::RaftAction,
    },
    /// Apply the schema migrations a scylla:// metadata store lacks (serve also does, at start).
    Migrate {
        /// The metadata store, as for `serve --meta`
        #[arg(long, env = "PIXELMILL_META")]
        meta: String,
        #[command(flatten)]
        region: RegionArgs,
    },
    /// Drain a region (out of geo-DNS, its queued jobs to other regions) or give it its place back.
    Region {
        #[command(subcommand)]
        action: admin::RegionAction,
    },
    /// Run the geo-DNS server: the service name answered with the nearest healthy region's nodes.
    Geodns(admin::GeoDnsArgs),
    /// Create, list and revoke API keys through a node's admin API (an admin key in PIXELMILL_KEY).
    Keys {
        #[command(subcommand)]
        action: keys::KeysAction,
        #[command(flatten)]
        node: keys::AdminNode,
    },
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

fn duration(s: &str) -> Result<Duration, String> {
    pixelmill_core::parse_duration(s).map_err(|e| e.to_string())
}

/// An output format by its name (`jpeg`, `png`, …, `original`).
fn output_format(name: &str) -> Result<pixelmill_core::OutputFormat> {
    use anyhow::Context;
    serde_json::from_value(serde_json::Value::String(name.to_owned())).with_context(|| {
        format!(
            "unknown output format {name:?}: use jpeg, png, webp, gif, avif, tiff, bmp or original"
        )
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    pixelmill_engine::keep_freed_buffers_mapped();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve::serve((*args).into_config()?).await,
        Command::Process(args) => process::process(args),
        Command::Upload {
            file,
            durability,
            connect,
        } => remote::upload(&connect, file, durability).await,
        Command::Job { action, connect } => remote::job(&connect, action).await,
        Command::Wait {
            job,
            timeout,
            connect,
        } => remote::wait(&connect, &job, timeout).await,
        Command::Get {
            what,
            output,
            connect,
        } => remote::get(&connect, &what, output).await,
        Command::Resolve {
            name,
            dns,
            client_subnet,
            bind,
        } => remote::resolve(dns, &name, client_subnet, bind).await,
        Command::Raft { at, secret, action } => admin::raft(&at, secret, action).await,
        Command::Migrate { meta, region } => admin::migrate(meta, region).await,
        Command::Region { action } => admin::region(action).await,
        Command::Geodns(args) => admin::geodns(args).await,
        Command::Keys { action, node } => keys::keys(node, action).await,
    }
}
