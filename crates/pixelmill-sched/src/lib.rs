//! The job scheduler: a raft-replicated (openraft) queue state machine with lanes, leases, retries and dead letters.
