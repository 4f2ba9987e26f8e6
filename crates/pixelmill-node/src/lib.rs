//! One pixelmill node: configuration, the choice of backends, and the ractor supervision tree.
//!
//! ```text
//! node (supervisor)
//! ├── api            axum server
//! ├── upload         admits uploads; one Ingest actor per upload in progress
//! ├── scheduler      raft-backed queue housekeeping: lease expiry, queue gauges
//! ├── workers (supervisor)
//! │   └── worker-0 … worker-N   lease → engine → output, link, outbox → complete
//! ├── notifier       webhook delivery from the outbox
//! ├── sweeper        expired links and unreferenced outputs
//! ├── replicator     new blobs to the peer regions' buckets (a node on its region's bucket)
//! └── failover       heartbeats, the drain switch, adoption of a gone region's jobs (with --region)
//! ```
//! Architecture invariant: this crate is the only one that knows which backend implements which
//! trait; everything below it takes `Arc<dyn MetaStore>` / `Arc<dyn BlobStore>`.

mod access;
mod api_actor;
mod backends;
mod config;
mod failover;
mod http;
mod looping;
mod metrics;
mod replication;
mod roles;
mod supervisor;
mod upload;
mod worker;

pub use backends::migrate_meta;
pub use config::{Config, RaftPeer};
pub use pixelmill_jobs::{JobExecutor, JobFailure, JobRef};

