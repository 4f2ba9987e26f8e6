//! The replicated queue: a pure, deterministic state machine. No I/O, no clock, no randomness: the leader
//! stamps `now_ms` into every command and raft supplies the log index, so every replica that applies the
//! same log reaches the same state and hands out the same leases.

mod lane;
mod policy;
#[cfg(test)]
mod tests;

use crate::types::{FailOutcome, JobTicket, LaneStats, Lease, QueueStats, Reclaimed, WorkerId};
use lane::{Lane, Slot};
use pixelmill_core::{fencing_token, JobId, TenantId};
pub(crate) use policy::Policy;
use policy::{LaneKind, FAST_BURST};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A queue mutation as written to the raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Command {
    SetPolicy(Policy),
    Enqueue {
        ticket: JobTicket,
        now_ms: i64,
    },
    Lease {
        worker: WorkerId,
        max: usize,
        lease_ms: u64,
        now_ms: i64,
    },
    Renew {
        job: JobId,
        fencing: u64,
        lease_ms: u64,
        now_ms: i64,
    },
    Complete {
        job: JobId,
        fencing: u64,
    },
    Fail {
        job: JobId,
        fencing: u64,
        retryable: bool,
        now_ms: i64,
    },
    ExpireLeases {
        now_ms: i64,
    },
    ReleaseWorker {
        prefix: String,
        now_ms: i64,
    },
    /// The jobs' dead-lettering (under these fencing tokens) is recorded in their metadata.
    Settle {
        jobs: Vec<(JobId, u64)>,
    },
    /// The attempt could not run for a reason outside the job (its region is cut off from the
    /// others, a store is unavailable): the job goes back to its lane after `wait_ms`, and the
    /// attempt does not count against it.
    Defer {
        job: JobId,
        fencing: u64,
        wait_ms: u64,
        now_ms: i64,
    },
}

impl Command {
    /// Whether applying the command twice leaves the queue as applying it once does, so a write
    /// whose answer was lost may be sent again. A second `Complete` or `Defer` finds the lease
    /// gone and answers `false`, a second `ReleaseWorker` or `ExpireLeases` finds nothing to take back, a second
    /// `Fail` answers `DeadLettered` again while the dead letter is unsettled (and `LeaseLost` once
    /// the job was queued again, whose next attempt then records it); a second `Lease` would lease
    /// more jobs, which stay orphaned until their leases expire.
    pub(crate) fn is_repeatable(&self) -> bool {
        !matches!(self, Command::Lease { .. })
    }

    /// Sets the command's clock reading. Only the leader calls this, just before proposing, so
    /// every deadline and backoff in the log comes from one clock whichever node asked.
    pub(crate) fn stamp(&mut self, now: i64) {
        match self {
            Command::Enqueue { now_ms, .. }
            | Command::Lease { now_ms, .. }
            | Command::Renew { now_ms, .. }
            | Command::Fail { now_ms, .. }
            | Command::Defer { now_ms, .. }
            | Command::ExpireLeases { now_ms }
            | Command::ReleaseWorker { now_ms, .. } => *now_ms = now,
            Command::SetPolicy(_) | Command::Complete { .. } | Command::Settle { .. } => {}
        }
    }
}

/// The outcome of applying one log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Response {
    /// Policy changes and raft's own (blank, membership) entries.
    Done,
    Enqueued {
        duplicate: bool,
    },
    Overloaded {
        retry_after_ms: u64,
    },
    Leased(Vec<Lease>),
    Renewed(bool),
    Completed(bool),
    Deferred(bool),
    Failed(FailOutcome),
    Reclaimed(Vec<Reclaimed>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum JobState {
    Queued {
        slot: Slot,
    },
    Leased {
        worker: String,
        fencing: u64,
        deadline_ms: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    tenant: TenantId,
    /// The job's ownership epoch, the high bits of its fencing tokens.
    #[serde(default)]
    epoch: u32,
    lane: LaneKind,
    /// Leases handed out so far; the attempt number of the current or last lease.
    attempts: u32,
    state: JobState,
}

/// Everything that decides future behaviour; this is what snapshots hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Persisted {
    policy: Policy,
    /// Every queued or leased job. Completed and dead-lettered jobs are forgotten, keeping state bounded.
    jobs: BTreeMap<JobId, Job>,
    /// Per lane, the tenant served last: round-robin resumes after it.
    cursors: [Option<TenantId>; 2],
    fast_streak: u32,
    next_seq: u64,
    dead_letters: u64,
    total_enqueued: u64,
    /// Dead-lettered jobs until a node confirms their metadata says so (`Settle`): the node that
    /// dead-lettered one may die before writing it, and the leader then settles it instead.
    #[serde(default)]
    unsettled: BTreeMap<JobId, Unsettled>,
}

/// A dead letter whose job record may not show it yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Unsettled {
    tenant: TenantId,
    attempt: u32,
    fencing: u64,
    at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "Persisted")]
