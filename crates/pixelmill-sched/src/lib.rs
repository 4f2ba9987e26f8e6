//! The job scheduler: a raft-replicated (openraft) queue state machine with lanes, leases, retries and
//! dead letters.
//!
//! Layout: `queue` is the pure, deterministic queue (the only place decisions are made); `raft` is the
//! openraft glue (redb-backed log and snapshot storage, the HTTP transport between a region's nodes
//! and the raft listener that answers it); [`Scheduler`] is the handle, a single voter
//! ([`Scheduler::open`]) or a member of a multi-node group ([`Scheduler::open_group`]); `admin`
//! operates a group from outside it.
//!
//! Data under the directory given to [`Scheduler::open`]:
//! - `raft-log.redb`: raft log entries by index, the vote, the committed pointer and the last purged id;
//! - `raft-sm.redb`: the latest state-machine snapshot (taken every 5,000 entries; older entries are purged).

mod admin;
mod config;
mod error;
mod queue;
mod raft;
mod scheduler;
mod types;

pub use admin::{change_membership_at, cluster_status_at};
pub use config::SchedConfig;
pub use error::SchedError;
pub use raft::{raft_auth_header, RaftSecret, Recipient, SecretError, RAFT_AUTH_HEADER};
pub use scheduler::{RaftGroup, Scheduler};
pub use types::{
    ClusterStatus, FailOutcome, JobTicket, LaneStats, Lease, MembershipChange, QueueStats,
    Reclaimed, WorkerId,
};
