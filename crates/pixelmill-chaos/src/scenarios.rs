//! The scenarios: each runs real traffic through geo-DNS, injects its fault at a point of the
//! traffic, undoes it, and checks the invariants (`check::verify`) plus its own figures.

use crate::check::{verify, Verdict};
use crate::hooks::Hooks;
use crate::lab::Lab;
use crate::load::{self, Ledger, LoadPlan, Progress, SharedLedger};
use anyhow::{bail, Context, Result};
use pixelmill_client::Client;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ALL: &[&str] = &[
    "region-kill",
    "partition",
    "drain",
    "wan",
    "leaders",
    "freeze-worker",
    "cassandra-kill",
    "minio-stop",
    "clock-skew",
];

/// The scenarios that take one region out and must leave the others serving.
const SPARES_OTHERS: &[&str] = &[
    "region-kill",
    "partition",
    "drain",
    "cassandra-kill",
    "minio-stop",
];

/// How the cluster was started (`chaos/run` passes the same to `cluster/geo/geo`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// A run small enough for the test command.
    pub short: bool,
    /// `--region-grace` of the nodes: how long a region is silent before it is adopted from.
    pub grace: Duration,
    /// `--lease-ttl` of the nodes.
    pub lease: Duration,
    /// The region the faults hit.
    pub victim: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Served {
    pub attempts: usize,
    pub ok: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub passed: bool,
    pub fault: String,
    pub fault_at_s: f64,
    pub duration_s: f64,
    pub nodes_per_region: u8,
    pub grace_s: f64,
    /// Attempts on nodes, by the region of the node.
    pub attempts_by_region: BTreeMap<String, Served>,
    /// Uploads and jobs acknowledged, by the region that acknowledged them.
    pub acknowledged_by_region: BTreeMap<String, usize>,
    /// Calls a client gave up on (after its retries), by the client's region.
    pub calls_failed_by_region: BTreeMap<String, usize>,
    /// A few of those calls and why, for reading.
    pub calls_failed_sample: Vec<String>,
    /// Of the attempts that reached a region the fault spared, after it: the share answered.
    pub surviving_success_ratio: Option<f64>,
    /// From the fault until every client of the hit region was answered by another region.
    pub failover_s: Option<f64>,
    /// From the fault until every job the hit region had accepted was finished elsewhere.
    pub adoption_s: Option<f64>,
    /// Milliseconds of one request between two regions, before and during the fault.
    pub wan_rtt_ms: Option<(u64, u64)>,
    pub verdict: Verdict,
    pub checks: Vec<Check>,
}

/// One scenario's run: its traffic, its ledger, its webhook receiver.
struct Run<'a> {
    lab: &'a Lab,
    settings: &'a Settings,
    ledger: SharedLedger,
    hooks: Hooks,
    progress: Progress,
    started: Instant,
    total_pairs: usize,
    checks: Vec<Check>,
}

impl Run<'_> {
    fn check(&mut self, name: &str, ok: bool, detail: String) {
        tracing::info!(name, ok, %detail, "check");
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail,
        });
    }

    /// Waits until `share` of the traffic has been sent.
    async fn at_share(&self, share: f64) {
        let target = (self.total_pairs as f64 * share) as usize;
        while self.progress.load(Ordering::SeqCst) < target {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap()
    }
}

