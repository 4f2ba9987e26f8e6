//! The handle the node uses: turns calls into raft commands and raft outcomes into `SchedError`s.
//! Any node may be asked: a follower forwards each write to the leader, which stamps it with its
//! clock and proposes it; a write that finds no leader (an election under way) waits for one.

use crate::config::SchedConfig;
use crate::error::SchedError;
use crate::queue::{self, Command, Response};
use crate::raft::{
    self, Applied, CallError, LogStore, Raft, RaftSecret, StateMachineStore, Transport,
    MEMBERSHIP_PATH, WRITE_PATH,
};
use crate::types::{
    ClusterStatus, FailOutcome, JobTicket, Lease, MembershipChange, QueueStats, Reclaimed, WorkerId,
};
use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use pixelmill_core::{now_ms, JobId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long `open` waits for a leader (and, on the leader, the log replay) before giving up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `is_ready` may spend confirming leadership.
const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a write waits for a leader to be elected or to become reachable. Elections take
/// 300-600 ms; this rides out a few failed rounds before telling the caller to retry later.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// Between tries while no leader is known.
const LEADER_POLL: Duration = Duration::from_millis(25);
/// A forwarded write's answer; the leader commits within a few fsyncs and round trips.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a proposal may wait for its commit (normally milliseconds). Shorter than
/// `LEADER_WAIT`, so a repeatable write that timed out still gets a try on the real leader, and
/// than `FORWARD_TIMEOUT`, so a forwarding node hears the leader's verdict.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// The region's raft group as this node sees it: where peers send RPCs to it, every voter's
/// raft address (`host:port`) by node id, this node included, and the secret every request
/// between them is signed with (the same on every node).
#[derive(Debug)]
pub struct RaftGroup {
    pub listener: tokio::net::TcpListener,
    pub peers: BTreeMap<u64, String>,
    pub secret: RaftSecret,
}

/// A cheap-to-clone handle on the local scheduler raft node.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    applied: Arc<RwLock<Applied>>,
    config: SchedConfig,
    transport: Transport,
    /// The raft listener's task, stopped by `shutdown`.
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Times this node saw the leader change (to another node or to none), counted off raft's
    /// metrics as they change, so no change between two scrapes is missed.
    leader_changes: Arc<AtomicU64>,
}

/// One try of a request that must run on the leader.
enum Attempt<T> {
    Done(Result<T, SchedError>),
    /// Nothing was applied; try again once a (new) leader is known. The error is what the caller
    /// gets if none turns up in time.
    Retry(SchedError),
}

impl Scheduler {
    /// A single-voter scheduler: opens (or creates) the raft log, vote and state-machine snapshot
    /// under `dir`, initialises the group on first start, and waits until this node is leader and
    /// the state machine has caught up with the log.
    pub async fn open(dir: &Path, config: SchedConfig) -> Result<Scheduler, SchedError> {
        let id = config.node_id;
        // No listener, no peer: nobody needs to know the secret its transport signs with.
        let scheduler = Self::build(dir, config, RaftSecret::random()).await?;
        scheduler
            .init(BTreeMap::from([(id, BasicNode::default())]))
            .await?;
        scheduler
            .inner
            .raft
            .wait(Some(OPEN_TIMEOUT))
            .state(ServerState::Leader, "scheduler open")
            .await
            .map_err(|e| {
                SchedError::Unavailable(format!("node {id} did not become scheduler leader: {e}"))
            })?;
        scheduler
            .inner
            .raft
            .ensure_linearizable()
            .await
            .map_err(|e| {
                SchedError::Unavailable(format!("could not replay the scheduler log: {e}"))
            })?;
        scheduler.adopt_policy().await?;
        Ok(scheduler)
    }

