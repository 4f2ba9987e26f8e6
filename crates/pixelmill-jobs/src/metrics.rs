//! What happens to jobs, for `/metrics`.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::time::Duration;

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone)]
pub struct JobMetrics {
    jobs: HistogramVec,
    ops: HistogramVec,
    superseded: IntCounter,
    deferred: IntCounter,
    disowned: IntCounter,
    adopted: IntCounterVec,
    requeued: IntCounter,
}

impl JobMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let jobs = HistogramVec::new(
            HistogramOpts::new(
                "pixelmill_job_duration_seconds",
                "Job attempt duration by outcome",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["outcome"],
        )?;
        let ops = HistogramVec::new(
            HistogramOpts::new(
                "pixelmill_job_op_duration_seconds",
                "Time spent per pipeline step (decode and encode included)",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["op"],
        )?;
        let superseded = IntCounter::new(
            "pixelmill_attempts_superseded_total",
            "Job attempts whose lease a later attempt replaced (a frozen or partitioned worker): their writes were refused by fencing",
        )?;
        let deferred = IntCounter::new(
            "pixelmill_attempts_deferred_total",
            "Job attempts put back without counting because a store was unavailable or the region was cut off",
        )?;
        let disowned = IntCounter::new(
            "pixelmill_attempts_disowned_total",
            "Job attempts dropped because another region had adopted the job",
        )?;
        let adopted = IntCounterVec::new(
            Opts::new(
                "pixelmill_jobs_adopted_total",
                "Jobs this region adopted from another, by the region they came from",
            ),
            &["from"],
        )?;
        let requeued = IntCounter::new(
            "pixelmill_jobs_requeued_total",
            "Unfinished jobs of this region found missing from its scheduler and queued again",
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(ops.clone()))?;
        registry.register(Box::new(superseded.clone()))?;
        registry.register(Box::new(deferred.clone()))?;
        registry.register(Box::new(disowned.clone()))?;
        registry.register(Box::new(adopted.clone()))?;
        registry.register(Box::new(requeued.clone()))?;
        Ok(Self {
            jobs,
            ops,
            superseded,
            deferred,
            disowned,
            adopted,
            requeued,
        })
    }

    pub fn observe_job(&self, outcome: &str, took: Duration) {
        self.jobs
            .with_label_values(&[outcome])
            .observe(took.as_secs_f64());
    }

    pub fn observe_op(&self, op: &str, took: Duration) {
        self.ops
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }

    pub fn superseded(&self) {
        self.superseded.inc();
    }

    pub fn deferred(&self) {
        self.deferred.inc();
    }

    pub fn disowned(&self) {
        self.disowned.inc();
    }

    pub fn adopted(&self, from: &str) {
        self.adopted.with_label_values(&[from]).inc();
    }

    pub fn requeued(&self) {
        self.requeued.inc();
    }
}
