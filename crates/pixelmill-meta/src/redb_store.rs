//! `RedbMetaStore`: the embedded metadata backend, one redb file (e.g. `<data_dir>/meta.redb`).
//!
//! redb is blocking, so every operation runs in one transaction on the blocking pool. Commits keep
//! redb's default `Durability::Immediate`: an acknowledged write survives `kill -9` and power loss.

mod tables;

use crate::{Fenced, Inserted, MetaError, MetaResult, MetaStore};
use async_trait::async_trait;
use pixelmill_core::{
    now_ms, ApiKeyId, ApiKeyRecord, BlobKey, Durability, EventId, Heartbeat, IdempotencyRecord,
    ImageId, ImageRecord, JobId, JobRecord, LinkRecord, LinkToken, OutboxEvent, RegionState,
    ReplicationTask, TenantId, TenantRecord, UnixMillis,
};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use std::{path::Path, sync::Arc};
use tables::{
    db_err, due_keys, get_record, load_all, put_record, scoped_key, take_record, API_KEYS,
    BLOB_REPLICAS, HEARTBEATS, IDEMPOTENCY, IDEMPOTENCY_BY_EXPIRY, IMAGES, JOBS, JOBS_BY_OWNER,
    LINKS, LINKS_BY_BLOB, LINKS_BY_EXPIRY, OUTBOX, OUTBOX_BY_DUE, REGION_STATES, REPLICATION_QUEUE,
    TENANTS,
};

/// How long a heartbeat of a node that stopped beating is still listed (a CQL TTL in ScyllaDB).
const HEARTBEAT_RETENTION_MS: i64 = 86_400_000;

/// How many expired idempotency keys one insert purges; bounds the extra work per request while
/// still outpacing the rate at which keys expire.
const IDEMPOTENCY_PURGE_BATCH: usize = 32;

#[derive(Clone)]
pub struct RedbMetaStore {
    db: Arc<Database>,
}

impl RedbMetaStore {
    /// Opens the redb file at `path`, creating it and its tables if absent. Blocking; call it at
    /// startup.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let db = Database::create(path).map_err(|e| {
            MetaError::Internal(format!(
                "cannot open metadata file {}: {e}; check that its directory exists and is \
                 writable and that no other pixelmill process has it open",
                path.display()
            ))
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        for records in [
            IMAGES,
            JOBS,
            LINKS,
            IDEMPOTENCY,
            OUTBOX,
            HEARTBEATS,
            REGION_STATES,
            API_KEYS,
            TENANTS,
        ] {
            txn.open_table(records).map_err(db_err)?;
        }
        for index in [LINKS_BY_EXPIRY, OUTBOX_BY_DUE, IDEMPOTENCY_BY_EXPIRY] {
            txn.open_table(index).map_err(db_err)?;
        }
        txn.open_table(LINKS_BY_BLOB).map_err(db_err)?;
        txn.open_table(JOBS_BY_OWNER).map_err(db_err)?;
        txn.open_table(BLOB_REPLICAS).map_err(db_err)?;
        txn.open_table(REPLICATION_QUEUE).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn read<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> MetaResult<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || f(&db.begin_read().map_err(db_err)?)).await
    }

    /// Runs `f` in a write transaction and commits it; if `f` fails the transaction is dropped,
    /// which aborts it, so a failed operation leaves no partial update (e.g. a record without its
    /// index entries).
    async fn write<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> MetaResult<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_write().map_err(db_err)?;
            let out = f(&txn)?;
            txn.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> MetaResult<T> + Send + 'static,
) -> MetaResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MetaError::Internal(format!("metadata task did not complete: {e}")))?
}

/// Removes the link under `token` with its index entries; returns whether it existed.
fn remove_link(txn: &WriteTransaction, token: &str) -> MetaResult<bool> {
    let Some(old) = take_record::<LinkRecord>(&mut txn.open_table(LINKS).map_err(db_err)?, token)?
    else {
        return Ok(false);
    };
    let mut by_expiry = txn.open_table(LINKS_BY_EXPIRY).map_err(db_err)?;
    by_expiry.remove((old.expires_at, token)).map_err(db_err)?;
    let mut by_blob = txn.open_table(LINKS_BY_BLOB).map_err(db_err)?;
    by_blob
        .remove((old.blob_key.as_str(), token))
        .map_err(db_err)?;
    Ok(true)
}

/// Where `task` sits in `REPLICATION_QUEUE`.
fn queue_key(task: &ReplicationTask) -> (&str, &str, i64, &str) {
    (
        task.source.as_str(),
        task.target.as_str(),
        task.queued_at,
        task.blob_key.as_str(),
    )
}

