//! Metadata: images, jobs, download links, idempotency keys, the notification outbox, and where
//! each blob's copies are (the replication queue and the replica records).
//!
//! The `MetaStore` trait is shaped for ScyllaDB: every access goes through a partition key named in
//! the record's doc, expiry is a property of the record (a CQL `TTL`), and the only
//! read-modify-writes are `insert_idempotency_key` and `claim_job`, conditional writes (CQL LWTs).
//! Backends:
//! `RedbMetaStore` (embedded, the single-node default) and `ScyllaMetaStore` (in
//! `pixelmill-meta-scylla`). `suite` is the conformance suite every backend runs.

mod error;
mod redb_store;
pub mod suite;

pub use error::MetaError;
pub use redb_store::RedbMetaStore;

use async_trait::async_trait;
use pixelmill_core::{
    BlobKey, EventId, IdempotencyRecord, ImageId, ImageRecord, JobId, JobRecord, LinkRecord,
    LinkToken, OutboxEvent, ReplicationTask, TenantId, UnixMillis,
};

pub type MetaResult<T> = Result<T, MetaError>;

/// The outcome of a conditional insert.
#[derive(Clone, Debug, PartialEq)]
pub enum Inserted<T> {
    /// No record existed; ours is now stored.
    New,
    /// A record already existed (and has not expired); it is returned unchanged.
    Existing(T),
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn put_image(&self, image: &ImageRecord) -> MetaResult<()>;
    async fn get_image(&self, tenant: &TenantId, id: &ImageId) -> MetaResult<Option<ImageRecord>>;

    /// Inserts or replaces the job (the whole record: job state transitions are last-writer-wins
    /// because only the lease holder writes a running job).
    async fn put_job(&self, job: &JobRecord) -> MetaResult<()>;
    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> MetaResult<Option<JobRecord>>;

    /// Replaces an existing job unless an attempt with a later lease has written it: the stored
    /// record's `fencing` must not exceed `job.fencing`. `false` when refused (or the job is gone),
    /// and nothing was written. Atomic (a compare-and-set in CQL): a worker frozen past its lease
    /// that wakes up and writes its result cannot undo the attempt that ran in its place.
    async fn put_job_fenced(&self, job: &JobRecord) -> MetaResult<bool>;

    /// Makes `region` the owner of an existing job if `expected` still owns it (`None`: no
    /// region has claimed it yet); `true` when this call won. A conditional update (a CQL LWT on
    /// the owner), so of two regions adopting a job whose home region is gone only one wins.
    async fn claim_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
        expected: Option<&str>,
        region: &str,
    ) -> MetaResult<bool>;

    /// Stores `record` unless an unexpired record exists for (tenant, key); never overwrites.
    async fn insert_idempotency_key(
        &self,
        record: &IdempotencyRecord,
        now: UnixMillis,
    ) -> MetaResult<Inserted<IdempotencyRecord>>;

    /// Stores a link. It stays readable after `expires_at` (so the API can answer 410 Gone) until
    /// the sweeper deletes it.
    async fn put_link(&self, link: &LinkRecord) -> MetaResult<()>;
    async fn get_link(&self, token: &LinkToken) -> MetaResult<Option<LinkRecord>>;
    async fn delete_link(&self, token: &LinkToken) -> MetaResult<()>;
    /// Links with `expires_at <= now`, oldest first, at most `limit`.
    async fn expired_links(&self, now: UnixMillis, limit: usize) -> MetaResult<Vec<LinkRecord>>;
    /// Whether any link (expired or not) still points at `blob`: the sweeper deletes a blob only
    /// when nothing references it.
    async fn blob_has_links(&self, blob: &BlobKey) -> MetaResult<bool>;

    /// Inserts or replaces an outbox event (same `event_id` → same row).
    async fn put_outbox(&self, event: &OutboxEvent) -> MetaResult<()>;
    /// Events with `next_attempt_at <= now`, earliest first, at most `limit`.
    async fn due_outbox(&self, now: UnixMillis, limit: usize) -> MetaResult<Vec<OutboxEvent>>;
    async fn delete_outbox(&self, event_id: &EventId) -> MetaResult<()>;

    /// Queues `task.blob_key`, just written in region `task.source`, for copying to region
    /// `task.target`, and records that `source` holds it; queuing a task twice is harmless.
    async fn queue_replication(&self, task: &ReplicationTask) -> MetaResult<()>;
    /// The tasks region `source` queued for `target`, oldest first, at most `limit`.
    async fn pending_replications(
        &self,
        source: &str,
        target: &str,
        limit: usize,
    ) -> MetaResult<Vec<ReplicationTask>>;
    /// Removes a task once its target holds the blob.
    async fn delete_replication(&self, task: &ReplicationTask) -> MetaResult<()>;
    /// Records that `region` holds a copy of `blob`.
    async fn put_blob_replica(&self, blob: &BlobKey, region: &str) -> MetaResult<()>;
    /// The regions recorded as holding `blob`, in name order. A region that copied it moments
    /// ago in another datacenter may be missing: callers treat the list as a hint.
    async fn blob_replicas(&self, blob: &BlobKey) -> MetaResult<Vec<String>>;
    /// Forgets every copy of `blob` (it has been deleted in every region).
    async fn delete_blob_replicas(&self, blob: &BlobKey) -> MetaResult<()>;

    /// A cheap round trip for `/readyz`.
    async fn ping(&self) -> MetaResult<()>;
}
