//! Latency and throughput of the main metadata operations at each consistency level, through
//! `ScyllaMetaStore` (prepared statements, batches and LWTs exactly as the service runs them)
//! against a running CQL cluster. bench/meta starts Cassandra with one node, then two (two
//! datacenters), runs this against each, and the end-to-end job bench on both metadata stores.
//!
//! `PIXELMILL_BENCH_CQL` (default 10.77.1.10:9042, region eu): a contact point in dc1.
//! `PIXELMILL_BENCH_DCS` (default `dc1`): the cluster's datacenters, one replica each.
//!
//! First every operation runs 600 times, untimed, to warm the servers up. Then per operation and
//! level: 30 warm-up operations, then 300 one at a time (p50/p99 latency),
//! then 2000 with 32 in flight (ops/s and the p99 under that load). Every operation works on
//! records of its own, written before its timing starts where it needs one. Run without
//! `--bench` it is a smoke run of a few operations per cell.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use pixelmill_core::{now_ms, Durability, JobRecord, JobStatus, LinkRecord, LinkToken};
use pixelmill_meta::{suite, MetaStore};
use pixelmill_meta_scylla::{ScyllaConfig, ScyllaMetaStore};

const IN_FLIGHT: usize = 32;

#[derive(Clone, Copy)]
enum Op {
    PutImage,
    PutJob,
    GetJob,
    PutLink,
    GetLink,
    GetLinkMiss,
    IdempotencyInsert,
    FenceJob,
    AdoptJob,
}

const ALL: [Op; 9] = [
    Op::PutImage,
    Op::PutJob,
    Op::GetJob,
    Op::PutLink,
    Op::GetLink,
    Op::GetLinkMiss,
    Op::IdempotencyInsert,
    Op::FenceJob,
    Op::AdoptJob,
];

const WRITES: &[&str] = &["local_one", "local_quorum", "quorum", "each_quorum", "all"];
const READS: &[&str] = &["local_one", "local_quorum", "quorum", "all"];
const SERIALS: &[&str] = &["local_serial", "serial"];
const FALLBACKS: &[&str] = &["none", "local_quorum", "quorum", "all"];

impl Op {
    /// What the operation is called in the table, the class whose level varies, and the levels.
    fn describe(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            Op::PutImage => ("put_image (upload)", "upload_write", WRITES),
            Op::PutJob => ("put_job (state transition)", "job_transition", WRITES),
            Op::GetJob => ("get_job", "reads", READS),
            Op::PutLink => ("put_link (5-statement logged batch)", "link_create", WRITES),
            Op::GetLink => ("get_link, found", "link_lookup", READS),
            Op::GetLinkMiss => (
                "get_link, missing (local_one, then fallback)",
                "link_lookup_fallback",
                FALLBACKS,
            ),
            Op::IdempotencyInsert => ("idempotency key, new (LWT)", "idempotency_serial", SERIALS),
            Op::FenceJob => ("put_job_fenced (serial read + LWT)", "job_serial", SERIALS),
            Op::AdoptJob => ("adopt_job (serial read + LWT)", "job_serial", SERIALS),
        }
    }
}

/// The record one timed operation works on.
enum Input {
    None,
    Job(Box<JobRecord>),
    Link(LinkRecord),
    Token(LinkToken),
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (warm_up, sequential, loaded) = if measuring {
        (30, 300, 2000)
    } else {
        (1, 3, 8)
    };
    let hosts = std::env::var("PIXELMILL_BENCH_CQL").unwrap_or_else(|_| "10.77.1.10:9042".into());
    let dcs = std::env::var("PIXELMILL_BENCH_DCS").unwrap_or_else(|_| "dc1".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let replication: Vec<String> = dcs.split(',').map(|dc| format!("{dc}:1")).collect();
        let base = format!(
            "scylla://{hosts}/pm_bench_{:08x}?local_dc=dc1&replication={}",
            rand::random::<u32>(),
            replication.join(",")
        );
        println!("meta ops: {hosts}, datacenters {dcs} (one replica each), {warm_up} warm-up, {sequential} sequential, {loaded} at {IN_FLIGHT} in flight\n");
        println!("| operation | class | level | p50 ms | p99 ms | ops/s, {IN_FLIGHT} in flight | p99 ms, {IN_FLIGHT} in flight |");
        println!("|---|---|---|---:|---:|---:|---:|");
        // The servers' JIT compiles their hot paths in the first seconds of load; without this
        // the first cells of the table would pay for it.
        let store: Arc<dyn MetaStore> = Arc::new(
            ScyllaMetaStore::open(ScyllaConfig::from_url(&base).expect("bench URL"))
                .await
                .unwrap_or_else(|e| panic!("opening {base}: {e}")),
        );
        for op in ALL {
            run_concurrently(&store, op, warm_up * 20).await;
        }
        for op in ALL {
            let (name, class, levels) = op.describe();
            for level in levels {
                let url = format!("{base}&{class}={level}");
                let config = ScyllaConfig::from_url(&url).expect("bench URL");
                let store: Arc<dyn MetaStore> = Arc::new(
                    ScyllaMetaStore::open(config)
                        .await
                        .unwrap_or_else(|e| panic!("opening {url}: {e}")),
                );
                run(&store, op, warm_up).await;
                let alone = run(&store, op, sequential).await;
                let (busy, elapsed) = run_concurrently(&store, op, loaded).await;
                let rate = loaded as f64 / elapsed.as_secs_f64();
                println!(
                    "| {name} | {class} | {level} | {:.2} | {:.2} | {rate:.0} | {:.2} |",
                    percentile(&alone, 0.50),
                    percentile(&alone, 0.99),
                    percentile(&busy, 0.99),
                );
            }
        }
    });
}

