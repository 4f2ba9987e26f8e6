//! `ScyllaMetaStore`: the `MetaStore` on a CQL cluster. Statements are prepared once at start-up,
//! each with the consistency of its operation class (see `Consistencies`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use futures::TryStreamExt;
use pixelmill_core::{
    now_ms, ApiKeyId, ApiKeyRecord, BackoffConfig, BlobKey, Durability, EventId, Heartbeat,
    IdempotencyRecord, ImageId, ImageRecord, JobId, JobRecord, LinkRecord, LinkToken, OutboxEvent,
    RegionState, ReplicationTask, TenantId, TenantRecord, UnixMillis,
};
use pixelmill_meta::{Fenced, Inserted, MetaError, MetaResult, MetaStore};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::policies::speculative_execution::SimpleSpeculativeExecutionPolicy;
use scylla::response::query_result::QueryResult;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::{CqlValue, Row};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{Level, ScyllaConfig, Serial};
use crate::error::{corrupt, from_execution, from_next_row, from_pager, unexpected};
use crate::schema::{
    migrate, API_KEY_BUCKETS, JOB_OWNER_SHARDS, LINK_EXPIRY_SHARDS, OUTBOX_SHARDS,
    REPLICATION_SHARDS,
};

const DAY_MS: i64 = 86_400_000;
/// Read-then-compare-and-set rounds of a conditional job write before it gives up. Only the
/// lease holder, the node settling its expiry and regions adopting it write a job at once, so a
/// second round is rare.
const FENCE_ROUNDS: u32 = 8;
/// Serial reads that settle a timed-out round, with doubling waits from 50 ms (about 1–1.5 s):
/// under contention (regions racing for one job) the read's own Paxos round can time out too.
const SETTLE_ATTEMPTS: u32 = 5;
const SETTLE_BACKOFF: BackoffConfig = BackoffConfig {
    base: Duration::from_millis(50),
    max: Duration::from_secs(1),
    jitter: 0.5,
};
/// How long a node's heartbeat row outlives its last beat.
const HEARTBEAT_TTL_SECS: i32 = 86_400;

/// Metadata in a ScyllaDB (or Apache Cassandra) cluster.
pub struct ScyllaMetaStore {
    session: Session,
    statements: Statements,
    config: ScyllaConfig,
}

impl std::fmt::Debug for ScyllaMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaMetaStore")
            .field("hosts", &self.config.hosts)
            .field("keyspace", &self.config.keyspace)
            .finish_non_exhaustive()
    }
}

impl ScyllaMetaStore {
    /// The job's body by a serial read (which sees every committed compare-and-set and completes
    /// any in flight), retried with backoff while the read's own round times out.
    async fn job_serial(&self, what: &str, key: (&str, &str)) -> MetaResult<Option<String>> {
        let mut attempt = 1;
        loop {
            match self
                .raw_body(what, &self.statements.get_job_serial, key)
                .await
            {
                Err(MetaError::Timeout(_)) if attempt < SETTLE_ATTEMPTS => {
                    tokio::time::sleep(SETTLE_BACKOFF.delay(attempt)).await;
                    attempt += 1;
                }
                read => return read,
            }
        }
    }

    /// Replaces the job with `decide(stored)` by compare-and-set on its body at the job serial
    /// level: `Ok(record written)`, or `Err(record as stored)` when `decide` refuses (`None`: the
    /// job is gone). The owner's index of unfinished jobs follows.
    async fn cas_job(
        &self,
        what: &str,
        key: (&str, &str),
        decide: impl Fn(&JobRecord) -> Option<JobRecord>,
    ) -> MetaResult<Result<JobRecord, Option<JobRecord>>> {
        // A compare-and-set that timed out may still have applied: what it wrote (and what it
        // replaced), so the next serial read can tell that it did, even when `decide` would
        // refuse the record it made (an adoption finds the job no longer `from`'s).
        let mut in_doubt: Option<(String, JobRecord, JobRecord)> = None;
        for _ in 0..FENCE_ROUNDS {
            let Some(current) = self.job_serial(what, key).await? else {
                return Ok(Err(None));
            };
            if let Some((body, before, next)) = in_doubt.take() {
                if current == body {
                    self.unlist_stale(what, Some(&before), &next).await?;
                    return Ok(Ok(next));
                }
            }
            let stored: JobRecord = serde_json::from_str(&current).map_err(|e| corrupt(what, e))?;
            let Some(next) = decide(&stored) else {
                return Ok(Err(Some(stored)));
            };
            let body = json(&next);
            if current == body {
                return Ok(Ok(next)); // an earlier write of this very record
            }
            self.list_owner(what, Some(&stored), &next).await?;
            let values = (&body, next.owner.as_deref(), key.0, key.1, &current);
            match self.run(what, &self.statements.cas_job, values).await {
                Ok(result) => {
                    if applied(what, result)?.0 {
                        self.unlist_stale(what, Some(&stored), &next).await?;
                        return Ok(Ok(next));
                    }
                    // Changed since the read (another write of this attempt's, a later lease's,
                    // an adoption): read again and decide on what is there now.
                }
                // Maybe applied: the next serial read settles it.
                Err(MetaError::Timeout(_)) => in_doubt = Some((body, stored, next)),
                Err(err) => return Err(err),
            }
        }
        Err(MetaError::Timeout(format!(
            "{what}: the job changed under each of {FENCE_ROUNDS} compare-and-sets; try again"
        )))
    }

