//! What a worker does with a leased job. Every step is safe to repeat: the output key is a content
//! address, the link and the notification event are reused, so a job re-run after a crash or an
//! expired lease converges on the same result.

use crate::metrics::NodeMetrics;
use async_trait::async_trait;
use pixelmill_blob::BlobStore;
use pixelmill_core::{
    now_ms, sha256_hex, BlobKey, ImageId, ImageRecord, JobId, JobOutput, JobRecord, JobStatus,
    LinkRecord, LinkToken, TenantId,
};
use pixelmill_engine::{Limits, Pipeline, Registry};
use pixelmill_meta::MetaStore;
use pixelmill_notify::{JobEvent, JobEvents};
use pixelmill_sched::{FailOutcome, Lease, Reclaimed, Scheduler};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Why a job attempt failed, and whether another attempt could succeed.
#[derive(Debug)]
pub struct JobFailure {
    pub retryable: bool,
    pub error: String,
}

impl JobFailure {
    pub fn final_(error: impl Into<String>) -> Self {
        Self {
            retryable: false,
            error: error.into(),
        }
    }

    pub fn transient(error: impl Into<String>) -> Self {
        Self {
            retryable: true,
            error: error.into(),
        }
    }
}

/// The worker's view of job execution; the seam lets tests wrap the real runner (e.g. to make a
/// worker actor panic mid-job and check that supervision recovers the job).
#[async_trait]
pub trait JobExecutor: Send + Sync + 'static {
    async fn execute(&self, lease: &Lease) -> Result<(), JobFailure>;
    /// Records a failed attempt of `job`; `dead` when no attempt is left (the job is now `failed`).
    /// `true` once the record shows this outcome or a later one; `false` when the metadata
    /// could not be read or written (the scheduler keeps a dead letter until it is recorded).
    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool;
}

/// Which job, and which attempt of it, a failure is about.
#[derive(Clone, Debug)]
pub struct JobRef {
    pub tenant: TenantId,
    pub job: JobId,
    pub attempt: u32,
    /// The attempt's lease: the job record is written only while no later lease has written it.
    pub fencing: u64,
}

impl From<&Reclaimed> for JobRef {
    fn from(r: &Reclaimed) -> Self {
        Self {
            tenant: r.tenant.clone(),
            job: r.job.clone(),
            attempt: r.attempt,
            fencing: r.fencing,
        }
    }
}

impl From<&Lease> for JobRef {
    fn from(lease: &Lease) -> Self {
        Self {
            tenant: lease.tenant.clone(),
            job: lease.job.clone(),
            attempt: lease.attempt,
            fencing: lease.fencing,
        }
    }
}

pub struct JobRunner {
    pub meta: Arc<dyn MetaStore>,
    pub blob: Arc<dyn BlobStore>,
    pub registry: Arc<Registry>,
    pub events: JobEvents,
    pub limits: Limits,
    pub link_ttl: Duration,
    pub public_url: String,
    pub webhook_retry_window: Duration,
    pub metrics: NodeMetrics,
    /// Woken when a job reaches a final status so the notifier delivers its event at once.
    pub outbox_written: Arc<Notify>,
}

#[async_trait]
impl JobExecutor for JobRunner {
    async fn execute(&self, lease: &Lease) -> Result<(), JobFailure> {
        let started = std::time::Instant::now();
        let Some(mut job) = self.load(&lease.tenant, &lease.job).await? else {
            return Err(JobFailure::final_("the job record is missing"));
        };
        if job.fencing > lease.fencing {
            return Err(self.superseded(&job, lease.fencing));
        }
        if job.status.is_final() {
            return Ok(()); // finished by an earlier attempt whose completion was not acknowledged
        }
        job.status = JobStatus::Running;
        job.started_at = Some(now_ms());
        job.attempts = lease.attempt;
        job.fencing = lease.fencing;
        // Chosen once and kept by every later attempt, so a stale attempt that still writes its
        // link and notification writes the same ones.
        job.link.get_or_insert_with(LinkToken::generate);
        self.save(&job).await?;
        tracing::info!(job = %job.id, attempt = lease.attempt, fencing = lease.fencing, "job started");
        let result = self.render(&mut job).await;
        self.metrics.observe_job(
            if result.is_ok() {
                "succeeded"
            } else {
                "failed_attempt"
            },
            started.elapsed(),
        );
        result
    }