pub(crate) struct QueueState {
    core: Persisted,
    lanes: [Lane; 2],
}

impl Serialize for QueueState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(s)
    }
}

impl From<Persisted> for QueueState {
    /// Rebuilds the lane indexes from the jobs, so snapshots carry each fact once.
    fn from(core: Persisted) -> Self {
        let mut lanes: [Lane; 2] = Default::default();
        for (id, job) in &core.jobs {
            let lane = &mut lanes[job.lane.idx()];
            match &job.state {
                JobState::Queued { slot } => lane.push(&job.tenant, *slot, id.clone()),
                JobState::Leased { .. } => lane.leased += 1,
            }
        }
        Self { core, lanes }
    }
}

impl QueueState {
    pub(crate) fn new(policy: Policy) -> Self {
        Self::from(Persisted {
            policy,
            jobs: BTreeMap::new(),
            cursors: [None, None],
            fast_streak: 0,
            next_seq: 0,
            dead_letters: 0,
            total_enqueued: 0,
            unsettled: BTreeMap::new(),
        })
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.core.policy
    }

    pub(crate) fn contains(&self, job: &JobId) -> bool {
        self.core.jobs.contains_key(job)
    }

    /// Queued, leased, or dead-lettered and not yet recorded.
    pub(crate) fn knows(&self, job: &JobId) -> bool {
        self.contains(job) || self.core.unsettled.contains_key(job)
    }

    /// Whether a lease taken at `now_ms` would get a job. Lets the handle skip proposing a lease
    /// that would come back empty, so idle workers do not write to the log.
    pub(crate) fn has_ready(&self, now_ms: i64) -> bool {
        self.lanes.iter().any(|lane| lane.has_ready(now_ms))
    }

    /// Whether any lease matches `which(worker, deadline_ms)` (see `expired_at`, `held_by`).
    pub(crate) fn any_lease(&self, which: impl Fn(&str, i64) -> bool) -> bool {
        self.core.jobs.values().any(|job| {
            matches!(&job.state, JobState::Leased { worker, deadline_ms, .. } if which(worker, *deadline_ms))
        })
    }

    /// Jobs waiting in a lane (leased ones excluded): what `queue_bound` limits.
    pub(crate) fn queued(&self) -> usize {
        self.lanes.iter().map(Lane::queued).sum()
    }

    /// Applies `cmd`, written to the log at `index` (which, under the job's epoch, becomes the
    /// fencing token of any lease it grants).
    pub(crate) fn apply(&mut self, cmd: Command, index: u64) -> Response {
        match cmd {
            Command::SetPolicy(policy) => {
                self.core.policy = policy;
                Response::Done
            }
            Command::Enqueue { ticket, now_ms } => self.enqueue(ticket, now_ms),
            Command::Lease {
                worker,
                max,
                lease_ms,
                now_ms,
            } => Response::Leased(self.lease(worker, max, lease_ms, now_ms, index)),
            Command::Renew {
                job,
                fencing,
                lease_ms,
                now_ms,
            } => {
                let renewed = match self.leased_mut(&job, fencing) {
                    Some(JobState::Leased { deadline_ms, .. }) => {
                        *deadline_ms = now_ms.saturating_add_unsigned(lease_ms);
                        true
                    }
                    _ => false,
                };
                Response::Renewed(renewed)
            }
            Command::Complete { job, fencing } => {
                if self.leased_mut(&job, fencing).is_none() {
                    return Response::Completed(false);
                }
                if let Some(done) = self.core.jobs.remove(&job) {
                    self.lanes[done.lane.idx()].leased -= 1;
                }
                Response::Completed(true)
            }
            Command::Fail {
                job,
                fencing,
                retryable,
                now_ms,
            } => {
                if self.leased_mut(&job, fencing).is_some() {
                    return Response::Failed(self.end_attempt(&job, retryable, now_ms, true));
                }
                // A repeat of a `Fail` that dead-lettered the job answers the same.
                Response::Failed(if self.is_unsettled(&job, fencing) {
                    FailOutcome::DeadLettered
                } else {
                    FailOutcome::LeaseLost
                })
            }
            Command::Defer {
                job,
                fencing,
                wait_ms,
                now_ms,
            } => {
                let Some(JobState::Leased { .. }) = self.leased_mut(&job, fencing) else {
                    return Response::Deferred(false);
                };
                if let Some(deferred) = self.core.jobs.get_mut(&job) {
                    deferred.attempts = deferred.attempts.saturating_sub(1);
                }
                self.end_attempt(&job, true, now_ms.saturating_add_unsigned(wait_ms), false);
                Response::Deferred(true)
            }
            Command::ExpireLeases { now_ms } => self.reclaim(now_ms, expired_at(now_ms)),
            Command::ReleaseWorker { prefix, now_ms } => self.reclaim(now_ms, held_by(&prefix)),
            Command::Settle { jobs } => {
                for (job, fencing) in jobs {
                    if self.is_unsettled(&job, fencing) {
                        self.core.unsettled.remove(&job);
                    }
                }
                Response::Done
            }
        }
    }