    /// `job`'s row in `jobs_by_owner` (owner, shard, tenant, id), if it has an owner.
    fn owner_row(job: &JobRecord) -> Option<(String, i32, String, String)> {
        let owner = job.owner.clone()?;
        let shard = shard_of(job.id.as_str(), JOB_OWNER_SHARDS);
        Some((
            owner,
            shard,
            job.tenant.as_str().to_owned(),
            job.id.as_str().to_owned(),
        ))
    }

    /// Before `next` replaces `before`: lists it under its owner while it is unfinished. Listing
    /// first keeps the index's invariant through a crash between the two writes: every stored
    /// job that is not final is listed under its owner, so its owner's requeue pass or an
    /// adopter finds it; a row the write never followed only costs those passes one read.
    async fn list_owner(
        &self,
        what: &str,
        before: Option<&JobRecord>,
        next: &JobRecord,
    ) -> MetaResult<()> {
        let listed = before.is_some_and(|b| b.owner == next.owner && !b.status.is_final());
        if let Some(row) = Self::owner_row(next).filter(|_| !listed && !next.status.is_final()) {
            self.run(what, &self.statements.list_job, row).await?;
        }
        Ok(())
    }

    /// After `next` replaced `before`: drops the rows that no longer hold, `before`'s owner's if
    /// the owner changed and `next`'s own once it is final.
    async fn unlist_stale(
        &self,
        what: &str,
        before: Option<&JobRecord>,
        next: &JobRecord,
    ) -> MetaResult<()> {
        let new = Self::owner_row(next);
        let old = before.and_then(Self::owner_row);
        let stale = [
            old.filter(|o| Some(o) != new.as_ref()),
            new.filter(|_| next.status.is_final()),
        ];
        for row in stale.into_iter().flatten() {
            self.run(what, &self.statements.unlist_job, row).await?;
        }
        Ok(())
    }

    /// Connects, applies the schema migrations the keyspace lacks, and prepares every statement.
    pub async fn open(config: ScyllaConfig) -> MetaResult<Self> {
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &config.local_dc {
            // A region answers from its own datacenter; LOCAL_* levels count its replicas only,
            // and failing over to another region is the clients' and geo-DNS's job, not ours.
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .load_balancing_policy(policy.build())
            .request_timeout(Some(config.request_timeout))
            // Retries only where a retry likely helps: an unavailable replica set once on
            // another coordinator, a read whose replicas answered without data, and idempotent
            // statements (the reads) after a broken connection or an overloaded node. Paxos
            // rounds are never retried by the driver; the store settles their timeouts itself.
            .retry_policy(Arc::new(DefaultRetryPolicy::new()))
            // Only statements marked idempotent (the reads) are ever sent twice.
            .speculative_execution_policy(Some(Arc::new(SimpleSpeculativeExecutionPolicy {
                max_retry_count: 1,
                retry_interval: Duration::from_millis(100),
            })))
            .build();
        let session = SessionBuilder::new()
            .known_nodes(&config.hosts)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| {
                MetaError::Unavailable(format!(
                    "cannot connect to the CQL cluster at {} ({e}); check that it runs and that \
                     --meta names its hosts",
                    config.hosts.join(",")
                ))
            })?;
        migrate(&session, &config).await?;
        let statements = Statements::prepare(&session, &config).await?;
        Ok(Self {
            session,
            statements,
            config,
        })
    }

    /// Runs the migrations only (`pixelmill migrate`): the versions this call applied.
    pub async fn migrate_only(config: &ScyllaConfig) -> MetaResult<Vec<i32>> {
        let session = SessionBuilder::new()
            .known_nodes(&config.hosts)
            .build()
            .await
            .map_err(|e| {
                MetaError::Unavailable(format!("cannot connect to {}: {e}", config.hosts.join(",")))
            })?;
        migrate(&session, config).await
    }

    async fn run(
        &self,
        what: &str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> MetaResult<QueryResult> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(|e| from_execution(what, e))
    }

