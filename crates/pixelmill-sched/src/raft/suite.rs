//! openraft's storage conformance suite against the redb stores.

use super::{open_db, LogStore, StateMachineStore, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use tempfile::TempDir;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let io = |e: String| StorageError::from(StorageIOError::write(AnyError::error(e)));
        let dir = tempfile::tempdir().map_err(|e| io(e.to_string()))?;
        let log_db = open_db(&dir.path().join("raft-log.redb"))
            .await
            .map_err(|e| io(e.to_string()))?;
        let sm_db = open_db(&dir.path().join("raft-sm.redb"))
            .await
            .map_err(|e| io(e.to_string()))?;
        let log = LogStore::new(log_db).map_err(|e| io(e.to_string()))?;
        let sm = StateMachineStore::new(sm_db)
            .await
            .map_err(|e| io(e.to_string()))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn redb_storage_passes_the_openraft_suite() {
    Suite::test_all(RedbBuilder).unwrap();
}
