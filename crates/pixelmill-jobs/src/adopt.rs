//! Taking over another region's jobs, and keeping this region's own jobs in its queue.

use crate::Jobs;
use pixelmill_core::{JobRecord, JobStatus};
use pixelmill_meta::MetaError;

/// What one adoption pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Jobs this region won and queued.
    pub adopted: usize,
    /// Jobs left for a later pass: their input is not readable here yet (not replicated, and
    /// the region that has it unreachable), or another region won them.
    pub waiting: usize,
}

impl Jobs {
    /// Adopts up to `limit` unfinished jobs of region `from`: each is claimed with a
    /// compare-and-set on its owner (of regions adopting at once, exactly one wins), then queued
    /// here; it keeps its id, link token and event ids. With `queued_only` (a drained region,
    /// still running) a job that is running there is left to finish. A job is only claimed
    /// once its input is readable here, so it never waits in a region that cannot run it.
    pub async fn adopt_from(
        &self,
        from: &str,
        queued_only: bool,
        limit: usize,
    ) -> Result<Adopted, MetaError> {
        let Some(to) = self.region() else {
            return Ok(Adopted::default());
        };
        let mut done = Adopted::default();
        for (tenant, id) in self.meta.unfinished_jobs(from, limit).await? {
            let Some(job) = self.meta.get_job(&tenant, &id).await? else {
                continue;
            };
            let running_there = queued_only && job.status == JobStatus::Running;
            if job.status.is_final() || job.owner.as_deref() != Some(from) || running_there {
                continue;
            }
            let Some(cost) = self.readable_cost(&job).await else {
                done.waiting += 1;
                continue;
            };
            let Some(adopted) = self.meta.adopt_job(&tenant, &id, from, to).await? else {
                done.waiting += 1;
                continue;
            };
            tracing::info!(job = %id, %from, epoch = adopted.epoch, "adopted a job");
            self.metrics.adopted(from);
            done.adopted += 1;
            if let Err(err) = self.enqueue(&adopted, cost).await {
                // It is this region's now; `requeue_own` queues it on a later pass.
                tracing::warn!(job = %id, %err, "adopted a job but could not queue it yet");
            }
        }
        Ok(done)
    }

    /// Queues again up to `limit` of this region's unfinished jobs that its scheduler does not
    /// know: an adoption whose enqueue failed, or tickets lost with a scheduler log. The number
    /// queued.
    pub async fn requeue_own(&self, limit: usize) -> Result<usize, MetaError> {
        let Some(region) = self.region() else {
            return Ok(0);
        };
        let mut queued = 0;
        for (tenant, id) in self.meta.unfinished_jobs(region, limit).await? {
            if self.sched.knows(&id) {
                continue;
            }
            let Some(job) = self.meta.get_job(&tenant, &id).await? else {
                continue;
            };
            // Read after the queue: a job that finished in between is final by now.
            if job.status.is_final() || !self.owns(&job) || self.sched.knows(&id) {
                continue;
            }
            let cost = self.readable_cost(&job).await.unwrap_or(0);
            if self.enqueue(&job, cost).await.is_ok() {
                tracing::info!(job = %id, "queued again an unfinished job the scheduler did not have");
                self.metrics.requeued();
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// The job's scheduling cost, if its input image's record and bytes are readable here.
    async fn readable_cost(&self, job: &JobRecord) -> Option<u64> {
        let image = self
            .meta
            .get_image(&job.tenant, &job.image_id)
            .await
            .ok()??;
        self.blob.head(&image.blob_key).await.ok()??;
        Some(self.cost_of(job, &image))
    }
}