    /// The JSON bodies of the rows `statement` returns, parsed; fetched page by page (the
    /// statement's page size), so a large partition never arrives as one response.
    async fn bodies<T: DeserializeOwned>(
        &self,
        what: &str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> MetaResult<Vec<T>> {
        let mut rows = self
            .session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(|e| from_pager(what, e))?
            .rows_stream::<(String,)>()
            .map_err(|e| unexpected(what, e))?;
        let mut bodies = Vec::new();
        while let Some((body,)) = rows.try_next().await.map_err(|e| from_next_row(what, e))? {
            bodies.push(serde_json::from_str(&body).map_err(|e| corrupt(what, e))?);
        }
        Ok(bodies)
    }

    /// The JSON body of the one row a read by primary key returns, parsed. One request, without
    /// the pager's background task: this is the hot path (jobs, links).
    async fn body<T: DeserializeOwned>(
        &self,
        what: &str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> MetaResult<Option<T>> {
        self.raw_body(what, statement, values)
            .await?
            .map(|body| serde_json::from_str(&body).map_err(|e| corrupt(what, e)))
            .transpose()
    }

    /// The `body` column of the first row, as stored.
    async fn raw_body(
        &self,
        what: &str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> MetaResult<Option<String>> {
        let rows = self
            .run(what, statement, values)
            .await?
            .into_rows_result()
            .map_err(|e| unexpected(what, e))?;
        let row = rows
            .maybe_first_row::<(Option<String>,)>()
            .map_err(|e| unexpected(what, e))?;
        Ok(row.and_then(|(body,)| body))
    }

    async fn batch(
        &self,
        what: &str,
        batch: &Batch,
        values: impl scylla::serialize::batch::BatchValues,
    ) -> MetaResult<()> {
        self.session
            .batch(batch, values)
            .await
            .map(drop)
            .map_err(|e| from_execution(what, e))
    }

    /// The `limit` earliest records by `time` across the shards of a sharded scan: every shard
    /// is read at once (each gives its own earliest `limit`, so the union holds the overall
    /// earliest), then merged.
    async fn earliest_of_shards<T, V>(
        &self,
        what: &str,
        statement: &PreparedStatement,
        shards: i32,
        values: impl Fn(i32) -> V,
        limit: usize,
        time: impl Fn(&T) -> UnixMillis,
    ) -> MetaResult<Vec<T>>
    where
        T: DeserializeOwned,
        V: scylla::serialize::row::SerializeRow,
    {
        let reads = (0..shards).map(|shard| self.bodies::<T>(what, statement, values(shard)));
        let mut earliest: Vec<T> = try_join_all(reads).await?.into_iter().flatten().collect();
        earliest.sort_by_key(|record| time(record));
        earliest.truncate(limit);
        Ok(earliest)
    }

    /// A link's TTL in seconds, rounded up: its rows outlive its expiry by `link_retention`.
    fn link_ttl(&self, expires_at: UnixMillis) -> i32 {
        let until = expires_at + self.config.link_retention.as_millis() as i64 - now_ms();
        ((until + 999) / 1000).clamp(1, i32::MAX.into()) as i32
    }
}

fn json<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).expect("records serialize to JSON")
}

/// The UTC day a time falls on: with a shard, the partition of `links_by_expiry`.
fn day_of(ms: UnixMillis) -> i32 {
    ms.div_euclid(DAY_MS) as i32
}

/// The shard of an id among `shards`: a stable hash of it.
fn shard_of(id: &str, shards: i32) -> i32 {
    let hash = id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (hash % shards as u32) as i32
}

/// Write timestamps for a batch that first deletes a row's old index entries and then writes
/// its new ones, possibly under the same keys: within one timestamp a delete wins, so the
/// writes go one microsecond later.
fn delete_then_write() -> (i64, i64) {
    let micros = now_ms() * 1000;
    (micros, micros + 1)
}

#[async_trait]
impl MetaStore for ScyllaMetaStore {
    async fn put_image(&self, image: &ImageRecord, durability: Durability) -> MetaResult<()> {
        let s = &self.statements;
        let statement = match durability {
            Durability::Local => &s.put_image,
            Durability::TwoRegions => &s.put_image_durable,
        };
        let values = (image.tenant.as_str(), image.id.as_str(), json(image));
        self.run("storing an image", statement, values)
            .await
            .map(drop)
    }

    async fn get_image(&self, tenant: &TenantId, id: &ImageId) -> MetaResult<Option<ImageRecord>> {
        let what = "reading an image";
        let s = &self.statements;
        let values = (tenant.as_str(), id.as_str());
        let found = self.body(what, &s.get_image, values).await?;
        match (&found, &s.get_image_fallback) {
            (None, Some(fallback)) => self.body(what, fallback, values).await,
            _ => Ok(found),
        }
    }

    async fn put_job(&self, job: &JobRecord) -> MetaResult<()> {
        let what = "storing a job";
        let s = &self.statements;
        let values = (
            job.tenant.as_str(),
            job.id.as_str(),
            json(job),
            job.owner.as_deref(),
        );
        self.list_owner(what, None, job).await?;
        self.run(what, &s.put_job, values).await?;
        self.unlist_stale(what, None, job).await
    }

    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> MetaResult<Option<JobRecord>> {
        let s = &self.statements;
        self.body("reading a job", &s.get_job, (tenant.as_str(), id.as_str()))
            .await
    }

    async fn put_job_fenced(&self, job: &JobRecord) -> MetaResult<Fenced> {
        let key = (job.tenant.as_str(), job.id.as_str());
        let written = self
            .cas_job("storing a job attempt", key, |stored| {
                stored.admits(job).then(|| job.clone())
            })
            .await?;
        Ok(written.map_or_else(
            |stored| Fenced::Refused(stored.map(Box::new)),
            |_| Fenced::Stored,
        ))
    }

    async fn adopt_job(
        &self,
        tenant: &TenantId,
        id: &JobId,
        from: &str,
        to: &str,
    ) -> MetaResult<Option<JobRecord>> {
        let what = "adopting a job";
        // `cas_job` lists the job as `to`'s before its claim: a claim whose answer is lost
        // (every settling read timed out) is still found by `to`'s own pass over its jobs.
        let claimed = self
            .cas_job(what, (tenant.as_str(), id.as_str()), |stored| {
                let adoptable = stored.owner.as_deref() == Some(from) && !stored.status.is_final();
                adoptable.then(|| stored.adopted_by(to))
            })
            .await?;
        match claimed {
            Ok(adopted) => Ok(Some(adopted)),
            Err(stored) => {
                // Not `to`'s: drop the row a round that lost the race may have left.
                let ours = stored
                    .as_ref()
                    .is_some_and(|s| s.owner.as_deref() == Some(to));
                if !ours {
                    let shard = shard_of(id.as_str(), JOB_OWNER_SHARDS);
                    let row = (to, shard, tenant.as_str(), id.as_str());
                    self.run(what, &self.statements.unlist_job, row).await?;
                }
                Ok(None)
            }
        }
    }

