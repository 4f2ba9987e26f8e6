//! The HTTP side of an upload: the body is pumped chunk by chunk into an upload session run by the
//! node's `upload` role, which hashes, sniffs, stages, validates and records it. When the session
//! refuses the body part-way (too large, not an image), the rest is drained within a bound so the
//! client finishes sending and reads the error instead of a broken pipe.

use crate::body::BodyPace;
use crate::{ApiError, ApiResult, AppState};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use pixelmill_core::{Durability, ImageRecord, TenantId};
use std::time::Duration;

/// Starts upload sessions; implemented by the node's `upload` role.
#[async_trait]
pub trait Uploads: Send + Sync + 'static {
    /// A new session for `tenant`, or `overloaded` when too many uploads are in progress.
    async fn open(&self, tenant: TenantId) -> ApiResult<Box<dyn UploadSession>>;
}

/// One upload in progress. Dropping it unfinished discards everything staged.
#[async_trait]
pub trait UploadSession: Send {
    /// Takes the next chunk; an error ends the session (the body is refused).
    async fn push(&mut self, chunk: Bytes) -> ApiResult<()>;
    /// Validates the whole image, publishes it under its content address and records it, as
    /// durably as asked (`None`: the node's default).
    async fn finish(self: Box<Self>, durability: Option<Durability>) -> ApiResult<ImageRecord>;
}

/// After a refusal we read (and discard) up to this much more of the body, for at most
/// `LINGER_TIME`.
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Streams `body` into a new session within `pace`: a body that pauses too long or drags past
/// its deadline is answered 408 and its session (its spool file) discarded.
pub async fn ingest<S, E>(
    state: &AppState,
    tenant: TenantId,
    mut body: S,
    durability: Option<Durability>,
    pace: &BodyPace,
) -> ApiResult<ImageRecord>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut session = state.uploads.open(tenant).await?;
    while let Some(chunk) = pace.next_chunk(&mut body).await? {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload was interrupted: {e}")))?;
        if let Err(refused) = session.push(chunk).await {
            linger(&mut body).await;
            return Err(refused);
        }
    }
    session.finish(durability).await
}

/// Discards what is left of a refused body, within `LINGER_BYTES` and `LINGER_TIME`.
async fn linger<S, E>(body: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let drain = async {
        let mut discarded = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            discarded += chunk.len() as u64;
            if discarded > LINGER_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
