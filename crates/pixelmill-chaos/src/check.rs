//! The invariants, checked after the cluster is whole again: every upload acknowledged (201) is
//! readable, byte for byte, from every region; every job acknowledged (202) ended `succeeded` or
//! `failed` with a reason, and every region shows the same outcome and the same output bytes;
//! every download link handed out works in every region; no job was announced with two
//! different outcomes (duplicates of one event id are allowed).

use crate::hooks::Hooks;
use crate::lab::Lab;
use crate::load::Ledger;
use futures::{stream, StreamExt};
use pixelmill_client::{Client, Job};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const CONCURRENT: usize = 12;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub uploads_acknowledged: usize,
    /// Uploads some region could not read back (by region), and their ids.
    pub uploads_unreadable: BTreeMap<String, usize>,
    pub uploads_lost: Vec<String>,
    pub jobs_acknowledged: usize,
    pub jobs_succeeded: usize,
    pub jobs_failed: usize,
    /// Jobs that never ended, or failed without a reason, with what each region last showed.
    pub jobs_lost: Vec<String>,
    /// Jobs whose outcome or output differs between regions.
    pub jobs_two_results: Vec<String>,
    /// Jobs run by another region than the one that accepted them.
    pub jobs_adopted: usize,
    pub links_handed_out: usize,
    pub links_broken: Vec<String>,
    pub webhooks_received: usize,
    /// Jobs announced with more than one event id (two outcomes).
    pub webhook_conflicts: Vec<String>,
}

/// A client of one region's first node, straight to it (no DNS, no failover elsewhere).
fn region_client(lab: &Lab, region: &str) -> Client {
    let node = lab.nodes_of(region)[0];
    let mut config = lab.node_config(node);
    config.deadline = Duration::from_secs(20);
    Client::new(config)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One job's outcome as a region shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    status: String,
    output: Option<String>,
}

