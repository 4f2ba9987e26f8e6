//! The queue's decisions, tested without raft: time and log indexes are plain arguments here.

use super::policy::MAX_BACKOFF_MS;
use super::*;
use crate::types::FailOutcome;

fn policy() -> Policy {
    Policy {
        queue_bound: 100,
        max_attempts: 3,
        base_backoff_ms: 1_000,
        fast_lane_max_cost: 10,
    }
}

fn job(n: u32) -> JobId {
    JobId::from_string(format!("job_{n:03}"))
}

fn ticket(n: u32, tenant: &str, cost: u64) -> JobTicket {
    JobTicket {
        job: job(n),
        tenant: TenantId::new(tenant),
        cost,
        epoch: 0,
    }
}

struct Harness {
    q: QueueState,
    index: u64,
}

impl Harness {
    fn new(policy: Policy) -> Self {
        Self {
            q: QueueState::new(policy),
            index: 0,
        }
    }

    fn apply(&mut self, cmd: Command) -> Response {
        self.index += 1;
        self.q.apply(cmd, self.index)
    }

    fn enqueue(&mut self, t: JobTicket, now_ms: i64) -> Response {
        self.apply(Command::Enqueue { ticket: t, now_ms })
    }

    fn lease(&mut self, worker: &str, max: usize, now_ms: i64) -> Vec<Lease> {
        let cmd = Command::Lease {
            worker: WorkerId(worker.to_owned()),
            max,
            lease_ms: 1_000,
            now_ms,
        };
        match self.apply(cmd) {
            Response::Leased(l) => l,
            other => panic!("{other:?}"),
        }
    }

    fn fail(&mut self, l: &Lease, retryable: bool, now_ms: i64) -> Response {
        self.apply(Command::Fail {
            job: l.job.clone(),
            fencing: l.fencing,
            retryable,
            now_ms,
        })
    }
}

#[test]
fn enqueue_is_idempotent_and_counted_once() {
    let mut h = Harness::new(policy());
    assert_eq!(
        h.enqueue(ticket(1, "a", 1), 0),
        Response::Enqueued { duplicate: false }
    );
    assert_eq!(
        h.enqueue(ticket(1, "a", 1), 5),
        Response::Enqueued { duplicate: true }
    );
    let leased = h.lease("n1/w1", 10, 10);
    assert_eq!(leased.len(), 1);
    assert_eq!(
        h.enqueue(ticket(1, "a", 1), 20),
        Response::Enqueued { duplicate: true },
        "leased jobs are known too"
    );
    assert_eq!(h.q.stats(20).total_enqueued, 1);
}

#[test]
fn queue_bound_rejects_without_enqueueing_and_ignores_leased_jobs() {
    let mut h = Harness::new(Policy {
        queue_bound: 2,
        ..policy()
    });
    h.enqueue(ticket(1, "a", 1), 0);
    h.enqueue(ticket(2, "a", 1), 0);
    assert_eq!(
        h.enqueue(ticket(3, "a", 1), 0),
        Response::Overloaded {
            retry_after_ms: 1_000
        }
    );
    assert!(!h.q.contains(&job(3)));
    h.lease("w", 1, 0);
    assert_eq!(
        h.enqueue(ticket(3, "a", 1), 0),
        Response::Enqueued { duplicate: false }
    );
}

#[test]
fn leases_carry_the_log_index_as_fencing_and_count_attempts() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    h.enqueue(ticket(2, "a", 1), 0);
    let leases = h.lease("n1/w1", 5, 100);
    assert_eq!(leases.len(), 2);
    assert!(leases
        .iter()
        .all(|l| l.fencing == h.index && l.attempt == 1 && l.deadline_ms == 1_100));
    assert_eq!(leases[0].job, job(1), "FIFO within a tenant");
    assert!(h.lease("n1/w2", 5, 100).is_empty());
}