pub async fn run(lab: &Lab, settings: &Settings, name: &str) -> Result<ScenarioReport> {
    // Short: 288 requests over about 10 s; full: 1,008 requests over about a minute.
    let (clients_per_region, pairs_per_client, interval) = if settings.short {
        (2, 24, Duration::from_millis(400))
    } else {
        (3, 56, Duration::from_secs(1))
    };
    let hooks = Hooks::default();
    let webhook = hooks.start(IpAddr::from([10, 77, 0, 1])).await?;
    let plan = LoadPlan {
        pairs_per_client,
        clients_per_region,
        interval,
        webhook,
    };
    let mut run = Run {
        lab,
        settings,
        ledger: Arc::new(Mutex::new(Ledger::default())),
        hooks,
        progress: Arc::new(Default::default()),
        started: Instant::now(),
        total_pairs: pairs_per_client * clients_per_region * lab.regions.len(),
        checks: Vec::new(),
    };
    let traffic = {
        let (ledger, progress, started) = (run.ledger.clone(), run.progress.clone(), run.started);
        let lab_regions = lab.regions.clone();
        tracing::info!(scenario = name, regions = ?lab_regions, pairs = run.total_pairs, "traffic starts");
        // The lab outlives the run; the traffic borrows it through a scoped task below.
        async move { load::run(lab, &plan, ledger, progress, started).await }
    };
    let victim = settings.victim.clone();
    let hold = if settings.short {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(60)
    };
    let (fault, fault_at, wan_rtt, adoption) = {
        let faults = inject(&mut run, name, &victim, hold);
        let (fault, _) = tokio::join!(faults, traffic);
        fault?
    };
    // The cluster is whole again; every acknowledged thing must be there.
    let snapshot = run.ledger().clone();
    let verdict = verify(lab, &snapshot, &run.hooks, Duration::from_secs(240)).await;
    let report = summarize(run, name, fault, fault_at, wan_rtt, adoption, verdict);
    Ok(report)
}

/// Checks, during an outage of `victim`, that its two-region uploads read from elsewhere.
async fn check_durable_uploads(run: &mut Run<'_>, victim: &str, fault_at: Duration) {
    let (durable, unreadable) = durable_uploads_unreadable(run, victim, fault_at).await;
    run.check(
        "uploads acknowledged with regions=2 durability stay readable during the outage",
        unreadable == 0,
        format!("{unreadable} of {durable} unreadable from the other regions"),
    );
}

/// What a fault was, when it struck, and its figures.
type Injected = (String, Duration, Option<(u64, u64)>, Option<Duration>);