/// Retries `read` until it gives `Some`, or `limit` passes (replication may still be catching up).
async fn eventually<T, F, Fut>(limit: Instant, mut read: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(found) = read().await {
            return Some(found);
        }
        if Instant::now() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The job's outcome as a region showed it: `None` while it is not final; a succeeded job's
/// output is its bytes' hash, read through its download link (`None` when that read fails).
async fn outcome(client: &Client, job: Job) -> Option<Outcome> {
    if !job.is_final() {
        return None;
    }
    if job.status == "failed" && job.error.as_deref().is_none_or(str::is_empty) {
        return Some(Outcome {
            status: "failed without a reason".into(),
            output: None,
        });
    }
    let mut output = None;
    if let (Some(link), "succeeded") = (&job.download_url, job.status.as_str()) {
        if let Some(at) = link.find("/d/") {
            output = client.download(&link[at..]).await.ok().map(|b| sha(&b));
        }
    }
    Some(Outcome {
        status: job.status,
        output,
    })
}

/// The job's outcome in one region once it has settled there (final, and a success's output
/// readable), or `Err` with what that region last showed when `deadline` passes.
async fn settled(client: &Client, id: &str, deadline: Instant) -> Result<Outcome, String> {
    let mut last = None;
    loop {
        let shown = match client.job(id).await {
            Ok(job) => {
                let shown = format!(
                    "{} (attempts {}, run by {})",
                    job.status,
                    job.attempts,
                    job.region.as_deref().unwrap_or("?")
                );
                last = outcome(client, job).await.or(last);
                shown
            }
            Err(err) => format!("unreadable: {err}"),
        };
        let done = last
            .as_ref()
            .is_some_and(|o: &Outcome| o.status != "succeeded" || o.output.is_some());
        if done || Instant::now() >= deadline {
            return last.ok_or(shown);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn verify(lab: &Lab, ledger: &Ledger, hooks: &Hooks, limit: Duration) -> Verdict {
    let deadline = Instant::now() + limit;
    let clients: Vec<(String, Client)> = lab
        .regions
        .iter()
        .map(|r| (r.clone(), region_client(lab, r)))
        .collect();
    let mut verdict = Verdict {
        uploads_acknowledged: ledger.uploads.len(),
        jobs_acknowledged: ledger.jobs.len(),
        ..Verdict::default()
    };

    // Uploads: the original, byte for byte, from every region.
    let reads = ledger.uploads.iter().flat_map(|upload| {
        clients.iter().map(move |(region, client)| async move {
            let read = eventually(deadline, || async {
                let bytes = client.original(&upload.id).await.ok()?;
                (sha(&bytes) == upload.sha256).then_some(())
            })
            .await;
            (region.clone(), upload.id.clone(), read.is_some())
        })
    });
    let reads: Vec<_> = stream::iter(reads)
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    let mut unreadable: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (region, id, ok) in reads {
        if !ok {
            unreadable.entry(id).or_default().insert(region);
        }
    }
    for (id, regions) in &unreadable {
        for region in regions {
            *verdict
                .uploads_unreadable
                .entry(region.clone())
                .or_default() += 1;
        }
        if regions.len() == clients.len() {
            verdict.uploads_lost.push(id.clone());
        }
    }

    // Jobs: final everywhere, the same outcome and output everywhere.
    let reads = ledger.jobs.iter().map(|job| {
        let clients = &clients;
        async move {
            let mut seen = Vec::new();
            for (region, client) in clients {
                seen.push((region.clone(), settled(client, &job.id, deadline).await));
            }
            let adopted = match clients[0].1.job(&job.id).await {
                Ok(j) => j.region.is_some() && j.region != j.home_region,
                Err(_) => false,
            };
            (job.id.clone(), seen, adopted)
        }
    });
    let reads: Vec<_> = stream::iter(reads)
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    for (id, seen, adopted) in reads {
        verdict.jobs_adopted += usize::from(adopted);
        let statuses: BTreeSet<&str> = seen
            .iter()
            .filter_map(|(_, o)| o.as_ref().ok())
            .map(|o| o.status.as_str())
            .collect();
        let outputs: BTreeSet<&str> = seen
            .iter()
            .filter_map(|(_, o)| o.as_ref().ok()?.output.as_deref())
            .collect();
        let ended = seen.iter().all(|(_, o)| o.is_ok());
        let first = seen.iter().find_map(|(_, o)| o.clone().ok());
        match first {
            Some(o) if ended && o.status == "succeeded" => verdict.jobs_succeeded += 1,
            Some(o) if ended && o.status == "failed" => verdict.jobs_failed += 1,
            _ => {
                let shown: Vec<String> = seen
                    .iter()
                    .map(|(region, o)| match o {
                        Ok(o) => format!("{region}: {}", o.status),
                        Err(shown) => format!("{region}: {shown}"),
                    })
                    .collect();
                verdict
                    .jobs_lost
                    .push(format!("{id} ({})", shown.join("; ")));
            }
        }
        if statuses.len() > 1 || outputs.len() > 1 {
            verdict
                .jobs_two_results
                .push(format!("{id}: {statuses:?} {outputs:?}"));
        }
        if seen
            .iter()
            .any(|(_, o)| o.as_ref().is_ok_and(|o| o.status == "succeeded"))
        {
            verdict.links_handed_out += 1;
            for (region, o) in &seen {
                if o.as_ref()
                    .is_ok_and(|o| o.status == "succeeded" && o.output.is_none())
                {
                    verdict.links_broken.push(format!("{id} in {region}"));
                }
            }
        }
    }

    // Notifications: duplicates only ever of one event id per job.
    let received = hooks.received.lock().unwrap().clone();
    verdict.webhooks_received = received.len();
    let mut events: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for d in received {
        events
            .entry(d.job_id)
            .or_default()
            .insert((d.event, d.event_id));
    }
    for (job, ids) in events {
        if ids.len() > 1 {
            verdict.webhook_conflicts.push(format!("{job}: {ids:?}"));
        }
    }
    verdict
}
