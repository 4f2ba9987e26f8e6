//! The `MetaStore` conformance suite. Every backend runs it from its own tests, e.g.
//! `suite::run_all(Arc::new(store)).await`; a failing check panics with what the backend got wrong.
//!
//! Every run uses fresh random tenants, ids, tokens and blob keys, so it can run against a shared
//! server that already holds data from other runs. Scans (`expired_links`, `due_outbox`) may then
//! return foreign records too: the checks look at this run's records within the answer and at the
//! ordering and limit of the whole answer.

use crate::{Fenced, Inserted, MetaStore};
use pixelmill_core::{
    fencing_token, now_ms, Durability, EventId, Heartbeat, ImageId, JobStatus, LinkRecord,
    OutboxEvent, RegionState, ReplicationTask,
};
use std::sync::Arc;

mod access;
mod fixtures;
pub use access::{api_keys, tenants};
pub use fixtures::{
    idempotency_key, image, job, link, outbox_event, owned_job, unique_blob, unique_tenant,
};

/// A large enough limit that this run's records are in a scan's answer even on a shared server.
const SCAN_ALL: usize = 10_000;

pub async fn run_all(store: Arc<dyn MetaStore>) {
    images(&*store).await;
    tenant_isolation(&*store).await;
    jobs(&*store).await;
    idempotency(&*store).await;
    idempotency_expiry(&*store).await;
    idempotency_concurrency(Arc::clone(&store)).await;
    job_adoption(&*store).await;
    job_adoption_concurrency(Arc::clone(&store)).await;
    heartbeats_and_region_state(&*store).await;
    fenced_job_writes(&*store).await;
    fenced_job_write_races(Arc::clone(&store)).await;
    links(&*store).await;
    expired_links(&*store).await;
    blob_links(&*store).await;
    outbox_replace(&*store).await;
    due_outbox(&*store).await;
    replication_queue(&*store).await;
    blob_replicas(&*store).await;
    api_keys(&*store).await;
    tenants(&*store).await;
    store.ping().await.expect("ping");
}

pub async fn images(store: &dyn MetaStore) {
    let tenant = unique_tenant();
    let img = image(&tenant);
    assert_eq!(store.get_image(&tenant, &img.id).await.unwrap(), None);
    store.put_image(&img, Durability::Local).await.unwrap();
    let got = store.get_image(&tenant, &img.id).await.unwrap();
    assert_eq!(got, Some(img), "get_image returns the stored record");
}

pub async fn tenant_isolation(store: &dyn MetaStore) {
    let (tenant, other) = (unique_tenant(), unique_tenant());
    let img = image(&tenant);
    store.put_image(&img, Durability::Local).await.unwrap();
    let leaked = store.get_image(&other, &img.id).await.unwrap();
    assert_eq!(leaked, None, "an image is invisible to other tenants");

    let j = job(&tenant);
    store.put_job(&j).await.unwrap();
    let leaked = store.get_job(&other, &j.id).await.unwrap();
    assert_eq!(leaked, None, "a job is invisible to other tenants");
}

pub async fn jobs(store: &dyn MetaStore) {
    let tenant = unique_tenant();
    let mut j = job(&tenant);
    assert_eq!(store.get_job(&tenant, &j.id).await.unwrap(), None);
    store.put_job(&j).await.unwrap();
    assert_eq!(
        store.get_job(&tenant, &j.id).await.unwrap(),
        Some(j.clone())
    );

    j.status = JobStatus::Failed;
    j.attempts = 3;
    j.finished_at = Some(now_ms());
    j.error = Some("decode failed".to_owned());
    store.put_job(&j).await.unwrap();
    let got = store.get_job(&tenant, &j.id).await.unwrap();
    assert_eq!(got, Some(j), "put_job replaces the whole record");
}