#[test]
fn stale_fencing_cannot_complete_renew_or_fail() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    let first = h.lease("w1", 1, 0).remove(0);
    h.apply(Command::ExpireLeases { now_ms: 5_000 });
    let second = h.lease("w2", 1, 5_000).remove(0);
    assert_eq!(second.attempt, 2);
    let (job, old) = (first.job.clone(), first.fencing);
    assert_eq!(
        h.apply(Command::Renew {
            job: job.clone(),
            fencing: old,
            lease_ms: 1,
            now_ms: 5_000
        }),
        Response::Renewed(false)
    );
    assert_eq!(
        h.apply(Command::Complete {
            job: job.clone(),
            fencing: old
        }),
        Response::Completed(false)
    );
    assert_eq!(
        h.fail(&first, true, 5_000),
        Response::Failed(FailOutcome::LeaseLost)
    );
    assert_eq!(
        h.apply(Command::Complete {
            job: job.clone(),
            fencing: second.fencing
        }),
        Response::Completed(true)
    );
    assert!(!h.q.contains(&job));
    assert_eq!(
        h.apply(Command::Complete {
            job,
            fencing: second.fencing
        }),
        Response::Completed(false)
    );
}

#[test]
fn renew_moves_the_deadline_so_expiry_skips_it() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    let l = h.lease("w", 1, 0).remove(0);
    let renew = Command::Renew {
        job: l.job.clone(),
        fencing: l.fencing,
        lease_ms: 10_000,
        now_ms: 900,
    };
    assert_eq!(h.apply(renew), Response::Renewed(true));
    assert_eq!(
        h.apply(Command::ExpireLeases { now_ms: 5_000 }),
        Response::Reclaimed(vec![])
    );
    assert_eq!(
        h.apply(Command::ExpireLeases { now_ms: 10_901 }).clone(),
        Response::Reclaimed(vec![Reclaimed {
            job: l.job,
            tenant: TenantId::new("a"),
            attempt: 1,
            fencing: l.fencing,
            outcome: FailOutcome::Retrying {
                not_before_ms: 10_901,
                attempt: 2
            },
        }])
    );
}

#[test]
fn failures_back_off_exponentially_then_dead_letter() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    let l1 = h.lease("w", 1, 0).remove(0);
    assert_eq!(
        h.fail(&l1, true, 10),
        Response::Failed(FailOutcome::Retrying {
            not_before_ms: 1_010,
            attempt: 2
        })
    );
    assert!(
        h.lease("w", 1, 1_009).is_empty(),
        "not before the backoff ends"
    );
    let l2 = h.lease("w", 1, 1_010).remove(0);
    assert_eq!(l2.attempt, 2);
    assert_eq!(
        h.fail(&l2, true, 2_000),
        Response::Failed(FailOutcome::Retrying {
            not_before_ms: 4_000,
            attempt: 3
        })
    );
    let l3 = h.lease("w", 1, 4_000).remove(0);
    assert_eq!(
        h.fail(&l3, true, 5_000),
        Response::Failed(FailOutcome::DeadLettered),
        "max_attempts = 3"
    );
    let stats = h.q.stats(5_000);
    assert_eq!(stats.dead_letters, 1);
    assert!(!h.q.contains(&l3.job));
}

#[test]
fn non_retryable_failure_dead_letters_at_once() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    let l = h.lease("w", 1, 0).remove(0);
    assert_eq!(
        h.fail(&l, false, 1),
        Response::Failed(FailOutcome::DeadLettered)
    );
    assert_eq!(h.q.stats(1).dead_letters, 1);
}

#[test]
fn dead_letters_stay_unsettled_until_settled_and_a_repeated_fail_answers_the_same() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    h.enqueue(ticket(2, "a", 1), 0);
    let dead = h.lease("w", 1, 0).remove(0);
    let retried = h.lease("w", 1, 0).remove(0);
    let failed = Response::Failed(FailOutcome::DeadLettered);
    assert_eq!(h.fail(&dead, false, 5), failed);
    assert_eq!(
        h.fail(&dead, false, 6),
        failed,
        "a repeat after a lost answer"
    );
    assert!(matches!(
        h.fail(&retried, true, 5),
        Response::Failed(FailOutcome::Retrying { .. })
    ));
    assert_eq!(
        h.fail(&retried, true, 6),
        Response::Failed(FailOutcome::LeaseLost),
        "queued again: its next attempt records it"
    );
    assert!(h.q.unsettled(5).is_empty(), "only dead letters of before 5");
    let unsettled = h.q.unsettled(6);
    assert_eq!(
        unsettled,
        vec![Reclaimed {
            job: job(1),
            tenant: TenantId::new("a"),
            attempt: 1,
            fencing: dead.fencing,
            outcome: FailOutcome::DeadLettered
        }]
    );
    h.apply(Command::Settle {
        jobs: vec![(job(1), dead.fencing + 1)],
    });
    assert_eq!(
        h.q.unsettled(6).len(),
        1,
        "another fencing token settles nothing"
    );
    h.apply(Command::Settle {
        jobs: vec![(job(1), dead.fencing)],
    });
    assert!(h.q.unsettled(i64::MAX).is_empty());
    assert_eq!(
        h.fail(&dead, false, 7),
        Response::Failed(FailOutcome::LeaseLost)
    );
}

