use pixelmill_sched::{ClusterStatus, Lease, QueueStats};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::time::Duration;

/// Job, queue and supervision metrics of one node.
#[derive(Clone)]
pub struct NodeMetrics {
    queue_depth: IntGaugeVec,
    queue_leased: IntGaugeVec,
    queue_oldest_age: prometheus::GaugeVec,
    dead_letters: IntGauge,
    restarts: IntCounterVec,
    lease_expiries: prometheus::IntCounter,
    raft: RaftGauges,
    placement: prometheus::Histogram,
    queue_wait: HistogramVec,
}

/// The raft group as this node sees it (`pixelmill_raft_*`).
#[derive(Clone)]
struct RaftGauges {
    term: IntGauge,
    is_leader: IntGauge,
    leader_changes: prometheus::IntCounter,
    last_log_index: IntGauge,
    commit_index: IntGauge,
    applied_index: IntGauge,
    apply_lag: IntGauge,
}

impl RaftGauges {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let leader_changes = prometheus::IntCounter::new(
            "pixelmill_raft_leader_changes_total",
            "Times this node saw the scheduler leader change (to another node, or to none during an election)",
        )?;
        registry.register(Box::new(leader_changes.clone()))?;
        Ok(Self {
            term: gauge(
                "pixelmill_raft_term",
                "Current raft term of the scheduler group",
            )?,
            is_leader: gauge(
                "pixelmill_raft_is_leader",
                "1 while this node leads the scheduler group",
            )?,
            leader_changes,
            last_log_index: gauge(
                "pixelmill_raft_last_log_index",
                "Last index in this node's raft log",
            )?,
            commit_index: gauge(
                "pixelmill_raft_commit_index",
                "Highest index a majority holds (on the leader; elsewhere the applied index)",
            )?,
            applied_index: gauge(
                "pixelmill_raft_applied_index",
                "Last index applied to this node's queue",
            )?,
            apply_lag: gauge(
                "pixelmill_raft_apply_lag",
                "Entries in this node's log not yet applied to its queue",
            )?,
        })
    }
}

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl NodeMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
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
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_leased.clone()))?;
        registry.register(Box::new(queue_oldest_age.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(lease_expiries.clone()))?;
        let placement = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "pixelmill_placement_seconds",
                "Time a worker's lease request took to place a job on it (forwarding and raft commit included)",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )?;
        let queue_wait = HistogramVec::new(
            HistogramOpts::new(
                "pixelmill_queue_wait_seconds",
                "Time a job waited in its lane before a worker leased it",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["lane"],
        )?;
        registry.register(Box::new(placement.clone()))?;
        registry.register(Box::new(queue_wait.clone()))?;
        Ok(Self {
            queue_depth,
            queue_leased,
            queue_oldest_age,
            dead_letters,
            restarts,
            lease_expiries,
            raft: RaftGauges::register(registry)?,
            placement,
            queue_wait,
        })
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

    pub fn record_raft(&self, status: &ClusterStatus) {
        let r = &self.raft;
        r.term.set(status.term as i64);
        r.is_leader
            .set(i64::from(status.leader == Some(status.node_id)));
        r.leader_changes
            .inc_by(status.leader_changes.saturating_sub(r.leader_changes.get()));
        r.last_log_index.set(status.last_log_index as i64);
        r.commit_index.set(status.commit_index as i64);
        r.applied_index.set(status.applied_index as i64);
        r.apply_lag
            .set(status.last_log_index.saturating_sub(status.applied_index) as i64);
    }

    /// A lease granted after `took`: placement latency, and how long the job had waited.
    pub fn placed(&self, lease: &Lease, took: Duration) {
        self.placement.observe(took.as_secs_f64());
        self.queue_wait
            .with_label_values(&[lease.lane.as_str()])
            .observe(lease.waited_ms as f64 / 1000.0);
    }
}