pub async fn idempotency(store: &dyn MetaStore) {
    let tenant = unique_tenant();
    let now = now_ms();
    let first = idempotency_key(&tenant, "order-1", now + 60_000);
    let second = idempotency_key(&tenant, "order-1", now + 60_000);
    let inserted = store.insert_idempotency_key(&first, now).await.unwrap();
    assert_eq!(inserted, Inserted::New);
    let inserted = store.insert_idempotency_key(&second, now).await.unwrap();
    assert_eq!(
        inserted,
        Inserted::Existing(first.clone()),
        "never overwrites"
    );

    let elsewhere = idempotency_key(&unique_tenant(), "order-1", now + 60_000);
    let inserted = store.insert_idempotency_key(&elsewhere, now).await.unwrap();
    assert_eq!(inserted, Inserted::New, "keys are scoped to their tenant");
}

pub async fn idempotency_expiry(store: &dyn MetaStore) {
    let tenant = unique_tenant();
    let t = now_ms();
    let old = idempotency_key(&tenant, "retry", t + 1_000);
    let new = idempotency_key(&tenant, "retry", t + 5_000);
    assert_eq!(
        store.insert_idempotency_key(&old, t).await.unwrap(),
        Inserted::New
    );
    let at_expiry = store.insert_idempotency_key(&new, t + 1_000).await.unwrap();
    assert_eq!(at_expiry, Inserted::New, "a key expires at its expires_at");
    let later = idempotency_key(&tenant, "retry", t + 9_000);
    let again = store
        .insert_idempotency_key(&later, t + 1_500)
        .await
        .unwrap();
    assert_eq!(
        again,
        Inserted::Existing(new),
        "the re-inserted key is the live one"
    );
}