#[test]
fn backoff_is_capped() {
    let p = Policy {
        base_backoff_ms: 1_000,
        ..policy()
    };
    assert_eq!(p.backoff_ms(1), 1_000);
    assert_eq!(p.backoff_ms(4), 8_000);
    assert_eq!(p.backoff_ms(40), MAX_BACKOFF_MS);
    assert_eq!(p.backoff_ms(u32::MAX), MAX_BACKOFF_MS);
}

#[test]
fn release_worker_takes_back_only_matching_leases_and_counts_the_attempt() {
    let mut h = Harness::new(Policy {
        max_attempts: 1,
        ..policy()
    });
    h.enqueue(ticket(1, "a", 1), 0);
    h.enqueue(ticket(2, "a", 1), 0);
    let released = h.lease("n1/w1", 1, 0).remove(0);
    h.lease("n2/w1", 1, 0);
    let out = h.apply(Command::ReleaseWorker {
        prefix: "n1/".to_owned(),
        now_ms: 10,
    });
    assert_eq!(
        out,
        Response::Reclaimed(vec![Reclaimed {
            job: job(1),
            tenant: TenantId::new("a"),
            attempt: 1,
            fencing: released.fencing,
            outcome: FailOutcome::DeadLettered
        }])
    );
    assert!(h.q.contains(&job(2)));
}

#[test]
fn released_job_is_ready_at_once() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    h.lease("n1/w1", 1, 0);
    h.apply(Command::ReleaseWorker {
        prefix: "n1/".to_owned(),
        now_ms: 10,
    });
    let again = h.lease("n2/w1", 1, 10);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

#[test]
fn fast_lane_goes_first_but_slow_is_not_starved() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(100, "a", 1_000), 0); // slow, enqueued first
    for n in 0..10 {
        h.enqueue(ticket(n, "a", 1), 1);
    }
    let order: Vec<JobId> = (0..11).map(|_| h.lease("w", 1, 2).remove(0).job).collect();
    assert_eq!(order[0], job(0), "fast before an earlier slow job");
    let slow_at = order.iter().position(|j| *j == job(100)).unwrap();
    assert_eq!(
        slow_at, FAST_BURST as usize,
        "slow gets a turn after a burst of fast leases"
    );
}

#[test]
fn tenants_take_turns_within_a_lane() {
    let mut h = Harness::new(policy());
    for n in 0..6 {
        h.enqueue(ticket(n, "big", 1), 0);
    }
    h.enqueue(ticket(10, "small", 1), 1);
    h.enqueue(ticket(11, "small", 1), 1);
    let tenants: Vec<String> = h
        .lease("w", 5, 2)
        .into_iter()
        .map(|l| l.tenant.to_string())
        .collect();
    assert_eq!(tenants, ["big", "small", "big", "small", "big"]);
}

#[test]
fn stats_report_depth_leases_and_oldest_ready_age() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 100);
    h.enqueue(ticket(2, "a", 1), 300);
    h.enqueue(ticket(3, "a", 50), 200);
    h.lease("w", 1, 400);
    let s = h.q.stats(1_000);
    assert_eq!(
        s.lanes[0],
        LaneStats {
            lane: "fast",
            queued: 1,
            leased: 1,
            oldest_queued_age_ms: 700
        }
    );
    assert_eq!(
        s.lanes[1],
        LaneStats {
            lane: "slow",
            queued: 1,
            leased: 0,
            oldest_queued_age_ms: 800
        }
    );
    assert_eq!(s.total_enqueued, 3);
}

