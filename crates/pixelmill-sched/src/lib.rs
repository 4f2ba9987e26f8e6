//! The job scheduler: a raft-replicated (openraft) queue state machine with lanes, leases, retries and
//! dead letters.
//!
//! Layout: `queue` is the pure, deterministic queue (the only place decisions are made); `raft` is the
//! openraft glue (redb-backed log and snapshot storage, peer transport); [`Scheduler`] is the handle.
//!
//! Data under the directory given to [`Scheduler::open`]:
//! - `raft-log.redb`: raft log entries by index, the vote, the committed pointer and the last purged id;
//! - `raft-sm.redb`: the latest state-machine snapshot (taken every 5,000 entries; older entries are purged).

mod config;
mod error;
mod queue;
mod raft;
mod scheduler;
mod types;

pub use config::SchedConfig;
pub use error::SchedError;
pub use scheduler::Scheduler;
pub use types::{FailOutcome, JobTicket, LaneStats, Lease, QueueStats, Reclaimed, WorkerId};