    fn enqueue(&mut self, ticket: JobTicket, now_ms: i64) -> Response {
        if let Some(known) = self.core.jobs.get_mut(&ticket.job) {
            // This region adopted the job back after another had it: its next lease is of the
            // new epoch (a lease held now keeps its older token, and its writes are refused).
            known.epoch = known.epoch.max(ticket.epoch);
            return Response::Enqueued { duplicate: true };
        }
        if self.queued() >= self.core.policy.queue_bound {
            // Roughly the time a worker needs to drain a few jobs; the caller adds jitter.
            let retry_after_ms = self.core.policy.base_backoff_ms.max(1);
            return Response::Overloaded { retry_after_ms };
        }
        let lane = self.core.policy.lane_for(ticket.cost);
        let slot = self.next_slot(now_ms);
        self.lanes[lane.idx()].push(&ticket.tenant, slot, ticket.job.clone());
        let job = Job {
            tenant: ticket.tenant,
            epoch: ticket.epoch,
            lane,
            attempts: 0,
            state: JobState::Queued { slot },
        };
        self.core.jobs.insert(ticket.job, job);
        self.core.total_enqueued += 1;
        Response::Enqueued { duplicate: false }
    }

    fn lease(
        &mut self,
        worker: WorkerId,
        max: usize,
        lease_ms: u64,
        now_ms: i64,
        index: u64,
    ) -> Vec<Lease> {
        let deadline_ms = now_ms.saturating_add_unsigned(lease_ms);
        let mut leases = Vec::new();
        while leases.len() < max {
            let Some(id) = self.pick(now_ms) else { break };
            let Some(job) = self.core.jobs.get_mut(&id) else {
                break;
            };
            let ready_at = match &job.state {
                JobState::Queued { slot } => slot.0,
                JobState::Leased { .. } => now_ms,
            };
            job.attempts += 1;
            let fencing = fencing_token(job.epoch, index);
            job.state = JobState::Leased {
                worker: worker.0.clone(),
                fencing,
                deadline_ms,
            };
            self.lanes[job.lane.idx()].leased += 1;
            leases.push(Lease {
                job: id,
                tenant: job.tenant.clone(),
                fencing,
                attempt: job.attempts,
                deadline_ms,
                lane: job.lane.name().to_owned(),
                waited_ms: (now_ms - ready_at).max(0),
            });
        }
        leases
    }

    /// Fast lane first, but after `FAST_BURST` fast picks in a row while slow work waits, one slow pick.
    fn pick(&mut self, now_ms: i64) -> Option<JobId> {
        let fast = self.lanes[LaneKind::Fast.idx()].has_ready(now_ms);
        let slow = self.lanes[LaneKind::Slow.idx()].has_ready(now_ms);
        let lane = match (fast, slow) {
            (true, true) if self.core.fast_streak < FAST_BURST => {
                self.core.fast_streak += 1;
                LaneKind::Fast
            }
            (true, false) => {
                self.core.fast_streak = 0;
                LaneKind::Fast
            }
            (_, true) => {
                self.core.fast_streak = 0;
                LaneKind::Slow
            }
            (false, false) => return None,
        };
        let cursor = &mut self.core.cursors[lane.idx()];
        let (tenant, job) = self.lanes[lane.idx()].pop_ready(cursor.as_ref(), now_ms)?;
        *cursor = Some(tenant);
        Some(job)
    }

    /// The job's state if it is leased under exactly this fencing token.
    fn leased_mut(&mut self, job: &JobId, fencing: u64) -> Option<&mut JobState> {
        let state = &mut self.core.jobs.get_mut(job)?.state;
        matches!(state, JobState::Leased { fencing: f, .. } if *f == fencing).then_some(state)
    }

