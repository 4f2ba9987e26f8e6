//! A dead letter whose worker never recorded it (its node died between the scheduler's answer
//! and the metadata write) is recorded by the leader's sweep once a lease's length has passed.
//! Its own test binary: actor names are global to a process, so one node per process.

mod common;

use async_trait::async_trait;
use pixelmill_node::{JobExecutor, JobFailure, JobRef};
use pixelmill_sched::Lease;
use pixelmill_testkit::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Fails every job for good, and loses the first failed job's record write, as a node that dies
/// between the scheduler's dead letter and its metadata write does.
struct FailsAndLosesFirstRecord {
    inner: Arc<dyn JobExecutor>,
    records: AtomicUsize,
}

#[async_trait]
impl JobExecutor for FailsAndLosesFirstRecord {
    async fn execute(&self, _lease: &Lease) -> Result<(), JobFailure> {
        Err(JobFailure::final_("injected final failure"))
    }

    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        if self.records.fetch_add(1, Ordering::SeqCst) == 0 {
            return false;
        }
        self.inner.record_failure(job, failure, dead).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_its_worker_did_not_record_is_recorded_by_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::one_worker_node(dir.path(), Duration::from_secs(1), |inner| {
        Arc::new(FailsAndLosesFirstRecord {
            inner,
            records: AtomicUsize::new(0),
        })
    })
    .await;
    let client = Client::new(format!("http://{}", node.addr));
    let job = common::run_a_job(&client, 16).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("stopped before recording the error"),
        "the leader's sweep, not the worker, recorded it: {job}"
    );
    node.shutdown().await.unwrap();
}