/// The second parts of the first `limit` entries of a (first, second) index whose first part is
/// `first`, in order.
fn entries_of(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    first: &str,
    limit: usize,
) -> MetaResult<Vec<String>> {
    let mut found = Vec::new();
    for entry in index.range((first, "")..).map_err(db_err)? {
        let (key, _) = entry.map_err(db_err)?;
        let (of, second) = key.value();
        if of != first || found.len() >= limit {
            break;
        }
        found.push(second.to_owned());
    }
    Ok(found)
}

/// Stores `job` under `key` in place of `before`, keeping `JOBS_BY_OWNER` to the unfinished
/// jobs of each owner.
fn store_job(
    txn: &WriteTransaction,
    key: &str,
    before: Option<&JobRecord>,
    job: &JobRecord,
) -> MetaResult<()> {
    put_record(&mut txn.open_table(JOBS).map_err(db_err)?, key, job)?;
    let mut by_owner = txn.open_table(JOBS_BY_OWNER).map_err(db_err)?;
    if let Some(owner) = before.and_then(|b| b.owner.as_deref()) {
        by_owner.remove((owner, key)).map_err(db_err)?;
    }
    if let (Some(owner), false) = (job.owner.as_deref(), job.status.is_final()) {
        by_owner.insert((owner, key), ()).map_err(db_err)?;
    }
    Ok(())
}

/// Removes the outbox event under `event_id` with its index entry.
fn remove_outbox(txn: &WriteTransaction, event_id: &str) -> MetaResult<()> {
    let mut records = txn.open_table(OUTBOX).map_err(db_err)?;
    if let Some(old) = take_record::<OutboxEvent>(&mut records, event_id)? {
        let mut by_due = txn.open_table(OUTBOX_BY_DUE).map_err(db_err)?;
        by_due
            .remove((old.next_attempt_at, event_id))
            .map_err(db_err)?;
    }
    Ok(())
}