async fn inject(run: &mut Run<'_>, name: &str, victim: &str, hold: Duration) -> Result<Injected> {
    let lab = run.lab;
    let mut wan_rtt = None;
    let mut adoption = None;
    let fault;
    let fault_at;
    match name {
        "region-kill" => {
            run.at_share(0.4).await;
            fault_at = run.now();
            lab.geo(&["kill-region", victim])?;
            fault = format!("kill -9 of every process of region {victim}");
            check_durable_uploads(run, victim, fault_at).await;
            let adopted = await_adoption(run, victim, fault_at).await;
            run.check(
                "jobs whose input only the dead region held wait for it (counted)",
                true,
                format!("{} jobs waited for their input", adopted.waiting_for_input),
            );
            adoption = Some(adopted.took);
            wait_traffic(run).await;
            lab.geo(&["start-region", victim])?;
        }
        "partition" => {
            run.at_share(0.3).await;
            fault_at = run.now();
            lab.geo(&["partition", victim])?;
            fault = format!("region {victim} cut off for {}s", hold.as_secs());
            let cut = Instant::now();
            check_durable_uploads(run, victim, fault_at).await;
            tokio::time::sleep(hold.saturating_sub(cut.elapsed())).await;
            lab.geo(&["heal", victim])?;
        }
        "drain" => {
            run.at_share(0.3).await;
            fault_at = run.now();
            lab.geo(&["drain", victim])?;
            fault = format!(
                "region {victim} drained for {}s, then undrained",
                hold.as_secs()
            );
            tokio::time::sleep(hold).await;
            lab.geo(&["undrain", victim])?;
        }
        "wan" => {
            let other = other_region(lab, victim);
            let before = lab.rtt(victim, &other)?;
            fault_at = run.now();
            lab.geo(&["latency", "120", "2"])?;
            let during = lab.rtt(victim, &other)?;
            wan_rtt = Some((before, during));
            fault = "120 ms more round trip and 2% packet loss between every two regions".into();
            run.check(
                "the proxies really delay traffic between regions",
                during >= before + 100,
                format!("{victim}→{other}: {before} ms before, {during} ms during"),
            );
            wait_traffic(run).await;
            lab.geo(&["latency", "0"])?;
        }
        "leaders" => {
            run.at_share(0.3).await;
            let http = lab.http();
            let mut leaders = Vec::new();
            for region in &lab.regions {
                let leader = lab.agreed_leader(&http, region, None).await;
                let leader = leader.with_context(|| format!("no leader agreed on in {region}"))?;
                leaders.push((region.clone(), leader));
            }
            fault_at = run.now();
            let mut killed = Vec::new();
            for (region, leader) in &leaders {
                lab.geo(&["kill-node", region, &leader.to_string()])?;
                killed.push((region.clone(), *leader, Instant::now()));
            }
            fault = format!("kill -9 of the scheduler leader of every region at once: {leaders:?}");
            let elections = await_new_leaders(lab, &killed, Duration::from_secs(30)).await;
            let limit = Duration::from_secs(10);
            run.check(
                "every region elects a new scheduler leader within 10 s",
                elections
                    .iter()
                    .all(|e| e.1.is_some_and(|(_, took)| took <= limit)),
                elections
                    .iter()
                    .map(|(region, elected)| match elected {
                        Some((id, took)) => {
                            format!("{region}: node {id} after {:.1} s", took.as_secs_f64())
                        }
                        None => format!("{region}: none after 30 s"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            for (region, leader) in &leaders {
                lab.geo(&["start-node", region, &leader.to_string()])?;
            }
        }
        "freeze-worker" => {
            run.at_share(0.3).await;
            fault_at = run.now();
            let frozen = run.settings.lease * 2 + Duration::from_secs(2);
            lab.geo(&["freeze", victim, "1"])?;
            tokio::time::sleep(frozen).await;
            lab.geo(&["thaw", victim, "1"])?;
            wait_traffic(run).await;
            // Figures, not a check: whether a late write is refused depends on whether the job's
            // next lease had written first; that no job has two results is the check.
            let http = lab.http();
            let mut expired = 0.0;
            for node in lab.nodes_of(victim) {
                expired += metric(&http, node, "pixelmill_lease_expiries_total")
                    .await
                    .into_iter()
                    .flatten()
                    .sum::<f64>();
            }
            let node1 = lab.nodes_of(victim)[0];
            let refused: f64 = metric(&http, node1, "pixelmill_attempts_superseded_total")
                .await
                .into_iter()
                .flatten()
                .sum();
            fault = format!(
                "node 1 of {victim} frozen (SIGSTOP) for {}s, past its lease; {expired} leases \
                 expired in {victim}, {refused} late writes of node 1 refused by fencing",
                frozen.as_secs()
            );
        }
        "cassandra-kill" | "minio-stop" => {
            let server = if name == "cassandra-kill" {
                "cassandra"
            } else {
                "minio"
            };
            run.at_share(0.3).await;
            fault_at = run.now();
            lab.geo(&["kill-server", victim, server])?;
            let held = hold.max(run.settings.grace + Duration::from_secs(10));
            fault = format!(
                "region {victim}'s {server} killed for {}s, its pixelmill nodes up",
                held.as_secs()
            );
            tokio::time::sleep(held).await;
            lab.geo(&["start-server", victim, server])?;
        }
        "clock-skew" => {
            fault_at = run.now();
            lab.geo(&["skew", victim, "1", "+90s"])?;
            fault = format!("node 1 of {victim} restarted with its clock 90 s ahead (libfaketime)");
            wait_traffic(run).await;
            lab.geo(&["skew", victim, "1", "0"])?;
        }
        other => bail!("no scenario {other:?}; scenarios are {}", ALL.join(", ")),
    }
    wait_traffic(run).await;
    if matches!(
        name,
        "partition" | "minio-stop" | "region-kill" | "cassandra-kill"
    ) {
        let lag = replication_settles(lab, Duration::from_secs(180)).await;
        run.check(
            "replication lag returns to 0 in every region",
            lag.is_ok(),
            lag.unwrap_or_else(|e| e),
        );
    }
    Ok((fault, fault_at, wan_rtt, adoption))
}

async fn wait_traffic(run: &Run<'_>) {
    run.at_share(1.0).await;
}

fn other_region(lab: &Lab, victim: &str) -> String {
    lab.regions
        .iter()
        .find(|r| *r != victim)
        .cloned()
        .expect("two regions or more")
}

/// Clients of the regions a fault spared, straight to each one's first node.
fn survivors(lab: &Lab, victim: &str) -> Vec<Client> {
    lab.regions
        .iter()
        .filter(|r| *r != victim)
        .map(|r| {
            let node = lab.nodes_of(r)[0];
            let mut config = lab.node_config(node);
            config.deadline = Duration::from_secs(5);
            Client::new(config)
        })
        .collect()
}

/// Whether upload `id` reads back (byte for byte) from one of `clients`.
async fn readable(clients: &[Client], id: &str, sha256: &str) -> bool {
    for client in clients {
        if let Ok(bytes) = client.original(id).await {
            if hex::encode(Sha256::digest(&bytes)) == sha256 {
                return true;
            }
        }
    }
    false
}

/// During an outage of `victim`: the uploads it acknowledged with two-region durability before
/// the fault, and how many of them the other regions cannot read.
async fn durable_uploads_unreadable(
    run: &Run<'_>,
    victim: &str,
    fault_at: Duration,
) -> (usize, usize) {
    let durable: Vec<(String, String)> = run
        .ledger()
        .uploads
        .iter()
        .filter(|u| u.durable && u.accepted_by == victim && u.at < fault_at)
        .map(|u| (u.id.clone(), u.sha256.clone()))
        .collect();
    let survivors = survivors(run.lab, victim);
    let mut unreadable = 0;
    for (id, sha256) in &durable {
        unreadable += usize::from(!readable(&survivors, id, sha256).await);
    }
    (durable.len(), unreadable)
}

/// What became of the jobs the dead region had accepted.
struct Adoption {
    /// From the fault until every one whose input another region could read was final there.
    took: Duration,
    /// Those whose input only the dead region held (an upload not replicated yet): they wait
    /// for it to return.
    waiting_for_input: usize,
}

/// Waits until every job the victim accepted before the fault, whose input another region can
/// read, is final as the other regions see it.
async fn await_adoption(run: &Run<'_>, victim: &str, fault_at: Duration) -> Adoption {
    let survivors = survivors(run.lab, victim);
    let jobs: Vec<(String, String, String)> = {
        let ledger = run.ledger();
        let shas: BTreeMap<&str, &str> = ledger
            .uploads
            .iter()
            .map(|u| (u.id.as_str(), u.sha256.as_str()))
            .collect();
        ledger
            .jobs
            .iter()
            .filter(|j| j.accepted_by == victim && j.at < fault_at)
            .map(|j| {
                let sha = shas.get(j.image.as_str()).copied().unwrap_or_default();
                (j.id.clone(), j.image.clone(), sha.to_owned())
            })
            .collect()
    };
    let mut pending = BTreeSet::new();
    let mut waiting_for_input = 0;
    for (id, image, sha256) in jobs {
        if readable(&survivors, &image, &sha256).await {
            pending.insert(id);
        } else {
            waiting_for_input += 1;
        }
    }
    let limit = run.settings.grace + Duration::from_secs(180);
    tracing::info!(
        jobs = pending.len(),
        waiting_for_input,
        "waiting for the dead region's jobs to be adopted and finished"
    );
    while !pending.is_empty() && run.now().saturating_sub(fault_at) < limit {
        let mut done = Vec::new();
        for id in &pending {
            for client in &survivors {
                if client.job(id).await.is_ok_and(|j| j.is_final()) {
                    done.push(id.clone());
                    break;
                }
            }
        }
        for id in done {
            pending.remove(&id);
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Adoption {
        took: run.now().saturating_sub(fault_at),
        waiting_for_input,
    }
}

/// Polls every node's `/metrics` until no region reports replication lag.
async fn replication_settles(lab: &Lab, limit: Duration) -> Result<String, String> {
    let http = lab.http();
    let started = Instant::now();
    loop {
        let mut lagging = Vec::new();
        for region in &lab.regions {
            for node in lab.nodes_of(region) {
                let Some(lags) = metric(&http, node, "pixelmill_replication_lag_seconds").await
                else {
                    lagging.push(format!("{node}: unreachable"));
                    continue;
                };
                let lag = lags.into_iter().fold(0.0, f64::max);
                if lag > 0.0 {
                    lagging.push(format!("{node}: {lag:.1}s"));
                }
            }
        }
        if lagging.is_empty() {
            return Ok(format!(
                "0 everywhere after {:.1}s",
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() >= limit {
            return Err(format!(
                "still lagging after {limit:?}: {}",
                lagging.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The values of every series of metric `name` on `node`; `None` when the node does not answer.
async fn metric(http: &reqwest::Client, node: SocketAddr, name: &str) -> Option<Vec<f64>> {
    let text = http
        .get(format!("http://{node}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect(),
    )
}

/// After the leaders in `killed` died (region, node, when): for each region, the node its
/// survivors all name as leader now and how long after the kill, or `None` if they agreed on
/// none within `limit`.
async fn await_new_leaders(
    lab: &Lab,
    killed: &[(String, u8, Instant)],
    limit: Duration,
) -> Vec<(String, Option<(u8, Duration)>)> {
    let http = lab.http();
    let started = Instant::now();
    let mut elected: Vec<(String, Option<(u8, Duration)>)> = killed
        .iter()
        .map(|(region, ..)| (region.clone(), None))
        .collect();
    while started.elapsed() < limit && elected.iter().any(|e| e.1.is_none()) {
        for ((region, old, at), (_, new)) in killed.iter().zip(elected.iter_mut()) {
            if new.is_some() {
                continue;
            }
            if let Some(id) = lab.agreed_leader(&http, region, Some(*old)).await {
                if id != *old {
                    *new = Some((id, at.elapsed()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    elected
}

fn summarize(
    mut run: Run<'_>,
    name: &str,
    fault: String,
    fault_at: Duration,
    wan_rtt_ms: Option<(u64, u64)>,
    adoption: Option<Duration>,
    verdict: Verdict,
) -> ScenarioReport {
    let victim = run.settings.victim.clone();
    let (attempts_by_region, calls_failed_by_region, surviving, failover, acknowledged, sample) = {
        let ledger = run.ledger();
        let mut by_region: BTreeMap<String, Served> = BTreeMap::new();
        for a in &ledger.attempts {
            let served = by_region
                .entry(a.served_by.clone().unwrap_or_else(|| "none".into()))
                .or_default();
            served.attempts += 1;
            served.ok += usize::from(a.ok);
        }
        let mut failed: BTreeMap<String, usize> = BTreeMap::new();
        for f in &ledger.failures {
            *failed.entry(f.client_region.clone()).or_default() += 1;
        }
        let sample: Vec<String> = ledger
            .failures
            .iter()
            .take(10)
            .map(|f| format!("{} of a client of {}: {}", f.what, f.client_region, f.error))
            .collect();
        let mut acknowledged: BTreeMap<String, usize> = BTreeMap::new();
        let accepted = ledger.uploads.iter().map(|u| &u.accepted_by);
        for region in accepted.chain(ledger.jobs.iter().map(|j| &j.accepted_by)) {
            *acknowledged.entry(region.clone()).or_default() += 1;
        }
        // Requests a surviving region could not serve because their input was acknowledged by
        // the victim alone (local durability) are counted apart, not as its failures.
        let spared: Vec<_> = ledger
            .attempts
            .iter()
            .filter(|a| a.at >= fault_at && a.served_by.as_ref().is_some_and(|r| *r != victim))
            .filter(|a| a.input_only_in.as_deref() != Some(victim.as_str()))
            .collect();
        let hits_one_region = SPARES_OTHERS.contains(&name);
        let surviving = (hits_one_region && !spared.is_empty())
            .then(|| spared.iter().filter(|a| a.ok).count() as f64 / spared.len() as f64);
        // Every client of the victim: its first answer from another region after the fault.
        let clients: BTreeSet<usize> = ledger
            .attempts
            .iter()
            .filter(|a| a.client_region == victim)
            .map(|a| a.client)
            .collect();
        let firsts: Vec<Option<Duration>> = clients
            .iter()
            .map(|c| {
                ledger
                    .attempts
                    .iter()
                    .filter(|a| a.client == *c && a.at >= fault_at && a.ok)
                    .find(|a| a.served_by.as_ref().is_some_and(|r| *r != victim))
                    .map(|a| a.at - fault_at)
            })
            .collect();
        let failover = firsts
            .iter()
            .all(Option::is_some)
            .then(|| firsts.iter().flatten().max().copied())
            .flatten();
        (by_region, failed, surviving, failover, acknowledged, sample)
    };
    let lost = verdict.uploads_lost.len() + verdict.jobs_lost.len();
    run.check(
        "nothing acknowledged is lost",
        lost == 0,
        format!(
            "{} of {} uploads and {} of {} jobs lost",
            verdict.uploads_lost.len(),
            verdict.uploads_acknowledged,
            verdict.jobs_lost.len(),
            verdict.jobs_acknowledged
        ),
    );
    run.check(
        "no job has two results",
        verdict.jobs_two_results.is_empty() && verdict.webhook_conflicts.is_empty(),
        format!(
            "{} jobs differ between regions, {} announced with two outcomes",
            verdict.jobs_two_results.len(),
            verdict.webhook_conflicts.len()
        ),
    );
    run.check(
        "every download link works in every region",
        verdict.links_broken.is_empty(),
        format!(
            "{} of {} links broken somewhere",
            verdict.links_broken.len(),
            verdict.links_handed_out
        ),
    );
    let spares_victim = matches!(
        name,
        "region-kill" | "partition" | "cassandra-kill" | "minio-stop"
    );
    if spares_victim {
        let ratio = surviving.unwrap_or(0.0);
        let input_elsewhere = run
            .ledger()
            .attempts
            .iter()
            .filter(|a| a.at >= fault_at && a.input_only_in.as_deref() == Some(victim.as_str()))
            .count();
        run.check(
            "at least 99.9% of requests that reached a surviving region succeeded",
            ratio >= 0.999,
            format!(
                "{ratio:.4}; besides, {input_elsewhere} job submissions found no input: \
                 {victim} alone held it (local durability), counted apart"
            ),
        );
    }
    if matches!(name, "region-kill" | "drain") {
        let within = failover.is_some_and(|f| f <= Duration::from_secs(10));
        run.check(
            "the hit region's clients are answered by another region within 10 s",
            within,
            seconds(failover, "some of its clients were never answered"),
        );
    }
    if name == "region-kill" {
        let adopted_in_time =
            adoption.is_some_and(|a| a <= run.settings.grace + Duration::from_secs(120));
        run.check(
            "the dead region's jobs are adopted and finished within 2 minutes after the grace period",
            adopted_in_time,
            format!(
                "{} after the kill, grace {:.0} s",
                seconds(adoption, "not all finished"),
                run.settings.grace.as_secs_f64()
            ),
        );
        run.check(
            "at least one job was adopted",
            verdict.jobs_adopted >= 1,
            format!(
                "{} jobs ran in another region than their home",
                verdict.jobs_adopted
            ),
        );
    }
    if name == "partition" {
        let ledger = run.ledger();
        let local = ledger
            .attempts
            .iter()
            .filter(|a| {
                a.at >= fault_at
                    && a.client_region == victim
                    && a.served_by.as_deref() == Some(victim.as_str())
                    && a.ok
            })
            .count();
        drop(ledger);
        run.check(
            "the cut-off region kept serving its own clients",
            local > 0,
            format!("{local} requests of {victim}'s clients answered by {victim} after the cut"),
        );
    }
    let passed = run.checks.iter().all(|c| c.ok);
    ScenarioReport {
        name: name.to_owned(),
        passed,
        fault,
        fault_at_s: fault_at.as_secs_f64(),
        duration_s: run.now().as_secs_f64(),
        nodes_per_region: run.lab.nodes,
        grace_s: run.settings.grace.as_secs_f64(),
        attempts_by_region,
        acknowledged_by_region: acknowledged,
        calls_failed_by_region,
        calls_failed_sample: sample,
        surviving_success_ratio: surviving,
        failover_s: failover.map(|f| f.as_secs_f64()),
        adoption_s: adoption.map(|a| a.as_secs_f64()),
        wan_rtt_ms,
        verdict,
        checks: run.checks,
    }
}

/// `d` in seconds, or what its absence means.
fn seconds(d: Option<Duration>, otherwise: &str) -> String {
    d.map_or_else(
        || otherwise.to_owned(),
        |d| format!("{:.1} s", d.as_secs_f64()),
    )
}
