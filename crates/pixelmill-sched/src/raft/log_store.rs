//! The raft log, vote and committed pointer in `raft-log.redb`. Every write that openraft must find after
//! a crash commits with `Durability::Immediate` (fsync) before it is acknowledged.

use super::{blocking, db_err, DbError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Log entries as JSON, keyed by log index.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// `vote`, `committed` and `last_purged`, as JSON.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Cheap to clone: the clones are the log readers openraft hands to replication tasks.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Creates the tables up front so that readers never meet a missing table.
    pub(crate) fn new(db: Arc<Database>) -> Result<Self, DbError> {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(LOGS).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    async fn read_meta<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, DbError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(db_err)?;
            let table = txn.open_table(META).map_err(db_err)?;
            let value = table.get(key).map_err(db_err)?;
            Ok(value
                .map(|v| serde_json::from_slice(v.value()))
                .transpose()?)
        })
        .await
    }

    async fn write_meta<T: Serialize>(
        &self,
        key: &'static str,
        value: &T,
        durability: Durability,
    ) -> Result<(), DbError> {
        let bytes = serde_json::to_vec(value)?;
        blocking(&self.db, move |db| {
            let mut txn = db.begin_write().map_err(db_err)?;
            txn.set_durability(durability).map_err(db_err)?;
            txn.open_table(META)
                .map_err(db_err)?
                .insert(key, bytes.as_slice())
                .map_err(db_err)?;
            txn.commit().map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Deletes the entries in `range` and, when given, records `purged` in the same transaction.
    async fn remove(
        &self,
        range: (Bound<u64>, Bound<u64>),
        purged: Option<LogId<u64>>,
    ) -> Result<(), DbError> {
        let purged = purged.map(|p| serde_json::to_vec(&p)).transpose()?;
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(db_err)?;
            if let Some(purged) = purged {
                txn.open_table(META)
                    .map_err(db_err)?
                    .insert(LAST_PURGED, purged.as_slice())
                    .map_err(db_err)?;
            }
            txn.open_table(LOGS)
                .map_err(db_err)?
                .retain_in::<u64, _>(range, |_, _| false)
                .map_err(db_err)?;
            txn.commit().map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

fn logs_err(verb: ErrorVerb) -> impl FnOnce(DbError) -> StorageError<u64> {
    move |e| e.storage(ErrorSubject::Logs, verb)
}

fn vote_err(verb: ErrorVerb) -> impl FnOnce(DbError) -> StorageError<u64> {
    move |e| e.storage(ErrorSubject::Vote, verb)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(db_err)?;
            let table = txn.open_table(LOGS).map_err(db_err)?;
            let mut entries = Vec::new();
            for item in table.range::<u64>(bounds).map_err(db_err)? {
                let (_, value) = item.map_err(db_err)?;
                entries.push(serde_json::from_slice(value.value())?);
            }
            Ok(entries)
        })
        .await
        .map_err(logs_err(ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged_log_id: Option<LogId<u64>> = self
            .read_meta(LAST_PURGED)
            .await
            .map_err(logs_err(ErrorVerb::Read))?;
        let last: Option<Entry<TypeConfig>> = blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(db_err)?;
            let table = txn.open_table(LOGS).map_err(db_err)?;
            let last = table.last().map_err(db_err)?;
            Ok(last
                .map(|(_, v)| serde_json::from_slice(v.value()))
                .transpose()?)
        })
        .await
        .map_err(logs_err(ErrorVerb::Read))?;
        let last_log_id = last.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.write_meta(VOTE, vote, Durability::Immediate)
            .await
            .map_err(vote_err(ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.read_meta(VOTE)
            .await
            .map_err(vote_err(ErrorVerb::Read))
    }

    /// Not fsynced: a lost pointer only means re-applying a few entries after a crash, and the next log
    /// append (which is fsynced) persists it anyway. Fsyncing here would double the cost of every write.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.write_meta(COMMITTED, &committed, Durability::None)
            .await
            .map_err(logs_err(ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let committed: Option<Option<LogId<u64>>> = self
            .read_meta(COMMITTED)
            .await
            .map_err(logs_err(ErrorVerb::Read))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, serde_json::to_vec(&e)?)))
            .collect::<Result<Vec<_>, DbError>>()
            .map_err(logs_err(ErrorVerb::Write))?;
        blocking(&self.db, move |db| {
            let mut txn = db.begin_write().map_err(db_err)?;
            txn.set_durability(Durability::Immediate).map_err(db_err)?;
            {
                let mut table = txn.open_table(LOGS).map_err(db_err)?;
                for (index, bytes) in &encoded {
                    table.insert(index, bytes.as_slice()).map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
            Ok(())
        })
        .await
        .map_err(logs_err(ErrorVerb::Write))?;
        // The commit above fsynced, so the entries are durable before openraft hears about them.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.remove((Bound::Included(log_id.index), Bound::Unbounded), None)
            .await
            .map_err(logs_err(ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.remove(
            (Bound::Unbounded, Bound::Included(log_id.index)),
            Some(log_id),
        )
        .await
        .map_err(logs_err(ErrorVerb::Delete))
    }
}
