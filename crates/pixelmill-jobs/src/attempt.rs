//! Running a leased attempt, and recording how attempts ended. Every step is safe to repeat: the
//! output key is a content address, the link token and the notification event are kept on the
//! record, so a job re-run after a crash, an expired lease or an adoption converges on the same
//! result.

use crate::engine::Inputs;
use crate::failure::{FailureKind, JobFailure};
use crate::Jobs;
use pixelmill_core::{
    now_ms, JobId, JobOutput, JobRecord, JobStatus, LinkRecord, LinkToken, TenantId,
};
use pixelmill_meta::Fenced;
use pixelmill_notify::JobEvent;
use pixelmill_sched::{FailOutcome, Lease, Reclaimed, SchedError};
use std::time::{Duration, Instant};

/// How the attempts of a node's workers run and record failures: `Jobs` itself, or a wrapper
/// around it (the seam for embedding pixelmill with an instrumented or decorated executor, and
/// for tests that break job handling on purpose).
#[async_trait::async_trait]
pub trait JobExecutor: Send + Sync + 'static {
    async fn execute(&self, lease: &Lease) -> Result<(), JobFailure>;
    /// Records a failed attempt of `job`; `dead` when no attempt is left (the job is now
    /// `failed`). `true` once the record shows this outcome or a later one; `false` when the
    /// metadata could not be read or written (the scheduler keeps a dead letter until it is
    /// recorded).
    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool;
}

#[async_trait::async_trait]
impl JobExecutor for Jobs {
    async fn execute(&self, lease: &Lease) -> Result<(), JobFailure> {
        self.run(lease).await
    }

    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        Jobs::record_failure(self, job, failure, dead).await
    }
}

/// How long a deferred job waits before it is leased again.
const DEFER_WAIT: Duration = Duration::from_secs(2);

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

/// Why an attempt whose lease was taken back ended, as its job's error says after "attempt N".
pub const ENDED_UNFINISHED: &str =
    "stopped without finishing (its worker crashed or stopped renewing its lease)";

impl Jobs {
    /// Runs a leased attempt to its end: running, the engine, the output, its link and its
    /// notification, succeeded. `Ok` too when an earlier attempt had finished the job.
    pub async fn run(&self, lease: &Lease) -> Result<(), JobFailure> {
        let started = Instant::now();
        let Some(mut job) = self.start(lease).await? else {
            return Ok(()); // finished by an earlier attempt whose completion was not acknowledged
        };
        let result = self.render(&mut job).await;
        let outcome = match &result {
            Ok(()) => "succeeded",
            Err(failure) if failure.kind == FailureKind::Defer => "deferred",
            Err(_) => "failed_attempt",
        };
        self.metrics.observe_job(outcome, started.elapsed());
        result
    }

    /// Marks the job running under `lease`; `None` when it is already final.
    async fn start(&self, lease: &Lease) -> Result<Option<JobRecord>, JobFailure> {
        let mut job = self
            .load(&lease.tenant, &lease.job)
            .await?
            .ok_or_else(|| JobFailure::final_("the job record is missing"))?;
        if !self.owns(&job) {
            return Err(self.disowned(&job));
        }
        if job.fencing > lease.fencing {
            return Err(self.superseded(&job, lease.fencing));
        }
        if job.status.is_final() {
            return Ok(None);
        }
        job.status = JobStatus::Running;
        job.started_at = Some(now_ms());
        job.attempts = lease.attempt;
        job.fencing = lease.fencing;
        // Chosen once and kept by every later attempt (and by an adopting region's), so a stale
        // attempt that still writes its link and notification writes the same ones.
        job.link.get_or_insert_with(LinkToken::generate);
        self.save(&job).await?;
        tracing::info!(job = %job.id, attempt = lease.attempt, fencing = lease.fencing, "job started");
        Ok(Some(job))
    }

