//! The redb file layout and the few generic helpers every `RedbMetaStore` operation is built from.
//!
//! Record tables hold one JSON document per record under its partition key (see each record's doc in
//! `pixelmill_core::records`). Index tables hold no value: the key is (sort field, primary key), so
//! the scans the sweeper and the outbox loop need are ordered range reads, not full scans.

use crate::MetaError;
use pixelmill_core::TenantId;
use redb::{ReadableTable, Table, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

/// Record tables: primary key → JSON.
pub(super) type Records = TableDefinition<'static, &'static str, &'static [u8]>;
/// Index tables: (sort field, primary key) → nothing.
pub(super) type Index<S> = TableDefinition<'static, (S, &'static str), ()>;

/// Key: `tenant/id`.
pub(super) const IMAGES: Records = TableDefinition::new("images");
/// Key: `tenant/id`.
pub(super) const JOBS: Records = TableDefinition::new("jobs");
/// Key: token.
pub(super) const LINKS: Records = TableDefinition::new("links");
/// Key: `tenant/key`.
pub(super) const IDEMPOTENCY: Records = TableDefinition::new("idempotency");
/// Key: event id.
pub(super) const OUTBOX: Records = TableDefinition::new("outbox");
/// Key: `region/node`: each node's latest heartbeat.
pub(super) const HEARTBEATS: Records = TableDefinition::new("heartbeats");
/// Key: region.
pub(super) const REGION_STATES: Records = TableDefinition::new("region_states");
/// Key: API key id.
pub(super) const API_KEYS: Records = TableDefinition::new("api_keys");
/// Key: tenant id.
pub(super) const TENANTS: Records = TableDefinition::new("tenants");

pub(super) const LINKS_BY_EXPIRY: Index<i64> = TableDefinition::new("links_by_expiry");
pub(super) const LINKS_BY_BLOB: Index<&'static str> = TableDefinition::new("links_by_blob");
pub(super) const OUTBOX_BY_DUE: Index<i64> = TableDefinition::new("outbox_by_due");
/// Unfinished jobs by owner: (owning region, `tenant/id`) → nothing.
pub(super) const JOBS_BY_OWNER: Index<&'static str> = TableDefinition::new("jobs_by_owner");
/// The replication queue: (source region, target region, queued at, blob key) → nothing.
pub(super) type QueueKey = (&'static str, &'static str, i64, &'static str);
pub(super) const REPLICATION_QUEUE: TableDefinition<'static, QueueKey, ()> =
    TableDefinition::new("replication_queue");
/// Where blobs are: (blob key, region) → nothing.
pub(super) const BLOB_REPLICAS: Index<&'static str> = TableDefinition::new("blob_replicas");
/// Lets inserts purge expired idempotency keys, the embedded stand-in for a CQL TTL.
pub(super) const IDEMPOTENCY_BY_EXPIRY: Index<i64> = TableDefinition::new("idempotency_by_expiry");

/// The primary key of a tenant-scoped record. The tenant is escaped so that a '/' inside it cannot
/// make two different (tenant, id) pairs share a key.
pub(super) fn scoped_key(tenant: &TenantId, id: &str) -> String {
    let tenant = tenant.as_str().replace('%', "%25").replace('/', "%2F");
    format!("{tenant}/{id}")
}

/// Maps any redb failure to a `MetaError`, keeping corruption distinguishable.
pub(super) fn db_err(err: impl Into<redb::Error>) -> MetaError {
    match err.into() {
        redb::Error::Corrupted(msg) => MetaError::Corrupt(format!(
            "the redb metadata file is corrupted ({msg}); restore it from a backup"
        )),
        err => MetaError::Internal(format!("redb: {err}")),
    }
}

pub(super) fn decode<T: DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(raw).map_err(|e| {
        MetaError::Corrupt(format!(
            "record {key:?} is not a valid record ({e}); restore the metadata file from a backup"
        ))
    })
}

pub(super) fn get_record<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, MetaError> {
    match table.get(key).map_err(db_err)? {
        Some(raw) => decode(key, raw.value()).map(Some),
        None => Ok(None),
    }
}

/// Serializes `record` into `table` under `key`, replacing any previous record.
pub(super) fn put_record<T: Serialize>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    record: &T,
) -> Result<(), MetaError> {
    let raw = serde_json::to_vec(record)
        .map_err(|e| MetaError::Internal(format!("cannot encode record {key:?}: {e}")))?;
    table.insert(key, raw.as_slice()).map_err(db_err)?;
    Ok(())
}

/// Removes the record under `key` and returns it decoded, so callers can drop its index entries.
pub(super) fn take_record<T: DeserializeOwned>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, MetaError> {
    match table.remove(key).map_err(db_err)? {
        Some(raw) => decode(key, raw.value()).map(Some),
        None => Ok(None),
    }
}

/// Primary keys of index entries whose sort field is `<= now`, earliest first, at most `limit`.
/// Stops at the first later entry, so the cost is proportional to the answer.
pub(super) fn due_keys(
    index: &impl ReadableTable<(i64, &'static str), ()>,
    now: i64,
    limit: usize,
) -> Result<Vec<String>, MetaError> {
    let mut keys = Vec::new();
    for entry in index.iter().map_err(db_err)? {
        if keys.len() >= limit {
            break;
        }
        let (key, _) = entry.map_err(db_err)?;
        let (at, primary) = key.value();
        if at > now {
            break;
        }
        keys.push(primary.to_owned());
    }
    Ok(keys)
}

/// Loads the records `keys` point at; an index entry without its record means the file is corrupt.
pub(super) fn load_all<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    keys: &[String],
) -> Result<Vec<T>, MetaError> {
    keys.iter()
        .map(|key| {
            get_record(table, key)?.ok_or_else(|| {
                MetaError::Corrupt(format!(
                    "an index entry points at missing record {key:?}; restore the metadata file \
                     from a backup"
                ))
            })
        })
        .collect()
}
