//! A worker leases one job at a time from the scheduler, keeps the lease alive while the job
//! runs, and hands the outcome to the job's lifecycle (`Jobs::conclude`). Its leases carry its
//! id, `n<node>/w<slot>/<incarnation>`, so a restarted worker first hands back whatever its
//! crashed predecessor held. A worker of a draining region leases nothing: its queued jobs move
//! to the other regions.

use crate::looping::{LoopTask, Pace};
use crate::metrics::NodeMetrics;
use async_trait::async_trait;
use pixelmill_jobs::{FailureKind, JobExecutor, Jobs, ENDED_UNFINISHED};
use pixelmill_sched::WorkerId;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct Worker {
    pub id_prefix: String,
    pub incarnation: AtomicU64,
    pub jobs: Arc<Jobs>,
    pub executor: Arc<dyn JobExecutor>,
    pub lease_ttl: Duration,
    pub draining: Arc<AtomicBool>,
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
        let sched = self.jobs.scheduler();
        let returned = sched
            .release_worker(&self.id_prefix)
            .await
            .map_err(|e| e.to_string())?;
        self.metrics.leases_returned(returned.len());
        self.jobs
            .settle_reclaimed(&*self.executor, &returned, ENDED_UNFINISHED)
            .await;
        self.incarnation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn turn(&self) -> Result<Pace, String> {
        if self.draining.load(Ordering::SeqCst) {
            return Ok(Pace::Idle);
        }
        let sched = self.jobs.scheduler();
        let worker = WorkerId(format!(
            "{}{}",
            self.id_prefix,
            self.incarnation.load(Ordering::SeqCst)
        ));
        let lease_ms = self.lease_ttl.as_millis() as u64;
        let asked = std::time::Instant::now();
        let mut leases = sched
            .lease(&worker, 1, lease_ms)
            .await
            .map_err(|e| e.to_string())?;
        let Some(lease) = leases.pop() else {
            return Ok(Pace::Idle);
        };
        self.metrics.placed(&lease, asked.elapsed());

        let heartbeat = {
            let (sched, job, fencing) = (sched.clone(), lease.job.clone(), lease.fencing);
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
        // An outage (a store down, the region cut off) would fail every job alike: wait a
        // while rather than lease the next one at once.
        let pace = match &result {
            Err(failure) if failure.kind == FailureKind::Defer => Pace::Idle,
            _ => Pace::Busy,
        };
        self.jobs
            .conclude(&*self.executor, &lease, result)
            .await
            .map_err(|e| e.to_string())?;
        Ok(pace)
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_millis(250)
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.jobs.work_available())
    }
}