/// Concurrent inserts of one key: exactly one wins, everyone else sees the winner's job.
pub async fn idempotency_concurrency(store: Arc<dyn MetaStore>) {
    let tenant = unique_tenant();
    let now = now_ms();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            let record = idempotency_key(&tenant, "contended", now + 60_000);
            tokio::spawn(async move {
                let outcome = store.insert_idempotency_key(&record, now).await.unwrap();
                (record, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (record, Inserted::New) => winners.push(record),
            (_, Inserted::Existing(existing)) => seen.push(existing),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent insert wins");
    assert_eq!(seen.len(), 19);
    assert!(
        seen.iter().all(|r| *r == winners[0]),
        "every loser sees the winner's record"
    );
}

async fn unfinished(store: &dyn MetaStore, owner: &str) -> Vec<pixelmill_core::JobId> {
    let listed = store.unfinished_jobs(owner, SCAN_ALL).await.unwrap();
    listed.into_iter().map(|(_, id)| id).collect()
}

/// A job is listed among its owner's unfinished jobs; another region adopts it only from its
/// current owner and only while it is unfinished; the adoption starts a new epoch, so the old
/// owner's attempts can no longer write it, and the adopter's can.
pub async fn job_adoption(store: &dyn MetaStore) {
    let tenant = unique_tenant();
    let (eu, us, ap) = (unique_region(), unique_region(), unique_region());
    let j = owned_job(&tenant, Some(&eu));
    assert_eq!(
        store.adopt_job(&tenant, &j.id, &eu, &us).await.unwrap(),
        None,
        "a job that does not exist"
    );
    store.put_job(&j).await.unwrap();
    assert_eq!(unfinished(store, &eu).await, std::slice::from_ref(&j.id));
    assert_eq!(
        store.adopt_job(&tenant, &j.id, &ap, &us).await.unwrap(),
        None,
        "ap never owned it"
    );

    // eu's attempt is running when us adopts the job.
    let mut eu_attempt = j.clone();
    eu_attempt.status = JobStatus::Running;
    eu_attempt.fencing = 40;
    assert!(store.put_job_fenced(&eu_attempt).await.unwrap().is_stored());
    let adopted = store
        .adopt_job(&tenant, &j.id, &eu, &us)
        .await
        .unwrap()
        .expect("us adopts it from eu");
    assert_eq!(adopted, eu_attempt.adopted_by(&us));
    assert_eq!(
        (adopted.owner.as_deref(), adopted.epoch, adopted.fencing),
        (Some(us.as_str()), 1, fencing_token(1, 0))
    );
    assert_eq!(
        adopted.status,
        JobStatus::Queued,
        "queued again in its new region"
    );
    assert_eq!(adopted.home.as_deref(), Some(eu.as_str()), "its home stays");
    assert_eq!(
        store.get_job(&tenant, &j.id).await.unwrap(),
        Some(adopted.clone())
    );
    assert!(
        unfinished(store, &eu).await.is_empty(),
        "eu no longer lists it"
    );
    assert_eq!(unfinished(store, &us).await, std::slice::from_ref(&j.id));
    assert_eq!(
        store.adopt_job(&tenant, &j.id, &eu, &ap).await.unwrap(),
        None,
        "eu lost it"
    );

    // eu's attempt, however late its lease, cannot write the job any more.
    let mut stale = eu_attempt.clone();
    stale.status = JobStatus::Succeeded;
    stale.fencing = 10_000;
    assert_eq!(
        store.put_job_fenced(&stale).await.unwrap(),
        Fenced::Refused(Some(Box::new(adopted.clone()))),
        "the old owner's result, refused with the record that stands"
    );
    let mut us_attempt = adopted.clone();
    us_attempt.status = JobStatus::Running;
    us_attempt.fencing = fencing_token(1, 3);
    assert!(
        store.put_job_fenced(&us_attempt).await.unwrap().is_stored(),
        "the new owner's first lease"
    );
    let mut done = us_attempt.clone();
    done.status = JobStatus::Succeeded;
    assert!(store.put_job_fenced(&done).await.unwrap().is_stored());
    assert!(
        unfinished(store, &us).await.is_empty(),
        "a finished job is nobody's to adopt"
    );
    assert_eq!(
        store.adopt_job(&tenant, &j.id, &us, &ap).await.unwrap(),
        None,
        "finished"
    );
}

/// Regions racing to adopt one job: exactly one wins.
pub async fn job_adoption_concurrency(store: Arc<dyn MetaStore>) {
    let tenant = unique_tenant();
    let home = unique_region();
    let j = owned_job(&tenant, Some(&home));
    store.put_job(&j).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, tenant, id, home) = (
                Arc::clone(&store),
                tenant.clone(),
                j.id.clone(),
                home.clone(),
            );
            tokio::spawn(async move {
                store
                    .adopt_job(&tenant, &id, &home, &format!("region-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent adoption wins");
    let stored = store.get_job(&tenant, &j.id).await.unwrap().unwrap();
    assert_eq!(stored, winners[0]);
}

/// Each node's latest heartbeat is kept per region; a region's state is set and read back.
pub async fn heartbeats_and_region_state(store: &dyn MetaStore) {
    let region = unique_region();
    assert!(store.heartbeats(&region).await.unwrap().is_empty());
    assert_eq!(store.region_state(&region).await.unwrap(), None);
    let beat = |node, seq| Heartbeat {
        region: region.clone(),
        node,
        seq,
        draining: false,
        at: now_ms(),
    };
    for b in [beat(1, 1), beat(2, 1), beat(1, 2)] {
        store.put_heartbeat(&b).await.unwrap();
    }
    let mut beats = store.heartbeats(&region).await.unwrap();
    beats.sort_by_key(|b| b.node);
    assert_eq!(
        beats.iter().map(|b| (b.node, b.seq)).collect::<Vec<_>>(),
        [(1, 2), (2, 1)]
    );
    assert!(store.heartbeats(&unique_region()).await.unwrap().is_empty());

    let draining = RegionState {
        region: region.clone(),
        draining: true,
        changed_at: now_ms(),
    };
    store.put_region_state(&draining).await.unwrap();
    assert_eq!(store.region_state(&region).await.unwrap(), Some(draining));
}

/// A job written under a lease can be rewritten under the same or a later lease, never an earlier
/// one; a job that does not exist is not created.
pub async fn fenced_job_writes(store: &dyn MetaStore) {
    let tenant = unique_tenant();
    let mut j = job(&tenant);
    j.fencing = 7;
    assert!(
        !store.put_job_fenced(&j).await.unwrap().is_stored(),
        "a job that does not exist"
    );
    assert_eq!(store.get_job(&tenant, &j.id).await.unwrap(), None);

    j.fencing = 0;
    store.put_job(&j).await.unwrap();
    let mut running = j.clone();
    running.status = JobStatus::Running;
    running.fencing = 7;
    assert!(
        store.put_job_fenced(&running).await.unwrap().is_stored(),
        "the first lease"
    );
    assert!(
        store.put_job_fenced(&running).await.unwrap().is_stored(),
        "the same record again"
    );
    let mut later = running.clone();
    later.fencing = 12;
    later.attempts = 2;
    assert!(
        store.put_job_fenced(&later).await.unwrap().is_stored(),
        "a later lease"
    );
    let mut stale = running.clone();
    stale.status = JobStatus::Succeeded;
    assert!(
        !store.put_job_fenced(&stale).await.unwrap().is_stored(),
        "an earlier lease's result"
    );
    assert_eq!(
        store.get_job(&tenant, &j.id).await.unwrap(),
        Some(later.clone())
    );
    let mut done = later.clone();
    done.status = JobStatus::Succeeded;
    assert!(
        store.put_job_fenced(&done).await.unwrap().is_stored(),
        "the holder's result"
    );
    assert_eq!(store.get_job(&tenant, &j.id).await.unwrap(), Some(done));
}

/// A stale attempt and the attempt that replaced it write at once, many times over: the later
/// lease's record always stands.
pub async fn fenced_job_write_races(store: Arc<dyn MetaStore>) {
    let tenant = unique_tenant();
    let j = job(&tenant);
    store.put_job(&j).await.unwrap();
    let writers: Vec<_> = [3u64, 9]
        .into_iter()
        .map(|fencing| {
            let (store, mut record) = (Arc::clone(&store), j.clone());
            record.fencing = fencing;
            tokio::spawn(async move {
                let mut accepted = 0;
                for round in 0..10 {
                    record.error = Some(format!("lease {fencing}, write {round}"));
                    accepted +=
                        usize::from(store.put_job_fenced(&record).await.unwrap().is_stored());
                }
                accepted
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for writer in writers {
        accepted.push(writer.await.unwrap());
    }
    assert_eq!(accepted[1], 10, "the later lease is never refused");
    let stored = store.get_job(&tenant, &j.id).await.unwrap().unwrap();
    assert_eq!(stored.fencing, 9);
    assert_eq!(stored.error.as_deref(), Some("lease 9, write 9"));
}

pub async fn links(store: &dyn MetaStore) {
    let l = link(&unique_blob(), now_ms() + 60_000);
    assert_eq!(store.get_link(&l.token).await.unwrap(), None);
    store.put_link(&l).await.unwrap();
    assert_eq!(store.get_link(&l.token).await.unwrap(), Some(l.clone()));
    let revoked = LinkRecord {
        revoked_at: Some(now_ms()),
        ..l.clone()
    };
    store.put_link(&revoked).await.unwrap();
    assert_eq!(
        store.get_link(&l.token).await.unwrap(),
        Some(revoked),
        "a revoked link reads back revoked"
    );
    store.delete_link(&l.token).await.unwrap();
    assert_eq!(store.get_link(&l.token).await.unwrap(), None);
    store.delete_link(&l.token).await.unwrap();
}

pub async fn expired_links(store: &dyn MetaStore) {
    let now = now_ms();
    let blob = unique_blob();
    let oldest = link(&blob, now - 3_000);
    let older = link(&blob, now - 2_000);
    let at_now = link(&blob, now);
    let live = link(&blob, now + 60_000);
    for l in [&live, &at_now, &oldest, &older] {
        store.put_link(l).await.unwrap();
    }

    let all = store.expired_links(now, SCAN_ALL).await.unwrap();
    assert!(
        all.iter().all(|l| l.expires_at <= now),
        "only expired links"
    );
    assert!(all.is_sorted_by_key(|l| l.expires_at), "oldest first");
    let ours: Vec<_> = all.iter().filter(|l| l.blob_key == blob).cloned().collect();
    assert_eq!(ours, [oldest.clone(), older.clone(), at_now.clone()]);

    let limited = store.expired_links(now, 2).await.unwrap();
    assert_eq!(
        limited.len(),
        2,
        "at most `limit`, and no fewer when more exist"
    );
    assert!(limited.is_sorted_by_key(|l| l.expires_at));

    // A link stays readable after it expires, until it is deleted.
    assert_eq!(
        store.get_link(&oldest.token).await.unwrap(),
        Some(oldest.clone())
    );
    for l in [&live, &at_now, &oldest, &older] {
        store.delete_link(&l.token).await.unwrap();
    }
    let after = store.expired_links(now, SCAN_ALL).await.unwrap();
    assert!(
        after.iter().all(|l| l.blob_key != blob),
        "deleted links are gone"
    );
}

pub async fn blob_links(store: &dyn MetaStore) {
    let blob = unique_blob();
    assert!(!store.blob_has_links(&blob).await.unwrap());
    let expired = link(&blob, now_ms() - 1_000);
    let live = link(&blob, now_ms() + 60_000);
    store.put_link(&expired).await.unwrap();
    store.put_link(&live).await.unwrap();
    assert!(store.blob_has_links(&blob).await.unwrap());
    store.delete_link(&live.token).await.unwrap();
    assert!(
        store.blob_has_links(&blob).await.unwrap(),
        "an expired link still references its blob"
    );
    store.delete_link(&expired.token).await.unwrap();
    assert!(!store.blob_has_links(&blob).await.unwrap());

    // Re-pointing a link at another blob releases the first one.
    let mut moved = link(&blob, now_ms() + 60_000);
    store.put_link(&moved).await.unwrap();
    moved.blob_key = unique_blob();
    store.put_link(&moved).await.unwrap();
    assert!(!store.blob_has_links(&blob).await.unwrap());
    assert!(store.blob_has_links(&moved.blob_key).await.unwrap());
    store.delete_link(&moved.token).await.unwrap();
}

fn due_ids(events: &[OutboxEvent], ours: &[&OutboxEvent]) -> Vec<EventId> {
    let ours: Vec<_> = ours.iter().map(|e| &e.event_id).collect();
    events
        .iter()
        .filter(|e| ours.contains(&&e.event_id))
        .map(|e| e.event_id.clone())
        .collect()
}

pub async fn outbox_replace(store: &dyn MetaStore) {
    let now = now_ms();
    let mut event = outbox_event(now - 1_000);
    store.put_outbox(&event).await.unwrap();
    let due = store.due_outbox(now, SCAN_ALL).await.unwrap();
    assert_eq!(due_ids(&due, &[&event]), [event.event_id.clone()]);

    // A failed attempt reschedules the same event into the future: it is no longer due.
    event.attempts = 1;
    event.next_attempt_at = now + 60_000;
    store.put_outbox(&event).await.unwrap();
    let due = store.due_outbox(now, SCAN_ALL).await.unwrap();
    assert!(
        due_ids(&due, &[&event]).is_empty(),
        "rescheduled event is not due"
    );
    let later = store.due_outbox(now + 60_000, SCAN_ALL).await.unwrap();
    let ours: Vec<_> = later
        .iter()
        .filter(|e| e.event_id == event.event_id)
        .collect();
    assert_eq!(
        ours,
        [&event],
        "one row per event id, holding the latest put"
    );

    store.delete_outbox(&event.event_id).await.unwrap();
    let later = store.due_outbox(now + 60_000, SCAN_ALL).await.unwrap();
    assert!(
        due_ids(&later, &[&event]).is_empty(),
        "deleted event is gone"
    );
    store.delete_outbox(&event.event_id).await.unwrap();
}

pub async fn due_outbox(store: &dyn MetaStore) {
    let now = now_ms();
    let first = outbox_event(now - 3_000);
    let second = outbox_event(now - 2_000);
    let third = outbox_event(now);
    let future = outbox_event(now + 60_000);
    for e in [&future, &third, &first, &second] {
        store.put_outbox(e).await.unwrap();
    }

    let all = store.due_outbox(now, SCAN_ALL).await.unwrap();
    assert!(
        all.iter().all(|e| e.next_attempt_at <= now),
        "only due events"
    );
    assert!(
        all.is_sorted_by_key(|e| e.next_attempt_at),
        "earliest first"
    );
    let ours = due_ids(&all, &[&first, &second, &third, &future]);
    assert_eq!(ours, [&first, &second, &third].map(|e| e.event_id.clone()));
    let got = all.iter().find(|e| e.event_id == first.event_id);
    assert_eq!(got, Some(&first), "events round-trip unchanged");

    let limited = store.due_outbox(now, 2).await.unwrap();
    assert_eq!(
        limited.len(),
        2,
        "at most `limit`, and no fewer when more exist"
    );

    for e in [&future, &third, &first, &second] {
        store.delete_outbox(&e.event_id).await.unwrap();
    }
}

/// A region name no other run uses, so per-region lists on a shared server hold only ours.
fn unique_region() -> String {
    format!("suite-{}", ImageId::generate()).to_lowercase()
}

/// Tasks come back per (source, target) region, oldest first, within the limit; queuing one again
/// changes nothing; a deleted one is gone; queuing records the source as holding the blob.
pub async fn replication_queue(store: &dyn MetaStore) {
    let (source, target, other) = (unique_region(), unique_region(), unique_region());
    let now = now_ms();
    let task = |i: i64, target: &str| ReplicationTask {
        blob_key: unique_blob(),
        source: source.clone(),
        target: target.to_owned(),
        queued_at: now + i,
    };
    let tasks: Vec<ReplicationTask> = (0..3).map(|i| task(i, &target)).collect();
    let elsewhere = task(0, &other);
    for task in tasks.iter().rev().chain([&elsewhere]) {
        store.queue_replication(task).await.unwrap();
    }
    store.queue_replication(&tasks[1]).await.unwrap();
    let pending = |target: &str, limit| {
        let (source, target) = (source.clone(), target.to_owned());
        async move {
            store
                .pending_replications(&source, &target, limit)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        pending(&target, 10).await,
        tasks,
        "a target's tasks, oldest first, each once"
    );
    assert_eq!(
        pending(&target, 2).await,
        tasks[..2],
        "at most the limit, the oldest"
    );
    assert_eq!(
        pending(&other, 10).await,
        std::slice::from_ref(&elsewhere),
        "per target"
    );
    assert!(
        store
            .pending_replications(&other, &target, 10)
            .await
            .unwrap()
            .is_empty(),
        "per source"
    );
    for task in &tasks {
        let holders = store.blob_replicas(&task.blob_key).await.unwrap();
        assert_eq!(
            holders,
            std::slice::from_ref(&source),
            "queuing records the source"
        );
    }
    store.delete_replication(&tasks[0]).await.unwrap();
    store.delete_replication(&tasks[0]).await.unwrap();
    assert_eq!(
        pending(&target, 10).await,
        tasks[1..],
        "a deleted task is gone; deleting twice is harmless"
    );
    for task in tasks[1..].iter().chain([&elsewhere]) {
        store.delete_replication(task).await.unwrap();
    }
    assert!(pending(&target, 10).await.is_empty());
    assert!(pending(&other, 10).await.is_empty());
}

/// Replica records per blob, in name order, each region once, all forgotten together.
pub async fn blob_replicas(store: &dyn MetaStore) {
    let (blob, other_blob) = (unique_blob(), unique_blob());
    assert!(store.blob_replicas(&blob).await.unwrap().is_empty());
    for region in ["us", "eu", "us"] {
        store.put_blob_replica(&blob, region).await.unwrap();
    }
    store.put_blob_replica(&other_blob, "ap").await.unwrap();
    assert_eq!(store.blob_replicas(&blob).await.unwrap(), ["eu", "us"]);
    store.delete_blob_replicas(&blob).await.unwrap();
    assert!(store.blob_replicas(&blob).await.unwrap().is_empty());
    assert_eq!(
        store.blob_replicas(&other_blob).await.unwrap(),
        ["ap"],
        "another blob's records stay"
    );
}
