//! The `upload` role: admits uploads (at most `max_open_uploads` bodies in flight; beyond that new
//! ones get 503 `overloaded`) and runs each in its own short-lived `Ingest` actor, which spools the
//! body to disk while hashing it and refuses it as soon as it passes the byte limit or its first
//! bytes are no known format. Once the body is in, the upload takes one of `max_uploads` slots for
//! the expensive part: the engine decodes it completely within the limits, and it is written to
//! the blob store under its content address. An upload that fails, even by a panic, takes only its
//! own actor down, and its spooled data with it.
//!
//! Slots are taken only once the bytes are all here, so clients that send slowly (or not at all)
//! hold a connection and a spool file, never a slot: they cannot starve the uploads that arrive
//! quickly. The API side ends a body that stalls or drags (`body_idle_timeout`,
//! `upload_body_timeout`), which stops its actor and deletes its spool file.
//!
//! The body is never held in memory: it goes to a spool file under `<data_dir>/spool`, which the
//! decode check maps and the blob write reads. The decode then reads the body from the page cache
//! rather than from the heap, so what an upload costs the process is its pixels, bounded by the
//! limits, not its size in bytes; and no blob-store writer (an S3 part buffer) is held while a
//! client is still sending.

use crate::replication::RegionalBlobs;
use async_trait::async_trait;
use bytes::Bytes;
use pixelmill_api::{ApiError, ApiResult, UploadSession, Uploads};
use pixelmill_blob::{BlobStore, BlobWriter};
use pixelmill_core::{now_ms, BlobKey, Durability, ImageId, ImageRecord, TenantId};
use pixelmill_engine::Limits;
use pixelmill_meta::MetaStore;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Bytes enough for every magic number the engine sniffs.
const SNIFF_BYTES: usize = 32;
/// How long a complete body waits for a slot before it is answered 503 (each slot is a decode
/// check and a blob write, seconds at most).
const SLOT_WAIT: Duration = Duration::from_secs(10);
/// How much of the spooled body goes to the blob store per write.
const WRITE_CHUNK: usize = 1 << 20;

pub struct UploadDeps {
    /// Where the role publishes itself each time it starts, for the API to find it.
    pub handle: UploadHandle,
    pub meta: Arc<dyn MetaStore>,
    pub blob: Arc<dyn BlobStore>,
    /// The region's blobs with their peers, when it has any: where a second copy comes from.
    pub regional: Option<RegionalBlobs>,
    /// How durably an upload is stored when the client does not say.
    pub durability: Durability,
    pub limits: Limits,
    pub max_body_bytes: u64,
    /// Uploads validated and stored at once: `max_uploads` permits.
    pub slots: Arc<Semaphore>,
    /// Upload bodies being received at once.
    pub max_open_uploads: usize,
    /// Where bodies are spooled for the decode check; `prepare_spool` empties it at start-up.
    pub spool_dir: PathBuf,
}

/// Creates the spool directory, removing what a crash left in it.
pub fn prepare_spool(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)
}

pub struct UploadRole;

pub enum UploadMsg {
    Open(TenantId, RpcReplyPort<ApiResult<ActorRef<IngestMsg>>>),
}

pub struct UploadState {
    deps: Arc<UploadDeps>,
    in_progress: usize,
}

impl Actor for UploadRole {
    type Msg = UploadMsg;
    type State = UploadState;
    type Arguments = Arc<UploadDeps>;

    async fn pre_start(
        &self,
        myself: ActorRef<UploadMsg>,
        deps: Arc<UploadDeps>,
    ) -> Result<UploadState, ActorProcessingErr> {
        *deps.handle.role.write().unwrap() = Some(myself);
        Ok(UploadState {
            deps,
            in_progress: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<UploadMsg>,
        msg: UploadMsg,
        state: &mut UploadState,
    ) -> Result<(), ActorProcessingErr> {
        let UploadMsg::Open(tenant, reply) = msg;
        if state.in_progress >= state.deps.max_open_uploads {
            let _ = reply.send(Err(ApiError::overloaded(
                format!("{} uploads are being received, the most this node takes at once; retry after the Retry-After delay", state.in_progress),
                1,
            )));
            return Ok(());
        }
        let opened = match open_spool(&state.deps).await {
            Ok(spool) => {
                let args = IngestArgs {
                    deps: state.deps.clone(),
                    tenant,
                    spool,
                };
                Actor::spawn_linked(None, Ingest, args, myself.get_cell())
                    .await
                    .map(|(actor, _)| actor)
                    .map_err(|e| ApiError::internal(format!("could not start the upload: {e}")))
            }
            Err(e) => Err(e),
        };
        if opened.is_ok() {
            state.in_progress += 1;
        }
        let _ = reply.send(opened);
        Ok(())
    }

    /// Uploads are not restarted (their client is gone with them); the role only counts them out.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<UploadMsg>,
        event: SupervisionEvent,
        state: &mut UploadState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(_, err) => {
                tracing::warn!(%err, "an upload failed");
                state.in_progress = state.in_progress.saturating_sub(1);
            }
            SupervisionEvent::ActorTerminated(..) => {
                state.in_progress = state.in_progress.saturating_sub(1)
            }
            _ => {}
        }
        Ok(())
    }
}