#[test]
fn policy_changes_apply_to_later_decisions() {
    let mut h = Harness::new(policy());
    h.apply(Command::SetPolicy(Policy {
        fast_lane_max_cost: 100,
        ..policy()
    }));
    h.enqueue(ticket(1, "a", 50), 0);
    assert_eq!(h.q.stats(0).lanes[0].queued, 1);
}

#[test]
fn snapshot_round_trip_preserves_every_decision() {
    let mut h = Harness::new(policy());
    for n in 0..8 {
        h.enqueue(
            ticket(n, if n % 2 == 0 { "a" } else { "b" }, u64::from(n) * 3),
            i64::from(n),
        );
    }
    let leased = h.lease("w", 3, 10);
    h.fail(&leased[0], true, 11);
    let json = serde_json::to_vec(&h.q).unwrap();
    let mut restored = Harness {
        q: serde_json::from_slice(&json).unwrap(),
        index: h.index,
    };
    assert_eq!(restored.q, h.q);
    for now in [20, 2_000, 5_000] {
        assert_eq!(
            restored.lease("x", 2, now),
            h.lease("x", 2, now),
            "same log, same leases"
        );
    }
    assert_eq!(restored.q.stats(6_000), h.q.stats(6_000));
}

#[test]
fn readiness_and_lease_predicates_match_what_apply_would_do() {
    let mut h = Harness::new(policy());
    assert!(!h.q.has_ready(0));
    h.enqueue(ticket(1, "a", 1), 0);
    assert!(h.q.has_ready(0));
    let lease = h.lease("n1/w0/1", 1, 0).remove(0);
    assert!(!h.q.has_ready(0), "the only job is leased");
    assert!(h.q.any_lease(super::held_by("n1/w0/")));
    assert!(!h.q.any_lease(super::held_by("n1/w1/")));
    assert!(!h.q.any_lease(super::expired_at(lease.deadline_ms)));
    assert!(h.q.any_lease(super::expired_at(lease.deadline_ms + 1)));
}

#[test]
fn a_deferred_attempt_waits_without_counting_so_no_outage_dead_letters_a_job() {
    let mut h = Harness::new(policy()); // 3 attempts
    h.enqueue(ticket(1, "a", 1), 0);
    let mut now = 0;
    for _ in 0..10 {
        let lease = h
            .lease("n1/w1", 1, now)
            .pop()
            .expect("ready again after the wait");
        assert_eq!(lease.attempt, 1, "a deferral is not an attempt");
        let defer = Command::Defer {
            job: lease.job.clone(),
            fencing: lease.fencing,
            wait_ms: 2_000,
            now_ms: now,
        };
        assert_eq!(h.apply(defer.clone()), Response::Deferred(true));
        assert_eq!(
            h.apply(defer),
            Response::Deferred(false),
            "a repeat finds no lease"
        );
        assert!(
            h.lease("n1/w1", 1, now + 1_999).is_empty(),
            "waits its time out"
        );
        now += 2_000;
    }
    let lease = h.lease("n1/w1", 1, now).pop().unwrap();
    assert_eq!(
        h.fail(&lease, true, now),
        Response::Failed(FailOutcome::Retrying {
            not_before_ms: now + 1_000,
            attempt: 2,
        })
    );
    assert_eq!(h.q.stats(now).dead_letters, 0);
}

#[test]
fn a_job_queued_again_in_a_later_epoch_is_leased_with_tokens_of_that_epoch() {
    let mut h = Harness::new(policy());
    h.enqueue(ticket(1, "a", 1), 0);
    let first = h.lease("n1/w1", 1, 0).pop().unwrap();
    assert_eq!(
        first.fencing, h.index,
        "epoch 0: the token is the log index"
    );
    // Adopted elsewhere and back: queued again here under epoch 2 while the old lease runs.
    let again = JobTicket {
        epoch: 2,
        ..ticket(1, "a", 1)
    };
    assert_eq!(h.enqueue(again, 10), Response::Enqueued { duplicate: true });
    h.fail(&first, true, 10);
    let second = h.lease("n1/w1", 1, 10_000).pop().unwrap();
    assert_eq!(second.fencing, pixelmill_core::fencing_token(2, h.index));
    assert!(
        second.fencing > first.fencing + (1 << 40),
        "any later-epoch token outranks"
    );
}
