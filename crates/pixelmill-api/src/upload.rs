//! Ingest of an original: the body is streamed into a staged blob while it is hashed and counted, so
//! an oversized body is refused as soon as it crosses the limit, and an unknown format as soon as
//! its first bytes arrive. The blob is published under its content address only after the engine has
//! decoded it completely within the limits.

use crate::{ApiError, ApiResult, AppState};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use pixelmill_blob::BlobWriter;
use pixelmill_core::{now_ms, BlobKey, ImageId, ImageRecord, TenantId};
use sha2::{Digest, Sha256};

/// Bytes enough for every magic number we sniff.
const SNIFF_BYTES: usize = 32;

/// After refusing an oversized body we keep reading (and discarding) up to this much more, for at
/// most `LINGER_TIME`, so the client finishes sending and reads our 413 instead of a broken pipe.
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn ingest<S, E>(state: &AppState, tenant: TenantId, body: S) -> ApiResult<ImageRecord>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut writer = state.blob.writer().await?;
    let received = receive(state, &mut *writer, body).await;
    let (data, sha256) = match received {
        Ok(ok) => ok,
        Err(err) => {
            let _ = writer.abort().await;
            return Err(err);
        }
    };
    let limits = state.limits;
    let inspected = tokio::task::spawn_blocking(move || {
        let info = pixelmill_engine::inspect(&data, &limits);
        (info, data.len() as u64)
    })
    .await
    .map_err(|e| ApiError::internal(format!("image validation crashed: {e}")));
    let (info, bytes) = match inspected {
        Ok((Ok(info), bytes)) => (info, bytes),
        Ok((Err(err), _)) => {
            let _ = writer.abort().await;
            return Err(err.into());
        }
        Err(err) => {
            let _ = writer.abort().await;
            return Err(err);
        }
    };
    let blob_key = BlobKey::original(&sha256);
    writer.commit(&blob_key).await?;
    let record = ImageRecord {
        tenant,
        id: ImageId::generate(),
        format: info.format,
        width: info.width,
        height: info.height,
        frames: info.frames,
        bytes,
        sha256,
        blob_key,
        created_at: now_ms(),
    };
    state.meta.put_image(&record).await?;
    Ok(record)
}

/// Streams the body into `writer`; returns the whole body (the decoder needs it) and its hash.
async fn receive<S, E>(
    state: &AppState,
    writer: &mut dyn BlobWriter,
    mut body: S,
) -> ApiResult<(Vec<u8>, String)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = state.settings.max_body_bytes;
    let mut hasher = Sha256::new();
    let mut data = Vec::new();
    let mut sniffed = false;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload was interrupted: {e}")))?;
        if data.len() as u64 + chunk.len() as u64 > limit {
            linger(&mut body).await;
            return Err(ApiError::payload_too_large(limit));
        }
        hasher.update(&chunk);
        writer.write(&chunk).await?;
        data.extend_from_slice(&chunk);
        if !sniffed && data.len() >= SNIFF_BYTES {
            if let Err(err) = pixelmill_engine::sniff(&data) {
                linger(&mut body).await;
                return Err(err.into());
            }
            sniffed = true;
        }
    }
    if data.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty; send the image bytes as the body or as the multipart field `file`",
        ));
    }
    Ok((data, hex::encode(hasher.finalize())))
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