    async fn record_failure(&self, which: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        let mut job = match self.load(&which.tenant, &which.job).await {
            Ok(Some(job)) => job,
            Ok(None) => return true, // nothing to record it in
            Err(err) => {
                tracing::warn!(job = %which.job, error = %err.error, "could not read the job to record its failed attempt");
                return false;
            }
        };
        if job.status.is_final() || job.fencing > which.fencing {
            return true;
        }
        job.error = Some(failure.error.clone());
        job.attempts = which.attempt;
        job.fencing = which.fencing;
        if dead {
            job.status = JobStatus::Failed;
            job.finished_at = Some(now_ms());
            self.metrics.observe_job("failed", Duration::ZERO);
            // Outbox first, as for a success: the failed status is only written once its
            // notification is queued.
            if let Err(err) = self.notify_outcome(&job).await {
                tracing::warn!(job = %job.id, error = %err.error, "could not queue the failure notification");
                return false;
            }
        } else {
            job.status = JobStatus::Queued;
        }
        match self.save(&job).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err.error, "could not record the failed attempt");
                false
            }
        }
    }
}

impl JobRunner {
    async fn load(&self, tenant: &TenantId, job: &JobId) -> Result<Option<JobRecord>, JobFailure> {
        self.meta
            .get_job(tenant, job)
            .await
            .map_err(|e| JobFailure::transient(format!("reading the job failed: {e}")))
    }

    /// Writes the job under its attempt's lease (`job.fencing`); refused once a later lease has
    /// written it, and then this attempt's work is dropped.
    async fn save(&self, job: &JobRecord) -> Result<(), JobFailure> {
        let stored = self
            .meta
            .put_job_fenced(job)
            .await
            .map_err(|e| JobFailure::transient(format!("saving the job failed: {e}")))?;
        if !stored {
            return Err(self.superseded(job, job.fencing));
        }
        self.events.publish(JobEvent {
            job_id: job.id.clone(),
            status: job.status,
            at: now_ms(),
        });
        if job.status.is_final() {
            // The notifier sends an outcome only once the job shows it, so wake it now, not when
            // the outbox row was written.
            self.outbox_written.notify_one();
        }
        Ok(())
    }

    /// A later lease owns the job: nothing this attempt (under `fencing`) does may count.
    fn superseded(&self, job: &JobRecord, fencing: u64) -> JobFailure {
        self.metrics.superseded();
        tracing::warn!(job = %job.id, fencing, "a later attempt owns this job; this attempt's result is dropped");
        JobFailure::transient(format!(
            "job {} is owned by a later lease than {fencing}; this attempt's result is dropped",
            job.id
        ))
    }

    /// An image record of the job's tenant and its original's bytes.
    async fn load_image(
        &self,
        tenant: &TenantId,
        id: &ImageId,
    ) -> Result<(ImageRecord, bytes::Bytes), JobFailure> {
        let image = self
            .meta
            .get_image(tenant, id)
            .await
            .map_err(|e| JobFailure::transient(format!("reading image {id} failed: {e}")))?
            .ok_or_else(|| {
                JobFailure::final_(format!(
                    "image {id} no longer exists; upload it again and submit a new job"
                ))
            })?;
        let bytes = self
            .blob
            .get(&image.blob_key)
            .await
            .map_err(|e| JobFailure {
                retryable: e.is_retryable(),
                error: format!("reading the original of image {id} failed: {e}"),
            })?;
        Ok((image, bytes))
    }

    /// The images the pipeline reads besides its input (a watermark's overlay), each once.
    async fn load_referenced(
        &self,
        tenant: &TenantId,
        pipeline: &Pipeline,
    ) -> Result<Vec<(ImageRecord, bytes::Bytes)>, JobFailure> {
        let mut loaded = Vec::new();
        for reference in pipeline.referenced_images() {
            let id = ImageId::from_string(reference.id);
            loaded.push(self.load_image(tenant, &id).await?);
        }
        Ok(loaded)
    }