    /// A member of a multi-node raft group: serves raft on `group.listener`, initialises the group
    /// with `group.peers` as voters when its log is empty (every node may: the same membership on
    /// each is safe), and waits until some node leads. A node joining an existing group as a
    /// learner passes only itself in `peers` and is then added with `MembershipChange::AddLearner`.
    pub async fn open_group(
        dir: &Path,
        config: SchedConfig,
        group: RaftGroup,
    ) -> Result<Scheduler, SchedError> {
        let id = config.node_id;
        if !group.peers.contains_key(&id) {
            return Err(SchedError::Invalid(format!(
                "the raft peers {:?} do not include this node's id {id}; list every node of the region, this one too",
                group.peers.keys().collect::<Vec<_>>()
            )));
        }
        let scheduler = Self::build(dir, config, group.secret.clone()).await?;
        let server = tokio::spawn({
            let router = raft::router(scheduler.clone(), group.secret);
            async move {
                if let Err(e) = axum::serve(group.listener, router).await {
                    tracing::error!(error = %e, "the raft listener stopped");
                }
            }
        });
        *scheduler.inner.server.lock().unwrap() = Some(server);
        let members = group
            .peers
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect::<BTreeMap<_, _>>();
        // A node started alone with a fresh log joins as a learner rather than founding a group.
        if members.len() > 1 {
            scheduler.init(members).await?;
        }
        // A node killed while it led restarts believing it still leads (its vote is on disk), and
        // a write proposed then would wait forever (see `write_here`): wait until the leader it
        // knows is another node, or itself confirmed by a quorum.
        let give_up = Instant::now() + OPEN_TIMEOUT;
        while !scheduler.is_ready().await {
            if Instant::now() >= give_up {
                return Err(SchedError::Unavailable(format!(
                    "node {id} found no scheduler leader within {}s; start the region's other nodes, and check that --peers is the same on each",
                    OPEN_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        scheduler.adopt_policy().await?;
        Ok(scheduler)
    }

    async fn build(
        dir: &Path,
        config: SchedConfig,
        secret: RaftSecret,
    ) -> Result<Scheduler, SchedError> {
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
        let transport = Transport::new(config.message_delay, secret)
            .map_err(|e| SchedError::Fatal(format!("cannot set up the raft transport: {e}")))?;
        let raft = Raft::new(
            config.node_id,
            raft::raft_config(config.snapshot_every_logs)?,
            transport.clone(),
            log,
            sm,
        )
        .await
        .map_err(|e| SchedError::Fatal(format!("raft failed to start: {e}")))?;
        let leader_changes = Arc::new(AtomicU64::new(0));
        tokio::spawn(count_leader_changes(
            raft.metrics(),
            Arc::clone(&leader_changes),
        ));
        Ok(Scheduler {
            inner: Arc::new(Inner {
                raft,
                applied,
                config,
                transport,
                server: Mutex::new(None),
                leader_changes,
            }),
        })
    }

    async fn init(&self, members: BTreeMap<u64, BasicNode>) -> Result<(), SchedError> {
        let raft = &self.inner.raft;
        if raft.is_initialized().await.map_err(fatal)? {
            return Ok(());
        }
        match raft.initialize(members).await {
            Ok(()) => Ok(()),
            // A peer initialised first and already asked for this node's vote: the group exists,
            // and its leader will send this node the log.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(SchedError::Fatal(format!(
                "cannot initialise the raft group: {e}"
            ))),
        }
    }

    /// Makes the replicated policy this node's (every node of a region should be started with
    /// the same scheduler settings).
    async fn adopt_policy(&self) -> Result<(), SchedError> {
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

    /// Puts a leased job back in its lane for `wait` without counting the attempt: it could not
    /// run for a reason outside the job (its region is cut off, a store is unavailable), so
    /// however long that lasts the job waits rather than fails. `false` when `fencing` is stale.
    pub async fn defer(
        &self,
        job: &JobId,
        fencing: u64,
        wait: Duration,
    ) -> Result<bool, SchedError> {
        let cmd = Command::Defer {
            job: job.clone(),
            fencing,
            wait_ms: wait.as_millis() as u64,
            now_ms: now_ms(),
        };
        match self.write(cmd).await? {
            Response::Deferred(done) => Ok(done),
            other => Err(unexpected("defer", &other)),
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
    /// dead-lettered, the others are ready again at once. Every node calls this periodically; only
    /// the leader's call does anything, so each expiry is proposed once and settled by one node.
    pub async fn expire_leases(&self) -> Result<Vec<Reclaimed>, SchedError> {
        let now = now_ms();
        if !self.is_leader()
            || !raft::read(&self.inner.applied)
                .queue
                .any_lease(queue::expired_at(now))
        {
            return Ok(Vec::new()); // nothing to take back: no log entry
        }
        self.reclaim("expire_leases", Command::ExpireLeases { now_ms: now })
            .await
    }

    /// Dead letters of more than `grace` ago whose job records no node has confirmed, on the
    /// leader (empty elsewhere): the node that dead-lettered one may have died before recording it.
    pub fn unsettled_dead_letters(&self, grace: Duration) -> Vec<Reclaimed> {
        if !self.is_leader() {
            return Vec::new();
        }
        let before = now_ms().saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        raft::read(&self.inner.applied).queue.unsettled(before)
    }

    /// Confirms that these dead letters (job, fencing token of its last attempt) show in their
    /// job records, so no node settles them again.
    pub async fn settled(&self, dead: Vec<(JobId, u64)>) -> Result<(), SchedError> {
        if dead.is_empty() {
            return Ok(());
        }
        let cmd = Command::Settle { jobs: dead };
        match self.write(cmd).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("settled", &other)),
        }
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

    /// Whether this node's applied queue has the job (queued, leased, or a dead letter not yet
    /// recorded), read locally: what a job must not be queued again beside.
    pub fn knows(&self, job: &JobId) -> bool {
        raft::read(&self.inner.applied).queue.knows(job)
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

    /// Whether this node leads the raft group now (as far as it knows: a deposed leader learns it
    /// at its next heartbeat round, and its writes are then refused and retried on the new leader).
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.config.node_id)
    }

    /// This node's view of the group, from raft's metrics (no round trip).
    pub fn cluster_status(&self) -> ClusterStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let applied_index = m.last_applied.map_or(0, |id| id.index);
        let commit_index = match &m.replication {
            // What a majority of voters holds: sort their matched indexes, take the median.
            Some(replication) => {
                let mut matched: Vec<u64> = voters
                    .iter()
                    .map(|id| match replication.get(id) {
                        Some(log_id) => log_id.map_or(0, |l| l.index),
                        None if *id == m.id => last_log_index,
                        None => 0,
                    })
                    .collect();
                matched.sort_unstable_by(|a, b| b.cmp(a));
                matched.get(voters.len() / 2).copied().unwrap_or(0)
            }
            None => applied_index,
        };
        let state = match (&m.running_state, m.state) {
            (Err(_), _) | (_, ServerState::Shutdown) => "shutdown",
            (_, ServerState::Leader) => "leader",
            (_, ServerState::Follower) => "follower",
            (_, ServerState::Candidate) => "candidate",
            (_, ServerState::Learner) => "learner",
        };
        ClusterStatus {
            node_id: m.id,
            state: state.to_owned(),
            term: m.current_term,
            leader: m.current_leader,
            leader_changes: self.inner.leader_changes.load(Ordering::Relaxed),
            last_log_index,
            applied_index,
            commit_index,
            learners: membership.learner_ids().collect(),
            voters,
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
        }
    }

    /// Changes the raft group's membership (on the leader, wherever it is called).
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<ClusterStatus, SchedError> {
        // Membership changes are not repeated blindly: a lost answer is for the operator to check.
        self.at_leader(MEMBERSHIP_PATH, &change, false, || {
            self.change_membership_here(change.clone())
        })
        .await
    }

    /// `change_membership` on this node: `NotLeader` unless it leads.
    pub(crate) async fn change_membership_here(
        &self,
        change: MembershipChange,
    ) -> Result<ClusterStatus, SchedError> {
        let raft = &self.inner.raft;
        let result = match change {
            MembershipChange::AddLearner { id, addr } => {
                raft.add_learner(id, BasicNode::new(addr), true).await
            }
            MembershipChange::Promote { id } => {
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
            }
            MembershipChange::Remove { id } => {
                let voter = self.cluster_status().voters.contains(&id);
                let ids = BTreeSet::from([id]);
                let change = if voter {
                    ChangeMembers::RemoveVoters(ids)
                } else {
                    ChangeMembers::RemoveNodes(ids)
                };
                raft.change_membership(change, false).await
            }
        };
        result.map_err(|e| write_error("a membership change", e))?;
        Ok(self.cluster_status())
    }

    /// Stops raft and the raft listener; every later call fails with `Fatal`. Durable state needs no
    /// flush: it was fsynced as written.
    pub async fn shutdown(&self) -> Result<(), SchedError> {
        if let Some(server) = self.inner.server.lock().unwrap().take() {
            server.abort();
        }
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| SchedError::Fatal(format!("raft did not stop cleanly: {e}")))
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub(crate) fn config(&self) -> &SchedConfig {
        &self.inner.config
    }

    async fn write(&self, cmd: Command) -> Result<Response, SchedError> {
        self.at_leader(WRITE_PATH, &cmd, cmd.is_repeatable(), || {
            self.write_here(cmd.clone())
        })
        .await
    }

    /// Proposes `cmd` if this node leads, stamped with this node's clock; `NotLeader` otherwise.
    ///
    /// The wait for the commit is bounded: openraft 0.9 never answers a proposal of a leader that
    /// was deposed and then caught up by a snapshot which replaced the proposed entry
    /// (openraft#1761). Past the bound a repeatable command counts as refused by a non-leader and
    /// is retried; any other may or may not have been applied.
    pub(crate) async fn write_here(&self, mut cmd: Command) -> Result<Response, SchedError> {
        let repeatable = cmd.is_repeatable();
        cmd.stamp(now_ms());
        match tokio::time::timeout(COMMIT_TIMEOUT, self.inner.raft.client_write(cmd)).await {
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(write_error("a queue write", e)),
            Err(_) if repeatable => Err(SchedError::NotLeader { leader: None }),
            Err(_) => Err(SchedError::Unavailable(format!(
                "a queue write was not committed within {}s (the leader may have lost its quorum); it may or may not have been applied, try again",
                COMMIT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Runs a request on the leader: `here` when this node leads, else forwarded over `path` to the
    /// node that does. While no leader is known, or the known one cannot be reached or has stopped
    /// (it died and an election is due), tries again for up to `LEADER_WAIT`. A request that may
    /// have been applied (its answer was lost) is repeated only if it is `repeatable`: applying it
    /// twice does what applying it once does.
    async fn at_leader<B, T, F>(
        &self,
        path: &str,
        body: &B,
        repeatable: bool,
        here: impl Fn() -> F,
    ) -> Result<T, SchedError>
    where
        B: Serialize,
        T: DeserializeOwned,
        F: Future<Output = Result<T, SchedError>>,
    {
        let give_up = Instant::now() + LEADER_WAIT;
        loop {
            let attempt = match self.leader()? {
                Some((id, _)) if id == self.inner.config.node_id => Attempt::Done(here().await),
                Some((id, addr)) => self.forward(id, &addr, path, body, repeatable).await,
                None => Attempt::Retry(SchedError::NotLeader { leader: None }),
            };
            let attempt = match attempt {
                Attempt::Done(Err(e @ SchedError::NotLeader { .. })) => Attempt::Retry(e),
                other => other,
            };
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::Retry(e) if Instant::now() >= give_up => return Err(e),
                Attempt::Retry(_) => tokio::time::sleep(LEADER_POLL).await,
            }
        }
    }

    async fn forward<B: Serialize, T: DeserializeOwned>(
        &self,
        leader: u64,
        addr: &str,
        path: &str,
        body: &B,
        repeatable: bool,
    ) -> Attempt<T> {
        let gone = |what: String| {
            SchedError::Unavailable(format!(
                "the scheduler leader, node {leader}, {what}; an election should replace it within a second"
            ))
        };
        match self
            .inner
            .transport
            .call::<B, Result<T, SchedError>>(addr, path, leader, body, FORWARD_TIMEOUT)
            .await
        {
            // A leader that is shutting down refuses everything: nothing was applied.
            Ok(Err(e @ (SchedError::Fatal(_) | SchedError::Storage(_)))) => {
                Attempt::Retry(gone(format!("has stopped ({e})")))
            }
            Ok(answer) => Attempt::Done(answer),
            Err(e @ CallError::Unreachable { .. }) => {
                Attempt::Retry(gone(format!("is unreachable ({e})")))
            }
            // Refused before it was read: nothing was applied.
            Err(e @ CallError::Refused { .. }) => Attempt::Retry(SchedError::Unavailable(format!(
                "the scheduler leader, node {leader}, refused a forwarded request: {e}"
            ))),
            Err(e @ CallError::Failed { .. }) if repeatable => {
                Attempt::Retry(gone(format!("did not answer ({e})")))
            }
            Err(e @ CallError::Failed { .. }) => Attempt::Done(Err(SchedError::Unavailable(format!(
                "the scheduler leader, node {leader}, did not answer a forwarded request ({e}); it may or may not have been applied"
            )))),
        }
    }

    /// The leader this node knows of, with its raft address.
    fn leader(&self) -> Result<Option<(u64, String)>, SchedError> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        if let Err(e) = &m.running_state {
            return Err(fatal(e.clone()));
        }
        Ok(m.current_leader.map(|id| {
            let addr = m
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone())
                .unwrap_or_default();
            (id, addr)
        }))
    }
}

/// Ends when raft stops (its metrics channel closes).
async fn count_leader_changes(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    changes: Arc<AtomicU64>,
) {
    let mut leader = metrics.borrow().current_leader;
    while metrics.changed().await.is_ok() {
        let now = metrics.borrow().current_leader;
        if now != leader {
            changes.fetch_add(1, Ordering::Relaxed);
            leader = now;
        }
    }
}

/// A refused proposal: `NotLeader` (try the leader) or a stopped node.
fn write_error(what: &str, e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> SchedError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => SchedError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            SchedError::Invalid(format!("{what} was refused: {e}"))
        }
        RaftError::Fatal(e) => fatal(e),
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
