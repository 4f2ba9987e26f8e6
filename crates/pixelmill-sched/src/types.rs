//! The vocabulary the node speaks with the scheduler. Everything that travels through the raft log is serde.

use pixelmill_core::{JobId, TenantId};
use serde::{Deserialize, Serialize};

/// A job to schedule: its id, its owner (for fairness) and its estimated cost (picks the lane).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTicket {
    pub job: JobId,
    pub tenant: TenantId,
    pub cost: u64,
    /// The job's ownership epoch (how many times another region adopted it): the high bits of
    /// its leases' fencing tokens (`pixelmill_core::fencing_token`).
    #[serde(default)]
    pub epoch: u32,
}

/// A worker identity such as `"n1/w3"`: node first, so a node can release all its workers by prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

/// A job handed to a worker until `deadline_ms`. `fencing` is the job's epoch and the raft log
/// index of the lease entry (`pixelmill_core::fencing_token`): every later call about this job
/// must present it, so a worker whose lease was taken away is ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub job: JobId,
    pub tenant: TenantId,
    pub fencing: u64,
    /// 1-based: the first lease of a job is attempt 1.
    pub attempt: u32,
    pub deadline_ms: i64,
    /// The lane it was queued in ("fast" or "slow").
    pub lane: String,
    /// How long it waited in its lane, from when it was ready (enqueued, or its backoff ended) to
    /// this lease, on the leader's clock.
    pub waited_ms: i64,
}

/// What became of a job whose attempt ended without success.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailOutcome {
    /// Back in its lane; it will not be leased before `not_before_ms`, and its next lease is `attempt`.
    Retrying { not_before_ms: i64, attempt: u32 },
    /// Removed from the queue for good: not retryable, or out of attempts. The caller records the failure.
    DeadLettered,
    /// The fencing token was stale (the lease expired or was released, and the job may be running
    /// elsewhere): nothing changed, and the caller must not record this attempt's outcome.
    LeaseLost,
}

/// A lease taken back by `expire_leases` or `release_worker`, and what became of its job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reclaimed {
    pub job: JobId,
    /// The job's tenant, so the node can find the job's record.
    pub tenant: TenantId,
    /// The attempt the lease was for (1-based).
    pub attempt: u32,
    /// The lease's fencing token: what the node settling the attempt writes the job under.
    pub fencing: u64,
    pub outcome: FailOutcome,
}

/// A snapshot of the applied queue, for metrics and admission decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    pub lanes: Vec<LaneStats>,
    pub dead_letters: u64,
    /// Jobs ever accepted (duplicates and rejections excluded).
    pub total_enqueued: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneStats {
    pub lane: &'static str,
    pub queued: usize,
    pub leased: usize,
    /// How long the longest-waiting ready job has waited; 0 when none is waiting.
    pub oldest_queued_age_ms: i64,
}

/// A change to the region's raft group, made on the leader (a follower forwards it). Add a node as a
/// learner first: it copies the log without voting; promote it once it has caught up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Replicate to node `id`, whose raft listener is `addr` (`host:port`); returns once it caught up.
    AddLearner { id: u64, addr: String },
    /// Make a caught-up learner a voter.
    Promote { id: u64 },
    /// Take node `id` out of the group, voter or learner.
    Remove { id: u64 },
}

/// This node's view of the raft group, from openraft's metrics (no round trip).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node_id: u64,
    /// "leader", "follower", "candidate", "learner" or "shutdown".
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    /// Leader changes this node has seen since it started.
    pub leader_changes: u64,
    pub last_log_index: u64,
    /// The last entry applied to this node's queue.
    pub applied_index: u64,
    /// On the leader, the highest index a majority of voters holds; elsewhere the applied index,
    /// which trails the leader's commit index by at most one heartbeat.
    pub commit_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Every member's raft address, by id.
    pub nodes: std::collections::BTreeMap<u64, String>,
}
