//! The raft listener: peers' RPCs go straight into openraft; writes and membership changes
//! forwarded by followers are proposed here when this node leads (else answered `NotLeader`, and the
//! follower tries the node it now believes leads). Internal to the region: bind it to a private
//! address, never the public API's. Every request passes `guard.rs` first; snapshot chunks are
//! assembled by `inbox.rs`.

use super::guard::{guard, Guard};
use super::inbox::{Inbox, SnapshotRefused};
use super::network::{
    APPEND_PATH, MEMBERSHIP_PATH, SNAPSHOT_PATH, STATUS_PATH, VOTE_PATH, WRITE_PATH,
};
use super::{RaftSecret, TypeConfig};
use crate::queue::{Command, Response};
use crate::scheduler::Scheduler;
use crate::types::{ClusterStatus, MembershipChange};
use crate::SchedError;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::sync::Arc;

/// Largest request body: an append batch or a snapshot chunk (1 MiB, see `raft_config`) as JSON,
/// where each byte of a chunk can take four.
const MAX_BODY_BYTES: usize = 64 << 20;

#[derive(Clone)]
struct Listener {
    scheduler: Scheduler,
    inbox: Arc<Inbox>,
}

/// The listener's routes, behind the signature check for `secret`.
pub(crate) fn router(scheduler: Scheduler, secret: RaftSecret) -> Router {
    let config = scheduler.config();
    let gate = Guard::new(secret, config.node_id, MAX_BODY_BYTES);
    let inbox = Arc::new(Inbox::new(config.max_snapshot_bytes));
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(WRITE_PATH, post(write))
        .route(MEMBERSHIP_PATH, post(membership))
        .route(STATUS_PATH, get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(gate, guard))
        .with_state(Listener { scheduler, inbox })
}

async fn append(
    State(Listener { scheduler: s, .. }): State<Listener>,
    Json(rpc): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<u64>, RaftError<u64>>> {
    Json(s.raft().append_entries(rpc).await)
}

async fn vote(
    State(Listener { scheduler: s, .. }): State<Listener>,
    Json(rpc): Json<VoteRequest<u64>>,
) -> Json<Result<VoteResponse<u64>, RaftError<u64>>> {
    Json(s.raft().vote(rpc).await)
}

/// Chunks are checked and assembled in the inbox; the last one installs the whole snapshot. Like
/// openraft's own receiver, a chunk from a leader of an older term is ignored.
async fn snapshot(
    State(Listener { scheduler, inbox }): State<Listener>,
    Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Result<
    Json<Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>>,
    SnapshotRefused,
> {
    let raft = scheduler.raft();
    let vote = raft.metrics().borrow().vote;
    if rpc.vote < vote {
        return Ok(Json(Ok(InstallSnapshotResponse { vote })));
    }
    let leader_vote = rpc.vote;
    let snapshot = match inbox.receive(rpc) {
        Ok(None) => return Ok(Json(Ok(InstallSnapshotResponse { vote }))),
        Ok(Some(snapshot)) => snapshot,
        Err(refused) => {
            tracing::warn!(error = %refused, "refused a snapshot chunk");
            return match refused.mismatch() {
                Some(mismatch) => Ok(Json(Err(RaftError::APIError(mismatch)))),
                None => Err(refused),
            };
        }
    };
    Ok(Json(
        raft.install_full_snapshot(leader_vote, snapshot)
            .await
            .map(Into::into)
            .map_err(RaftError::Fatal),
    ))
}

/// An oversized snapshot: the leader's openraft logs the message and retries later, in vain
/// until this node's cap is raised.
impl IntoResponse for SnapshotRefused {
    fn into_response(self) -> HttpResponse {
        let body = serde_json::json!({ "error": self.to_string() });
        (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response()
    }
}

async fn write(
    State(Listener { scheduler: s, .. }): State<Listener>,
    Json(cmd): Json<Command>,
) -> Json<Result<Response, SchedError>> {
    Json(s.write_here(cmd).await)
}

async fn membership(
    State(Listener { scheduler: s, .. }): State<Listener>,
    Json(change): Json<MembershipChange>,
) -> Json<Result<ClusterStatus, SchedError>> {
    Json(s.change_membership_here(change).await)
}

async fn status(State(Listener { scheduler: s, .. }): State<Listener>) -> Json<ClusterStatus> {
    Json(s.cluster_status())
}
