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

/// How widely an upload is stored before it is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// In this region (its replicas): the default. Other regions get their copies
    /// asynchronously, so a region lost within that moment loses what it alone held.
    #[default]
    Local,
    /// In a second region too: the original in its bucket and the record in its datacenter, so
    /// the upload survives, and stays readable through, the loss of the region that took it.
    TwoRegions,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "local" | "regions=1" => Ok(Self::Local),
            "regions=2" => Ok(Self::TwoRegions),
            other => Err(format!(
                "durability {other:?} is not known: use `local` (acknowledged once this region \
                 holds the upload) or `regions=2` (once a second region does too)"
            )),
        }
    }
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
    /// The region that accepted the job; `None` on a node without a region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// The region that runs the job: its home, until another region adopts it. Only an attempt
    /// of the owner may write the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How many times the job has changed owner. Its fencing tokens carry it in their high bits
    /// (`fencing_token`), so any lease of a later owner outranks every lease of an earlier one.
    #[serde(default)]
    pub epoch: u32,
    /// The job's latest webhook attempt that did not deliver (a refused address, an error
    /// answer, no answer), as the notifier recorded it; `None` before any failed and once one
    /// delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_failure: Option<WebhookFailure>,
}

/// A webhook attempt that did not deliver, kept on its job so the client can see why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookFailure {
    /// Attempts made so far, this one included.
    pub attempts: u32,
    pub at: UnixMillis,
    /// What went wrong, e.g. the refused address and its range, or the receiver's answer.
    pub reason: String,
    /// No attempt follows: the URL can never be delivered to, or its retry window closed.
    pub gave_up: bool,
}

/// Bits of a fencing token below the epoch: room for a trillion log entries per region.
const FENCING_INDEX_BITS: u32 = 40;

/// The fencing token of the lease written at raft log `index` in ownership `epoch`. Each region's
/// scheduler numbers its leases by its own log, so tokens of two owners are only comparable
/// through the epoch above them.
pub fn fencing_token(epoch: u32, index: u64) -> u64 {
    (u64::from(epoch) << FENCING_INDEX_BITS) | (index & ((1 << FENCING_INDEX_BITS) - 1))
}

impl JobRecord {
    /// A job as `region` accepts it: queued, owned by its home region, no attempt yet.
    pub fn queued(
        tenant: TenantId,
        id: JobId,
        image_id: ImageId,
        spec: JobSpec,
        now: UnixMillis,
        region: Option<&str>,
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
            home: region.map(str::to_owned),
            owner: region.map(str::to_owned),
            epoch: 0,
            webhook_failure: None,
        }
    }

    /// Whether this job failed before it was ever queued (`Jobs::accept` stored it, then the
    /// scheduler refused it): the only way a job fails with no attempt and no lease. It never
    /// ran, so a repeat of the request that made it (the same idempotency key) may accept it
    /// again under its id instead of answering with the failure.
    pub fn never_queued(&self) -> bool {
        self.status == JobStatus::Failed && self.attempts == 0 && self.fencing == 0
    }

    /// Whether `next`, written by an attempt, may replace this stored record: the same owner,
    /// under a lease no older than the one that wrote this (a token of an earlier epoch is
    /// older than any of a later one). The one fencing rule every `MetaStore` applies
    /// (`put_job_fenced`).
    pub fn admits(&self, next: &JobRecord) -> bool {
        self.owner == next.owner && self.fencing <= next.fencing
    }

    /// This record once region `to` has adopted it: a new epoch, whose first token outranks
    /// every lease of the old owner, and queued again if an attempt of the old owner was
    /// running. Attempts and the link token are kept, so the job keeps its event ids and its
    /// download link.
    pub fn adopted_by(&self, to: &str) -> JobRecord {
        let mut adopted = self.clone();
        adopted.owner = Some(to.to_owned());
        adopted.epoch += 1;
        adopted.fencing = fencing_token(adopted.epoch, 0);
        if adopted.status == JobStatus::Running {
            adopted.status = JobStatus::Queued;
        }
        adopted
    }
}

/// A node's sign of life, written every second or so by every node of every region. Other
/// regions watch the sequence numbers advance (by their own clock, so skewed clocks do not
/// matter); a region whose nodes have all stopped advancing for a grace period is gone, and its
/// jobs are adopted. Partition key: region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub region: String,
    pub node: u64,
    /// Grows by one with every beat of this node's run.
    pub seq: u64,
    /// Whether the node's region is draining (its jobs may be adopted now).
    pub draining: bool,
    /// The writer's clock, for people reading the table; decisions never use it.
    pub at: UnixMillis,
}

/// What operators set for a whole region. Partition key: region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionState {
    pub region: String,
    /// Taken out of geo-DNS on purpose: its nodes report unready and other regions adopt its
    /// queued jobs.
    pub draining: bool,
    pub changed_at: UnixMillis,
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
    /// Set when the tenant revoked the link: downloads answer 410 from then on.
    #[serde(default)]
    pub revoked_at: Option<UnixMillis>,
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
