use pixelmill_sched::QueueStats;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::time::Duration;

/// Job, queue and supervision metrics of one node.
#[derive(Clone)]
pub struct NodeMetrics {
    jobs: HistogramVec,
    ops: HistogramVec,
    queue_depth: IntGaugeVec,
    queue_leased: IntGaugeVec,
    queue_oldest_age: prometheus::GaugeVec,
    dead_letters: IntGauge,
    restarts: IntCounterVec,
    lease_expiries: prometheus::IntCounter,
}

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl NodeMetrics {
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
        let queue_depth = IntGaugeVec::new(
            Opts::new("pixelmill_queue_depth", "Jobs waiting per lane"),
            &["lane"],
        )?;
        let queue_leased = IntGaugeVec::new(
            Opts::new("pixelmill_queue_leased", "Jobs leased to workers per lane"),
            &["lane"],
        )?;
        let queue_oldest_age = prometheus::GaugeVec::new(
            Opts::new(
                "pixelmill_queue_oldest_age_seconds",
                "Age of the oldest waiting job per lane",
            ),
            &["lane"],
        )?;
        let dead_letters = IntGauge::new(
            "pixelmill_queue_dead_letters",
            "Jobs dead-lettered after their last attempt",
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "pixelmill_actor_restarts_total",
                "Actors restarted by their supervisor",
            ),
            &["actor"],
        )?;
        let lease_expiries = prometheus::IntCounter::new(
            "pixelmill_lease_expiries_total",
            "Leases that expired or were released and put their job back in the queue",
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(ops.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_leased.clone()))?;
        registry.register(Box::new(queue_oldest_age.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(lease_expiries.clone()))?;
        Ok(Self {
            jobs,
            ops,
            queue_depth,
            queue_leased,
            queue_oldest_age,
            dead_letters,
            restarts,
            lease_expiries,
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

    pub fn record_queue(&self, stats: &QueueStats) {
        for lane in &stats.lanes {
            self.queue_depth
                .with_label_values(&[lane.lane])
                .set(lane.queued as i64);
            self.queue_leased
                .with_label_values(&[lane.lane])
                .set(lane.leased as i64);
            self.queue_oldest_age
                .with_label_values(&[lane.lane])
                .set(lane.oldest_queued_age_ms as f64 / 1000.0);
        }
        self.dead_letters.set(stats.dead_letters as i64);
    }

    pub fn restarted(&self, actor: &str) {
        self.restarts.with_label_values(&[actor]).inc();
    }

    pub fn leases_returned(&self, n: usize) {
        self.lease_expiries.inc_by(n as u64);
    }
}
