//! Placement benchmark of the scheduler's raft group (real openraft, redb logs fsynced, raft over
//! loopback HTTP), bounded in jobs and seconds:
//!
//! 1. throughput: no-op jobs placed and completed per second by workers on every node of a
//!    three-node group (two per node, one lease at a time, as a node's workers lease), against a
//!    single voter measured in the same run;
//! 2. fast-lane wait: with the slow lane kept saturated by large-image jobs (a 12-megapixel PNG
//!    decoded, blurred, resized and encoded as JPEG by the engine, on the same cores), small
//!    image jobs arriving 20 a second: p50/p99 of their queue wait, against the same load with
//!    every job in one lane.
//!
//! `cargo bench -p pixelmill-sched --bench placement` (release build). `PLACEMENT_JOBS` (default
//! 3000) and `PLACEMENT_ROUNDS` (default 5) bound the first part, `PLACEMENT_SECONDS` (default
//! 10) the second.

use futures::future::join_all;
use pixelmill_core::{JobId, OutputFormat, OutputSpec, PipelineStep, TenantId};
use pixelmill_engine::{Limits, Pipeline, Registry};
use pixelmill_sched::{JobTicket, Lease, RaftGroup, RaftSecret, SchedConfig, Scheduler, WorkerId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const WORKERS_PER_NODE: usize = 2;
const LEASE_MS: u64 = 30_000;
const SLOW_COST: u64 = 1_000_000_000;
const FAST_PER_SECOND: u64 = 20;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
}

/// The group's shared raft secret (every member signs with it).
fn secret() -> RaftSecret {
    RaftSecret::new("a test secret of at least thirty-two bytes").unwrap()
}

async fn group(dir: &std::path::Path, n: u64, config: &SchedConfig) -> Vec<Scheduler> {
    if n == 1 {
        return vec![Scheduler::open(&dir.join("n1"), config.clone())
            .await
            .unwrap()];
    }
    let mut listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=n {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        peers.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push((id, listener));
    }
    join_all(listeners.into_iter().map(|(id, listener)| {
        let (dir, peers) = (dir.join(format!("n{id}")), peers.clone());
        let config = SchedConfig {
            node_id: id,
            ..config.clone()
        };
        async move {
            Scheduler::open_group(
                &dir,
                config,
                RaftGroup {
                    listener,
                    peers,
                    secret: secret(),
                },
            )
            .await
            .unwrap()
        }
    }))
    .await
}

fn ticket(n: usize, cost: u64) -> JobTicket {
    JobTicket {
        job: JobId::from_string(format!("job_{n:07}")),
        tenant: TenantId::new(format!("t{}", n % 4)),
        cost,
        epoch: 0,
    }
}

/// What a worker does with a lease before completing it, on the blocking pool as a node's
/// workers render; `None`: nothing (no-op jobs).
type Work = Option<Arc<dyn Fn(&Lease) + Send + Sync>>;

/// An image job as a node runs it: the engine on the image's bytes.
struct ImageJob {
    input: Vec<u8>,
    pipeline: Pipeline,
    output: OutputSpec,
}

impl ImageJob {
    fn new(input: Vec<u8>, steps: &str, format: OutputFormat) -> ImageJob {
        let steps = PipelineStep::parse_compact(steps).expect("a valid pipeline");
        ImageJob {
            input,
            pipeline: Registry::builtin()
                .compile(&steps)
                .expect("a valid pipeline"),
            output: OutputSpec {
                format,
                ..OutputSpec::default()
            },
        }
    }

    /// Runs the job; how long it took.
    fn run(&self) -> Duration {
        let started = Instant::now();
        pixelmill_engine::process(
            &self.input,
            &self.pipeline,
            &self.output,
            &Limits::default(),
        )
        .expect("the bench's images render");
        started.elapsed()
    }
}