    async fn render(&self, job: &mut JobRecord) -> Result<(), JobFailure> {
        let pipeline = self
            .registry
            .compile(&job.spec.pipeline)
            .map_err(|e| JobFailure::final_(e.to_string()))?;
        let inputs = Inputs::load(
            &*self.meta,
            &*self.blob,
            &job.tenant,
            &job.image_id,
            &pipeline,
        )
        .await?;
        let blob_key = inputs.output_key(&job.spec);
        let rendered = inputs
            .render(
                pipeline,
                job.spec.output.clone(),
                self.settings.limits,
                self.settings.attempt_timeout,
            )
            .await?;
        for (op, took) in &rendered.op_timings {
            self.metrics.observe_op(op, *took);
        }
        // A worker that stalled past its lease (a frozen process), or whose job another region
        // adopted meanwhile, stops here, before rewriting the link and outbox row of the attempt
        // that replaced it: a rewritten row would announce the outcome again, with another
        // expiry. The fenced save below refuses it regardless.
        if let Some(current) = self.load(&job.tenant, &job.id).await? {
            if !current.admits(job) {
                return Err(self.refused(job, Some(current)));
            }
        }

        let now = now_ms();
        let expires_at = now + self.settings.link_ttl.as_millis() as i64;
        let link = LinkRecord {
            token: job.link.clone().unwrap_or_else(LinkToken::generate),
            tenant: job.tenant.clone(),
            job_id: job.id.clone(),
            blob_key: blob_key.clone(),
            content_type: rendered.format.mime().to_owned(),
            bytes: rendered.bytes.len() as u64,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        // The link goes in before the blob, so the sweeper never sees this blob unreferenced.
        self.meta
            .put_link(&link)
            .await
            .map_err(|e| JobFailure::meta("saving the link", e))?;
        self.blob
            .put(&blob_key, bytes::Bytes::from(rendered.bytes))
            .await
            .map_err(|e| JobFailure::blob("storing the output", e))?;

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

    /// Records a failed attempt of `job`; `dead` when no attempt is left (the job is now
    /// `failed`). `true` once the record shows this outcome or a later one (or the job is
    /// another region's now); `false` when the metadata could not be read or written (the
    /// scheduler keeps a dead letter until it is recorded).
    pub async fn record_failure(&self, which: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        let mut job = match self.load(&which.tenant, &which.job).await {
            Ok(Some(job)) => job,
            Ok(None) => return true, // nothing to record it in
            Err(err) => {
                tracing::warn!(job = %which.job, error = %err.error, "could not read the job to record its failed attempt");
                return false;
            }
        };
        if job.status.is_final() || job.fencing > which.fencing || !self.owns(&job) {
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
            Err(err) if err.kind == FailureKind::Disowned => true,
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err.error, "could not record the failed attempt");
                false
            }
        }
    }

    /// Tells the scheduler how a leased attempt ended, and records a failure in the job: a
    /// success (or a job another region adopted) leaves the queue, an outage puts it back
    /// uncounted, any other failure is retried or, out of attempts, dead-lettered and recorded.
    pub async fn conclude(
        &self,
        executor: &dyn JobExecutor,
        lease: &Lease,
        result: Result<(), JobFailure>,
    ) -> Result<(), SchedError> {
        let failure = match result {
            Ok(()) => return self.complete(lease).await,
            Err(failure) => failure,
        };
        match failure.kind {
            FailureKind::Disowned => return self.complete(lease).await,
            FailureKind::Defer => {
                self.metrics.deferred();
                tracing::info!(job = %lease.job, error = %failure.error, "job attempt deferred");
                self.sched
                    .defer(&lease.job, lease.fencing, DEFER_WAIT)
                    .await?;
                return Ok(());
            }
            FailureKind::Final | FailureKind::Retry => {}
        }
        tracing::info!(job = %lease.job, attempt = lease.attempt, error = %failure.error, "job attempt failed");
        let retryable = failure.kind == FailureKind::Retry;
        let outcome = self
            .sched
            .fail(&lease.job, lease.fencing, retryable, failure.error.clone())
            .await?;
        let dead = match outcome {
            FailOutcome::DeadLettered => true,
            FailOutcome::Retrying { .. } => false,
            // Another worker holds the job now; its outcome is the one that counts.
            FailOutcome::LeaseLost => return Ok(()),
        };
        if executor.record_failure(&lease.into(), &failure, dead).await && dead {
            self.confirm_dead_letters(vec![(lease.job.clone(), lease.fencing)])
                .await;
        }
        Ok(())
    }

