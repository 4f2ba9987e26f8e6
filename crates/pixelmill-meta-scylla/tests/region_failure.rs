//! A region fails and returns: dc2's only node is killed (`kill -9`) while dc1 keeps working,
//! then started again. Its own test binary, because it takes a node of the shared test cluster
//! away; cargo runs test binaries one after another.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, cluster_available, eventually, store, unique_keyspace};
use pixelmill_core::{now_ms, Durability};
use pixelmill_meta::{suite, MetaError, MetaStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dc1_serves_at_local_quorum_while_dc2_is_down_and_dc2_catches_up() {
    if !cluster_available() {
        return;
    }
    let keyspace = unique_keyspace();
    // dc1's region, with link creation raised to EACH_QUORUM to show what that level costs.
    let dc1 = store(&keyspace, 1, "").await;
    let strict = store(&keyspace, 1, "&link_create=each_quorum").await;
    let tenant = suite::unique_tenant();

    cluster(&["kill-node", "2"]);
    let killed = Instant::now();

    // LOCAL_QUORUM needs only dc1's replica: uploads and jobs keep working at once.
    let image = suite::image(&tenant);
    dc1.put_image(&image, Durability::Local)
        .await
        .expect("an upload's record while dc2 is down");
    let mut job = suite::job(&tenant);
    dc1.put_job(&job)
        .await
        .expect("a new job while dc2 is down");
    job.attempts = 1;
    dc1.put_job(&job)
        .await
        .expect("a job transition while dc2 is down");
    assert_eq!(
        dc1.get_job(&tenant, &job.id).await.unwrap(),
        Some(job.clone())
    );

    // EACH_QUORUM needs dc2 too. Once dc1's failure detector has convicted dc2's node, the
    // coordinator refuses at once with `unavailable` instead of waiting on a dead replica.
    let link = suite::link(&suite::unique_blob(), now_ms() + 60_000);
    let detected = eventually(Duration::from_secs(60), "dc2 is seen as down", || async {
        matches!(strict.put_link(&link).await, Err(MetaError::Unavailable(_)))
    })
    .await;
    let attempt = Instant::now();
    let err = strict.put_link(&link).await.unwrap_err();
    let refused_in = attempt.elapsed();
    assert!(matches!(err, MetaError::Unavailable(_)), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(
        refused_in < Duration::from_secs(1),
        "refused in {refused_in:?}"
    );
    eprintln!(
        "dc2 down: LOCAL_QUORUM writes kept working; EACH_QUORUM refused `unavailable` after \
         {detected:?} of failure detection, then in {refused_in:?}: {err}"
    );
    // What dc1 wrote meanwhile must reach dc2 once it is back (hinted handoff).
    let during_outage = suite::image(&tenant);
    dc1.put_image(&during_outage, Durability::Local)
        .await
        .unwrap();

    cluster(&["start-node", "2"]);
    eprintln!("dc2 back after {:?}", killed.elapsed());
    let dc2 = store(&keyspace, 2, "").await;
    let caught_up = eventually(Duration::from_secs(120), "dc2 catches up", || async {
        let image = dc2.get_image(&tenant, &during_outage.id).await;
        let seen = dc2.get_job(&tenant, &job.id).await;
        matches!((image, seen), (Ok(Some(_)), Ok(Some(seen))) if seen == job)
    })
    .await;
    eprintln!("dc2 caught up {caught_up:?} after it returned");
    assert_eq!(
        dc2.get_image(&tenant, &image.id).await.unwrap(),
        Some(image)
    );
    strict
        .put_link(&link)
        .await
        .expect("EACH_QUORUM works again");
}