/// A spool file for one upload.
async fn open_spool(deps: &UploadDeps) -> ApiResult<Spool> {
    let dir = deps.spool_dir.clone();
    let created = tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(dir))
        .await
        .map_err(|e| ApiError::internal(format!("could not start the upload: {e}")))?;
    let (file, path) = created
        .map_err(|e| {
            // The path is the operator's business, not the client's: it goes to the log only.
            tracing::error!(dir = %deps.spool_dir.display(), %e, "could not create a spool file");
            ApiError::internal(
                "the server could not store the upload (its spool directory failed); retry later",
            )
        })?
        .into_parts();
    Ok(Spool {
        file: tokio::fs::File::from_std(file),
        path,
    })
}

/// An upload's body on local disk, deleted when dropped.
struct Spool {
    file: tokio::fs::File,
    path: TempPath,
}

/// A spool file failed: the path is the operator's business, so it goes to the log only.
fn spool_error(path: &TempPath, doing: &str, e: io::Error) -> ApiError {
    tracing::error!(path = %path.display(), %e, "{doing} a spool file failed");
    ApiError::internal(format!(
        "the server failed {doing} the upload's spool file; retry later"
    ))
}

pub struct Ingest;

pub enum IngestMsg {
    Chunk(Bytes, RpcReplyPort<ApiResult<()>>),
    Finish(Option<Durability>, RpcReplyPort<ApiResult<ImageRecord>>),
}

pub struct IngestArgs {
    deps: Arc<UploadDeps>,
    tenant: TenantId,
    spool: Spool,
}

pub struct IngestState {
    deps: Arc<UploadDeps>,
    tenant: TenantId,
    spool: Option<Spool>,
    hasher: Sha256,
    /// The body's first bytes, until there are enough to sniff its format.
    head: Vec<u8>,
    len: u64,
    sniffed: bool,
}

impl Actor for Ingest {
    type Msg = IngestMsg;
    type State = IngestState;
    type Arguments = IngestArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<IngestMsg>,
        args: IngestArgs,
    ) -> Result<IngestState, ActorProcessingErr> {
        Ok(IngestState {
            deps: args.deps,
            tenant: args.tenant,
            spool: Some(args.spool),
            hasher: Sha256::new(),
            head: Vec::with_capacity(SNIFF_BYTES),
            len: 0,
            sniffed: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<IngestMsg>,
        msg: IngestMsg,
        state: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Chunk(chunk, reply) => {
                let taken = state.take(&chunk).await;
                if taken.is_err() {
                    myself.stop(None);
                }
                let _ = reply.send(taken);
            }
            IngestMsg::Finish(durability, reply) => {
                let _ = reply.send(state.finish(durability).await);
                myself.stop(None);
            }
        }
        Ok(())
    }
}

impl IngestState {
    async fn take(&mut self, chunk: &[u8]) -> ApiResult<()> {
        let limit = self.deps.max_body_bytes;
        if self.len + chunk.len() as u64 > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        let Some(spool) = self.spool.as_mut() else {
            return Err(ApiError::internal("the upload already ended"));
        };
        if !self.sniffed {
            let wanted = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..wanted]);
            if self.head.len() == SNIFF_BYTES {
                pixelmill_engine::sniff(&self.head)?;
                self.sniffed = true;
            }
        }
        let spooled = spool.file.write_all(chunk).await;
        spooled.map_err(|e| spool_error(&spool.path, "writing", e))?;
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }

    async fn finish(&mut self, durability: Option<Durability>) -> ApiResult<ImageRecord> {
        let durability = durability.unwrap_or(self.deps.durability);
        if durability == Durability::TwoRegions && self.deps.regional.is_none() {
            return Err(ApiError::bad_request(
                "durability regions=2 needs a node on its region's bucket with other regions to \
                 copy to (--region and --blob s3://); upload with Pixelmill-Durability: local",
            ));
        }
        if self.len == 0 {
            return Err(ApiError::bad_request(
                "the body is empty; send the image bytes as the body or as the multipart field `file`",
            ));
        }
        let mut spool = self
            .spool
            .take()
            .ok_or_else(|| ApiError::internal("the upload already ended"))?;
        let flushed = spool.file.flush().await;
        flushed.map_err(|e| spool_error(&spool.path, "writing", e))?;
        // The body is all here: from now on the upload costs CPU, memory and the store's time.
        let _slot = tokio::time::timeout(SLOT_WAIT, self.deps.slots.acquire())
            .await
            .map_err(|_| {
                ApiError::overloaded(
                    "every upload slot stayed busy validating and storing other uploads; retry \
                     after the Retry-After delay",
                    1,
                )
            })?
            .map_err(|_| ApiError::internal("the upload role is shutting down; retry"))?;
        let file = spool.file.into_std().await;
        let limits = self.deps.limits;
        let checked = tokio::task::spawn_blocking(move || inspect_file(&file, &limits))
            .await
            .map_err(|e| ApiError::internal(format!("image validation crashed: {e}")))?;
        let (body, info) = checked.map_err(|e| spool_error(&spool.path, "reading back", e))?;
        let info = info?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let blob_key = BlobKey::original(&sha256);
        store(self.deps.blob.writer().await?, &body, &blob_key).await?;
        drop(body);
        drop(spool.path);
        if let (Durability::TwoRegions, Some(regional)) = (durability, &self.deps.regional) {
            let region = regional
                .second_copy(&blob_key, self.len)
                .await
                .map_err(|e| {
                    ApiError::overloaded(
                        format!(
                        "the upload is stored in this region, but no second region took a copy \
                         ({e}), so it is not acknowledged; retry, or upload with \
                         Pixelmill-Durability: local"
                    ),
                        2,
                    )
                })?;
            tracing::debug!(blob = %blob_key, %region, "second copy stored");
        }
        let record = ImageRecord {
            tenant: self.tenant.clone(),
            id: ImageId::generate(),
            format: info.format,
            width: info.width,
            height: info.height,
            frames: info.frames,
            bytes: self.len,
            sha256,
            blob_key,
            created_at: now_ms(),
            blurhash: Some(info.blurhash),
        };
        self.deps.meta.put_image(&record, durability).await?;
        Ok(record)
    }
}