    async fn unfinished_jobs(
        &self,
        owner: &str,
        limit: usize,
    ) -> MetaResult<Vec<(TenantId, JobId)>> {
        let what = "listing a region's unfinished jobs";
        let reads = (0..JOB_OWNER_SHARDS).map(|shard| async move {
            let rows = self
                .run(
                    what,
                    &self.statements.owned_jobs,
                    (owner, shard, limit as i32),
                )
                .await?
                .into_rows_result()
                .map_err(|e| unexpected(what, e))?;
            rows.rows::<(String, String)>()
                .map_err(|e| unexpected(what, e))?
                .map(|row| row.map_err(|e| unexpected(what, e)))
                .collect::<MetaResult<Vec<_>>>()
        });
        let mut jobs: Vec<(TenantId, JobId)> = try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .map(|(tenant, id)| (TenantId::new(tenant), JobId::from_string(&id)))
            .collect();
        jobs.truncate(limit);
        Ok(jobs)
    }

    async fn put_heartbeat(&self, beat: &Heartbeat) -> MetaResult<()> {
        let values = (
            beat.region.as_str(),
            beat.node as i64,
            json(beat),
            HEARTBEAT_TTL_SECS,
        );
        self.run(
            "storing a heartbeat",
            &self.statements.put_heartbeat,
            values,
        )
        .await
        .map(drop)
    }

    async fn heartbeats(&self, region: &str) -> MetaResult<Vec<Heartbeat>> {
        self.bodies(
            "reading a region's heartbeats",
            &self.statements.heartbeats,
            (region,),
        )
        .await
    }

    async fn put_region_state(&self, state: &RegionState) -> MetaResult<()> {
        let values = (state.region.as_str(), json(state));
        self.run(
            "storing a region's state",
            &self.statements.put_region_state,
            values,
        )
        .await
        .map(drop)
    }

    async fn region_state(&self, region: &str) -> MetaResult<Option<RegionState>> {
        self.body(
            "reading a region's state",
            &self.statements.region_state,
            (region,),
        )
        .await
    }

    async fn insert_idempotency_key(
        &self,
        record: &IdempotencyRecord,
        now: UnixMillis,
    ) -> MetaResult<Inserted<IdempotencyRecord>> {
        let what = "checking an idempotency key";
        let s = &self.statements;
        // Cassandra expires the row by its own clock; `now` is the caller's, so a key past its
        // expiry by `now` but not yet dropped is replaced with a second compare-and-set.
        let ttl = ((record.expires_at - now_ms()) / 1000).clamp(1, i32::MAX.into()) as i32;
        let body = json(record);
        let (tenant, key) = (record.tenant.as_str(), record.key.as_str());
        // A serial read sees every committed compare-and-set and completes any in flight: it
        // settles a lost race, and a timed-out compare-and-set whose outcome is unknown.
        let settle = || async {
            let current: Option<IdempotencyRecord> =
                self.body(what, &s.get_idempotency, (tenant, key)).await?;
            match current {
                Some(current) if current == *record => Ok(Inserted::New),
                Some(current) => Ok(Inserted::Existing(current)),
                None => Err(MetaError::Timeout(format!(
                    "{what}: the key could not be stored in time; send the request again"
                ))),
            }
        };
        let insert = (tenant, key, &body, record.expires_at, ttl);
        let existing: IdempotencyRecord = match self.run(what, &s.insert_idempotency, insert).await
        {
            Ok(result) => match applied(what, result)? {
                (true, _) => return Ok(Inserted::New),
                (false, existing) => existing_body(what, existing)?,
            },
            Err(MetaError::Timeout(_)) => match settle().await? {
                Inserted::Existing(existing) if existing.expires_at <= now => existing,
                settled => return Ok(settled),
            },
            Err(err) => return Err(err),
        };
        if existing.expires_at > now {
            return Ok(Inserted::Existing(existing));
        }
        let replace = (
            ttl,
            &body,
            record.expires_at,
            tenant,
            key,
            existing.expires_at,
        );
        let replaced = match self.run(what, &s.replace_idempotency, replace).await {
            Ok(result) => applied(what, result)?.0,
            Err(MetaError::Timeout(_)) => false,
            Err(err) => return Err(err),
        };
        if replaced {
            return Ok(Inserted::New);
        }
        // Another request replaced it first, or the outcome is unknown.
        settle().await
    }

    async fn put_link(&self, link: &LinkRecord) -> MetaResult<()> {
        let what = "storing a link";
        let s = &self.statements;
        let previous: Option<LinkRecord> = self
            .body(what, &s.get_link_for_update, (link.token.as_str(),))
            .await?;
        let old = previous.as_ref().unwrap_or(link);
        let (deleted_at, written_at) = delete_then_write();
        let (token, body, ttl) = (
            link.token.as_str(),
            json(link),
            self.link_ttl(link.expires_at),
        );
        let shard = shard_of(token, LINK_EXPIRY_SHARDS);
        let values = (
            (
                deleted_at,
                day_of(old.expires_at),
                shard,
                old.expires_at,
                token,
            ),
            (deleted_at, old.blob_key.as_str(), token),
            (token, &body, ttl, written_at),
            (
                day_of(link.expires_at),
                shard,
                link.expires_at,
                token,
                &body,
                ttl,
                written_at,
            ),
            (link.blob_key.as_str(), token, ttl, written_at),
        );
        self.batch(what, &s.put_link, values).await
    }

