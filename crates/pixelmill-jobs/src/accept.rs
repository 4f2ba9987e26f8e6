//! Accepting a job: admitted against the queue's bound, stored (home and owner: this region),
//! then queued. The 202 follows only once both are durable.

use crate::Jobs;
use pixelmill_core::{now_ms, ImageRecord, JobId, JobRecord, JobSpec, JobStatus, TenantId};
use pixelmill_engine::{EngineError, Pipeline};
use pixelmill_meta::MetaError;
use pixelmill_sched::{JobTicket, SchedError};

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the job queue is full ({queued} jobs waiting); nothing was queued, retry after the Retry-After delay")]
    QueueFull { queued: usize },
    #[error("the job's estimated cost {cost} is over this server's limit of {max}; use a smaller image or output size, or fewer or cheaper steps")]
    TooCostly { cost: u64, max: u64 },
    #[error(transparent)]
    Output(#[from] EngineError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Sched(#[from] SchedError),
}

impl Jobs {
    /// Stores and queues a validated job (`pipeline` compiled from `spec`, `image` the tenant's).
    pub async fn accept(
        &self,
        tenant: TenantId,
        image: &ImageRecord,
        pipeline: &Pipeline,
        spec: JobSpec,
        id: JobId,
    ) -> Result<JobRecord, AcceptError> {
        let queued: usize = self.sched.stats().lanes.iter().map(|l| l.queued).sum();
        if queued >= self.settings.queue_bound {
            return Err(AcceptError::QueueFull { queued });
        }
        let format = pixelmill_engine::resolve_output(spec.output.format, image.format)?;
        let cost = pipeline.estimate_cost(image.width, image.height, image.frames, format);
        if cost > self.settings.max_cost {
            return Err(AcceptError::TooCostly {
                cost,
                max: self.settings.max_cost,
            });
        }
        let mut job =
            JobRecord::queued(tenant, id, image.id.clone(), spec, now_ms(), self.region());
        self.meta.put_job(&job).await?;
        if let Err(err) = self.enqueue(&job, cost).await {
            // Stored but never queued: say so on the record rather than leave it "queued".
            job.status = JobStatus::Failed;
            job.finished_at = Some(now_ms());
            job.error = Some(format!("not queued: {err}; submit the job again"));
            self.meta.put_job(&job).await?;
            return Err(err.into());
        }
        Ok(job)
    }

    /// Hands the job to this region's scheduler (a repeat is a no-op) and wakes a worker.
    pub(crate) async fn enqueue(&self, job: &JobRecord, cost: u64) -> Result<(), SchedError> {
        let ticket = JobTicket {
            job: job.id.clone(),
            tenant: job.tenant.clone(),
            cost,
            epoch: job.epoch,
        };
        self.sched.enqueue(ticket).await?;
        self.work_available.notify_waiters();
        Ok(())
    }

    /// The scheduling cost of a stored job, from its pipeline and its image. A pipeline that no
    /// longer compiles costs nothing: its attempt fails at once with the compiler's error.
    pub(crate) fn cost_of(&self, job: &JobRecord, image: &ImageRecord) -> u64 {
        let Ok(pipeline) = self.registry.compile(&job.spec.pipeline) else {
            return 0;
        };
        pixelmill_engine::resolve_output(job.spec.output.format, image.format).map_or(0, |format| {
            pipeline.estimate_cost(image.width, image.height, image.frames, format)
        })
    }
}
