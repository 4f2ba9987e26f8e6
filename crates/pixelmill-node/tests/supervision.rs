//! The supervision tree in a real node: a worker actor that panics in the middle of a job is
//! restarted by its supervisor, hands its lease back, and the job still completes; two nodes run
//! in one process.

mod common;

use async_trait::async_trait;
use pixelmill_node::{JobExecutor, JobFailure, JobRef};
use pixelmill_sched::Lease;
use pixelmill_testkit::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Panics on the first job it is given, then behaves like the real runner.
struct PanicsOnFirstJob {
    inner: Arc<dyn JobExecutor>,
    calls: AtomicUsize,
}

#[async_trait]
impl JobExecutor for PanicsOnFirstJob {
    async fn execute(&self, lease: &Lease) -> Result<(), JobFailure> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("injected worker crash while holding {}", lease.job);
        }
        self.inner.execute(lease).await
    }

    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        self.inner.record_failure(job, failure, dead).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_is_restarted_and_its_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that only the restart, not lease expiry, can bring the job back in time.
    let lease_ttl = Duration::from_secs(300);
    let node = common::one_worker_node(dir.path(), lease_ttl, |inner| {
        Arc::new(PanicsOnFirstJob {
            inner,
            calls: AtomicUsize::new(0),
        })
    })
    .await;
    let client = Client::new(format!("http://{}", node.addr));
    let job = common::run_a_job(&client, 64).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    let metrics = client.get_text("/metrics").await;
    assert!(
        metrics.contains("pixelmill_actor_restarts_total{actor=\"worker-0\"} 1"),
        "the worker was restarted exactly once:\n{metrics}"
    );
    node.shutdown().await.unwrap();
}

/// Nothing in a node is registered under a process-wide name: two nodes run side by side in one
/// process, each taking uploads and running jobs through its own actors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_run_side_by_side_in_one_process() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let lease_ttl = Duration::from_secs(30);
    let a = common::one_worker_node(dir_a.path(), lease_ttl, |inner| inner).await;
    let b = common::one_worker_node(dir_b.path(), lease_ttl, |inner| inner).await;
    for node in [&a, &b] {
        let client = Client::new(format!("http://{}", node.addr));
        let job = common::run_a_job(&client, 32).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
