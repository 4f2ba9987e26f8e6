//! Records as the `MetaStore` keeps them. Each names its partition key in its doc so the ScyllaDB
//! backend and the embedded one agree on access paths.

use crate::{
    BlobKey, EventId, ImageFormat, ImageId, JobId, JobSpec, LinkToken, TenantId, UnixMillis,
};
use serde::{Deserialize, Serialize};

/// An uploaded original. Partition key: (tenant, id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub tenant: TenantId,
    pub id: ImageId,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub bytes: u64,
    pub sha256: String,
    pub blob_key: BlobKey,
    pub created_at: UnixMillis,
    /// A compact placeholder of the image clients can paint while it loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blurhash: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobOutput {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub blob_key: BlobKey,
    pub content_type: String,
}

/// An asynchronous job. Partition key: (tenant, id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub tenant: TenantId,
    pub id: JobId,
    pub image_id: ImageId,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub created_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    pub attempts: u32,
    pub output: Option<JobOutput>,
    pub link: Option<LinkToken>,
    pub expires_at: Option<UnixMillis>,
    pub error: Option<String>,
    /// The scheduler lease (its raft log index) of the attempt that last wrote this record; 0
    /// before any attempt. Only an attempt holding this lease or a later one may write it again
    /// (`MetaStore::put_job_fenced`), so a worker whose lease was taken away cannot overwrite the
    /// result of the attempt that replaced it.
    #[serde(default)]
    pub fencing: u64,
}

impl JobRecord {
    /// A job as it is accepted: queued, no attempt yet.
    pub fn queued(
        tenant: TenantId,
        id: JobId,
        image_id: ImageId,
        spec: JobSpec,
        now: UnixMillis,
    ) -> Self {
        Self {
            tenant,
            id,
            image_id,
            spec,
            status: JobStatus::Queued,
            created_at: now,
            started_at: None,
            finished_at: None,
            attempts: 0,
            output: None,
            link: None,
            expires_at: None,
            error: None,
            fencing: 0,
        }
    }
}

/// A download link. Partition key: token (links are looked up without knowing the tenant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub token: LinkToken,
    pub tenant: TenantId,
    pub job_id: JobId,
    pub blob_key: BlobKey,
    pub content_type: String,
    pub bytes: u64,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// Remembers which job an `Idempotency-Key` created. Partition key: (tenant, key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub tenant: TenantId,
    pub key: String,
    /// SHA-256 of the request body: the same key with another body is a client error.
    pub body_sha256: String,
    pub job_id: JobId,
    pub expires_at: UnixMillis,
}

/// A notification waiting to be delivered (transactional outbox). Partition key: event_id; the
/// delivery loop scans by `next_attempt_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub event_id: EventId,
    pub tenant: TenantId,
    pub job_id: JobId,
    /// Where to deliver: the webhook URL.
    pub target: String,
    /// The exact JSON body; signed and sent byte for byte on every attempt.
    pub payload: String,
    pub attempts: u32,
    pub next_attempt_at: UnixMillis,
    pub created_at: UnixMillis,
    /// After this instant the event is dropped and counted as given up.
    pub give_up_at: UnixMillis,
}

/// A blob written in region `source` that region `target` may not hold yet: the replicator's
/// to-do, removed once `target` has a copy. Partition key: (source, target, a shard of the blob
/// key); the replicator of `source` reads each target's tasks oldest first, so the first one's
/// age is that target's replication lag, and a target that is down holds up no other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationTask {
    pub blob_key: BlobKey,
    pub source: String,
    pub target: String,
    pub queued_at: UnixMillis,
}