    async fn render(&self, job: &mut JobRecord) -> Result<(), JobFailure> {
        let (image, input) = self.load_image(&job.tenant, &job.image_id).await?;
        let mut pipeline = self
            .registry
            .compile(&job.spec.pipeline)
            .map_err(|e| JobFailure::final_(e.to_string()))?;
        let referenced = self.load_referenced(&job.tenant, &pipeline).await?;
        // Overlays are part of the work: their content goes into the output's address.
        let referenced_hashes: String = referenced
            .iter()
            .map(|(image, _)| format!("\n{}={}", image.id, image.sha256))
            .collect();
        let output_spec = job.spec.output.clone();
        let limits = self.limits;
        let rendered = tokio::task::spawn_blocking(move || {
            for (image, bytes) in &referenced {
                pipeline.attach_image(image.id.as_str(), bytes, &limits)?;
            }
            pixelmill_engine::process(&input, &pipeline, &output_spec, &limits)
        })
        .await
        .map_err(|e| JobFailure::final_(format!("the engine crashed on this image: {e}")))?
        .map_err(|e| JobFailure::final_(e.to_string()))?;
        for (op, took) in &rendered.op_timings {
            self.metrics.observe_op(op, *took);
        }
        // A worker that stalled past its lease (a frozen process) stops here, before rewriting the
        // link and outbox row of the attempt that superseded it: a rewritten row would announce
        // the outcome again, with another expiry. The fenced save below refuses it regardless.
        if let Some(current) = self.load(&job.tenant, &job.id).await? {
            if current.fencing > job.fencing {
                return Err(self.superseded(job, job.fencing));
            }
        }

        let address = sha256_hex(
            format!(
                "{}\n{}{referenced_hashes}",
                image.sha256,
                job.spec.canonical_work()
            )
            .as_bytes(),
        );
        let blob_key = BlobKey::output(&address);
        let now = now_ms();
        let expires_at = now + self.link_ttl.as_millis() as i64;
        let link = LinkRecord {
            token: job.link.clone().unwrap_or_else(LinkToken::generate),
            tenant: job.tenant.clone(),
            job_id: job.id.clone(),
            blob_key: blob_key.clone(),
            content_type: rendered.format.mime().to_owned(),
            bytes: rendered.bytes.len() as u64,
            created_at: now,
            expires_at,
        };
        // The link goes in before the blob, so the sweeper never sees this blob unreferenced.
        self.meta
            .put_link(&link)
            .await
            .map_err(|e| JobFailure::transient(format!("saving the link failed: {e}")))?;
        self.blob
            .put(&blob_key, bytes::Bytes::from(rendered.bytes))
            .await
            .map_err(|e| JobFailure {
                retryable: e.is_retryable(),
                error: format!("storing the output failed: {e}"),
            })?;

        job.status = JobStatus::Succeeded;
        job.finished_at = Some(now_ms());
        job.output = Some(JobOutput {
            format: rendered.format,
            width: rendered.width,
            height: rendered.height,
            bytes: link.bytes,
            blob_key,
            content_type: link.content_type.clone(),
        });
        job.link = Some(link.token.clone());
        job.expires_at = Some(expires_at);
        job.error = None;
        // Outbox before the final status: if we crash in between, the re-run rewrites the same event.
        self.notify_outcome(job).await?;
        self.save(job).await?;
        tracing::info!(job = %job.id, attempt = job.attempts, fencing = job.fencing, "job succeeded");
        Ok(())
    }

    async fn notify_outcome(&self, job: &JobRecord) -> Result<(), JobFailure> {
        let url = job
            .link
            .as_ref()
            .filter(|_| job.status == JobStatus::Succeeded)
            .map(|t| format!("{}/d/{t}", self.public_url.trim_end_matches('/')));
        let Some(event) = pixelmill_notify::outbox_event(
            job,
            url.as_deref(),
            now_ms(),
            self.webhook_retry_window,
        ) else {
            return Ok(());
        };
        self.meta
            .put_outbox(&event)
            .await
            .map_err(|e| JobFailure::transient(format!("queueing the notification failed: {e}")))?;
        Ok(())
    }
}

/// Why an attempt whose lease was taken back ended, as its job's error says after "attempt N".
pub const ENDED_UNFINISHED: &str =
    "stopped without finishing (its worker crashed or stopped renewing its lease)";

/// Records what became of jobs whose attempts ended without their worker's word (leases taken
/// back because they expired or their worker is gone, dead letters nobody recorded): back in
/// the queue, or out of attempts and failed. `why` follows "attempt N" in the job's error.
pub async fn settle_reclaimed(
    executor: &dyn JobExecutor,
    sched: &Scheduler,
    reclaimed: &[Reclaimed],
    why: &str,
) {
    let mut recorded = Vec::new();
    for r in reclaimed {
        let dead = match r.outcome {
            FailOutcome::DeadLettered => true,
            FailOutcome::Retrying { .. } => false,
            FailOutcome::LeaseLost => continue,
        };
        let failure = JobFailure::transient(format!("attempt {} {why}", r.attempt));
        if executor.record_failure(&r.into(), &failure, dead).await && dead {
            recorded.push((r.job.clone(), r.fencing));
        }
    }
    confirm_dead_letters(sched, recorded).await;
}

/// Tells the scheduler these dead letters (job, fencing token) are in their job records. If that
/// write fails, the leader's sweep records them again, which changes nothing in a record that
/// already shows it.
pub async fn confirm_dead_letters(sched: &Scheduler, dead: Vec<(JobId, u64)>) {
    let jobs = dead.len();
    if let Err(err) = sched.settled(dead).await {
        tracing::warn!(jobs, error = %err, "could not confirm recorded dead letters; the leader will check them again");
    }
}
