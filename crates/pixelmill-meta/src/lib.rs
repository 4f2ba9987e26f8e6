//! Metadata: images, jobs, download links, idempotency keys, the notification outbox, and where
//! each blob's copies are (the replication queue and the replica records).
//!
//! The `MetaStore` trait is shaped for ScyllaDB: every access goes through a partition key named in
//! the record's doc, expiry is a property of the record (a CQL `TTL`), and the only
//! read-modify-writes are conditional writes (CQL LWTs): `insert_idempotency_key`, `insert_tenant`, and the job
//! writes of attempts (`put_job_fenced`) and of adoptions (`adopt_job`).
//! Backends:
//! `RedbMetaStore` (embedded, the single-node default) and `ScyllaMetaStore` (in
//! `pixelmill-meta-scylla`). `suite` is the conformance suite every backend runs.

mod error;
mod redb_store;
pub mod suite;
mod tenants;

pub use error::MetaError;
pub use redb_store::RedbMetaStore;
pub use tenants::{SecretKind, Tenants, TENANT_CACHE_TTL};

use async_trait::async_trait;
use pixelmill_core::{
    ApiKeyId, ApiKeyRecord, BlobKey, Durability, EventId, Heartbeat, IdempotencyRecord, ImageId,
    ImageRecord, JobId, JobRecord, LinkRecord, LinkToken, OutboxEvent, RegionState,
    ReplicationTask, TenantId, TenantRecord, UnixMillis,
};

pub type MetaResult<T> = Result<T, MetaError>;

/// What a fenced job write did.
#[derive(Clone, Debug, PartialEq)]
pub enum Fenced {
    Stored,
    /// Refused: the record as it is stored (`None`: the job is gone), so the writer can tell a
    /// later lease of its own region from an adoption by another.
    Refused(Option<Box<JobRecord>>),
}

impl Fenced {
    pub fn is_stored(&self) -> bool {
        matches!(self, Self::Stored)
    }
}

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
    /// Stores an uploaded image's record, in this region or (`Durability::TwoRegions`) in a
    /// second region's replicas too before it returns.
    async fn put_image(&self, image: &ImageRecord, durability: Durability) -> MetaResult<()>;
    /// An image's record: from this region's replicas, or, when they lack it (an upload of
    /// another region not replicated here yet), from whichever regions answer.
    async fn get_image(&self, tenant: &TenantId, id: &ImageId) -> MetaResult<Option<ImageRecord>>;

    /// Inserts or replaces the job as it is accepted (the whole record), and lists it among its
    /// owner's unfinished jobs (`unfinished_jobs`) until it is final.
    async fn put_job(&self, job: &JobRecord) -> MetaResult<()>;
    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> MetaResult<Option<JobRecord>>;

    /// Replaces an existing job if the stored record admits it (`JobRecord::admits`: the same
    /// owner, a lease no older). When refused (or the job is gone) nothing was written. Atomic and, across regions, linearizable (a compare-and-set at `SERIAL` in
    /// CQL): a worker frozen past its lease cannot undo the attempt that ran in its place, and a
    /// region cut off from the others cannot finish a job another region has adopted. A final
    /// record leaves its owner's unfinished jobs.
    async fn put_job_fenced(&self, job: &JobRecord) -> MetaResult<Fenced>;

    /// Region `to` adopts the job if region `from` still owns it and it is not final: the stored
    /// record becomes `JobRecord::adopted_by(to)`, which is returned; `None` when this call did
    /// not win (another region adopted it first, it finished, or it is gone). A compare-and-set
    /// like `put_job_fenced`, so of several regions adopting a job exactly one wins.
    async fn adopt_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
        from: &str,
        to: &str,
    ) -> MetaResult<Option<JobRecord>>;

    /// Jobs `owner` has not finished, at most `limit`, in no particular order. The list may
    /// trail the records (a job that just finished may still be in it): callers read each job.
    async fn unfinished_jobs(
        &self,
        owner: &str,
        limit: usize,
    ) -> MetaResult<Vec<(TenantId, JobId)>>;

    /// Stores a node's heartbeat, replacing its previous one.
    async fn put_heartbeat(&self, beat: &Heartbeat) -> MetaResult<()>;
    /// The latest heartbeat of every node of `region` that has beaten recently (a day).
    async fn heartbeats(&self, region: &str) -> MetaResult<Vec<Heartbeat>>;
    async fn put_region_state(&self, state: &RegionState) -> MetaResult<()>;
    /// The region's state; `None` when nobody has set one (not draining).
    async fn region_state(&self, region: &str) -> MetaResult<Option<RegionState>>;

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

    /// Inserts or replaces an API key (revoking one is storing it with `revoked_at` set).
    async fn put_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()>;
    async fn get_api_key(&self, id: &ApiKeyId) -> MetaResult<Option<ApiKeyRecord>>;
    /// Every API key, revoked ones included, in id order: what an operator lists.
    async fn api_keys(&self) -> MetaResult<Vec<ApiKeyRecord>>;
    /// Inserts or replaces a tenant's settings.
    async fn put_tenant(&self, tenant: &TenantRecord) -> MetaResult<()>;
    /// Stores `tenant` unless the tenant exists; never overwrites (two nodes creating the same
    /// tenant agree on one set of secrets).
    async fn insert_tenant(&self, tenant: &TenantRecord) -> MetaResult<Inserted<TenantRecord>>;
    async fn get_tenant(&self, id: &TenantId) -> MetaResult<Option<TenantRecord>>;

    /// A cheap round trip for `/readyz`.
    async fn ping(&self) -> MetaResult<()>;
}
