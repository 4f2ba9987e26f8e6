//! Operator commands: a region's raft group, schema migrations, draining a region, and the
//! geo-DNS server.

use crate::keys::AdminNode;
use crate::RegionArgs;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pixelmill_geodns::{CheckConfig, GeoDns, GeoDnsConfig};
use pixelmill_node::{Config, RaftPeer};
use pixelmill_regions::Regions;
use pixelmill_sched::{MembershipChange, RaftSecret};
use reqwest::Method;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum RaftAction {
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

/// Where the region's raft secret comes from, for `serve` and `raft`.
#[derive(Args)]
pub struct RaftSecretArgs {
    /// File holding the region's raft secret, at least 32 bytes and the same on every node (or the secret itself in PIXELMILL_RAFT_SECRET, kept out of the process list) [default: none; a node with --peers needs one]
    #[arg(long, env = "PIXELMILL_RAFT_SECRET_FILE")]
    raft_secret_file: Option<PathBuf>,
}

impl RaftSecretArgs {
    pub fn load(&self) -> Result<Option<RaftSecret>> {
        let secret = match (
            &self.raft_secret_file,
            std::env::var("PIXELMILL_RAFT_SECRET"),
        ) {
            (Some(path), _) => RaftSecret::from_file(path)?,
            (None, Ok(text)) => RaftSecret::new(&text).context("PIXELMILL_RAFT_SECRET")?,
            (None, Err(_)) => return Ok(None),
        };
        Ok(Some(secret))
    }
}

/// How long `raft status` waits for the node's answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn raft(at: &str, secret: RaftSecretArgs, action: RaftAction) -> Result<()> {
    let secret = secret.load()?.context(
        "the raft listener answers only requests signed with the region's secret: set PIXELMILL_RAFT_SECRET or pass --raft-secret-file",
    )?;
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
        None => pixelmill_sched::cluster_status_at(at, &secret, STATUS_TIMEOUT).await?,
        Some(change) => pixelmill_sched::change_membership_at(at, &secret, &change).await?,
    };
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

pub async fn migrate(meta: String, region: RegionArgs) -> Result<()> {
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

#[derive(Subcommand)]
pub enum RegionAction {
    /// Take the region out of geo-DNS on purpose (a planned evacuation): its nodes report
    /// unready, the other regions adopt its queued jobs, its running jobs finish.
    Drain(AdminNode),
    /// Give a drained region its place back.
    Undrain(AdminNode),
}

/// Drains or undrains the region of the node named.
pub async fn region(action: RegionAction) -> Result<()> {
    let (draining, node) = match action {
        RegionAction::Drain(node) => (true, node),
        RegionAction::Undrain(node) => (false, node),
    };
    let body = serde_json::json!({ "draining": draining });
    let answer = node
        .send(Method::PUT, "/v1/admin/region", Some(body))
        .await?;
    println!("{answer}");
    Ok(())
}

/// `pixelmill geodns`: what the geo-DNS server answers, and how it checks the nodes.
#[derive(Args)]
pub struct GeoDnsArgs {
    /// Address to answer DNS on, UDP and TCP, e.g. 10.77.0.53:53
    #[arg(
        long,
        env = "PIXELMILL_GEODNS_LISTEN",
        default_value = "127.0.0.1:5353"
    )]
    listen: SocketAddr,
    /// The service name clients resolve
    #[arg(
        long,
        env = "PIXELMILL_GEODNS_NAME",
        default_value = "api.pixelmill.test"
    )]
    name: String,
    /// Directory of the region files: each region's [api] nodes, [clients] prefixes and fallback
    #[arg(long, env = "PIXELMILL_REGIONS_DIR", default_value = "regions")]
    regions_dir: PathBuf,
    /// TTL of every answer in seconds: how long a client may keep a region that has failed
    #[arg(long, env = "PIXELMILL_GEODNS_TTL", default_value_t = 2)]
    ttl: u32,
    /// How often each node's /readyz is checked, e.g. 1s
    #[arg(long, env = "PIXELMILL_GEODNS_CHECK_INTERVAL", value_parser = crate::duration, default_value = "1s")]
    check_interval: Duration,
    /// Failing checks in a row before a node leaves the answers (as many passing to return)
    #[arg(long, env = "PIXELMILL_GEODNS_FALL", default_value_t = 2)]
    fall: u32,
}

pub async fn geodns(args: GeoDnsArgs) -> Result<()> {
    let regions = Regions::load(&args.regions_dir)?;
    let source: Option<IpAddr> = Some(args.listen.ip()).filter(|ip| !ip.is_unspecified());
    let checks = CheckConfig {
        interval: args.check_interval,
        timeout: args.check_interval.mul_f64(0.8),
        rise: args.fall,
        fall: args.fall,
        source,
    };
    let config = GeoDnsConfig {
        name: args.name,
        ttl: args.ttl,
        checks,
    };
    let server = GeoDns::start(args.listen, regions, config).await?;
    println!("geo-DNS answering on {}", server.addr);
    tokio::select! {
        done = server.wait() => done?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
