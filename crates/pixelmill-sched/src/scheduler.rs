//! The handle the node uses: turns calls into raft commands (stamped with the leader's clock) and raft
//! outcomes into `SchedError`s.

use crate::config::SchedConfig;
use crate::error::SchedError;
use crate::queue::{self, Command, Response};
use crate::raft::{self, Applied, LogStore, NoPeers, Raft, StateMachineStore};
use crate::types::{FailOutcome, JobTicket, Lease, QueueStats, Reclaimed, WorkerId};
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::{BasicNode, ServerState};
use pixelmill_core::{now_ms, JobId};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long `open` waits to become leader and replay the log before giving up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `is_ready` may spend confirming leadership.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// A cheap-to-clone handle on the local scheduler raft node.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    applied: Arc<RwLock<Applied>>,
    config: SchedConfig,
}

impl Scheduler {
    /// Opens (or creates) the raft log, vote and state-machine snapshot under `dir`; initialises a
    /// single-voter cluster on first start; waits until this node is leader and the state machine has
    /// caught up with the log.
    pub async fn open(dir: &Path, config: SchedConfig) -> Result<Scheduler, SchedError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            SchedError::Storage(format!(
                "cannot create scheduler directory {}: {e}",
                dir.display()
            ))
        })?;
        let storage = |e: raft::DbError| SchedError::Storage(format!("{}: {e}", dir.display()));
        let log =
            LogStore::new(raft::open_db(&dir.join("raft-log.redb")).await?).map_err(storage)?;
        let sm = StateMachineStore::new(raft::open_db(&dir.join("raft-sm.redb")).await?)
            .await
            .map_err(storage)?;
        let applied = sm.applied();
        let id = config.node_id;
        let raft = Raft::new(id, raft::raft_config()?, NoPeers, log, sm)
            .await
            .map_err(|e| SchedError::Fatal(format!("raft failed to start: {e}")))?;
        let scheduler = Scheduler {
            inner: Arc::new(Inner {
                raft,
                applied,
                config,
            }),
        };
        scheduler.start(id).await?;
        Ok(scheduler)
    }

    async fn start(&self, id: u64) -> Result<(), SchedError> {
        let raft = &self.inner.raft;
        if !raft.is_initialized().await.map_err(fatal)? {
            let members = BTreeMap::from([(id, BasicNode::default())]);
            raft.initialize(members)
                .await
                .map_err(|e| SchedError::Fatal(format!("cannot initialise the raft group: {e}")))?;
        }
        raft.wait(Some(OPEN_TIMEOUT))
            .state(ServerState::Leader, "scheduler open")
            .await
            .map_err(|e| {
                SchedError::Unavailable(format!("node {id} did not become scheduler leader: {e}"))
            })?;
        raft.ensure_linearizable().await.map_err(|e| {
            SchedError::Unavailable(format!("could not replay the scheduler log: {e}"))
        })?;
        let policy = self.inner.config.policy();
        if raft::read(&self.inner.applied).queue.policy() != &policy {
            self.write(Command::SetPolicy(policy)).await?;
        }
        Ok(())
    }

    /// Appends the job; `Overloaded` when `queue_bound` jobs are already queued (nothing enqueued then).
    /// Enqueueing a job that is already queued or leased is a no-op.
    pub async fn enqueue(&self, ticket: JobTicket) -> Result<(), SchedError> {
        // Cheap pre-check so an overloaded queue does not also fill the log; apply re-checks authoritatively.
        {
            let applied = raft::read(&self.inner.applied);
            if applied.queue.queued() >= self.inner.config.queue_bound
                && !applied.queue.contains(&ticket.job)
            {
                return Err(SchedError::Overloaded {
                    retry_after_ms: self.inner.config.base_backoff_ms.max(1),
                });
            }
        }
        match self
            .write(Command::Enqueue {
                ticket,
                now_ms: now_ms(),
            })
            .await?
        {
            Response::Enqueued { .. } => Ok(()),
            Response::Overloaded { retry_after_ms } => {
                Err(SchedError::Overloaded { retry_after_ms })
            }
            other => Err(unexpected("enqueue", &other)),
        }
    }

    /// Leases up to `max` ready jobs to `worker` for `lease_ms`: fast lane first without starving slow,
    /// round-robin across tenants within a lane, retries not before their backoff ends.
    pub async fn lease(
        &self,
        worker: &WorkerId,
        max: usize,
        lease_ms: u64,
    ) -> Result<Vec<Lease>, SchedError> {
        let now = now_ms();
        if max == 0 || !raft::read(&self.inner.applied).queue.has_ready(now) {
            return Ok(Vec::new());
        }
        let cmd = Command::Lease {
            worker: worker.clone(),
            max,
            lease_ms,
            now_ms: now,
        };
        match self.write(cmd).await? {
            Response::Leased(leases) => Ok(leases),
            other => Err(unexpected("lease", &other)),
        }
    }

    /// Extends a lease to `now + lease_ms`; `false` when the lease was lost (expired, released or stale).
    pub async fn renew(
        &self,
        job: &JobId,
        fencing: u64,
        lease_ms: u64,
    ) -> Result<bool, SchedError> {
        let cmd = Command::Renew {
            job: job.clone(),
            fencing,
            lease_ms,
            now_ms: now_ms(),
        };
        match self.write(cmd).await? {
            Response::Renewed(held) => Ok(held),
            other => Err(unexpected("renew", &other)),
        }
    }

    /// Removes a finished job; `false` when `fencing` is stale (the job was re-leased), which the caller
    /// must treat as "someone else owns this job now".
    pub async fn complete(&self, job: &JobId, fencing: u64) -> Result<bool, SchedError> {
        match self
            .write(Command::Complete {
                job: job.clone(),
                fencing,
            })
            .await?
        {
            Response::Completed(done) => Ok(done),
            other => Err(unexpected("complete", &other)),
        }
    }

    /// Ends an attempt: dead letter when `retryable` is false or attempts are exhausted, else back in its
    /// lane after exponential backoff. `LeaseLost` when `fencing` is stale: the job is someone else's now.
    pub async fn fail(
        &self,
        job: &JobId,
        fencing: u64,
        retryable: bool,
        error: String,
    ) -> Result<FailOutcome, SchedError> {
        let cmd = Command::Fail {
            job: job.clone(),
            fencing,
            retryable,
            now_ms: now_ms(),
        };
        match self.write(cmd).await? {
            Response::Failed(outcome) => {
                // The error text stays out of the replicated log: the caller records it with the job.
                tracing::debug!(%job, fencing, ?outcome, %error, "job attempt failed");
                Ok(outcome)
            }
            other => Err(unexpected("fail", &other)),
        }
    }

    /// Takes back every lease whose deadline passed. The attempt stays counted: jobs out of attempts are
    /// dead-lettered, the others are ready again at once. The node calls this periodically.
    pub async fn expire_leases(&self) -> Result<Vec<Reclaimed>, SchedError> {
        let now = now_ms();
        if !raft::read(&self.inner.applied)
            .queue
            .any_lease(queue::expired_at(now))
        {
            return Ok(Vec::new()); // nothing to take back: no log entry
        }
        self.reclaim("expire_leases", Command::ExpireLeases { now_ms: now })
            .await
    }

    /// Takes back every lease held by workers whose id starts with `prefix` (a restarted node, a crashed
    /// worker actor), with the same attempt accounting as expiry: a job that keeps crashing its worker
    /// must end in the dead letters rather than loop forever.
    pub async fn release_worker(&self, prefix: &str) -> Result<Vec<Reclaimed>, SchedError> {
        if prefix.is_empty() {
            return Err(SchedError::Invalid(
                "an empty worker prefix would release every lease in the cluster; pass a node or worker id such as \"n1/\"".to_owned(),
            ));
        }
        if !raft::read(&self.inner.applied)
            .queue
            .any_lease(queue::held_by(prefix))
        {
            return Ok(Vec::new());
        }
        self.reclaim(
            "release_worker",
            Command::ReleaseWorker {
                prefix: prefix.to_owned(),
                now_ms: now_ms(),
            },
        )
        .await
    }

    async fn reclaim(&self, op: &str, cmd: Command) -> Result<Vec<Reclaimed>, SchedError> {
        match self.write(cmd).await? {
            Response::Reclaimed(reclaimed) => Ok(reclaimed),
            other => Err(unexpected(op, &other)),
        }
    }

    /// The applied queue's gauges, read locally without a raft round trip.
    pub fn stats(&self) -> QueueStats {
        raft::read(&self.inner.applied).queue.stats(now_ms())
    }

    /// Leader known, and if that is this node, leadership confirmed and the log applied.
    pub async fn is_ready(&self) -> bool {
        let raft = &self.inner.raft;
        let leader = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            if m.running_state.is_err() {
                return false;
            }
            m.current_leader
        };
        match leader {
            Some(id) if id == self.inner.config.node_id => {
                matches!(
                    tokio::time::timeout(READY_TIMEOUT, raft.ensure_linearizable()).await,
                    Ok(Ok(_))
                )
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Stops raft; every later call fails with `Fatal`. Durable state needs no flush: it was fsynced as written.
    pub async fn shutdown(&self) -> Result<(), SchedError> {
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| SchedError::Fatal(format!("raft did not stop cleanly: {e}")))
    }

    async fn write(&self, cmd: Command) -> Result<Response, SchedError> {
        match self.inner.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(SchedError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(SchedError::Fatal(format!(
                "raft rejected a queue write: {e}"
            ))),
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }
}

fn fatal(e: Fatal<u64>) -> SchedError {
    match e {
        Fatal::StorageError(e) => {
            SchedError::Storage(format!("raft storage failed, the node stopped: {e}"))
        }
        other => SchedError::Fatal(other.to_string()),
    }
}

fn unexpected(op: &str, response: &Response) -> SchedError {
    SchedError::Fatal(format!(
        "the queue answered {op} with {response:?}; this is a scheduler bug"
    ))
}
