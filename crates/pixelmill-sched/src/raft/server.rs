//! The raft listener: peers' RPCs go straight into openraft; writes and membership changes
//! forwarded by followers are proposed here when this node leads (else answered `NotLeader`, and the
//! follower tries the node it now believes leads). Internal to the region: bind it to a private
//! address, never the public API's.

use super::network::{
    APPEND_PATH, MEMBERSHIP_PATH, SNAPSHOT_PATH, STATUS_PATH, VOTE_PATH, WRITE_PATH,
};
use super::TypeConfig;
use crate::queue::{Command, Response};
use crate::scheduler::Scheduler;
use crate::types::{ClusterStatus, MembershipChange};
use crate::SchedError;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

/// Largest request body: an append batch or a snapshot chunk (1 MiB, see `raft_config`) as JSON,
/// where each byte of a chunk can take four.
const MAX_BODY_BYTES: usize = 64 << 20;

pub(crate) fn router(scheduler: Scheduler) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(WRITE_PATH, post(write))
        .route(MEMBERSHIP_PATH, post(membership))
        .route(STATUS_PATH, get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(scheduler)
}

async fn append(
    State(s): State<Scheduler>,
    Json(rpc): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<u64>, RaftError<u64>>> {
    Json(s.raft().append_entries(rpc).await)
}

async fn vote(
    State(s): State<Scheduler>,
    Json(rpc): Json<VoteRequest<u64>>,
) -> Json<Result<VoteResponse<u64>, RaftError<u64>>> {
    Json(s.raft().vote(rpc).await)
}

async fn snapshot(
    State(s): State<Scheduler>,
    Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Json<Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>> {
    Json(s.raft().install_snapshot(rpc).await)
}

async fn write(
    State(s): State<Scheduler>,
    Json(cmd): Json<Command>,
) -> Json<Result<Response, SchedError>> {
    Json(s.write_here(cmd).await)
}

async fn membership(
    State(s): State<Scheduler>,
    Json(change): Json<MembershipChange>,
) -> Json<Result<ClusterStatus, SchedError>> {
    Json(s.change_membership_here(change).await)
}

async fn status(State(s): State<Scheduler>) -> Json<ClusterStatus> {
    Json(s.cluster_status())
}
