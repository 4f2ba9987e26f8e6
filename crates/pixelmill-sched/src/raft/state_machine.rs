//! The applied queue lives in memory; `raft-sm.redb` holds its latest snapshot. After a crash openraft
//! restores the snapshot and re-applies the log after it, which is why every log append is fsynced but
//! `apply` writes nothing.

use super::{blocking, db_err, DbError, TypeConfig};
use crate::queue::{Policy, QueueState, Response};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership,
};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::io::Cursor;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `meta` (JSON `SnapshotMeta`) and `data` (JSON queue) of the current snapshot, written together.
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
const META: &str = "meta";
const DATA: &str = "data";

/// The applied state, shared with the `Scheduler` handle for synchronous stats reads.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) last_applied: Option<LogId<u64>>,
    pub(crate) membership: StoredMembership<u64, BasicNode>,
    pub(crate) queue: QueueState,
}

pub(crate) type SharedApplied = Arc<RwLock<Applied>>;

pub(crate) fn read(applied: &SharedApplied) -> RwLockReadGuard<'_, Applied> {
    // A panic while holding the lock cannot leave the queue half-updated in a way a reader could
    // misuse: stats are gauges and writers go through raft, so poisoning is ignored.
    applied.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(applied: &SharedApplied) -> RwLockWriteGuard<'_, Applied> {
    applied.write().unwrap_or_else(PoisonError::into_inner)
}

/// Cheap to clone: clones are the snapshot builders.
#[derive(Clone)]
pub(crate) struct StateMachineStore {
    db: Arc<Database>,
    applied: SharedApplied,
}

impl StateMachineStore {
    /// Loads the last snapshot, if any. A fresh store starts from the default policy, never the node's
    /// config: replaying the log must reach the same state whatever flags this process was started with.
    pub(crate) async fn new(db: Arc<Database>) -> Result<Self, DbError> {
        let stored = blocking(&db, |db| {
            let txn = db.begin_write().map_err(db_err)?;
            txn.open_table(SNAPSHOT).map_err(db_err)?;
            txn.commit().map_err(db_err)?;
            load(db)
        })
        .await?;
        let applied = match stored {
            Some((meta, data)) => Applied {
                last_applied: meta.last_log_id,
                membership: meta.last_membership,
                queue: serde_json::from_slice(&data)?,
            },
            None => Applied {
                last_applied: None,
                membership: StoredMembership::default(),
                queue: QueueState::new(Policy::default()),
            },
        };
        Ok(Self {
            db,
            applied: Arc::new(RwLock::new(applied)),
        })
    }

    pub(crate) fn applied(&self) -> SharedApplied {
        Arc::clone(&self.applied)
    }

    async fn save(
        &self,
        meta: &SnapshotMeta<u64, BasicNode>,
        data: Vec<u8>,
    ) -> Result<(), DbError> {
        let meta = serde_json::to_vec(meta)?;
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(db_err)?;
            {
                let mut table = txn.open_table(SNAPSHOT).map_err(db_err)?;
                table.insert(META, meta.as_slice()).map_err(db_err)?;
                table.insert(DATA, data.as_slice()).map_err(db_err)?;
            }
            txn.commit().map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

fn load(db: &Database) -> Result<Option<StoredSnapshot>, DbError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn.open_table(SNAPSHOT).map_err(db_err)?;
    let (Some(meta), Some(data)) = (
        table.get(META).map_err(db_err)?,
        table.get(DATA).map_err(db_err)?,
    ) else {
        return Ok(None);
    };
    Ok(Some((
        serde_json::from_slice(meta.value())?,
        data.value().to_vec(),
    )))
}

fn snapshot_err(verb: ErrorVerb) -> impl FnOnce(DbError) -> StorageError<u64> {
    move |e| e.storage(ErrorSubject::Snapshot(None), verb)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (meta, data) = {
            let applied = read(&self.applied);
            let data = serde_json::to_vec(&applied.queue).map_err(|e| {
                DbError::from(e).storage(ErrorSubject::StateMachine, ErrorVerb::Read)
            })?;
            let snapshot_id = match applied.last_applied {
                Some(log_id) => format!("{}-{}", log_id.leader_id, log_id.index),
                None => "empty".to_owned(),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        self.save(&meta, data.clone())
            .await
            .map_err(snapshot_err(ErrorVerb::Write))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = read(&self.applied);
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = write(&self.applied);
        let responses = entries
            .into_iter()
            .map(|entry| {
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response::Done,
                    EntryPayload::Normal(cmd) => applied.queue.apply(cmd, entry.log_id.index),
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response::Done
                    }
                }
            })
            .collect();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let queue: QueueState = serde_json::from_slice(&data).map_err(|e| {
            DbError::from(e).storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
            )
        })?;
        self.save(meta, data)
            .await
            .map_err(snapshot_err(ErrorVerb::Write))?;
        *write(&self.applied) = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            queue,
        };
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let stored = blocking(&self.db, load)
            .await
            .map_err(snapshot_err(ErrorVerb::Read))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
