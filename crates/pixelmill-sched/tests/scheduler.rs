//! The scheduler through real openraft and redb files in a temp dir.

use pixelmill_core::{JobId, TenantId};
use pixelmill_sched::{FailOutcome, JobTicket, SchedConfig, SchedError, Scheduler, WorkerId};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn config() -> SchedConfig {
    SchedConfig {
        fast_lane_max_cost: 10,
        ..SchedConfig::default()
    }
}

fn ticket(n: usize, tenant: &str, cost: u64) -> JobTicket {
    JobTicket {
        job: JobId::from_string(format!("job_{n:04}")),
        tenant: TenantId::new(tenant),
        cost,
        epoch: 0,
    }
}

fn worker(id: &str) -> WorkerId {
    WorkerId(id.to_owned())
}

async fn open(dir: &Path, config: SchedConfig) -> Scheduler {
    let s = Scheduler::open(dir, config).await.unwrap();
    assert!(s.is_ready().await);
    s
}

#[test]
fn jobs_survive_a_crash_and_can_all_be_finished_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tokio::runtime::Runtime::new().unwrap();
    let leased = crashed.block_on(async {
        let s = open(dir.path(), config()).await;
        for n in 0..50 {
            s.enqueue(ticket(n, "t", 1)).await.unwrap();
        }
        s.lease(&worker("n1/w1"), 20, 60_000).await.unwrap()
    });
    assert_eq!(leased.len(), 20);
    // A crash: every raft task is dropped mid-flight, nothing is shut down or flushed.
    drop(crashed);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = open(dir.path(), config()).await;
        let stats = s.stats();
        assert_eq!(stats.lanes[0].queued, 30);
        assert_eq!(stats.lanes[0].leased, 20);
        assert_eq!(stats.total_enqueued, 50);
        let released = s.release_worker("n1/").await.unwrap();
        assert_eq!(released.len(), 20);
        let mut done = BTreeSet::new();
        loop {
            let leases = s.lease(&worker("n1/w2"), 16, 60_000).await.unwrap();
            if leases.is_empty() {
                break;
            }
            for l in leases {
                assert!(s.complete(&l.job, l.fencing).await.unwrap());
                done.insert(l.job);
            }
        }
        assert_eq!(done.len(), 50);
        s.shutdown().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), config()).await;
    s.enqueue(ticket(1, "t", 1)).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    let s = open(dir.path(), config()).await;
    assert_eq!(s.stats().lanes[0].queued, 1);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_is_re_leased_and_the_old_fencing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), config()).await;
    s.enqueue(ticket(1, "t", 1)).await.unwrap();
    let first = s.lease(&worker("n1/w1"), 1, 30).await.unwrap().remove(0);
    assert!(
        s.expire_leases().await.unwrap().is_empty(),
        "not yet expired"
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    let expired = s.expire_leases().await.unwrap();
    assert_eq!(expired.len(), 1);
    assert!(matches!(
        expired[0].outcome,
        FailOutcome::Retrying { attempt: 2, .. }
    ));
    assert!(
        !s.renew(&first.job, first.fencing, 1_000).await.unwrap(),
        "lease lost"
    );

    let second = s
        .lease(&worker("n1/w2"), 1, 60_000)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((second.job.clone(), second.attempt), (first.job.clone(), 2));
    assert!(second.fencing > first.fencing);
    assert!(
        !s.complete(&first.job, first.fencing).await.unwrap(),
        "stale fencing is ignored"
    );
    let stale = s
        .fail(&first.job, first.fencing, true, "late".into())
        .await
        .unwrap();
    assert_eq!(
        stale,
        FailOutcome::LeaseLost,
        "a late failure report changes nothing"
    );
    assert!(s.renew(&second.job, second.fencing, 60_000).await.unwrap());
    assert!(s.complete(&second.job, second.fencing).await.unwrap());
    assert_eq!(s.stats().lanes[0].leased, 0);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_then_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SchedConfig {
        max_attempts: 2,
        base_backoff_ms: 100,
        ..config()
    };
    let s = open(dir.path(), cfg).await;
    s.enqueue(ticket(1, "t", 1)).await.unwrap();
    let l = s.lease(&worker("w"), 1, 60_000).await.unwrap().remove(0);
    let outcome = s
        .fail(&l.job, l.fencing, true, "decoder timeout".into())
        .await
        .unwrap();
    let FailOutcome::Retrying {
        attempt: 2,
        not_before_ms,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(
        s.lease(&worker("w"), 1, 60_000).await.unwrap().is_empty(),
        "backing off"
    );
    let wait = not_before_ms - pixelmill_core::now_ms();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 20)).await;
    let l = s.lease(&worker("w"), 1, 60_000).await.unwrap().remove(0);
    assert_eq!(l.attempt, 2);
    let outcome = s
        .fail(&l.job, l.fencing, true, "decoder timeout".into())
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::DeadLettered);
    assert_eq!(s.stats().dead_letters, 1);

    s.enqueue(ticket(2, "t", 1)).await.unwrap();
    let l = s.lease(&worker("w"), 1, 60_000).await.unwrap().remove(0);
    let outcome = s
        .fail(&l.job, l.fencing, false, "corrupt image".into())
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::DeadLettered);
    assert_eq!(s.stats().dead_letters, 2);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_lane_first_without_starving_slow() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), config()).await;
    s.enqueue(ticket(100, "t", 1_000)).await.unwrap();
    for n in 0..20 {
        s.enqueue(ticket(n, "t", 1)).await.unwrap();
    }
    let first = s.lease(&worker("w"), 1, 60_000).await.unwrap();
    assert_eq!(
        first[0].job,
        ticket(0, "t", 1).job,
        "a later fast job beats an earlier slow one"
    );
    let next = s.lease(&worker("w"), 10, 60_000).await.unwrap();
    assert!(
        next.iter().any(|l| l.job == ticket(100, "t", 1_000).job),
        "slow leased within a burst"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_share_a_lane_fairly() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), config()).await;
    for n in 0..30 {
        s.enqueue(ticket(n, "bulk", 1)).await.unwrap();
    }
    for n in 100..103 {
        s.enqueue(ticket(n, "interactive", 1)).await.unwrap();
    }
    let leases = s.lease(&worker("w"), 6, 60_000).await.unwrap();
    let interactive = leases
        .iter()
        .filter(|l| l.tenant.as_str() == "interactive")
        .count();
    assert_eq!(
        interactive, 3,
        "the small tenant is not stuck behind 30 bulk jobs"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_bound_overloads_and_enqueue_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(
        dir.path(),
        SchedConfig {
            queue_bound: 3,
            ..config()
        },
    )
    .await;
    for n in 0..3 {
        s.enqueue(ticket(n, "t", 1)).await.unwrap();
    }
    s.enqueue(ticket(0, "t", 1)).await.unwrap();
    let err = s.enqueue(ticket(3, "t", 1)).await.unwrap_err();
    assert!(matches!(err, SchedError::Overloaded { retry_after_ms } if retry_after_ms > 0));
    assert!(err.is_retryable());
    assert_eq!(s.stats().lanes[0].queued, 3);
    assert_eq!(s.stats().total_enqueued, 3);
    let leased = s.lease(&worker("w"), 1, 60_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    s.enqueue(ticket(3, "t", 1)).await.unwrap();
    s.enqueue(ticket(0, "t", 1)).await.unwrap();
    assert_eq!(
        (s.stats().lanes[0].queued, s.stats().lanes[0].leased),
        (3, 1),
        "a leased job is not enqueued twice"
    );
    s.shutdown().await.unwrap();
}

/// 2,000 enqueue + lease + complete rounds (6,000 fsynced raft writes, crossing a snapshot and a purge),
/// then a restart that restores the snapshot and replays the rest of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_rounds_take_seconds_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), config()).await;
    let started = Instant::now();
    for n in 0..2_000 {
        s.enqueue(ticket(n, "t", 1)).await.unwrap();
        let l = s.lease(&worker("w"), 1, 60_000).await.unwrap().remove(0);
        assert!(s.complete(&l.job, l.fencing).await.unwrap());
    }
    let took = started.elapsed();
    eprintln!(
        "2000 rounds (6000 raft writes) in {took:?}: {:?} per write",
        took / 6_000
    );
    assert!(took < Duration::from_secs(120), "{took:?}");
    s.enqueue(ticket(9_999, "t", 1)).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);

    let s = open(dir.path(), config()).await;
    let stats = s.stats();
    assert_eq!((stats.total_enqueued, stats.lanes[0].queued), (2_001, 1));
    s.shutdown().await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await; // let raft's storage tasks drop the files

    // A snapshot was taken and the log it covers was purged, so the log does not grow forever.
    let sm = redb::Database::open(dir.path().join("raft-sm.redb")).unwrap();
    let txn = sm.begin_read().unwrap();
    let snapshot = txn
        .open_table(redb::TableDefinition::<&str, &[u8]>::new("snapshot"))
        .unwrap();
    assert!(
        snapshot.get("meta").unwrap().is_some(),
        "no snapshot after 6,000 entries"
    );
    let log = redb::Database::open(dir.path().join("raft-log.redb")).unwrap();
    let txn = log.begin_read().unwrap();
    let logs = txn
        .open_table(redb::TableDefinition::<u64, &[u8]>::new("logs"))
        .unwrap();
    let first = logs.first().unwrap().unwrap().0.value();
    assert!(first > 1_000, "log not purged: first index {first}");
}