/// Workers on every node lease one job at a time and complete it after `work(lease)`, counting
/// completions in `done`, until `stop` is set.
fn spawn_workers(
    nodes: &[Scheduler],
    stop: &Arc<AtomicBool>,
    done: &Arc<AtomicUsize>,
    work: Work,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let (node, stop, done, work) = (node.clone(), stop.clone(), done.clone(), work.clone());
            let worker = WorkerId(format!("n{}/w{w}/1", i + 1));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let leased = node.lease(&worker, 1, LEASE_MS).await.unwrap_or_default();
                    let Some(lease) = leased.into_iter().next() else {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    if let Some(work) = work.clone() {
                        let lease = lease.clone();
                        tokio::task::spawn_blocking(move || work(&lease))
                            .await
                            .unwrap();
                    }
                    if node
                        .complete(&lease.job, lease.fencing)
                        .await
                        .unwrap_or(false)
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    tasks
}

async fn throughput(nodes: u64, jobs: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let config = SchedConfig {
        queue_bound: jobs + 1,
        ..SchedConfig::default()
    };
    let group = group(dir.path(), nodes, &config).await;
    // Enqueued through every node, as the API of each would.
    let per = jobs.div_ceil(group.len());
    join_all(group.iter().enumerate().map(|(i, node)| async move {
        for n in i * per..((i + 1) * per).min(jobs) {
            node.enqueue(ticket(n, 1)).await.unwrap();
        }
    }))
    .await;
    let settled = Instant::now() + Duration::from_secs(10);
    while group.iter().any(|s| s.stats().lanes[0].queued < jobs) && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let started = Instant::now();
    let workers = spawn_workers(&group, &stop, &done, None);
    while done.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    join_all(workers).await;
    for s in &group {
        s.shutdown().await.unwrap();
    }
    rate
}

/// What `fast_lane_wait` saw: fast jobs' queue wait (p50, p99, how many), and the mean run time
/// of the large-image jobs.
struct Waits {
    p50_ms: i64,
    p99_ms: i64,
    fast_jobs: usize,
    slow_run: Duration,
}

/// Fast jobs' queue wait while the slow lane stays saturated with `large` jobs. With `one_lane`,
/// every job goes to the same lane (the cost threshold above every job).
async fn fast_lane_wait(
    seconds: u64,
    one_lane: bool,
    large: &Arc<ImageJob>,
    small: &Arc<ImageJob>,
) -> Waits {
    let dir = tempfile::tempdir().unwrap();
    let config = SchedConfig {
        queue_bound: 100_000,
        fast_lane_max_cost: if one_lane { u64::MAX } else { 1_000_000 },
        ..SchedConfig::default()
    };
    let group = group(dir.path(), 3, &config).await;
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    // In one lane the slow jobs are told apart by their id.
    let slow_ids: Arc<Mutex<BTreeSet<JobId>>> = Default::default();
    let fast_waits: Arc<Mutex<Vec<i64>>> = Default::default();
    let slow_runs: Arc<Mutex<Vec<Duration>>> = Default::default();
    let work: Work = {
        let (slow_ids, fast_waits, slow_runs) =
            (slow_ids.clone(), fast_waits.clone(), slow_runs.clone());
        let (large, small) = (large.clone(), small.clone());
        Some(Arc::new(move |lease: &Lease| {
            if slow_ids.lock().unwrap().contains(&lease.job) {
                let took = large.run();
                slow_runs.lock().unwrap().push(took);
            } else {
                fast_waits.lock().unwrap().push(lease.waited_ms);
                small.run();
            }
        }))
    };
    let workers = spawn_workers(&group, &stop, &done, work);
    let started = Instant::now();
    let mut n = 0;
    let mut next_fast = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        // Keep 60 slow jobs waiting: ten times what the six workers can hold.
        while group[0]
            .stats()
            .lanes
            .iter()
            .map(|l| l.queued)
            .sum::<usize>()
            < 60
        {
            let t = ticket(n, SLOW_COST);
            slow_ids.lock().unwrap().insert(t.job.clone());
            group[n % 3].enqueue(t).await.unwrap();
            n += 1;
        }
        if Instant::now() >= next_fast {
            group[n % 3].enqueue(ticket(n, 1)).await.unwrap();
            n += 1;
            next_fast += Duration::from_millis(1000 / FAST_PER_SECOND);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    join_all(workers).await;
    for s in &group {
        s.shutdown().await.unwrap();
    }
    let mut fast = fast_waits.lock().unwrap().clone();
    fast.sort_unstable();
    let pick = |q: f64| fast[((fast.len() as f64 * q) as usize).min(fast.len() - 1)];
    let slow_runs = slow_runs.lock().unwrap();
    Waits {
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        fast_jobs: fast.len(),
        slow_run: slow_runs.iter().sum::<Duration>() / slow_runs.len().max(1) as u32,
    }
}

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    // Run as a test (`cargo test --benches`, no `--bench` argument) it only checks that it works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let jobs = env_number("PLACEMENT_JOBS", if measuring { 3_000 } else { 60 }) as usize;
    let seconds = env_number("PLACEMENT_SECONDS", if measuring { 10 } else { 2 });
    let rounds = env_number("PLACEMENT_ROUNDS", if measuring { 5 } else { 1 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // fsync latency swings from run to run on a shared disk: alternate the two groups and
        // take each one's median.
        let (mut single, mut three) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            single.push(throughput(1, jobs).await);
            three.push(throughput(3, jobs).await);
        }
        let (single_median, three_median) = (median(&mut single), median(&mut three));
        println!(
            "placement throughput, {jobs} no-op jobs, {WORKERS_PER_NODE} workers per node, median \
             of {rounds} alternating rounds: 1 voter {single_median:.0} jobs/s {single:.0?}, \
             3-node group {three_median:.0} jobs/s {three:.0?} ({:.2} of the single voter)",
            three_median / single_median
        );
        // 12 megapixels of noise (about 48 MB as a PNG, the worst case for decode) made into a
        // 1200-wide JPEG; the small job is a 256x256 PNG made into a 64-wide thumbnail.
        let large = Arc::new(ImageJob::new(
            pixelmill_testkit::sized_png(4000, 3000, true),
            "blur:sigma=2|resize:width=1200",
            OutputFormat::Jpeg,
        ));
        let small = Arc::new(ImageJob::new(
            pixelmill_testkit::sized_png(256, 256, true),
            "resize:width=64",
            OutputFormat::Png,
        ));
        for lanes in [false, true] {
            let w = fast_lane_wait(seconds, lanes, &large, &small).await;
            println!(
                "fast-lane queue wait, slow lane saturated with 12 MP images ({} ms each on \
                 average), 3-node group, {seconds}s, {}: p50 {} ms p99 {} ms ({} fast jobs)",
                w.slow_run.as_millis(),
                if lanes {
                    "one lane"
                } else {
                    "fast and slow lanes"
                },
                w.p50_ms,
                w.p99_ms,
                w.fast_jobs
            );
        }
    });
}
