//! Operating a region's raft group from outside it (the `pixelmill raft` commands, the test and
//! chaos harnesses): any member's raft listener answers, and a membership change is forwarded to
//! the leader. Requests are signed with the region's secret like the nodes' own.

use crate::error::SchedError;
use crate::raft::{CallError, RaftSecret, Transport, MEMBERSHIP_PATH, STATUS_PATH};
use crate::types::{ClusterStatus, MembershipChange};
use std::time::Duration;

/// Adding a learner waits for it to copy the log, which can take a while on a long log.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

fn failed(addr: &str, e: CallError) -> SchedError {
    match e {
        CallError::Refused { .. } => SchedError::Invalid(format!(
            "{e}; pass the region's secret in PIXELMILL_RAFT_SECRET or --raft-secret-file"
        )),
        _ => SchedError::Unavailable(format!(
            "{e}; is a node's raft listener at {addr}? (its --raft-listen, or its entry in --peers)"
        )),
    }
}

fn transport(secret: &RaftSecret) -> Result<Transport, SchedError> {
    Transport::new(Duration::ZERO, secret.clone())
        .map_err(|e| SchedError::Fatal(format!("cannot set up an HTTP client: {e}")))
}

/// The group as the node with raft listener `addr` sees it, if it answers within `timeout`.
pub async fn cluster_status_at(
    addr: &str,
    secret: &RaftSecret,
    timeout: Duration,
) -> Result<ClusterStatus, SchedError> {
    transport(secret)?
        .get(addr, STATUS_PATH, timeout)
        .await
        .map_err(|e| failed(addr, e))
}

/// Makes `change` through the node with raft listener `addr`; the group's status afterwards.
pub async fn change_membership_at(
    addr: &str,
    secret: &RaftSecret,
    change: &MembershipChange,
) -> Result<ClusterStatus, SchedError> {
    // A change is signed for one node: ask the one at `addr` who it is first.
    let node = cluster_status_at(addr, secret, ADMIN_TIMEOUT)
        .await?
        .node_id;
    transport(secret)?
        .call::<_, Result<ClusterStatus, SchedError>>(
            addr,
            MEMBERSHIP_PATH,
            node,
            change,
            ADMIN_TIMEOUT,
        )
        .await
        .map_err(|e| failed(addr, e))?
}