fn last_log_index(dir: &Path) -> u64 {
    let path = dir.join("raft-log.redb");
    if !path.exists() {
        return 0;
    }
    let log = redb::Database::open(path).unwrap();
    let txn = log.begin_read().unwrap();
    let logs = txn
        .open_table(redb::TableDefinition::<u64, &[u8]>::new("logs"))
        .unwrap();
    logs.last().unwrap().map_or(0, |(k, _)| k.value())
}

/// Idle workers polling for work and the ticker looking for expired leases must not write to the
/// log: each entry is an fsync. Opening and closing writes the same entries (the election) with or
/// without idle polling in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_polling_writes_nothing_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut growth = Vec::new();
    for polls in [0, 200, 0] {
        let before = last_log_index(dir.path());
        let s = open(dir.path(), config()).await;
        for _ in 0..polls {
            assert!(s
                .lease(&worker("n1/w0/1"), 1, 1_000)
                .await
                .unwrap()
                .is_empty());
            assert!(s.expire_leases().await.unwrap().is_empty());
            assert!(s.release_worker("n1/w0/").await.unwrap().is_empty());
        }
        s.shutdown().await.unwrap();
        drop(s);
        growth.push(last_log_index(dir.path()) - before);
    }
    assert_eq!(
        growth[1], growth[2],
        "log entries per session (first one initialises): {growth:?}"
    );
}
