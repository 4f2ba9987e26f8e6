//! Blobs across regions. `RegionalBlobs` is the `BlobStore` of a node whose blobs are its region's
//! bucket: writes go to that bucket and, once committed, are queued for replication (before the
//! caller acknowledges anything); a read that misses there fetches from a region that has the blob
//! (read-through), so a download or a job adopted here works before replication is done; a delete
//! reaches every region. The `Replicator` role copies each queued blob to every peer region's
//! bucket, records each copy, and retries a failing peer with backoff until it is done.
//!
//! Renditions (`render/`) are a per-region cache: never replicated, never read through.

use crate::looping::{LoopTask, Pace};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use pixelmill_blob::{BlobError, BlobMeta, BlobRead, BlobResult, BlobStore, BlobWriter};
use pixelmill_core::{now_ms, BlobKey, ReplicationTask};
use pixelmill_meta::{MetaError, MetaStore};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Another region's bucket.
#[derive(Clone)]
pub struct Peer {
    pub region: String,
    pub store: Arc<dyn BlobStore>,
}

/// What replication and read-through did, for `/metrics`.
#[derive(Clone)]
pub struct ReplicationMetrics {
    lag: GaugeVec,
    copies: IntCounterVec,
    bytes: IntCounterVec,
    read_through: IntCounterVec,
}

impl ReplicationMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let lag = GaugeVec::new(
            Opts::new(
                "pixelmill_replication_lag_seconds",
                "Age of the oldest blob this region wrote that a peer region does not hold yet (0: none)",
            ),
            &["peer"],
        )?;
        let copies = IntCounterVec::new(
            Opts::new(
                "pixelmill_replication_copies_total",
                "Blobs replicated to a peer region, by outcome (copied, present, failed)",
            ),
            &["peer", "outcome"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "pixelmill_replication_bytes_total",
                "Bytes copied to each peer region",
            ),
            &["peer"],
        )?;
        let read_through = IntCounterVec::new(
            Opts::new(
                "pixelmill_blob_read_through_total",
                "Reads of a blob this region lacked, by the region asked and outcome (hit, miss, error)",
            ),
            &["region", "outcome"],
        )?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(copies.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(read_through.clone()))?;
        Ok(Self {
            lag,
            copies,
            bytes,
            read_through,
        })
    }
}

/// Whether blobs under `key` belong in every region (originals, outputs) rather than being this
/// region's cache (renditions).
fn replicated(key: &BlobKey) -> bool {
    !key.as_str().starts_with(BlobKey::RENDITION_PREFIX)
}

struct Shared {
    region: String,
    local: Arc<dyn BlobStore>,
    peers: Vec<Peer>,
    meta: Arc<dyn MetaStore>,
    /// Wakes the replicator when a blob is queued.
    queued: Arc<Notify>,
    metrics: ReplicationMetrics,
    /// Peers that failed a copy lately, and until when they are left alone: the replicator
    /// backs off from them, and a second copy asks them last.
    backoff: Mutex<HashMap<String, Backoff>>,
}

impl Shared {
    /// Queues a committed blob for the replicator, once per peer. An error here fails the write
    /// it follows, so nothing is acknowledged that would never reach the other regions.
    async fn queue(&self, key: &BlobKey) -> BlobResult<()> {
        if !replicated(key) {
            return Ok(());
        }
        let queued_at = now_ms();
        for peer in &self.peers {
            let task = ReplicationTask {
                blob_key: key.clone(),
                source: self.region.clone(),
                target: peer.region.clone(),
                queued_at,
            };
            let queued = self.meta.queue_replication(&task).await;
            queued.map_err(|e| meta_error("queuing a blob for replication", e))?;
        }
        self.queued.notify_one();
        Ok(())
    }

    fn backing_off(&self, peer: &Peer) -> bool {
        let backoff = self.backoff.lock().expect("backoff lock");
        backoff
            .get(&peer.region)
            .is_some_and(|b| b.retry_at > Instant::now())
    }