/// Removes the idempotency record under `key` with its index entry.
fn remove_idempotency(txn: &WriteTransaction, key: &str) -> MetaResult<()> {
    let mut records = txn.open_table(IDEMPOTENCY).map_err(db_err)?;
    if let Some(old) = take_record::<IdempotencyRecord>(&mut records, key)? {
        let mut by_expiry = txn.open_table(IDEMPOTENCY_BY_EXPIRY).map_err(db_err)?;
        by_expiry.remove((old.expires_at, key)).map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl MetaStore for RedbMetaStore {
    /// One file on one node: every durability is the same here.
    async fn put_image(&self, image: &ImageRecord, _durability: Durability) -> MetaResult<()> {
        let image = image.clone();
        self.write(move |txn| {
            let key = scoped_key(&image.tenant, image.id.as_str());
            put_record(&mut txn.open_table(IMAGES).map_err(db_err)?, &key, &image)
        })
        .await
    }

    async fn get_image(&self, tenant: &TenantId, id: &ImageId) -> MetaResult<Option<ImageRecord>> {
        let key = scoped_key(tenant, id.as_str());
        self.read(move |txn| get_record(&txn.open_table(IMAGES).map_err(db_err)?, &key))
            .await
    }

    async fn put_job(&self, job: &JobRecord) -> MetaResult<()> {
        let job = job.clone();
        self.write(move |txn| {
            let key = scoped_key(&job.tenant, job.id.as_str());
            let before: Option<JobRecord> =
                get_record(&txn.open_table(JOBS).map_err(db_err)?, &key)?;
            store_job(txn, &key, before.as_ref(), &job)
        })
        .await
    }

    async fn put_job_fenced(&self, job: &JobRecord) -> MetaResult<Fenced> {
        let job = job.clone();
        // One write transaction: the check and the update are atomic, like a CQL LWT.
        self.write(move |txn| {
            let key = scoped_key(&job.tenant, job.id.as_str());
            let stored: Option<JobRecord> =
                get_record(&txn.open_table(JOBS).map_err(db_err)?, &key)?;
            match stored {
                Some(stored) if stored.admits(&job) => {
                    store_job(txn, &key, Some(&stored), &job)?;
                    Ok(Fenced::Stored)
                }
                stored => Ok(Fenced::Refused(stored.map(Box::new))),
            }
        })
        .await
    }

    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> MetaResult<Option<JobRecord>> {
        let key = scoped_key(tenant, id.as_str());
        self.read(move |txn| get_record(&txn.open_table(JOBS).map_err(db_err)?, &key))
            .await
    }

    async fn adopt_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
        from: &str,
        to: &str,
    ) -> MetaResult<Option<JobRecord>> {
        let key = scoped_key(tenant, id.as_str());
        let (from, to) = (from.to_owned(), to.to_owned());
        self.write(move |txn| {
            let stored: Option<JobRecord> =
                get_record(&txn.open_table(JOBS).map_err(db_err)?, &key)?;
            let Some(stored) =
                stored.filter(|s| s.owner.as_deref() == Some(&from) && !s.status.is_final())
            else {
                return Ok(None);
            };
            let adopted = stored.adopted_by(&to);
            store_job(txn, &key, Some(&stored), &adopted)?;
            Ok(Some(adopted))
        })
        .await
    }

    async fn unfinished_jobs(
        &self,
        owner: &str,
        limit: usize,
    ) -> MetaResult<Vec<(TenantId, JobId)>> {
        let owner = owner.to_owned();
        self.read(move |txn| {
            let keys = entries_of(
                &txn.open_table(JOBS_BY_OWNER).map_err(db_err)?,
                &owner,
                limit,
            )?;
            let jobs: Vec<JobRecord> = load_all(&txn.open_table(JOBS).map_err(db_err)?, &keys)?;
            Ok(jobs.into_iter().map(|j| (j.tenant, j.id)).collect())
        })
        .await
    }

    async fn put_heartbeat(&self, beat: &Heartbeat) -> MetaResult<()> {
        let beat = beat.clone();
        self.write(move |txn| {
            let key = format!("{}/{}", beat.region, beat.node);
            put_record(
                &mut txn.open_table(HEARTBEATS).map_err(db_err)?,
                &key,
                &beat,
            )
        })
        .await
    }

    async fn heartbeats(&self, region: &str) -> MetaResult<Vec<Heartbeat>> {
        let prefix = format!("{region}/");
        let since = now_ms() - HEARTBEAT_RETENTION_MS;
        self.read(move |txn| {
            let table = txn.open_table(HEARTBEATS).map_err(db_err)?;
            let mut beats = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(db_err)? {
                let (key, raw) = entry.map_err(db_err)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                let beat: Heartbeat = tables::decode(key.value(), raw.value())?;
                if beat.at >= since {
                    beats.push(beat);
                }
            }
            Ok(beats)
        })
        .await
    }

    async fn put_region_state(&self, state: &RegionState) -> MetaResult<()> {
        let state = state.clone();
        self.write(move |txn| {
            put_record(
                &mut txn.open_table(REGION_STATES).map_err(db_err)?,
                &state.region,
                &state,
            )
        })
        .await
    }

    async fn region_state(&self, region: &str) -> MetaResult<Option<RegionState>> {
        let region = region.to_owned();
        self.read(move |txn| get_record(&txn.open_table(REGION_STATES).map_err(db_err)?, &region))
            .await
    }

    async fn insert_idempotency_key(
        &self,
        record: &IdempotencyRecord,
        now: UnixMillis,
    ) -> MetaResult<Inserted<IdempotencyRecord>> {
        let record = record.clone();
        // One write transaction: redb admits a single writer at a time, so the check and the
        // insert are atomic, like a CQL `IF NOT EXISTS`.
        self.write(move |txn| {
            let expired = due_keys(
                &txn.open_table(IDEMPOTENCY_BY_EXPIRY).map_err(db_err)?,
                now,
                IDEMPOTENCY_PURGE_BATCH,
            )?;
            for key in &expired {
                remove_idempotency(txn, key)?;
            }
            let key = scoped_key(&record.tenant, &record.key);
            let existing = get_record::<IdempotencyRecord>(
                &txn.open_table(IDEMPOTENCY).map_err(db_err)?,
                &key,
            )?;
            if let Some(existing) = existing.filter(|r| r.expires_at > now) {
                return Ok(Inserted::Existing(existing));
            }
            remove_idempotency(txn, &key)?;
            put_record(
                &mut txn.open_table(IDEMPOTENCY).map_err(db_err)?,
                &key,
                &record,
            )?;
            let mut by_expiry = txn.open_table(IDEMPOTENCY_BY_EXPIRY).map_err(db_err)?;
            by_expiry
                .insert((record.expires_at, key.as_str()), ())
                .map_err(db_err)?;
            Ok(Inserted::New)
        })
        .await
    }

    async fn put_link(&self, link: &LinkRecord) -> MetaResult<()> {
        let link = link.clone();
        self.write(move |txn| {
            let token = link.token.as_str();
            remove_link(txn, token)?;
            put_record(&mut txn.open_table(LINKS).map_err(db_err)?, token, &link)?;
            let mut by_expiry = txn.open_table(LINKS_BY_EXPIRY).map_err(db_err)?;
            by_expiry
                .insert((link.expires_at, token), ())
                .map_err(db_err)?;
            let mut by_blob = txn.open_table(LINKS_BY_BLOB).map_err(db_err)?;
            by_blob
                .insert((link.blob_key.as_str(), token), ())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_link(&self, token: &LinkToken) -> MetaResult<Option<LinkRecord>> {
        let token = token.clone();
        self.read(move |txn| get_record(&txn.open_table(LINKS).map_err(db_err)?, token.as_str()))
            .await
    }

    async fn delete_link(&self, token: &LinkToken) -> MetaResult<()> {
        let token = token.clone();
        self.write(move |txn| remove_link(txn, token.as_str()).map(drop))
            .await
    }

    async fn expired_links(&self, now: UnixMillis, limit: usize) -> MetaResult<Vec<LinkRecord>> {
        self.read(move |txn| {
            let tokens = due_keys(
                &txn.open_table(LINKS_BY_EXPIRY).map_err(db_err)?,
                now,
                limit,
            )?;
            load_all(&txn.open_table(LINKS).map_err(db_err)?, &tokens)
        })
        .await
    }

    async fn blob_has_links(&self, blob: &BlobKey) -> MetaResult<bool> {
        let blob = blob.clone();
        self.read(move |txn| {
            let by_blob = txn.open_table(LINKS_BY_BLOB).map_err(db_err)?;
            Ok(!entries_of(&by_blob, blob.as_str(), 1)?.is_empty())
        })
        .await
    }

    async fn put_outbox(&self, event: &OutboxEvent) -> MetaResult<()> {
        let event = event.clone();
        self.write(move |txn| {
            let id = event.event_id.as_str();
            remove_outbox(txn, id)?;
            put_record(&mut txn.open_table(OUTBOX).map_err(db_err)?, id, &event)?;
            let mut by_due = txn.open_table(OUTBOX_BY_DUE).map_err(db_err)?;
            by_due
                .insert((event.next_attempt_at, id), ())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn due_outbox(&self, now: UnixMillis, limit: usize) -> MetaResult<Vec<OutboxEvent>> {
        self.read(move |txn| {
            let ids = due_keys(&txn.open_table(OUTBOX_BY_DUE).map_err(db_err)?, now, limit)?;
            load_all(&txn.open_table(OUTBOX).map_err(db_err)?, &ids)
        })
        .await
    }

    async fn delete_outbox(&self, event_id: &EventId) -> MetaResult<()> {
        let event_id = event_id.clone();
        self.write(move |txn| remove_outbox(txn, event_id.as_str()))
            .await
    }

    async fn queue_replication(&self, task: &ReplicationTask) -> MetaResult<()> {
        let task = task.clone();
        self.write(move |txn| {
            let (key, source) = (task.blob_key.as_str(), task.source.as_str());
            let mut queue = txn.open_table(REPLICATION_QUEUE).map_err(db_err)?;
            queue.insert(queue_key(&task), ()).map_err(db_err)?;
            let mut replicas = txn.open_table(BLOB_REPLICAS).map_err(db_err)?;
            replicas.insert((key, source), ()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn pending_replications(
        &self,
        source: &str,
        target: &str,
        limit: usize,
    ) -> MetaResult<Vec<ReplicationTask>> {
        let (source, target) = (source.to_owned(), target.to_owned());
        self.read(move |txn| {
            let queue = txn.open_table(REPLICATION_QUEUE).map_err(db_err)?;
            let mut tasks = Vec::new();
            let first = (source.as_str(), target.as_str(), i64::MIN, "");
            for entry in queue.range(first..).map_err(db_err)? {
                let (key, _) = entry.map_err(db_err)?;
                let (from, to, queued_at, blob_key) = key.value();
                if (from, to) != (source.as_str(), target.as_str()) || tasks.len() >= limit {
                    break;
                }
                tasks.push(ReplicationTask {
                    blob_key: BlobKey::from_string(blob_key),
                    source: source.clone(),
                    target: target.clone(),
                    queued_at,
                });
            }
            Ok(tasks)
        })
        .await
    }

    async fn delete_replication(&self, task: &ReplicationTask) -> MetaResult<()> {
        let task = task.clone();
        self.write(move |txn| {
            let mut queue = txn.open_table(REPLICATION_QUEUE).map_err(db_err)?;
            queue.remove(queue_key(&task)).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn put_blob_replica(&self, blob: &BlobKey, region: &str) -> MetaResult<()> {
        let (blob, region) = (blob.clone(), region.to_owned());
        self.write(move |txn| {
            let mut replicas = txn.open_table(BLOB_REPLICAS).map_err(db_err)?;
            replicas
                .insert((blob.as_str(), region.as_str()), ())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn blob_replicas(&self, blob: &BlobKey) -> MetaResult<Vec<String>> {
        let blob = blob.clone();
        self.read(move |txn| {
            let replicas = txn.open_table(BLOB_REPLICAS).map_err(db_err)?;
            entries_of(&replicas, blob.as_str(), usize::MAX)
        })
        .await
    }

    async fn delete_blob_replicas(&self, blob: &BlobKey) -> MetaResult<()> {
        let blob = blob.clone();
        self.write(move |txn| {
            let mut replicas = txn.open_table(BLOB_REPLICAS).map_err(db_err)?;
            for region in entries_of(&replicas, blob.as_str(), usize::MAX)? {
                replicas
                    .remove((blob.as_str(), region.as_str()))
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()> {
        let key = key.clone();
        self.write(move |txn| {
            put_record(
                &mut txn.open_table(API_KEYS).map_err(db_err)?,
                key.id.as_str(),
                &key,
            )
        })
        .await
    }

    async fn get_api_key(&self, id: &ApiKeyId) -> MetaResult<Option<ApiKeyRecord>> {
        let id = id.clone();
        self.read(move |txn| get_record(&txn.open_table(API_KEYS).map_err(db_err)?, id.as_str()))
            .await
    }

    async fn api_keys(&self) -> MetaResult<Vec<ApiKeyRecord>> {
        self.read(|txn| {
            let table = txn.open_table(API_KEYS).map_err(db_err)?;
            let mut keys = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (id, raw) = entry.map_err(db_err)?;
                keys.push(tables::decode(id.value(), raw.value())?);
            }
            Ok(keys)
        })
        .await
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> MetaResult<()> {
        let tenant = tenant.clone();
        self.write(move |txn| {
            put_record(
                &mut txn.open_table(TENANTS).map_err(db_err)?,
                tenant.id.as_str(),
                &tenant,
            )
        })
        .await
    }

    async fn insert_tenant(&self, tenant: &TenantRecord) -> MetaResult<Inserted<TenantRecord>> {
        let tenant = tenant.clone();
        // One write transaction, so the check and the insert are atomic.
        self.write(move |txn| {
            let mut table = txn.open_table(TENANTS).map_err(db_err)?;
            if let Some(existing) = get_record(&table, tenant.id.as_str())? {
                return Ok(Inserted::Existing(existing));
            }
            put_record(&mut table, tenant.id.as_str(), &tenant)?;
            Ok(Inserted::New)
        })
        .await
    }

    async fn get_tenant(&self, id: &TenantId) -> MetaResult<Option<TenantRecord>> {
        let id = id.clone();
        self.read(move |txn| get_record(&txn.open_table(TENANTS).map_err(db_err)?, id.as_str()))
            .await
    }

    async fn ping(&self) -> MetaResult<()> {
        self.read(|txn| txn.open_table(IMAGES).map(drop).map_err(db_err))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite;

    fn fresh() -> (tempfile::TempDir, RedbMetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn passes_the_conformance_suite() {
        let (_dir, store) = fresh();
        suite::run_all(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let (dir, store) = fresh();
        let image = suite::image(&TenantId::default());
        store.put_image(&image, Durability::Local).await.unwrap();
        drop(store);

        let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
        let got = store.get_image(&image.tenant, &image.id).await.unwrap();
        assert_eq!(got, Some(image));
    }

    #[test]
    fn a_second_open_of_the_same_file_says_how_to_fix_it() {
        let (dir, _store) = fresh();
        let err = RedbMetaStore::open(&dir.path().join("meta.redb"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no other pixelmill process"), "{err}");
    }

    #[test]
    fn tenant_scoped_keys_cannot_collide() {
        let a = scoped_key(&TenantId::new("a/b"), "c");
        let b = scoped_key(&TenantId::new("a"), "b/c");
        assert_ne!(a, b);
        assert_eq!(scoped_key(&TenantId::default(), "img_1"), "default/img_1");
    }
}