use api_actor::{ApiActor, ApiArgs};
use pixelmill_api::{ApiSettings, AppState, HttpMetrics, Keys, RenderSettings, Renderer};
use pixelmill_core::Secret;
use pixelmill_engine::{Limits, Registry};
use pixelmill_jobs::{JobMetrics, JobSettings, Jobs, ENDED_UNFINISHED};
use pixelmill_meta::Tenants;
use pixelmill_notify::{JobEvents, NotifyMetrics, WebhookConfig, WebhookDelivery};
use pixelmill_outbound::Guard;
use pixelmill_regions::Regions;
use pixelmill_sched::{RaftGroup, SchedConfig, Scheduler};
use ractor::{Actor, ActorRef};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use supervisor::{ChildSpec, Supervisor, SupervisorArgs};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Io(String),
    #[error("metadata store: {0}")]
    Meta(#[from] pixelmill_meta::MetaError),
    #[error("blob store: {0}")]
    Blob(#[from] pixelmill_blob::BlobError),
    #[error("scheduler: {0}")]
    Sched(#[from] pixelmill_sched::SchedError),
    #[error("cannot listen on {addr}: {source}; pick a free address with {flag}")]
    Listen {
        addr: SocketAddr,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error("actor system: {0}")]
    Actors(String),
}

/// A running node. Dropping it does not stop it; call `shutdown`.
pub struct Node {
    root: ActorRef<()>,
    finished: tokio::task::JoinHandle<()>,
    sched: Scheduler,
    /// The address the API is listening on (useful with port 0).
    pub addr: SocketAddr,
}

impl Node {
    pub async fn start(config: Config) -> Result<Node, NodeError> {
        Self::start_with(config, |runner| runner).await
    }

    /// Starts a node whose workers run jobs through `wrap(its Jobs)`: the seam for embedding
    /// pixelmill with an instrumented or decorated executor.
    pub async fn start_with(
        config: Config,
        wrap: impl FnOnce(Arc<dyn JobExecutor>) -> Arc<dyn JobExecutor>,
    ) -> Result<Node, NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            NodeError::Io(format!(
                "cannot create the data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let spool_dir = config.data_dir.join("spool");
        upload::prepare_spool(&spool_dir).map_err(|e| {
            NodeError::Io(format!(
                "cannot prepare the upload spool {}: {e}",
                spool_dir.display()
            ))
        })?;
        let meta = backends::meta_store(&config).await?;
        let local_blob = backends::blob_store(&config).await?;
        let peers = backends::peer_blob_stores(&config)?;
        let secret = backends::webhook_secret(&config)?;
        let bootstrap_key = access::bootstrap_key(&config)?;
        let tenants = Arc::new(Tenants::new(meta.clone()));
        access::seed_bootstrap_tenant(
            &tenants,
            &secret,
            config.render_signing_key.as_ref().map(Secret::expose),
        )
        .await?;
        let sched = open_scheduler(&config).await?;
        // Every worker of this node's previous run is gone: their jobs go back to the queue now
        // rather than when their leases run out.
        let node_prefix = format!("n{}/", config.node_id);
        let returned = sched.release_worker(&node_prefix).await?;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: config.listen,
                    flag: "--listen",
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|e| NodeError::Io(e.to_string()))?;
        let public_url = config.public_url(addr);

        let prometheus = prometheus::Registry::new();
        let metrics_err =
            |e: prometheus::Error| NodeError::Io(format!("metrics registration: {e}"));
        let node_metrics = metrics::NodeMetrics::register(&prometheus).map_err(metrics_err)?;
        let http_metrics = HttpMetrics::register(&prometheus).map_err(metrics_err)?;
        let notify_metrics = NotifyMetrics::register(&prometheus).map_err(metrics_err)?;
        let regional = match &config.region {
            Some(region) if !peers.is_empty() => Some(replication::RegionalBlobs::new(
                region.clone(),
                local_blob.clone(),
                peers,
                meta.clone(),
                replication::ReplicationMetrics::register(&prometheus).map_err(metrics_err)?,
            )),
            _ => None,
        };
        let replicator = regional
            .as_ref()
            .filter(|_| config.replicator)
            .map(|r| r.replicator());
        let blob: Arc<dyn pixelmill_blob::BlobStore> = match &regional {
            Some(regional) => Arc::new(regional.clone()),
            None => local_blob,
        };

        let registry = Arc::new(Registry::builtin());
        let events = JobEvents::new();
        let limits = Limits {
            max_pixels: config.max_pixels,
            max_frames: config.max_frames,
            max_total_pixels: config.max_total_pixels,
        };
        let jobs = Arc::new(Jobs::new(
            meta.clone(),
            blob.clone(),
            sched.clone(),
            registry.clone(),
            events.clone(),
            JobSettings {
                region: config.region.clone(),
                link_ttl: config.link_ttl,
                public_url: public_url.clone(),
                webhook_retry_window: config.webhook_retry_window,
                queue_bound: config.queue_bound,
                limits,
                max_cost: config.max_job_cost,
                attempt_timeout: config.job_attempt_timeout,
            },
            JobMetrics::register(&prometheus).map_err(metrics_err)?,
        ));
        let draining = Arc::new(AtomicBool::new(false));
        let failover = match &config.region {
            Some(region) => Some(failover::Failover::new(
                jobs.clone(),
                meta.clone(),
                region.clone(),
                config.node_id,
                other_regions(&config, region)?,
                config.region_grace,
                config.heartbeat_interval,
                draining.clone(),
                failover::FailoverMetrics::register(&prometheus).map_err(metrics_err)?,
            )),
            None => None,
        };

        let upload_handle = upload::UploadHandle::default();
        let state = AppState {
            meta: meta.clone(),
            keys: Arc::new(Keys::new(meta.clone(), bootstrap_key.as_deref())),
            tenants: tenants.clone(),
            blob: blob.clone(),
            jobs: jobs.clone(),
            registry,
            events,
            uploads: Arc::new(upload_handle.clone()),
            settings: ApiSettings {
                max_body_bytes: config.max_body_bytes,
                public_url: public_url.clone(),
                idempotency_ttl: Duration::from_secs(86_400),
                download_redirect: config.download_redirect,
                outbound: Guard::new(config.webhook_allow_nets.clone()),
                max_json_body_bytes: config.max_json_body_bytes,
                body_idle_timeout: config.body_idle_timeout,
                upload_body_timeout: config.upload_body_timeout,
                max_overlay_pixels: config.max_overlay_pixels,
                max_event_streams_per_tenant: config.max_event_streams_per_tenant,
            },
            render: Arc::new(
                Renderer::new(render_settings(&config, limits), &prometheus)
                    .map_err(metrics_err)?,
            ),
            http_metrics,
            prometheus,
            draining: draining.clone(),
            event_streams: Default::default(),
        };
        let executor = wrap(jobs.clone());
        if !returned.is_empty() {
            tracing::info!(
                jobs = returned.len(),
                "took back jobs leased before the last stop"
            );
            jobs.settle_reclaimed(&*executor, &returned, ENDED_UNFINISHED)
                .await;
        }

        let workers = (0..config.workers)
            .map(|slot| {
                ChildSpec::looping(
                    format!("worker-{slot}"),
                    Arc::new(worker::Worker {
                        id_prefix: format!("{node_prefix}w{slot}/"),
                        incarnation: Default::default(),
                        jobs: jobs.clone(),
                        executor: executor.clone(),
                        lease_ttl: config.lease_ttl,
                        draining: draining.clone(),
                        metrics: node_metrics.clone(),
                    }),
                )
            })
            .collect();
        let listener = Arc::new(Mutex::new(Some(listener)));
        let upload_deps = Arc::new(upload::UploadDeps {
            handle: upload_handle,
            meta: meta.clone(),
            blob: blob.clone(),
            regional,
            durability: config.upload_durability,
            limits,
            max_body_bytes: config.max_body_bytes,
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_uploads)),
            max_open_uploads: config.max_open_uploads,
            spool_dir,
        });
        let mut children = vec![
            ChildSpec::actor("upload", move || (upload::UploadRole, upload_deps.clone())),
            ChildSpec::looping(
                "scheduler",
                Arc::new(roles::SchedulerTicker {
                    jobs: jobs.clone(),
                    executor: executor.clone(),
                    metrics: node_metrics.clone(),
                    settle_grace: config.lease_ttl,
                }),
            ),
            ChildSpec::supervisor("workers", workers, node_metrics.clone()),
            ChildSpec::looping(
                "notifier",
                Arc::new(roles::Notifier {
                    meta: meta.clone(),
                    delivery: WebhookDelivery::new(
                        secret,
                        WebhookConfig {
                            region: config.region.clone(),
                            owner_first: config.region_grace,
                            guard: Guard::new(config.webhook_allow_nets.clone()),
                            dns: config.outbound_dns,
                            ..WebhookConfig::default()
                        },
                        notify_metrics,
                    )
                    .map_err(|e| NodeError::Io(format!("webhook client: {e}")))?
                    .for_tenants(tenants.clone()),
                    outbox_written: jobs.outbox_written(),
                }),
            ),
            ChildSpec::looping(
                "sweeper",
                Arc::new(roles::Sweeper {
                    meta,
                    blob,
                    interval: config.sweep_interval,
                    grace: config.expired_link_grace,
                    rendition_ttl: config.render_store_ttl,
                }),
            ),
            ChildSpec::actor("api", move || {
                (
                    ApiActor,
                    ApiArgs {
                        state: state.clone(),
                        addr,
                        listener: listener.clone(),
                        header_read_timeout: config.header_read_timeout,
                    },
                )
            }),
        ];
        if let Some(replicator) = replicator {
            children.push(ChildSpec::looping("replicator", Arc::new(replicator)));
        }
        if let Some(failover) = failover {
            children.push(ChildSpec::looping("failover", Arc::new(failover)));
        }
        let (root, finished) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                children,
                metrics: node_metrics,
            },
        )
        .await
        .map_err(|e| NodeError::Actors(e.to_string()))?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "pixelmill node started");
        Ok(Node {
            root,
            finished,
            sched,
            addr,
        })
    }

    /// Waits until the supervision tree ends (it only ends by itself when a role cannot be kept alive).
    pub async fn wait(&mut self) {
        let _ = (&mut self.finished).await;
    }

    /// Stops every role (in-flight HTTP requests get a moment to finish), then the scheduler.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.root.stop(Some("shutdown".to_owned()));
        self.wait().await;
        self.sched.shutdown().await?;
        Ok(())
    }
}

