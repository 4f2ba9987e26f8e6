//! A job's life, owned in one place: `Jobs` accepts a job (record, then ticket), runs a leased
//! attempt (running, engine, output, link, notification, succeeded), records failures, settles
//! attempts the scheduler took back, and adopts the unfinished jobs of a region that has gone.
//! The API, the workers and the scheduler's housekeeping all go through it.
//!
//! The job record in the replicated metadata is the truth: it names the job's home region, its
//! owner and the owner's epoch, and every write of an attempt is fenced by (owner, epoch, lease),
//! so a worker whose lease was taken back, or a region whose job another region adopted, cannot
//! write it. The raft queue only places work.

mod accept;
mod adopt;
mod attempt;
mod engine;
mod failure;
mod metrics;

pub use accept::AcceptError;
pub use adopt::Adopted;
pub use attempt::{JobExecutor, JobRef, ENDED_UNFINISHED};
pub use engine::{load_image, Inputs};
pub use failure::{FailureKind, JobFailure};
pub use metrics::JobMetrics;

use pixelmill_blob::BlobStore;
use pixelmill_engine::{Limits, Registry};
use pixelmill_meta::MetaStore;
use pixelmill_notify::JobEvents;
use pixelmill_sched::Scheduler;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What the node decides once for every job.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// This node's region: the home of the jobs it accepts and the owner it runs jobs for.
    /// `None` on a node without a region.
    pub region: Option<String>,
    pub link_ttl: Duration,
    /// The base of download links, e.g. `http://api.pixelmill.test:8080`.
    pub public_url: String,
    pub webhook_retry_window: Duration,
    /// Queued jobs beyond which new ones are refused.
    pub queue_bound: usize,
    pub limits: Limits,
    /// Estimated cost (`Pipeline::estimate_cost`) above which a job is refused at submission.
    pub max_cost: u64,
    /// Longest one attempt may run the engine before it fails.
    pub attempt_timeout: Duration,
}

/// The owner of every job's life on this node. Cheap to share (`Arc<Jobs>`).
pub struct Jobs {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blob: Arc<dyn BlobStore>,
    pub(crate) sched: Scheduler,
    pub(crate) registry: Arc<Registry>,
    pub(crate) events: JobEvents,
    pub(crate) settings: JobSettings,
    pub(crate) metrics: JobMetrics,
    /// Woken when a job is queued, so idle workers lease it at once.
    pub(crate) work_available: Arc<Notify>,
    /// Woken when a job reaches a final status, so the notifier delivers its event at once.
    pub(crate) outbox_written: Arc<Notify>,
}

impl Jobs {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blob: Arc<dyn BlobStore>,
        sched: Scheduler,
        registry: Arc<Registry>,
        events: JobEvents,
        settings: JobSettings,
        metrics: JobMetrics,
    ) -> Self {
        Self {
            meta,
            blob,
            sched,
            registry,
            events,
            settings,
            metrics,
            work_available: Arc::new(Notify::new()),
            outbox_written: Arc::new(Notify::new()),
        }
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    pub fn metrics(&self) -> &JobMetrics {
        &self.metrics
    }

    /// Woken when work is queued (workers wait on it).
    pub fn work_available(&self) -> Arc<Notify> {
        self.work_available.clone()
    }

    /// Woken when a job's outcome is ready to announce (the notifier waits on it).
    pub fn outbox_written(&self) -> Arc<Notify> {
        self.outbox_written.clone()
    }

    fn region(&self) -> Option<&str> {
        self.settings.region.as_deref()
    }
}
