//! The node's periodic roles: the scheduler's housekeeping, webhook delivery and the sweeper.

use crate::looping::{LoopTask, Pace};
use crate::metrics::NodeMetrics;
use async_trait::async_trait;
use pixelmill_blob::BlobStore;
use pixelmill_core::{now_ms, BlobKey};
use pixelmill_jobs::{JobExecutor, Jobs, ENDED_UNFINISHED};
use pixelmill_meta::MetaStore;
use pixelmill_notify::WebhookDelivery;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const DIED_UNRECORDED: &str =
    "failed and the job is out of attempts; the node that ran it stopped before recording the error";

/// Returns expired leases to the queue (on the raft leader) and publishes queue and raft gauges.
pub struct SchedulerTicker {
    pub jobs: Arc<Jobs>,
    pub executor: Arc<dyn JobExecutor>,
    pub metrics: NodeMetrics,
    /// How long the node that dead-lettered a job has to record it before the leader does: a
    /// lease's length, the time it had to report at all.
    pub settle_grace: Duration,
}

#[async_trait]
impl LoopTask for SchedulerTicker {
    async fn turn(&self) -> Result<Pace, String> {
        let sched = self.jobs.scheduler();
        let expired = sched.expire_leases().await.map_err(|e| e.to_string())?;
        if !expired.is_empty() {
            tracing::info!(
                jobs = expired.len(),
                "leases expired; jobs returned to the queue"
            );
        }
        self.metrics.leases_returned(expired.len());
        let executor = &*self.executor;
        self.jobs
            .settle_reclaimed(executor, &expired, ENDED_UNFINISHED)
            .await;
        let unrecorded = sched.unsettled_dead_letters(self.settle_grace);
        if !unrecorded.is_empty() {
            tracing::info!(
                jobs = unrecorded.len(),
                "recording dead letters whose node did not"
            );
            self.jobs
                .settle_reclaimed(executor, &unrecorded, DIED_UNRECORDED)
                .await;
        }
        self.metrics.record_queue(&sched.stats());
        self.metrics.record_raft(&sched.cluster_status());
        Ok(Pace::Idle)
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// Delivers due webhooks from the outbox.
pub struct Notifier {
    pub meta: Arc<dyn MetaStore>,
    pub delivery: WebhookDelivery,
    pub outbox_written: Arc<Notify>,
}

const NOTIFY_BATCH: usize = 64;

#[async_trait]
impl LoopTask for Notifier {
    async fn turn(&self) -> Result<Pace, String> {
        let report = self
            .delivery
            .deliver_due(&*self.meta, now_ms(), NOTIFY_BATCH)
            .await;
        let handled = report.delivered + report.retried + report.gave_up;
        Ok(if handled >= NOTIFY_BATCH {
            Pace::Busy
        } else {
            Pace::Idle
        })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.outbox_written.clone())
    }
}

/// Removes links that expired more than `grace` ago (until then they answer 410 Gone), then the
/// outputs no link points at any more, and renditions cached in the blob store longer than
/// `rendition_ttl` (a request renders them again).
pub struct Sweeper {
    pub meta: Arc<dyn MetaStore>,
    pub blob: Arc<dyn BlobStore>,
    pub interval: Duration,
    pub grace: Duration,
    pub rendition_ttl: Duration,
}

const SWEEP_BATCH: usize = 256;

#[async_trait]
impl LoopTask for Sweeper {
    async fn turn(&self) -> Result<Pace, String> {
        let cutoff = now_ms() - self.grace.as_millis() as i64;
        let expired = self
            .meta
            .expired_links(cutoff, SWEEP_BATCH)
            .await
            .map_err(|e| e.to_string())?;
        for link in &expired {
            self.meta
                .delete_link(&link.token)
                .await
                .map_err(|e| e.to_string())?;
            if !self
                .meta
                .blob_has_links(&link.blob_key)
                .await
                .map_err(|e| e.to_string())?
            {
                self.blob
                    .delete(&link.blob_key)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::debug!(blob = %link.blob_key, "removed an output no link refers to");
            }
        }
        let stale = self
            .blob
            .written_before(
                BlobKey::RENDITION_PREFIX,
                now_ms() - self.rendition_ttl.as_millis() as i64,
                SWEEP_BATCH,
            )
            .await
            .map_err(|e| e.to_string())?;
        for key in &stale {
            self.blob.delete(key).await.map_err(|e| e.to_string())?;
        }
        if !stale.is_empty() {
            tracing::debug!(
                count = stale.len(),
                "removed renditions past their time in the store"
            );
        }
        Ok(
            if expired.len() == SWEEP_BATCH || stale.len() == SWEEP_BATCH {
                Pace::Busy
            } else {
                Pace::Idle
            },
        )
    }

    fn idle_wait(&self) -> Duration {
        self.interval
    }
}
