//! A worker leases one job at a time from the scheduler, keeps the lease alive while the engine
//! runs, and reports the outcome. Its leases carry its id, `n<node>/w<slot>/<incarnation>`, so a
//! restarted worker first hands back whatever its crashed predecessor held.

use crate::looping::{LoopTask, Pace};
use crate::metrics::NodeMetrics;
use crate::runner::{confirm_dead_letters, settle_reclaimed, JobExecutor, ENDED_UNFINISHED};
use async_trait::async_trait;
use pixelmill_sched::{FailOutcome, Scheduler, WorkerId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub struct Worker {
    pub id_prefix: String,
    pub incarnation: AtomicU64,
    pub sched: Scheduler,
    pub executor: Arc<dyn JobExecutor>,
    pub lease_ttl: Duration,
    pub work_available: Arc<Notify>,
    pub metrics: NodeMetrics,
}

/// Stops the heartbeat however the attempt ends, a panic included.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl LoopTask for Worker {
    async fn on_start(&self) -> Result<(), String> {
        let returned = self
            .sched
            .release_worker(&self.id_prefix)
            .await
            .map_err(|e| e.to_string())?;
        self.metrics.leases_returned(returned.len());
        settle_reclaimed(&*self.executor, &self.sched, &returned, ENDED_UNFINISHED).await;
        self.incarnation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn turn(&self) -> Result<Pace, String> {
        let worker = WorkerId(format!(
            "{}{}",
            self.id_prefix,
            self.incarnation.load(Ordering::SeqCst)
        ));
        let lease_ms = self.lease_ttl.as_millis() as u64;
        let asked = std::time::Instant::now();
        let mut leases = self
            .sched
            .lease(&worker, 1, lease_ms)
            .await
            .map_err(|e| e.to_string())?;
        let Some(lease) = leases.pop() else {
            return Ok(Pace::Idle);
        };
        self.metrics.placed(&lease, asked.elapsed());

        let heartbeat = {
            let (sched, job, fencing) = (self.sched.clone(), lease.job.clone(), lease.fencing);
            let every = self.lease_ttl / 3;
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Ok(false) = sched.renew(&job, fencing, lease_ms).await {
                        tracing::warn!(%job, "lease lost while running; the result will be discarded by fencing");
                        return;
                    }
                }
            }))
        };
        let result = self.executor.execute(&lease).await;
        drop(heartbeat);

        match result {
            Ok(()) => {
                if !self
                    .sched
                    .complete(&lease.job, lease.fencing)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    tracing::warn!(job = %lease.job, "completion refused: the lease had expired and the job was re-leased");
                }
            }
            Err(failure) => {
                tracing::info!(job = %lease.job, attempt = lease.attempt, error = %failure.error, "job attempt failed");
                let outcome = self
                    .sched
                    .fail(
                        &lease.job,
                        lease.fencing,
                        failure.retryable,
                        failure.error.clone(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let dead = match outcome {
                    FailOutcome::DeadLettered => true,
                    FailOutcome::Retrying { .. } => false,
                    // Another worker holds the job now; its outcome is the one that counts.
                    FailOutcome::LeaseLost => return Ok(Pace::Busy),
                };
                let recorded = self
                    .executor
                    .record_failure(&(&lease).into(), &failure, dead)
                    .await;
                if dead && recorded {
                    confirm_dead_letters(&self.sched, vec![(lease.job.clone(), lease.fencing)])
                        .await;
                }
            }
        }
        Ok(Pace::Busy)
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_millis(250)
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.work_available.clone())
    }
}