    async fn get_link(&self, token: &LinkToken) -> MetaResult<Option<LinkRecord>> {
        let s = &self.statements;
        let found = self
            .body("looking up a link", &s.get_link, (token.as_str(),))
            .await?;
        let (None, Some(fallback)) = (&found, &s.get_link_fallback) else {
            return Ok(found);
        };
        // Not in this region (yet): the link may have been created in another one moments
        // ago. If that one cannot be reached, the local answer stands.
        match self
            .body(
                "looking up a link in every region",
                fallback,
                (token.as_str(),),
            )
            .await
        {
            Ok(found) => Ok(found),
            Err(err) if err.is_retryable() => {
                tracing::debug!(%err, "link not found locally, and the other regions did not answer");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    async fn delete_link(&self, token: &LinkToken) -> MetaResult<()> {
        let what = "deleting a link";
        let s = &self.statements;
        let Some(link): Option<LinkRecord> = self
            .body(what, &s.get_link_for_update, (token.as_str(),))
            .await?
        else {
            return Ok(());
        };
        let token = token.as_str();
        let values = (
            (token,),
            (
                day_of(link.expires_at),
                shard_of(token, LINK_EXPIRY_SHARDS),
                link.expires_at,
                token,
            ),
            (link.blob_key.as_str(), token),
        );
        self.batch(what, &s.delete_link, values).await
    }

    async fn expired_links(&self, now: UnixMillis, limit: usize) -> MetaResult<Vec<LinkRecord>> {
        let what = "finding expired links";
        // Day partitions oldest first, back as far as rows can live past their expiry.
        let oldest = day_of(now - self.config.link_retention.as_millis() as i64);
        let mut found = Vec::new();
        for day in oldest..=day_of(now) {
            let room = limit - found.len();
            found.extend(
                self.earliest_of_shards(
                    what,
                    &self.statements.expired_links,
                    LINK_EXPIRY_SHARDS,
                    |shard| (day, shard, now, room as i32),
                    room,
                    |link: &LinkRecord| link.expires_at,
                )
                .await?,
            );
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }

    async fn blob_has_links(&self, blob: &BlobKey) -> MetaResult<bool> {
        let what = "checking an output's links";
        let rows = self
            .run(what, &self.statements.blob_has_links, (blob.as_str(),))
            .await?
            .into_rows_result()
            .map_err(|e| unexpected(what, e))?;
        Ok(rows.rows_num() > 0)
    }

    async fn put_outbox(&self, event: &OutboxEvent) -> MetaResult<()> {
        let what = "storing an outbox event";
        let s = &self.statements;
        let id = event.event_id.as_str();
        let previous: Option<OutboxEvent> = self.body(what, &s.get_outbox, (id,)).await?;
        let old = previous.as_ref().unwrap_or(event).next_attempt_at;
        let (deleted_at, written_at) = delete_then_write();
        let (shard, body) = (
            shard_of(event.event_id.as_str(), OUTBOX_SHARDS),
            json(event),
        );
        let values = (
            (deleted_at, shard, old, id),
            (id, &body, event.next_attempt_at, written_at),
            (shard, event.next_attempt_at, id, &body, written_at),
        );
        self.batch(what, &s.put_outbox, values).await
    }

    async fn due_outbox(&self, now: UnixMillis, limit: usize) -> MetaResult<Vec<OutboxEvent>> {
        self.earliest_of_shards(
            "finding due outbox events",
            &self.statements.due_outbox,
            OUTBOX_SHARDS,
            |shard| (shard, now, limit as i32),
            limit,
            |event: &OutboxEvent| event.next_attempt_at,
        )
        .await
    }

    async fn delete_outbox(&self, event_id: &EventId) -> MetaResult<()> {
        let what = "deleting an outbox event";
        let s = &self.statements;
        let id = event_id.as_str();
        let Some(event): Option<OutboxEvent> = self.body(what, &s.get_outbox, (id,)).await? else {
            return Ok(());
        };
        let values = (
            (id,),
            (
                shard_of(event_id.as_str(), OUTBOX_SHARDS),
                event.next_attempt_at,
                id,
            ),
        );
        self.batch(what, &s.delete_outbox, values).await
    }

    async fn queue_replication(&self, task: &ReplicationTask) -> MetaResult<()> {
        let (key, source) = (task.blob_key.as_str(), task.source.as_str());
        let values = (
            (
                source,
                task.target.as_str(),
                shard_of(key, REPLICATION_SHARDS),
                task.queued_at,
                key,
                json(task),
            ),
            (key, source),
        );
        self.batch(
            "queuing a blob for replication",
            &self.statements.queue_replication,
            values,
        )
        .await
    }

    async fn pending_replications(
        &self,
        source: &str,
        target: &str,
        limit: usize,
    ) -> MetaResult<Vec<ReplicationTask>> {
        self.earliest_of_shards(
            "reading the replication queue",
            &self.statements.pending_replications,
            REPLICATION_SHARDS,
            |shard| (source, target, shard, limit as i32),
            limit,
            |task: &ReplicationTask| task.queued_at,
        )
        .await
    }

    async fn delete_replication(&self, task: &ReplicationTask) -> MetaResult<()> {
        let key = task.blob_key.as_str();
        let values = (
            task.source.as_str(),
            task.target.as_str(),
            shard_of(key, REPLICATION_SHARDS),
            task.queued_at,
            key,
        );
        let s = &self.statements;
        self.run("removing a replication task", &s.delete_replication, values)
            .await
            .map(drop)
    }

    async fn put_blob_replica(&self, blob: &BlobKey, region: &str) -> MetaResult<()> {
        let s = &self.statements;
        let values = (blob.as_str(), region);
        self.run("recording a blob replica", &s.put_blob_replica, values)
            .await
            .map(drop)
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()> {
        let what = "storing an API key";
        let (id, body) = (key.id.as_str(), json(key));
        // The lookup row first: a key is usable once stored, and listed a moment later.
        self.run(what, &self.statements.put_api_key, (id, &body))
            .await?;
        let bucket = shard_of(id, API_KEY_BUCKETS);
        self.run(what, &self.statements.list_api_key, (bucket, id, &body))
            .await
            .map(drop)
    }

    async fn get_api_key(&self, id: &ApiKeyId) -> MetaResult<Option<ApiKeyRecord>> {
        self.body(
            "reading an API key",
            &self.statements.get_api_key,
            (id.as_str(),),
        )
        .await
    }

    async fn api_keys(&self) -> MetaResult<Vec<ApiKeyRecord>> {
        let what = "listing API keys";
        let reads = (0..API_KEY_BUCKETS).map(|bucket| {
            self.bodies::<ApiKeyRecord>(what, &self.statements.api_key_bucket, (bucket,))
        });
        let mut keys: Vec<ApiKeyRecord> =
            try_join_all(reads).await?.into_iter().flatten().collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> MetaResult<()> {
        let values = (tenant.id.as_str(), json(tenant));
        self.run("storing a tenant", &self.statements.put_tenant, values)
            .await
            .map(drop)
    }

    async fn insert_tenant(&self, tenant: &TenantRecord) -> MetaResult<Inserted<TenantRecord>> {
        let what = "creating a tenant";
        let values = (tenant.id.as_str(), json(tenant));
        match self.run(what, &self.statements.insert_tenant, values).await {
            Ok(result) => match applied(what, result)? {
                (true, _) => Ok(Inserted::New),
                (false, existing) => existing_body(what, existing).map(Inserted::Existing),
            },
            // The outcome is unknown: whatever is stored now is the tenant.
            Err(MetaError::Timeout(_)) => match self.get_tenant(&tenant.id).await? {
                Some(stored) if stored == *tenant => Ok(Inserted::New),
                Some(stored) => Ok(Inserted::Existing(stored)),
                None => Err(MetaError::Timeout(format!(
                    "{what}: the tenant could not be stored in time; try again"
                ))),
            },
            Err(err) => Err(err),
        }
    }

    async fn get_tenant(&self, id: &TenantId) -> MetaResult<Option<TenantRecord>> {
        self.body(
            "reading a tenant",
            &self.statements.get_tenant,
            (id.as_str(),),
        )
        .await
    }

    async fn blob_replicas(&self, blob: &BlobKey) -> MetaResult<Vec<String>> {
        let what = "reading where a blob is stored";
        let rows = self
            .run(what, &self.statements.blob_replicas, (blob.as_str(),))
            .await?
            .into_rows_result()
            .map_err(|e| unexpected(what, e))?;
        rows.rows::<(String,)>()
            .map_err(|e| unexpected(what, e))?
            .map(|row| row.map(|(region,)| region).map_err(|e| unexpected(what, e)))
            .collect()
    }

    async fn delete_blob_replicas(&self, blob: &BlobKey) -> MetaResult<()> {
        let s = &self.statements;
        let values = (blob.as_str(),);
        self.run(
            "forgetting a blob's replicas",
            &s.delete_blob_replicas,
            values,
        )
        .await
        .map(drop)
    }

    async fn ping(&self) -> MetaResult<()> {
        self.run("pinging the cluster", &self.statements.ping, ())
            .await
            .map(drop)
    }
}

/// Whether a conditional statement applied, and the row it found when it did not.
fn applied(what: &str, result: QueryResult) -> MetaResult<(bool, Option<Row>)> {
    let rows = result.into_rows_result().map_err(|e| unexpected(what, e))?;
    let row = rows.single_row::<Row>().map_err(|e| unexpected(what, e))?;
    let applied = matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true))));
    Ok((applied, (!applied).then_some(row)))
}

/// The `body` column of the row a failed conditional statement returned.
fn existing_body<T: DeserializeOwned>(what: &str, row: Option<Row>) -> MetaResult<T> {
    let body = row
        .into_iter()
        .flat_map(|row| row.columns)
        .find_map(|column| match column {
            Some(CqlValue::Text(text)) if text.starts_with('{') => Some(text),
            _ => None,
        })
        .ok_or_else(|| unexpected(what, "the conditional write returned no existing record"))?;
    serde_json::from_str(&body).map_err(|e| corrupt(what, e))
}

/// Every statement, prepared with its class's consistency.
struct Statements {
    put_image: PreparedStatement,
    put_image_durable: PreparedStatement,
    get_image: PreparedStatement,
    get_image_fallback: Option<PreparedStatement>,
    put_job: PreparedStatement,
    get_job: PreparedStatement,
    cas_job: PreparedStatement,
    get_job_serial: PreparedStatement,
    list_job: PreparedStatement,
    unlist_job: PreparedStatement,
    owned_jobs: PreparedStatement,
    put_heartbeat: PreparedStatement,
    heartbeats: PreparedStatement,
    put_region_state: PreparedStatement,
    region_state: PreparedStatement,
    insert_idempotency: PreparedStatement,
    replace_idempotency: PreparedStatement,
    get_idempotency: PreparedStatement,
    put_link: Batch,
    get_link: PreparedStatement,
    get_link_fallback: Option<PreparedStatement>,
    get_link_for_update: PreparedStatement,
    delete_link: Batch,
    expired_links: PreparedStatement,
    blob_has_links: PreparedStatement,
    get_outbox: PreparedStatement,
    put_outbox: Batch,
    due_outbox: PreparedStatement,
    delete_outbox: Batch,
    queue_replication: Batch,
    pending_replications: PreparedStatement,
    delete_replication: PreparedStatement,
    put_blob_replica: PreparedStatement,
    blob_replicas: PreparedStatement,
    delete_blob_replicas: PreparedStatement,
    put_api_key: PreparedStatement,
    list_api_key: PreparedStatement,
    get_api_key: PreparedStatement,
    api_key_bucket: PreparedStatement,
    put_tenant: PreparedStatement,
    insert_tenant: PreparedStatement,
    get_tenant: PreparedStatement,
    ping: PreparedStatement,
}

impl Statements {
    async fn prepare(session: &Session, config: &ScyllaConfig) -> MetaResult<Self> {
        let ks = &config.keyspace;
        let c = &config.consistency;
        let prepare = |cql: String, level: Level, idempotent: bool| async move {
            let cql = cql.replace("{ks}", ks);
            let mut statement = session
                .prepare(cql.as_str())
                .await
                .map_err(|e| MetaError::Internal(format!("preparing `{cql}`: {e}")))?;
            statement.set_consistency(level.0);
            statement.set_is_idempotent(idempotent);
            Ok::<_, MetaError>(statement)
        };
        // Reads may be sent twice (speculative execution, retries); writes and conditions never
        // are: timestamps are the coordinator's, so a late duplicate of an older write (a job's
        // `running`) could land after a newer one (`succeeded`) and undo it.
        let read = |cql: &str, level| prepare(cql.to_owned(), level, true);
        let write = |cql: &str, level| prepare(cql.to_owned(), level, false);
        let conditional = |cql: &str, level, serial: Serial| {
            let prepared = prepare(cql.to_owned(), level, false);
            async move {
                let mut statement = prepared.await?;
                statement.set_serial_consistency(Some(serial.0));
                Ok::<_, MetaError>(statement)
            }
        };
        let batch = |statements: Vec<PreparedStatement>, level: Level| {
            let mut batch = Batch::new(BatchType::Logged);
            for statement in statements {
                batch.append_statement(statement);
            }
            batch.set_consistency(level.0);
            batch
        };
        let serial_read = |serial: Serial| {
            Level(match serial.0 {
                scylla::statement::SerialConsistency::Serial => Consistency::Serial,
                scylla::statement::SerialConsistency::LocalSerial => Consistency::LocalSerial,
            })
        };
        const LINK: &str = "SELECT body FROM {ks}.links WHERE link_token = ?";
        const PUT_IMAGE: &str = "INSERT INTO {ks}.images (tenant, id, body) VALUES (?, ?, ?)";
        const IMAGE: &str = "SELECT body FROM {ks}.images WHERE tenant = ? AND id = ?";
        const IDEMPOTENCY: &str =
            "SELECT body FROM {ks}.idempotency_keys WHERE tenant = ? AND idem_key = ?";
        const PUT_REPLICA: &str = "INSERT INTO {ks}.blob_replicas (blob_key, region) VALUES (?, ?)";
        let (links, outbox) = (c.link_create, c.housekeeping);
        Ok(Self {
            put_image: write(PUT_IMAGE, c.upload_write).await?,
            put_image_durable: write(PUT_IMAGE, c.durable_write).await?,
            get_image: read(IMAGE, c.reads).await?,
            get_image_fallback: match c.image_lookup_fallback {
                Some(level) => Some(read(IMAGE, level).await?),
                None => None,
            },
            put_job: write(
                "INSERT INTO {ks}.jobs (tenant, id, body, owner) VALUES (?, ?, ?, ?)",
                c.job_transition,
            )
            .await?,
            get_job: read("SELECT body FROM {ks}.jobs WHERE tenant = ? AND id = ?", c.reads).await?,
            cas_job: conditional(
                "UPDATE {ks}.jobs SET body = ?, owner = ? WHERE tenant = ? AND id = ? IF body = ?",
                c.job_transition,
                c.job_serial,
            )
            .await?,
            get_job_serial: read(
                "SELECT body FROM {ks}.jobs WHERE tenant = ? AND id = ?",
                serial_read(c.job_serial),
            )
            .await?,
            list_job: write(
                "INSERT INTO {ks}.jobs_by_owner (owner, shard, tenant, id) VALUES (?, ?, ?, ?)",
                c.job_transition,
            )
            .await?,
            unlist_job: write(
                "DELETE FROM {ks}.jobs_by_owner WHERE owner = ? AND shard = ? AND tenant = ? AND id = ?",
                c.job_transition,
            )
            .await?,
            owned_jobs: read(
                "SELECT tenant, id FROM {ks}.jobs_by_owner WHERE owner = ? AND shard = ? LIMIT ?",
                c.reads,
            )
            .await?,
            put_heartbeat: write(
                "INSERT INTO {ks}.region_heartbeats (region, node, body) VALUES (?, ?, ?) USING TTL ?",
                c.housekeeping,
            )
            .await?,
            heartbeats: read("SELECT body FROM {ks}.region_heartbeats WHERE region = ?", c.reads).await?,
            put_region_state: write(
                "INSERT INTO {ks}.region_states (region, body) VALUES (?, ?)",
                c.housekeeping,
            )
            .await?,
            region_state: read("SELECT body FROM {ks}.region_states WHERE region = ?", c.reads).await?,
            insert_idempotency: conditional(
                "INSERT INTO {ks}.idempotency_keys (tenant, idem_key, body, expires_at) VALUES (?, ?, ?, ?) \
                 IF NOT EXISTS USING TTL ?",
                c.job_transition,
                c.idempotency_serial,
            )
            .await?,
            replace_idempotency: conditional(
                "UPDATE {ks}.idempotency_keys USING TTL ? SET body = ?, expires_at = ? \
                 WHERE tenant = ? AND idem_key = ? IF expires_at = ?",
                c.job_transition,
                c.idempotency_serial,
            )
            .await?,
            get_idempotency: read(IDEMPOTENCY, serial_read(c.idempotency_serial)).await?,
            put_link: batch(
                vec![
                    write(
                        "DELETE FROM {ks}.links_by_expiry USING TIMESTAMP ? \
                         WHERE day = ? AND shard = ? AND expires_at = ? AND link_token = ?",
                        links,
                    )
                    .await?,
                    write(
                        "DELETE FROM {ks}.links_by_blob USING TIMESTAMP ? WHERE blob_key = ? AND link_token = ?",
                        links,
                    )
                    .await?,
                    write(
                        "INSERT INTO {ks}.links (link_token, body) VALUES (?, ?) USING TTL ? AND TIMESTAMP ?",
                        links,
                    )
                    .await?,
                    write(
                        "INSERT INTO {ks}.links_by_expiry (day, shard, expires_at, link_token, body) \
                         VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?",
                        links,
                    )
                    .await?,
                    write(
                        "INSERT INTO {ks}.links_by_blob (blob_key, link_token) VALUES (?, ?) \
                         USING TTL ? AND TIMESTAMP ?",
                        links,
                    )
                    .await?,
                ],
                links,
            ),
            get_link: read(LINK, c.link_lookup).await?,
            get_link_fallback: match c.link_lookup_fallback {
                Some(level) => Some(read(LINK, level).await?),
                None => None,
            },
            get_link_for_update: read(LINK, links).await?,
            delete_link: batch(
                vec![
                    write("DELETE FROM {ks}.links WHERE link_token = ?", links).await?,
                    write(
                        "DELETE FROM {ks}.links_by_expiry \
                         WHERE day = ? AND shard = ? AND expires_at = ? AND link_token = ?",
                        links,
                    )
                    .await?,
                    write("DELETE FROM {ks}.links_by_blob WHERE blob_key = ? AND link_token = ?", links).await?,
                ],
                links,
            ),
            expired_links: read(
                "SELECT body FROM {ks}.links_by_expiry \
                 WHERE day = ? AND shard = ? AND expires_at <= ? LIMIT ?",
                c.housekeeping,
            )
            .await?,
            blob_has_links: read(
                "SELECT link_token FROM {ks}.links_by_blob WHERE blob_key = ? LIMIT 1",
                c.housekeeping,
            )
            .await?,
            get_outbox: read("SELECT body FROM {ks}.outbox WHERE event_id = ?", outbox).await?,
            put_outbox: batch(
                vec![
                    write(
                        "DELETE FROM {ks}.outbox_due USING TIMESTAMP ? \
                         WHERE shard = ? AND next_attempt_at = ? AND event_id = ?",
                        outbox,
                    )
                    .await?,
                    write(
                        "INSERT INTO {ks}.outbox (event_id, body, next_attempt_at) VALUES (?, ?, ?) \
                         USING TIMESTAMP ?",
                        outbox,
                    )
                    .await?,
                    write(
                        "INSERT INTO {ks}.outbox_due (shard, next_attempt_at, event_id, body) \
                         VALUES (?, ?, ?, ?) USING TIMESTAMP ?",
                        outbox,
                    )
                    .await?,
                ],
                outbox,
            ),
            due_outbox: read(
                "SELECT body FROM {ks}.outbox_due WHERE shard = ? AND next_attempt_at <= ? LIMIT ?",
                outbox,
            )
            .await?,
            delete_outbox: batch(
                vec![
                    write("DELETE FROM {ks}.outbox WHERE event_id = ?", outbox).await?,
                    write(
                        "DELETE FROM {ks}.outbox_due WHERE shard = ? AND next_attempt_at = ? AND event_id = ?",
                        outbox,
                    )
                    .await?,
                ],
                outbox,
            ),
            queue_replication: batch(
                vec![
                    write(
                        "INSERT INTO {ks}.replication_queue (source, target, shard, queued_at, blob_key, body) \
                         VALUES (?, ?, ?, ?, ?, ?)",
                        outbox,
                    )
                    .await?,
                    write(PUT_REPLICA, outbox).await?,
                ],
                outbox,
            ),
            pending_replications: read(
                "SELECT body FROM {ks}.replication_queue \
                 WHERE source = ? AND target = ? AND shard = ? LIMIT ?",
                outbox,
            )
            .await?,
            delete_replication: write(
                "DELETE FROM {ks}.replication_queue \
                 WHERE source = ? AND target = ? AND shard = ? AND queued_at = ? AND blob_key = ?",
                outbox,
            )
            .await?,
            put_blob_replica: write(PUT_REPLICA, outbox).await?,
            blob_replicas: read("SELECT region FROM {ks}.blob_replicas WHERE blob_key = ?", outbox).await?,
            delete_blob_replicas: write("DELETE FROM {ks}.blob_replicas WHERE blob_key = ?", outbox).await?,
            put_api_key: write("INSERT INTO {ks}.api_keys (id, body) VALUES (?, ?)", c.job_transition).await?,
            list_api_key: write(
                "INSERT INTO {ks}.api_key_list (bucket, id, body) VALUES (?, ?, ?)",
                c.job_transition,
            )
            .await?,
            get_api_key: read("SELECT body FROM {ks}.api_keys WHERE id = ?", c.reads).await?,
            api_key_bucket: read("SELECT body FROM {ks}.api_key_list WHERE bucket = ?", c.reads).await?,
            put_tenant: write("INSERT INTO {ks}.tenants (tenant, body) VALUES (?, ?)", c.job_transition).await?,
            insert_tenant: conditional(
                "INSERT INTO {ks}.tenants (tenant, body) VALUES (?, ?) IF NOT EXISTS",
                c.job_transition,
                c.job_serial,
            )
            .await?,
            get_tenant: read("SELECT body FROM {ks}.tenants WHERE tenant = ?", c.reads).await?,
            ping: read("SELECT release_version FROM system.local", Level(Consistency::LocalOne)).await?,
        })
    }
}