    /// Ends the current (leased) attempt of `id`: dead-letters it when it may not or cannot retry,
    /// otherwise queues it again, after a backoff when `backoff` is set.
    fn end_attempt(
        &mut self,
        id: &JobId,
        retryable: bool,
        now_ms: i64,
        backoff: bool,
    ) -> FailOutcome {
        let Some(job) = self.core.jobs.get(id) else {
            return FailOutcome::DeadLettered;
        };
        let (lane, attempts, tenant) = (job.lane, job.attempts, job.tenant.clone());
        self.lanes[lane.idx()].leased -= 1;
        if !retryable || attempts >= self.core.policy.max_attempts {
            if let Some(Job {
                tenant,
                attempts: attempt,
                state: JobState::Leased { fencing, .. },
                ..
            }) = self.core.jobs.remove(id)
            {
                self.core.unsettled.insert(
                    id.clone(),
                    Unsettled {
                        tenant,
                        attempt,
                        fencing,
                        at_ms: now_ms,
                    },
                );
            }
            self.core.dead_letters += 1;
            return FailOutcome::DeadLettered;
        }
        let wait = if backoff {
            self.core.policy.backoff_ms(attempts)
        } else {
            0
        };
        let not_before_ms = now_ms.saturating_add_unsigned(wait);
        let slot = self.next_slot(not_before_ms);
        self.lanes[lane.idx()].push(&tenant, slot, id.clone());
        if let Some(job) = self.core.jobs.get_mut(id) {
            job.state = JobState::Queued { slot };
        }
        FailOutcome::Retrying {
            not_before_ms,
            attempt: attempts + 1,
        }
    }

    /// Takes back every lease matching `which(worker, deadline_ms)`. The attempt stays counted (a job that
    /// keeps killing its worker must end in the dead letters), but it is ready again at once.
    fn reclaim(&mut self, now_ms: i64, which: impl Fn(&str, i64) -> bool) -> Response {
        let ids: Vec<(JobId, TenantId, u32, u64)> = self
            .core
            .jobs
            .iter()
            .filter_map(|(id, job)| match &job.state {
                JobState::Leased {
                    worker,
                    deadline_ms,
                    fencing,
                } if which(worker, *deadline_ms) => {
                    Some((id.clone(), job.tenant.clone(), job.attempts, *fencing))
                }
                _ => None,
            })
            .collect();
        let reclaimed = ids
            .into_iter()
            .map(|(job, tenant, attempt, fencing)| {
                let outcome = self.end_attempt(&job, true, now_ms, false);
                Reclaimed {
                    job,
                    tenant,
                    attempt,
                    fencing,
                    outcome,
                }
            })
            .collect();
        Response::Reclaimed(reclaimed)
    }

    fn next_slot(&mut self, ready_at_ms: i64) -> Slot {
        self.core.next_seq += 1;
        (ready_at_ms, self.core.next_seq)
    }

    /// Whether `job` is a dead letter, ended by the attempt with `fencing`, not yet settled.
    fn is_unsettled(&self, job: &JobId, fencing: u64) -> bool {
        self.core
            .unsettled
            .get(job)
            .is_some_and(|u| u.fencing == fencing)
    }

    /// Dead letters of before `before_ms` that no node has settled yet (see `Persisted::unsettled`).
    pub(crate) fn unsettled(&self, before_ms: i64) -> Vec<Reclaimed> {
        self.core
            .unsettled
            .iter()
            .filter(|(_, u)| u.at_ms < before_ms)
            .map(|(job, u)| Reclaimed {
                job: job.clone(),
                tenant: u.tenant.clone(),
                attempt: u.attempt,
                fencing: u.fencing,
                outcome: FailOutcome::DeadLettered,
            })
            .collect()
    }

    /// Gauges as of `now_ms` (the caller's clock: stats are local reads, not replicated decisions).
    pub(crate) fn stats(&self, now_ms: i64) -> QueueStats {
        let lanes = LaneKind::ALL
            .iter()
            .map(|kind| {
                let lane = &self.lanes[kind.idx()];
                LaneStats {
                    lane: kind.name(),
                    queued: lane.queued(),
                    leased: lane.leased,
                    oldest_queued_age_ms: lane.oldest_ready_at().map_or(0, |t| (now_ms - t).max(0)),
                }
            })
            .collect();
        QueueStats {
            lanes,
            dead_letters: self.core.dead_letters,
            total_enqueued: self.core.total_enqueued,
        }
    }
}

/// Leases whose deadline passed before `now_ms`.
pub(crate) fn expired_at(now_ms: i64) -> impl Fn(&str, i64) -> bool {
    move |_, deadline_ms| deadline_ms < now_ms
}

/// Leases held by workers whose id starts with `prefix`.
pub(crate) fn held_by(prefix: &str) -> impl Fn(&str, i64) -> bool + '_ {
    move |worker, _| worker.starts_with(prefix)
}