    /// Notes whether a copy to `peer` worked: a failure backs it off a while longer.
    fn record(&self, peer: &Peer, ok: bool) {
        let mut backoff = self.backoff.lock().expect("backoff lock");
        if ok {
            backoff.remove(&peer.region);
            return;
        }
        let entry = backoff.entry(peer.region.clone()).or_insert(Backoff {
            failures: 0,
            retry_at: Instant::now(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let wait = FIRST_RETRY
            .saturating_mul(1u32 << entry.failures.min(16))
            .min(LAST_RETRY);
        // Jitter, so the regions' replicators do not retry a recovering peer in step.
        let wait = wait.mul_f64(rand::random_range(0.5..1.0));
        entry.retry_at = Instant::now() + wait;
    }

    /// Streams `key` from this region to `peer`: the bytes copied, or `None` when the peer has
    /// it already (content addresses: the same key is the same bytes).
    async fn copy(&self, key: &BlobKey, peer: &Peer) -> BlobResult<Option<u64>> {
        if peer.store.head(key).await?.is_some() {
            return Ok(None);
        }
        let mut read = self.local.read(key, None).await?;
        let mut writer = peer.store.writer().await?;
        while let Some(chunk) = read.body.try_next().await? {
            writer.write(&chunk).await?;
        }
        let len = writer.len();
        writer.commit(key).await?;
        Ok(Some(len))
    }

    /// The peers to ask for `key`: those recorded as holding it first, then the rest (a record
    /// written moments ago in another datacenter may not be visible here yet).
    async fn peers_for(&self, key: &BlobKey) -> Vec<&Peer> {
        let holders = self.meta.blob_replicas(key).await.unwrap_or_else(|err| {
            tracing::warn!(%err, blob = %key, "cannot read where the blob is; asking every region");
            Vec::new()
        });
        let (mut first, rest): (Vec<&Peer>, Vec<&Peer>) =
            self.peers.iter().partition(|p| holders.contains(&p.region));
        first.extend(rest);
        first
    }

    /// `op` on the local store, or, when the blob is not here, on the first peer that has it.
    async fn read_through<T>(
        &self,
        key: &BlobKey,
        op: impl Fn(Arc<dyn BlobStore>) -> BoxFuture<'static, BlobResult<T>>,
    ) -> BlobResult<T> {
        match op(self.local.clone()).await {
            Err(BlobError::NotFound(_)) if replicated(key) => {}
            done => return done,
        }
        let mut outcome = BlobError::NotFound(key.to_string());
        for peer in self.peers_for(key).await {
            let count = |what| {
                self.metrics
                    .read_through
                    .with_label_values(&[peer.region.as_str(), what])
                    .inc()
            };
            match op(peer.store.clone()).await {
                Ok(found) => {
                    count("hit");
                    tracing::debug!(blob = %key, region = %peer.region, "read through to another region");
                    return Ok(found);
                }
                Err(BlobError::NotFound(_)) => count("miss"),
                Err(err) => {
                    count("error");
                    tracing::warn!(%err, blob = %key, region = %peer.region, "read-through failed");
                    outcome = err;
                }
            }
        }
        Err(outcome)
    }
}

fn meta_error(doing: &str, err: MetaError) -> BlobError {
    let detail = format!("{doing}: {err}");
    if err.is_retryable() {
        BlobError::Unavailable(detail)
    } else {
        BlobError::Refused(detail)
    }
}

/// The node's blob store when its region replicates (see the module doc).
#[derive(Clone)]
pub struct RegionalBlobs {
    shared: Arc<Shared>,
}

impl RegionalBlobs {
    pub fn new(
        region: String,
        local: Arc<dyn BlobStore>,
        peers: Vec<Peer>,
        meta: Arc<dyn MetaStore>,
        metrics: ReplicationMetrics,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                region,
                local,
                peers,
                meta,
                queued: Arc::new(Notify::new()),
                metrics,
                backoff: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Copies a blob of `len` bytes just written here to one other region now, nearest first
    /// (the order of the peers; those failing lately last), and records the copy: the region
    /// that holds it. Each region gets a bounded time, so one that is unreachable costs an
    /// upload seconds, not its whole timeout. The replicator still copies the blob to the others
    /// (and finds it present in that one).
    pub async fn second_copy(&self, key: &BlobKey, len: u64) -> BlobResult<String> {
        let limit = SECOND_COPY_TIMEOUT + Duration::from_secs_f64(len as f64 / SECOND_COPY_RATE);
        let shared = &self.shared;
        let mut peers: Vec<&Peer> = shared.peers.iter().collect();
        // Peers that failed lately go last (the sort is stable: nearest first otherwise).
        peers.sort_by_key(|p| shared.backing_off(p));
        let mut last = BlobError::Unavailable("this region has no peer region".into());
        for peer in peers {
            let copied = tokio::time::timeout(limit, shared.copy(key, peer)).await;
            let copied = copied.unwrap_or_else(|_| {
                Err(BlobError::Timeout(format!(
                    "copying to region {} took longer than {limit:?}",
                    peer.region
                )))
            });
            shared.record(peer, copied.is_ok());
            match copied {
                Ok(_) => {
                    let recorded = shared.meta.put_blob_replica(key, &peer.region).await;
                    recorded.map_err(|e| meta_error("recording the second copy", e))?;
                    return Ok(peer.region.clone());
                }
                Err(err) => {
                    tracing::warn!(%err, blob = %key, region = %peer.region, "no second copy there; trying the next region");
                    last = err;
                }
            }
        }
        Err(last)
    }

    /// The role that copies what this region writes to its peers.
    pub fn replicator(&self) -> Replicator {
        Replicator {
            shared: self.shared.clone(),
        }
    }
}

#[async_trait]
impl BlobStore for RegionalBlobs {
    async fn writer(&self) -> BlobResult<Box<dyn BlobWriter>> {
        Ok(Box::new(QueuingWriter {
            inner: self.shared.local.writer().await?,
            shared: self.shared.clone(),
        }))
    }

    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        self.shared.local.put(key, data).await?;
        self.shared.queue(key).await
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        let wanted = key.clone();
        self.shared
            .read_through(key, move |store| {
                let key = wanted.clone();
                async move { store.get(&key).await }.boxed()
            })
            .await
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> BlobResult<BlobRead> {
        let wanted = key.clone();
        self.shared
            .read_through(key, move |store| {
                let (key, range) = (wanted.clone(), range.clone());
                async move { store.read(&key, range).await }.boxed()
            })
            .await
    }

    async fn head(&self, key: &BlobKey) -> BlobResult<Option<BlobMeta>> {
        let found = self.holder(key).await;
        match found {
            Ok((_, meta)) => Ok(Some(meta)),
            Err(BlobError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Presigned by whichever region holds the blob: S3 signs without looking, so the URL must
    /// name a bucket the blob is in.
    async fn presigned_get(
        &self,
        key: &BlobKey,
        expires_in: Duration,
        content_type: &str,
    ) -> BlobResult<Option<String>> {
        let (store, _) = self.holder(key).await?;
        store.presigned_get(key, expires_in, content_type).await
    }

    /// Deletes the blob here and in every peer region. A peer that cannot be reached keeps its
    /// copy, and the replica records stay to say where it is; the failure is logged.
    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let shared = &self.shared;
        shared.local.delete(key).await?;
        if !replicated(key) {
            return Ok(());
        }
        let mut everywhere = true;
        for peer in &shared.peers {
            if let Err(err) = peer.store.delete(key).await {
                tracing::warn!(%err, blob = %key, region = %peer.region, "could not delete a replica; it stays in that region");
                everywhere = false;
            }
        }
        if everywhere {
            let forgotten = shared.meta.delete_blob_replicas(key).await;
            forgotten.map_err(|e| meta_error("forgetting a deleted blob's replicas", e))?;
        }
        Ok(())
    }

    async fn written_before(
        &self,
        prefix: &str,
        before_ms: i64,
        limit: usize,
    ) -> BlobResult<Vec<BlobKey>> {
        self.shared
            .local
            .written_before(prefix, before_ms, limit)
            .await
    }

    /// The region's own bucket only: another region being down does not make this one unready.
    async fn ping(&self) -> BlobResult<()> {
        self.shared.local.ping().await
    }
}

impl RegionalBlobs {
    /// The store that holds `key` (this region's first) and the blob's size there.
    async fn holder(&self, key: &BlobKey) -> BlobResult<(Arc<dyn BlobStore>, BlobMeta)> {
        let wanted = key.clone();
        self.shared
            .read_through(key, move |store| {
                let key = wanted.clone();
                async move {
                    match store.head(&key).await? {
                        Some(meta) => Ok((store, meta)),
                        None => Err(BlobError::NotFound(key.to_string())),
                    }
                }
                .boxed()
            })
            .await
    }
}

/// The local writer, queuing its blob for replication once committed.
struct QueuingWriter {
    inner: Box<dyn BlobWriter>,
    shared: Arc<Shared>,
}

#[async_trait]
impl BlobWriter for QueuingWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.inner.write(chunk).await
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    async fn commit(self: Box<Self>, key: &BlobKey) -> BlobResult<()> {
        self.inner.commit(key).await?;
        self.shared.queue(key).await
    }

    async fn abort(self: Box<Self>) -> BlobResult<()> {
        self.inner.abort().await
    }
}

/// How long a second copy may take in one peer before the next is asked (an upload waits on
/// it): this, plus the body's size at `SECOND_COPY_RATE` bytes a second.
const SECOND_COPY_TIMEOUT: Duration = Duration::from_secs(3);
const SECOND_COPY_RATE: f64 = 8.0 * 1024.0 * 1024.0;

/// Tasks read per peer and turn, and copied at once.
const BATCH: usize = 64;
const CONCURRENT_COPIES: usize = 8;
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// A peer that failed, and when it is tried again.
struct Backoff {
    failures: u32,
    retry_at: Instant,
}

/// Copies the blobs this region wrote to every peer region (see the module doc). Each peer has
/// its own queue and backoff, so one that is down delays no other.
pub struct Replicator {
    shared: Arc<Shared>,
}

impl Replicator {
    /// Copies `task`'s blob to its peer and records the copy; `false` when the copy failed and
    /// the task stays queued.
    async fn replicate(&self, task: &ReplicationTask, peer: &Peer) -> Result<bool, String> {
        let shared = &self.shared;
        let key = &task.blob_key;
        let count = |outcome| {
            shared
                .metrics
                .copies
                .with_label_values(&[peer.region.as_str(), outcome])
                .inc()
        };
        match shared.copy(key, peer).await {
            Ok(Some(bytes)) => {
                count("copied");
                let copied = shared
                    .metrics
                    .bytes
                    .with_label_values(&[peer.region.as_str()]);
                copied.inc_by(bytes);
            }
            Ok(None) => count("present"),
            // Gone from here: swept after its links expired, so there is nothing to copy.
            Err(BlobError::NotFound(_)) => {
                tracing::debug!(blob = %key, "a queued blob is gone; dropping its replication");
                let deleted = shared.meta.delete_replication(task).await;
                return deleted.map(|()| true).map_err(|e| e.to_string());
            }
            Err(err) => {
                count("failed");
                tracing::warn!(%err, blob = %key, region = %peer.region, "replication failed; retrying with backoff");
                return Ok(false);
            }
        }
        let recorded = shared.meta.put_blob_replica(key, &peer.region).await;
        recorded.map_err(|e| e.to_string())?;
        let deleted = shared.meta.delete_replication(task).await;
        deleted.map(|()| true).map_err(|e| e.to_string())
    }

    /// One batch of `peer`'s queue: whether it was full and all of it copied (more may wait).
    async fn serve(&self, peer: &Peer) -> Result<bool, String> {
        let shared = &self.shared;
        let tasks = shared
            .meta
            .pending_replications(&shared.region, &peer.region, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let copies: Vec<_> = match shared.backing_off(peer) {
            true => Vec::new(),
            false => tasks
                .iter()
                .map(|task| self.replicate(task, peer))
                .collect(),
        };
        let outcomes: Vec<Result<bool, String>> = futures::stream::iter(copies)
            .buffered(CONCURRENT_COPIES)
            .collect()
            .await;
        if let Some(Err(err)) = outcomes.iter().find(|o| o.is_err()) {
            return Err(err.clone());
        }
        let copied = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        if !outcomes.is_empty() {
            shared.record(peer, copied == outcomes.len());
        }
        // Tasks come oldest first, so the oldest still queued gives the lag.
        let oldest_pending = tasks
            .iter()
            .enumerate()
            .find(|(i, _)| !matches!(outcomes.get(*i), Some(Ok(true))))
            .map(|(_, task)| task.queued_at);
        let lag_ms = oldest_pending.map_or(0, |at| (now_ms() - at).max(0));
        let lag = shared
            .metrics
            .lag
            .with_label_values(&[peer.region.as_str()]);
        lag.set(lag_ms as f64 / 1000.0);
        Ok(tasks.len() == BATCH && copied == BATCH)
    }
}

#[async_trait]
impl LoopTask for Replicator {
    async fn turn(&self) -> Result<Pace, String> {
        let mut busy = false;
        for peer in &self.shared.peers {
            busy |= self.serve(peer).await?;
        }
        Ok(if busy { Pace::Busy } else { Pace::Idle })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.shared.queued.clone())
    }
}
