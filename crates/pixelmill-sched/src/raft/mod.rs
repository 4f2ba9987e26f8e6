//! The openraft glue: type config, on-disk storage, the HTTP transport between a region's nodes and
//! the listener that answers it. The queue logic itself lives in `crate::queue`; this side only
//! moves bytes and log ids around it.

mod auth;
mod guard;
mod inbox;
mod log_store;
mod network;
mod server;
mod state_machine;
#[cfg(test)]
mod suite;

use crate::error::SchedError;
use crate::queue::{Command, Response};
use openraft::{AnyError, ErrorSubject, ErrorVerb, SnapshotPolicy, StorageError, StorageIOError};
use std::io::Cursor;
use std::sync::Arc;

pub use auth::{raft_auth_header, RaftSecret, Recipient, SecretError, RAFT_AUTH_HEADER};
pub(crate) use log_store::LogStore;
pub(crate) use network::{CallError, Transport, MEMBERSHIP_PATH, STATUS_PATH, WRITE_PATH};
pub(crate) use server::router;
pub(crate) use state_machine::{read, Applied, StateMachineStore};

openraft::declare_raft_types!(
    /// Log entries carry queue commands; applying one yields a queue response.
    pub(crate) TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// `snapshot_every_logs` apart, the queue is snapshotted and the log it covers purged, but for the
/// last fifth of an interval (at most 1,000 entries), so a briefly lagging follower catches up from
/// the log rather than a snapshot.
pub(crate) fn raft_config(snapshot_every_logs: u64) -> Result<Arc<openraft::Config>, SchedError> {
    let config = openraft::Config {
        cluster_name: "pixelmill-sched".to_owned(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every_logs),
        max_in_snapshot_log_to_keep: (snapshot_every_logs / 5).min(1_000),
        // A follower far behind gets the snapshot in chunks small enough for one HTTP body each.
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    };
    let config = config
        .validate()
        .map_err(|e| SchedError::Fatal(format!("invalid built-in raft config: {e}")))?;
    Ok(Arc::new(config))
}

/// Anything that can go wrong touching the redb files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error(transparent)]
    Redb(#[from] redb::Error),
    #[error("corrupt record: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("storage task died: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl DbError {
    fn storage(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> StorageError<u64> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

/// Converts any redb error type into [`DbError`] (redb has one error type per operation).
fn db_err<E: Into<redb::Error>>(e: E) -> DbError {
    DbError::Redb(e.into())
}

/// Runs blocking redb work (fsyncs included) off the async worker threads.
async fn blocking<T, F>(db: &Arc<redb::Database>, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&redb::Database) -> Result<T, DbError> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || f(&db)).await?
}

/// Opens or creates a redb file, waiting briefly if a scheduler that was just shut down in this process
/// has not released it yet (openraft drops its storage from a background task after `shutdown`).
pub(crate) async fn open_db(path: &std::path::Path) -> Result<Arc<redb::Database>, SchedError> {
    for _ in 0..60 {
        match redb::Database::create(path) {
            Ok(db) => return Ok(Arc::new(db)),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => {
                return Err(SchedError::Storage(format!(
                    "cannot open {}: {e}; check the data directory's permissions and free space",
                    path.display()
                )))
            }
        }
    }
    Err(SchedError::Storage(format!(
        "{} is held by another scheduler; stop the other node process or give this one its own data directory",
        path.display()
    )))
}
