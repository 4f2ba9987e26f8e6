use crate::queue::Policy;
use std::time::Duration;

/// How the scheduler behaves. The queue settings (bound, attempts, backoff, lanes) become the
/// replicated queue policy at `open`; the others are this node's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// This node's raft id; stable across restarts.
    pub node_id: u64,
    /// Most jobs waiting in the lanes (leased ones excluded); enqueue beyond it is `Overloaded`.
    pub queue_bound: usize,
    /// Leases a job may receive before a failure dead-letters it.
    pub max_attempts: u32,
    /// Wait before the 2nd attempt; doubled for each further one, capped at 5 minutes.
    pub base_backoff_ms: u64,
    /// Jobs costing at most this run in the "fast" lane, the others in "slow".
    pub fast_lane_max_cost: u64,
    /// Added before every message this node sends to a peer (raft RPCs, forwarded writes): a test
    /// knob that makes loopback behave like a network with latency. Zero in production.
    pub message_delay: Duration,
    /// Raft log entries between snapshots of the queue; a snapshot lets the log before it (all but
    /// a fifth of an interval, at most 1,000 entries) be purged.
    pub snapshot_every_logs: u64,
    /// Largest snapshot this node accepts from a leader, in bytes; a bigger one is refused and the
    /// node stays behind until this is raised. Default 256 MiB.
    pub max_snapshot_bytes: u64,
}

impl Default for SchedConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            queue_bound: 10_000,
            max_attempts: 5,
            base_backoff_ms: 1_000,
            fast_lane_max_cost: 1_000_000,
            message_delay: Duration::ZERO,
            snapshot_every_logs: 5_000,
            max_snapshot_bytes: 256 << 20,
        }
    }
}

impl SchedConfig {
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            queue_bound: self.queue_bound,
            max_attempts: self.max_attempts,
            base_backoff_ms: self.base_backoff_ms,
            fast_lane_max_cost: self.fast_lane_max_cost,
        }
    }
}

/// The policy a log starts from until its first `SetPolicy` entry. Changing these values changes how old
/// logs replay, so treat them as part of the log format.
impl Default for Policy {
    fn default() -> Self {
        SchedConfig::default().policy()
    }
}