type Inspected = Result<pixelmill_engine::ImageInfo, pixelmill_engine::EngineError>;

/// Decodes the spooled body completely within `limits`, reading it through a memory map, which
/// is handed back for the blob write.
fn inspect_file(file: &std::fs::File, limits: &Limits) -> io::Result<(memmap2::Mmap, Inspected)> {
    // Sound because the file is this upload's own spool file: nothing else writes or truncates
    // it while it is mapped.
    #[allow(unsafe_code)]
    let body = unsafe { memmap2::Mmap::map(file)? };
    let inspected = pixelmill_engine::inspect(&body, limits);
    Ok((body, inspected))
}

/// Writes `body` through `writer` and publishes it under `key`; on failure nothing is published.
async fn store(mut writer: Box<dyn BlobWriter>, body: &[u8], key: &BlobKey) -> ApiResult<()> {
    for chunk in body.chunks(WRITE_CHUNK) {
        if let Err(e) = writer.write(chunk).await {
            let _ = writer.abort().await;
            return Err(e.into());
        }
    }
    Ok(writer.commit(key).await?)
}

/// The API's handle on the role: the actor as it last started (the supervisor restarts it), per
/// node rather than by a process-wide name, so several nodes run in one process.
#[derive(Clone, Default)]
pub struct UploadHandle {
    role: Arc<RwLock<Option<ActorRef<UploadMsg>>>>,
}

#[async_trait]
impl Uploads for UploadHandle {
    async fn open(&self, tenant: TenantId) -> ApiResult<Box<dyn UploadSession>> {
        let role = self.role.read().unwrap().clone();
        let role = role
            .filter(|r| r.get_status() == ActorStatus::Running)
            .ok_or_else(|| {
                ApiError::overloaded("the upload role is restarting; retry in a moment", 1)
            })?;
        let ingest = answer(
            role.call(|reply| UploadMsg::Open(tenant, reply), None)
                .await,
        )??;
        Ok(Box::new(IngestSession { ingest }))
    }
}

struct IngestSession {
    ingest: ActorRef<IngestMsg>,
}

#[async_trait]
impl UploadSession for IngestSession {
    async fn push(&mut self, chunk: Bytes) -> ApiResult<()> {
        answer(
            self.ingest
                .call(|reply| IngestMsg::Chunk(chunk, reply), None)
                .await,
        )?
    }

    async fn finish(self: Box<Self>, durability: Option<Durability>) -> ApiResult<ImageRecord> {
        let finished = self
            .ingest
            .call(|reply| IngestMsg::Finish(durability, reply), None)
            .await;
        answer(finished)?
    }
}

impl Drop for IngestSession {
    /// An upload abandoned part-way (the client went away) discards what it staged.
    fn drop(&mut self) {
        self.ingest.stop(None);
    }
}

/// A call to an actor that died (a panic in an upload) is the server's failure, said plainly.
fn answer<T, E>(result: Result<CallResult<T>, E>) -> ApiResult<T> {
    match result {
        Ok(CallResult::Success(value)) => Ok(value),
        _ => Err(ApiError::internal(
            "the upload stopped unexpectedly; send it again",
        )),
    }
}
