//! The `upload` role: admits uploads (at most `max_uploads` at once; beyond that new ones get 503
//! `overloaded`) and runs each in its own short-lived `Ingest` actor, which streams the body into a
//! staged blob while hashing it, refuses it as soon as it passes the byte limit or its first bytes are
//! no known format, and publishes it under its content address only after the engine has decoded it
//! completely within the limits. An upload that fails, even by a panic, takes only its own actor
//! down, and its staged data with it.
//!
//! The body is never held in memory: besides the blob store's writer (which holds at most one S3
//! part) it goes to a spool file under `<data_dir>/spool`, which the decode check maps at the
//! end. The decode then reads the body from the page cache rather than from the heap, so what an
//! upload costs the process is its pixels, bounded by the limits, not its size in bytes.

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
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// Bytes enough for every magic number the engine sniffs.
const SNIFF_BYTES: usize = 32;

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
    pub max_uploads: usize,
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
        if state.in_progress >= state.deps.max_uploads {
            let _ = reply.send(Err(ApiError::overloaded(
                format!("{} uploads are in progress, the most this node takes at once; retry after the Retry-After delay", state.in_progress),
                1,
            )));
            return Ok(());
        }
        let opened = match open_stores(&state.deps).await {
            Ok((writer, spool)) => {
                let args = IngestArgs {
                    deps: state.deps.clone(),
                    tenant,
                    writer,
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

/// The blob store's writer and a spool file for one upload.
async fn open_stores(deps: &UploadDeps) -> ApiResult<(Box<dyn BlobWriter>, Spool)> {
    let dir = deps.spool_dir.clone();
    let created = tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(dir))
        .await
        .map_err(|e| ApiError::internal(format!("could not start the upload: {e}")))?;
    let (file, path) = created
        .map_err(|e| {
            ApiError::internal(format!(
                "could not create a spool file in {}: {e}; check that the data dir is writable \
                 and has space",
                deps.spool_dir.display()
            ))
        })?
        .into_parts();
    let writer = deps.blob.writer().await?;
    Ok((
        writer,
        Spool {
            file: tokio::fs::File::from_std(file),
            path,
        },
    ))
}

/// An upload's body on local disk, deleted when dropped.
struct Spool {
    file: tokio::fs::File,
    path: TempPath,
}

impl Spool {
    fn io_error(&self, doing: &str, e: io::Error) -> ApiError {
        ApiError::internal(format!(
            "{doing} the spool file {}: {e}; check the data dir's free space",
            self.path.display()
        ))
    }
}

pub struct Ingest;

pub enum IngestMsg {
    Chunk(Bytes, RpcReplyPort<ApiResult<()>>),
    Finish(Option<Durability>, RpcReplyPort<ApiResult<ImageRecord>>),
}

pub struct IngestArgs {
    deps: Arc<UploadDeps>,
    tenant: TenantId,
    writer: Box<dyn BlobWriter>,
    spool: Spool,
}

pub struct IngestState {
    deps: Arc<UploadDeps>,
    tenant: TenantId,
    writer: Option<Box<dyn BlobWriter>>,
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
            writer: Some(args.writer),
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

    async fn post_stop(
        &self,
        _myself: ActorRef<IngestMsg>,
        state: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(writer) = state.writer.take() {
            let _ = writer.abort().await;
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
        let (Some(writer), Some(spool)) = (self.writer.as_mut(), self.spool.as_mut()) else {
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
        spooled.map_err(|e| spool.io_error("writing", e))?;
        writer.write(chunk).await?;
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
        flushed.map_err(|e| spool.io_error("writing", e))?;
        let file = spool.file.into_std().await;
        let limits = self.deps.limits;
        let checked = tokio::task::spawn_blocking(move || inspect_file(&file, &limits))
            .await
            .map_err(|e| ApiError::internal(format!("image validation crashed: {e}")))?;
        let info = checked
            .map_err(|e| ApiError::internal(format!("reading the spool file back: {e}")))??;
        drop(spool.path);
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let blob_key = BlobKey::original(&sha256);
        let writer = self
            .writer
            .take()
            .ok_or_else(|| ApiError::internal("the upload already ended"))?;
        writer.commit(&blob_key).await?;
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

/// Decodes the spooled body completely within `limits`, reading it through a memory map.
fn inspect_file(
    file: &std::fs::File,
    limits: &Limits,
) -> io::Result<Result<pixelmill_engine::ImageInfo, pixelmill_engine::EngineError>> {
    // Sound because the file is this upload's own spool file: nothing else writes or truncates
    // it while it is mapped.
    #[allow(unsafe_code)]
    let body = unsafe { memmap2::Mmap::map(file)? };
    Ok(pixelmill_engine::inspect(&body, limits))
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
