//! Operating a region's raft group from outside it (the `pixelmill raft` commands): any member's
//! raft listener answers, and a membership change is forwarded to the leader.

use crate::error::SchedError;
use crate::raft::{CallError, Transport, MEMBERSHIP_PATH, STATUS_PATH};
use crate::types::{ClusterStatus, MembershipChange};
use std::time::Duration;

/// Adding a learner waits for it to copy the log, which can take a while on a long log.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

fn unreachable(addr: &str, e: CallError) -> SchedError {
    SchedError::Unavailable(format!(
        "{e}; is a node's raft listener at {addr}? (its --raft-listen, or its entry in --peers)"
    ))
}

/// The group as the node with raft listener `addr` sees it.
pub async fn cluster_status_at(addr: &str) -> Result<ClusterStatus, SchedError> {
    let transport = Transport::new(Duration::ZERO)
        .map_err(|e| SchedError::Fatal(format!("cannot set up an HTTP client: {e}")))?;
    transport
        .get(addr, STATUS_PATH, ADMIN_TIMEOUT)
        .await
        .map_err(|e| unreachable(addr, e))
}

/// Makes `change` through the node with raft listener `addr`; the group's status afterwards.
pub async fn change_membership_at(
    addr: &str,
    change: &MembershipChange,
) -> Result<ClusterStatus, SchedError> {
    let transport = Transport::new(Duration::ZERO)
        .map_err(|e| SchedError::Fatal(format!("cannot set up an HTTP client: {e}")))?;
    transport
        .call::<_, Result<ClusterStatus, SchedError>>(addr, MEMBERSHIP_PATH, change, ADMIN_TIMEOUT)
        .await
        .map_err(|e| unreachable(addr, e))?
}
