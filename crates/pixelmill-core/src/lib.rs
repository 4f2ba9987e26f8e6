//! pixelmill's shared vocabulary. Every other crate speaks in these types; nothing here does I/O.
//!
//! Architecture invariant: this crate depends on no runtime, store or codec, so that the meta, blob,
//! scheduler and engine crates can all use it without depending on one another.

mod access;
mod backoff;
mod format;
mod ids;
mod pipeline;
mod records;
mod time;

pub use access::{
    rotate, ApiKey, ApiKeyId, ApiKeyRecord, Role, Secret, SigningSecret, TenantRecord,
    VALID_SECRETS,
};
pub use backoff::BackoffConfig;
pub use format::{ImageFormat, OutputFormat};
pub use ids::{BlobKey, EventId, ImageId, JobId, LinkToken, TenantId};
pub use pipeline::{CompactParseError, IccMode, JobSpec, NotifySpec, OutputSpec, PipelineStep};
pub use records::{
    fencing_token, Durability, Heartbeat, IdempotencyRecord, ImageRecord, JobOutput, JobRecord,
    JobStatus, LinkRecord, OutboxEvent, RegionState, ReplicationTask, WebhookFailure,
};
pub use time::{now_ms, parse_duration, DurationParseError, UnixMillis};

use sha2::{Digest, Sha256};

/// Hex SHA-256 of `bytes`: the content address of originals and the basis of output keys.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
