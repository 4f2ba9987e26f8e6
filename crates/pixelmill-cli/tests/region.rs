//! A three-node region (cluster/region/region: three `pixelmill serve` processes, one raft group,
//! metadata in Cassandra, blobs in a shared directory) losing nodes for real: `kill -9` of the
//! leader mid-submission, `kill -9` of a worker node mid-run, and a worker frozen with SIGSTOP past
//! its lease. Every job must succeed exactly once: the nodes' logs (which outlive a `kill -9`) hold
//! one "job succeeded" line per job, and a frozen worker's late result is refused by fencing.
//!
//! Needs Cassandra (`PIXELMILL_TEST_CQL`, as scripts/test-all provides). `PIXELMILL_REGION_JOBS`
//! sets the jobs of the leader-kill scenario (default 2,000). The two tests take turns: the
//! region's nodes have fixed loopback addresses.

use futures::stream::{self, StreamExt};
use pixelmill_sched::{cluster_status_at, RaftSecret};
use pixelmill_testkit::{cluster_with, png_rgba, sized_png, Client};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

static ONE_REGION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NODES: u64 = 3;
const LEASE_TTL: &str = "2s";

fn cassandra_available() -> bool {
    if std::env::var_os("PIXELMILL_TEST_CQL").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("PIXELMILL_REQUIRE_CASSANDRA").is_none(),
        "PIXELMILL_TEST_CQL is not set: start Cassandra with `cluster/cassandra/cassandra start 3` \
         and export PIXELMILL_TEST_CQL=10.77.1.10:9042, or run scripts/test-all"
    );
    eprintln!("skipped: no Cassandra (run scripts/test-all, which starts one)");
    false
}

struct Region {
    run: TempDir,
    env: Vec<(&'static str, String)>,
}

impl Region {
    fn start(delay: &str) -> Region {
        let run = tempfile::tempdir().unwrap();
        let keyspace = format!("pm_region_{:016x}", rand::random::<u64>());
        let env = vec![
            ("PIXELMILL_BIN", env!("CARGO_BIN_EXE_pixelmill").to_owned()),
            ("PIXELMILL_REGION_RUN", run.path().display().to_string()),
            ("PIXELMILL_REGION_META", format!("scylla:///{keyspace}")),
            // The key the tests' clients send (`pixelmill_testkit::Client`).
            (
                "PIXELMILL_BOOTSTRAP_KEY",
                pixelmill_testkit::ADMIN_KEY.to_owned(),
            ),
            (
                "PIXELMILL_REGION_ARGS",
                format!("--workers 2 --lease-ttl {LEASE_TTL} --raft-message-delay {delay}"),
            ),
        ];
        let region = Region { run, env };
        region.script(&["start"]);
        region
    }

    fn script(&self, args: &[&str]) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cluster_with("region", args, &env);
    }

    fn api(&self, node: u64) -> String {
        format!("http://127.0.1.{node}:8080")
    }

    fn log_of(&self, node: u64) -> PathBuf {
        self.run.path().join(format!("n{node}/server.log"))
    }