/// The node's scheduler: a single voter, or its member of the region's raft group.
async fn open_scheduler(config: &Config) -> Result<Scheduler, NodeError> {
    let dir = config.data_dir.join("raft");
    let sched_config = SchedConfig {
        node_id: config.node_id,
        queue_bound: config.queue_bound,
        max_attempts: config.max_attempts,
        message_delay: config.raft_message_delay,
        max_snapshot_bytes: config.raft_max_snapshot_bytes,
        ..SchedConfig::default()
    };
    if config.peers.is_empty() {
        return Ok(Scheduler::open(&dir, sched_config).await?);
    }
    if config.peers.len() > 1 && config.meta == "embedded" {
        return Err(NodeError::Config(
            "a region of several nodes needs metadata they all see: pass --meta scylla://… (an embedded store would hold only this node's jobs)".to_owned(),
        ));
    }
    if config.peers.len() > 1 && config.blob.is_empty() {
        return Err(NodeError::Config(
            "a region of several nodes needs blobs they all see: pass --blob s3://… or a file:// directory every node shares".to_owned(),
        ));
    }
    let secret = config.raft_secret.clone().ok_or_else(|| {
        NodeError::Config(
            "a node with --peers needs the region's raft secret, the same on every node: put at least 32 bytes (`head -c 32 /dev/urandom | base64`) in PIXELMILL_RAFT_SECRET or in a file given with --raft-secret-file".to_owned(),
        )
    })?;
    let own = config.peers.iter().find(|p| p.id == config.node_id);
    let listen = match (config.raft_listen, own) {
        (Some(addr), _) => addr,
        (None, Some(peer)) => peer.addr.parse().map_err(|_| {
            NodeError::Config(format!(
                "node {}'s raft address {} is not IP:PORT; give the address to bind with --raft-listen",
                peer.id, peer.addr
            ))
        })?,
        (None, None) => {
            return Err(NodeError::Config(format!(
                "--peers has no entry for this node (--node-id {}); list every node of the region, this one too",
                config.node_id
            )))
        }
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: listen,
            flag: "--raft-listen",
            source,
        })?;
    let peers = config
        .peers
        .iter()
        .map(|p| (p.id, p.addr.clone()))
        .collect();
    Ok(Scheduler::open_group(
        &dir,
        sched_config,
        RaftGroup {
            listener,
            peers,
            secret,
        },
    )
    .await?)
}

/// Every region but `region`, from the region files.
fn other_regions(config: &Config, region: &str) -> Result<Vec<String>, NodeError> {
    let regions =
        Regions::load(&config.regions_dir).map_err(|e| NodeError::Config(e.to_string()))?;
    regions
        .get(region)
        .map_err(|e| NodeError::Config(e.to_string()))?;
    Ok(regions
        .iter()
        .filter(|r| r.name != region)
        .map(|r| r.name.clone())
        .collect())
}

fn render_settings(config: &Config, limits: Limits) -> RenderSettings {
    RenderSettings {
        unsigned: config.render_unsigned,
        cache_bytes: config.render_cache_bytes,
        store_results: config.render_store,
        max_concurrent: config.render_concurrency,
        max_waiting: config.render_queue,
        deadline: config.render_deadline,
        max_cost: config.render_max_cost,
        auto_avif: config.render_auto_avif,
        limits,
    }
}