    async fn complete(&self, lease: &Lease) -> Result<(), SchedError> {
        if !self.sched.complete(&lease.job, lease.fencing).await? {
            tracing::warn!(job = %lease.job, "completion refused: the lease had expired and the job was re-leased");
        }
        Ok(())
    }

    /// Records what became of jobs whose attempts ended without their worker's word (leases
    /// taken back because they expired or their worker is gone, dead letters nobody recorded):
    /// back in the queue, or out of attempts and failed. `why` follows "attempt N" in the error.
    pub async fn settle_reclaimed(
        &self,
        executor: &dyn JobExecutor,
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
            let failure = JobFailure::retry(format!("attempt {} {why}", r.attempt));
            if executor.record_failure(&r.into(), &failure, dead).await && dead {
                recorded.push((r.job.clone(), r.fencing));
            }
        }
        self.confirm_dead_letters(recorded).await;
    }

    /// Tells the scheduler these dead letters (job, fencing token) are in their job records. If
    /// that write fails, the leader's sweep records them again, which changes nothing in a
    /// record that already shows it.
    pub async fn confirm_dead_letters(&self, dead: Vec<(JobId, u64)>) {
        let jobs = dead.len();
        if let Err(err) = self.sched.settled(dead).await {
            tracing::warn!(jobs, error = %err, "could not confirm recorded dead letters; the leader will check them again");
        }
    }

    pub(crate) async fn load(
        &self,
        tenant: &TenantId,
        job: &JobId,
    ) -> Result<Option<JobRecord>, JobFailure> {
        self.meta
            .get_job(tenant, job)
            .await
            .map_err(|e| JobFailure::meta("reading the job", e))
    }

    /// Whether this region runs `job`. A record from before regions had owners is anyone's.
    pub(crate) fn owns(&self, job: &JobRecord) -> bool {
        job.owner.is_none() || job.owner.as_deref() == self.region()
    }

    /// Writes the job under its attempt's lease (`job.fencing`); refused once a later lease or
    /// another region has written it, and then this attempt's work is dropped.
    async fn save(&self, job: &JobRecord) -> Result<(), JobFailure> {
        let fenced = self
            .meta
            .put_job_fenced(job)
            .await
            .map_err(|e| JobFailure::meta("saving the job", e))?;
        if let Fenced::Refused(current) = fenced {
            return Err(self.refused(job, current.map(|c| *c)));
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

    /// Why the stored record (`current`) refused a write of `job`'s attempt.
    fn refused(&self, job: &JobRecord, current: Option<JobRecord>) -> JobFailure {
        match current {
            Some(current) if current.owner != job.owner => self.disowned(&current),
            _ => self.superseded(job, job.fencing),
        }
    }

    /// A later lease owns the job: nothing this attempt (under `fencing`) does may count.
    fn superseded(&self, job: &JobRecord, fencing: u64) -> JobFailure {
        self.metrics.superseded();
        tracing::warn!(job = %job.id, fencing, "a later attempt owns this job; this attempt's result is dropped");
        JobFailure::retry(format!(
            "job {} is owned by a later lease than {fencing}; this attempt's result is dropped",
            job.id
        ))
    }

    /// Another region owns the job (`current` as stored): this region lets it go.
    fn disowned(&self, current: &JobRecord) -> JobFailure {
        self.metrics.disowned();
        let owner = current.owner.as_deref().unwrap_or("another region");
        tracing::info!(job = %current.id, %owner, "the job was adopted by another region; this region drops it");
        JobFailure::disowned(format!("job {} is run by region {owner} now", current.id))
    }

    async fn notify_outcome(&self, job: &JobRecord) -> Result<(), JobFailure> {
        let url = job
            .link
            .as_ref()
            .filter(|_| job.status == JobStatus::Succeeded)
            .map(|t| format!("{}/d/{t}", self.settings.public_url.trim_end_matches('/')));
        let Some(event) = pixelmill_notify::outbox_event(
            job,
            url.as_deref(),
            now_ms(),
            self.settings.webhook_retry_window,
        ) else {
            return Ok(());
        };
        self.meta
            .put_outbox(&event)
            .await
            .map_err(|e| JobFailure::meta("queueing the notification", e))
    }
}