/// The operation's inputs, written (untimed) where it needs existing records.
async fn inputs(store: &Arc<dyn MetaStore>, op: Op, n: usize) -> Vec<Input> {
    let tenant = suite::unique_tenant();
    let existing = (0..n).map(|_| async {
        match op {
            Op::GetJob | Op::FenceJob | Op::AdoptJob => {
                let job = suite::owned_job(&tenant, Some("eu"));
                store.put_job(&job).await.expect("setting up a job");
                Input::Job(Box::new(job))
            }
            Op::GetLink => {
                let link = suite::link(&suite::unique_blob(), now_ms() + 86_400_000);
                store.put_link(&link).await.expect("setting up a link");
                Input::Link(link)
            }
            Op::GetLinkMiss => Input::Token(LinkToken::generate()),
            _ => Input::None,
        }
    });
    stream::iter(existing)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

/// One timed operation.
async fn once(store: &dyn MetaStore, op: Op, input: Input) -> Duration {
    let tenant = suite::unique_tenant();
    let (image, job) = (suite::image(&tenant), suite::job(&tenant));
    let link = suite::link(&suite::unique_blob(), now_ms() + 86_400_000);
    let key = suite::idempotency_key(&tenant, "bench", now_ms() + 86_400_000);
    let started = Instant::now();
    let done = match (op, input) {
        (Op::PutImage, _) => store.put_image(&image, Durability::Local).await.map(drop),
        (Op::PutJob, _) => store.put_job(&job).await,
        (Op::GetJob, Input::Job(job)) => store.get_job(&job.tenant, &job.id).await.map(|found| {
            assert!(found.is_some(), "the job just written is there");
        }),
        (Op::PutLink, _) => store.put_link(&link).await,
        (Op::GetLink, Input::Link(link)) => store.get_link(&link.token).await.map(|found| {
            assert!(found.is_some(), "the link just written is there");
        }),
        (Op::GetLinkMiss, Input::Token(token)) => store.get_link(&token).await.map(drop),
        (Op::IdempotencyInsert, _) => store.insert_idempotency_key(&key, now_ms()).await.map(drop),
        (Op::FenceJob, Input::Job(mut job)) => {
            job.status = JobStatus::Running;
            job.fencing = 1;
            store
                .put_job_fenced(&job)
                .await
                .map(|stored| assert!(stored.is_stored(), "the first lease's write is stored"))
        }
        (Op::AdoptJob, Input::Job(job)) => store
            .adopt_job(&job.tenant, &job.id, "eu", "us")
            .await
            .map(|won| assert!(won.is_some(), "a job of eu is adopted")),
        _ => unreachable!("inputs() gives each operation its kind of input"),
    };
    let took = started.elapsed();
    done.unwrap_or_else(|e| panic!("{}: {e}", op.describe().0));
    took
}

async fn run(store: &Arc<dyn MetaStore>, op: Op, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for input in inputs(store, op, n).await {
        took.push(once(&**store, op, input).await);
    }
    took
}

/// Each operation's latency, and how long all of them took.
async fn run_concurrently(
    store: &Arc<dyn MetaStore>,
    op: Op,
    n: usize,
) -> (Vec<Duration>, Duration) {
    let inputs = inputs(store, op, n).await;
    let started = Instant::now();
    let took = stream::iter(inputs)
        .map(|input| once(&**store, op, input))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    (took, started.elapsed())
}

/// Nearest-rank percentile in milliseconds.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
    ms[rank - 1]
}