    /// The leader all running nodes agree on, polled every 10 ms (signed with the secret the
    /// region script made).
    async fn leader(&self, among: &[u64]) -> u64 {
        let secret = RaftSecret::from_file(&self.run.path().join("raft-secret")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut seen = BTreeSet::new();
            for node in among {
                let addr = format!("127.0.1.{node}:7100");
                let status = cluster_status_at(&addr, &secret, Duration::from_millis(300)).await;
                seen.insert(status.ok().and_then(|s| s.leader));
            }
            if let [Some(leader)] = seen.iter().copied().collect::<Vec<_>>()[..] {
                if among.contains(&leader) {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {among:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Per node, the jobs its log says it finished ("job succeeded") and the jobs whose result it
    /// dropped because a later lease owned them.
    fn outcomes(&self) -> BTreeMap<u64, Outcomes> {
        (1..=NODES)
            .map(|node| {
                let log = std::fs::read_to_string(self.log_of(node)).unwrap_or_default();
                let mut seen = Outcomes::default();
                for line in log.lines() {
                    let Some(job) = field(line, "job=") else {
                        continue;
                    };
                    if line.contains("job succeeded") {
                        *seen.succeeded.entry(job).or_insert(0) += 1;
                    } else if line.contains("this attempt's result is dropped") {
                        seen.superseded.insert(job);
                    } else if line.contains("job started") {
                        seen.started.insert(job);
                    }
                }
                (node, seen)
            })
            .collect()
    }

    /// The nodes whose logs say they started `job`.
    fn runners_of(&self, job: &str) -> Vec<u64> {
        self.outcomes()
            .into_iter()
            .filter(|(_, seen)| seen.started.contains(job))
            .map(|(node, _)| node)
            .collect()
    }
}

#[derive(Default)]
struct Outcomes {
    started: BTreeSet<String>,
    succeeded: BTreeMap<String, usize>,
    superseded: BTreeSet<String>,
}

impl Drop for Region {
    fn drop(&mut self) {
        self.script(&["stop"]);
    }
}

/// `key=value` out of a log line (tracing's plain format; ANSI colours stripped).
fn field(line: &str, key: &str) -> Option<String> {
    let plain: String = strip_ansi(line);
    let start = plain.find(key)? + key.len();
    Some(
        plain[start..]
            .split(|c: char| c.is_whitespace())
            .next()?
            .to_owned(),
    )
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Submits a job to the first live node of `nodes` that takes it, with an idempotency key so a
/// request whose node died before answering can go to another without creating a second job.
async fn submit(http: &reqwest::Client, nodes: &[String], body: &Value, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut turn = key.bytes().map(usize::from).sum::<usize>();
    loop {
        let base = &nodes[turn % nodes.len()];
        turn += 1;
        let sent = http
            .post(format!("{base}/v1/jobs"))
            .header("idempotency-key", key)
            .json(body)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status();
            if let Ok(answer) = response.json::<Value>().await {
                if status.is_success() {
                    return answer["id"].as_str().unwrap().to_owned();
                }
                assert!(
                    status.is_server_error(),
                    "job refused with {status}: {answer}"
                );
            }
        }
        assert!(Instant::now() < deadline, "no node took job {key}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every job in `ids` is final (asked of the live nodes in turn), and returns them.
async fn wait_all(nodes: &[String], ids: &[String], within: Duration) -> Vec<Value> {
    let http = pixelmill_testkit::admin_http();
    let deadline = Instant::now() + within;
    let mut done = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        loop {
            let base = &nodes[n % nodes.len()];
            let got = async {
                let r = http.get(format!("{base}/v1/jobs/{id}")).send().await.ok()?;
                r.json::<Value>().await.ok()
            }
            .await;
            if let Some(job) = &got {
                if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
                    done.push(job.clone());
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not finish in {within:?}: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    done
}

/// Every job succeeded, and exactly one attempt completed it: one "job succeeded" line across the
/// logs, or none where a node in `killed` started it (killed after storing the result and before
/// logging it; the attempt after it found the job finished and did nothing).
fn assert_each_succeeded_once(region: &Region, jobs: &[Value], killed: &[u64]) {
    let outcomes = region.outcomes();
    for job in jobs {
        let id = job["id"].as_str().unwrap();
        assert_eq!(job["status"], "succeeded", "job {id}: {job}");
        let completions: usize = outcomes
            .values()
            .map(|seen| seen.succeeded.get(id).copied().unwrap_or(0))
            .sum();
        let unlogged = completions == 0
            && killed
                .iter()
                .any(|node| outcomes[node].started.contains(id));
        assert!(
            completions == 1 || unlogged,
            "job {id} must be completed exactly once across the region's logs, not {completions} times"
        );
    }
}

async fn region_survives_its_leader_and_workers(delay: &str) {
    if !cassandra_available() {
        return;
    }
    let _turn = ONE_REGION.lock().await;
    let region = Region::start(delay);
    let all: Vec<String> = (1..=NODES).map(|n| region.api(n)).collect();
    let image = Client::new(&all[0]).upload_ok(png_rgba(8, 8)).await;

    // 1. The leader is killed midway through the submissions.
    let total: usize = std::env::var("PIXELMILL_REGION_JOBS").map_or(2_000, |v| {
        v.parse().expect("PIXELMILL_REGION_JOBS is a number")
    });
    let leader = region.leader(&[1, 2, 3]).await;
    let http = pixelmill_testkit::admin_http();
    let body = |n: usize| {
        json!({"image_id": image, "pipeline": [{"op": "resize", "width": 1 + n % 4}],
               "output": {"format": "png"}})
    };
    let first: Vec<String> = stream::iter(0..total / 2)
        .map(|n| {
            let (http, all, body) = (http.clone(), all.clone(), body(n));
            async move { submit(&http, &all, &body, &format!("kill-leader-{n}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let killed = Instant::now();
    region.script(&["kill-node", &leader.to_string()]);
    let survivors: Vec<u64> = (1..=NODES).filter(|n| *n != leader).collect();
    let new_leader = region.leader(&survivors).await;
    let election = killed.elapsed();
    eprintln!("kill -9 of leader {leader}: node {new_leader} leads {election:?} later (raft message delay {delay})");
    assert!(
        election < Duration::from_secs(3),
        "a new leader took {election:?}"
    );
    let live: Vec<String> = survivors.iter().map(|n| region.api(*n)).collect();
    let second: Vec<String> = stream::iter(total / 2..total)
        .map(|n| {
            let (http, live, body) = (http.clone(), live.clone(), body(n));
            async move { submit(&http, &live, &body, &format!("kill-leader-{n}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let ids: Vec<String> = first.into_iter().chain(second).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), total, "every submission is its own job");
    let jobs = wait_all(&live, &ids, Duration::from_secs(300)).await;
    assert_each_succeeded_once(&region, &jobs, &[leader]);
    region.script(&["start-node", &leader.to_string()]);

    // 2. A worker node is killed while running jobs: its leases expire, others finish them.
    let slow = Client::new(&all[0])
        .upload_ok(sized_png(1200, 900, true))
        .await;
    // About two seconds of work each, so a node can be stopped in the middle of one.
    let slow_body = |n: usize| {
        let blur = json!({"op": "blur", "sigma": 12.0 + n as f64 / 10.0});
        json!({"image_id": slow, "pipeline": [blur, blur, blur, blur, blur, blur],
               "output": {"format": "png"}})
    };
    let slow_ids: Vec<String> = stream::iter(0..12)
        .map(|n| {
            let (http, all, body) = (http.clone(), all.clone(), slow_body(n));
            async move { submit(&http, &all, &body, &format!("kill-worker-{n}")).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let leader = region.leader(&[1, 2, 3]).await;
    let victim = wait_for_runner(&region, &slow_ids, leader).await;
    region.script(&["kill-node", &victim.to_string()]);
    let live: Vec<String> = (1..=NODES)
        .filter(|n| *n != victim)
        .map(|n| region.api(n))
        .collect();
    let jobs = wait_all(&live, &slow_ids, Duration::from_secs(300)).await;
    assert_each_succeeded_once(&region, &jobs, &[victim]);
    region.script(&["start-node", &victim.to_string()]);

    // 3. A worker frozen past its lease: the job is re-leased and finished elsewhere; thawed, the
    //    frozen worker's result is refused and the record keeps the second attempt's.
    let frozen_ids: Vec<String> = stream::iter(0..6)
        .map(|n| {
            let (http, all, body) = (http.clone(), all.clone(), slow_body(100 + n));
            async move { submit(&http, &all, &body, &format!("freeze-{n}")).await }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    let leader = region.leader(&[1, 2, 3]).await;
    let frozen = wait_for_runner(&region, &frozen_ids, leader).await;
    region.script(&["freeze", &frozen.to_string()]);
    // What the frozen node was in the middle of: started there, finished nowhere yet.
    let outcomes = region.outcomes();
    let running_there: Vec<String> = frozen_ids
        .iter()
        .filter(|id| outcomes[&frozen].started.contains(*id))
        .filter(|id| {
            outcomes
                .values()
                .all(|seen| !seen.succeeded.contains_key(*id))
        })
        .cloned()
        .collect();
    assert!(
        !running_there.is_empty(),
        "node {frozen} was frozen with no job in progress"
    );
    let live: Vec<String> = (1..=NODES)
        .filter(|n| *n != frozen)
        .map(|n| region.api(n))
        .collect();
    let before_thaw = wait_all(&live, &frozen_ids, Duration::from_secs(300)).await;
    region.script(&["thaw", &frozen.to_string()]);
    // Let the thawed node finish what it was doing and try to store it: each of its attempts
    // ends refused, or, if it was frozen after storing its result, as that job's one completion.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = &region.outcomes()[&frozen];
        let pending: Vec<&String> = running_there
            .iter()
            .filter(|id| !seen.superseded.contains(*id) && !seen.succeeded.contains_key(*id))
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {frozen}, thawed, never ended its attempts at {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = region.outcomes()[&frozen].superseded.clone();
    assert!(
        !refused.is_empty(),
        "no late result of node {frozen} was refused"
    );
    // Asked of the same nodes as before (the links name the node that answers).
    let after_thaw = wait_all(&live, &frozen_ids, Duration::from_secs(60)).await;
    for (before, after) in before_thaw.iter().zip(&after_thaw) {
        assert_eq!(before, after, "the thawed worker changed a finished job");
    }
    for job in &after_thaw {
        if refused.iter().any(|id| job["id"] == **id) {
            assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");
        }
    }
    assert_each_succeeded_once(&region, &after_thaw, &[]);
}

/// A node other than `leader` that has started one of `ids`, once there is one.
async fn wait_for_runner(region: &Region, ids: &[String], leader: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(node) = ids
            .iter()
            .flat_map(|id| region.runners_of(id))
            .find(|node| *node != leader)
        {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "no follower started any of {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_loses_no_job_to_kill_9_or_a_frozen_worker() {
    region_survives_its_leader_and_workers("0ms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_loses_no_job_with_30ms_per_raft_message() {
    region_survives_its_leader_and_workers("30ms").await;
}
