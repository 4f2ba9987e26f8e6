//! End-to-end job latency on an idle node: the real `pixelmill serve` process on a loopback port
//! and a real webhook receiver. For each of N sequential jobs (after a few warm-up jobs): upload a
//! 1920x1080 photo-like JPEG, create a job `resize width 800 (fit contain) -> jpeg q80` notifying
//! the receiver, and time from the start of the upload request until the webhook has arrived.
//!
//! `cargo bench -p pixelmill-cli --bench e2e_latency` (the server binary is then a release build).
//! `PIXELMILL_BENCH_BIN=path/to/pixelmill` measures another build of the server instead, e.g. a
//! debug one. Run without `--bench` (as `cargo test --benches` does) it is a two-job smoke run.
//! The server inherits the environment: `PIXELMILL_META=scylla:///ks PIXELMILL_REGION=eu` puts its
//! metadata in Cassandra (bench/meta runs it both ways).
//!
//! Webhook arrival is observed by polling the receiver every millisecond, so every figure that
//! ends at the webhook carries up to about 1-2 ms of polling slack.

use pixelmill_testkit::{jpeg, Client, Hooks, Server};
use serde_json::json;
use std::time::{Duration, Instant};

const WARM_UP: usize = 3;
const JOBS: usize = 30;
/// The whole run gives up after this long rather than hang.
const BUDGET: Duration = Duration::from_secs(50);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(1);

struct Sample {
    upload: Duration,
    create: Duration,
    accept_to_webhook: Duration,
    total: Duration,
    /// The first GET of the job after its webhook did not yet say `succeeded`.
    status_lagged: bool,
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (warm_up, jobs) = if measuring { (WARM_UP, JOBS) } else { (1, 1) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(warm_up, jobs));
}

async fn run(warm_up: usize, jobs: usize) {
    let bin = std::env::var("PIXELMILL_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pixelmill").to_owned());
    let dir = tempfile::tempdir().expect("temp dir");
    let hooks = Hooks::start().await;
    let server = Server::start(&bin, dir.path(), &[("PIXELMILL_WEBHOOK_SECRET", "x")]);
    let client = Client::new(server.base_url());
    let photo = jpeg(1920, 1080);
    let meta = std::env::var("PIXELMILL_META").unwrap_or_else(|_| "embedded".into());
    println!(
        "e2e_latency: server {bin}, metadata {meta}\n  input 1920x1080 JPEG ({} bytes), resize width 800 fit contain -> jpeg q80, webhook on loopback\n  {warm_up} warm-up jobs, then {jobs} measured, sequential, idle node",
        photo.len()
    );

    let deadline = Instant::now() + BUDGET;
    let mut samples = Vec::with_capacity(jobs);
    for i in 0..warm_up + jobs {
        let sample = one_job(&client, &hooks, &server, &photo, i + 1).await;
        if i >= warm_up {
            samples.push(sample);
        }
        assert!(
            Instant::now() < deadline,
            "e2e_latency exceeded its {BUDGET:?} budget after {} jobs",
            i + 1
        );
    }

    println!(
        "\n{:<34} {:>8} {:>8} {:>8} {:>8} {:>8}",
        format!("ms, N = {jobs}"),
        "p50",
        "p90",
        "p99",
        "max",
        "mean"
    );
    row("upload (POST /v1/images)", samples.iter().map(|s| s.upload));
    row(
        "create job (POST /v1/jobs -> 202)",
        samples.iter().map(|s| s.create),
    );
    row(
        "job accepted -> webhook",
        samples.iter().map(|s| s.accept_to_webhook),
    );
    row("upload start -> webhook", samples.iter().map(|s| s.total));
    println!("(nearest-rank percentiles; with N < 100, p99 is the largest sample)");
    println!(
        "jobs whose webhook arrived before GET /v1/jobs/{{id}} said succeeded: {} of {jobs}",
        samples.iter().filter(|s| s.status_lagged).count()
    );
}

async fn one_job(
    client: &Client,
    hooks: &Hooks,
    server: &Server,
    photo: &[u8],
    n: usize,
) -> Sample {
    let body = photo.to_vec();
    let start = Instant::now();
    let image = client.upload_ok(body).await;
    let uploaded = Instant::now();
    let (status, accepted) = client
        .create_job(
            &json!({"image_id": image,
                    "pipeline": [{"op": "resize", "width": 800, "fit": "contain"}],
                    "output": {"format": "jpeg", "quality": 80},
                    "notify": {"webhook": hooks.url}}),
            None,
        )
        .await;
    let accepted_at = Instant::now();
    assert_eq!(status, 202, "job not accepted: {accepted}");
    let job_id = accepted["id"].as_str().expect("job id").to_owned();

    let give_up = accepted_at + WEBHOOK_TIMEOUT;
    let delivery = loop {
        if let Some(d) = hooks.received().get(n - 1).cloned() {
            break d;
        }
        assert!(
            Instant::now() < give_up,
            "no webhook for {job_id} after {WEBHOOK_TIMEOUT:?}; server log:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL).await;
    };
    let arrived = Instant::now();
    let event = delivery.json();
    assert_eq!(event["event"], "job.succeeded", "{event}");
    assert_eq!(event["job_id"], job_id.as_str(), "{event}");
    // Outside the timed span: the job really produced an 800x450 JPEG. The webhook may arrive
    // before the job's final status is readable (the outbox is written first), so note that.
    let (_, first) = client.get_json(&format!("/v1/jobs/{job_id}")).await;
    let status_lagged = first["status"] != "succeeded";
    let job = client.wait_job(&job_id, WEBHOOK_TIMEOUT).await;
    assert_eq!(
        (
            &job["output"]["format"],
            &job["output"]["width"],
            &job["output"]["height"]
        ),
        (&json!("jpeg"), &json!(800), &json!(450)),
        "{job}"
    );

    Sample {
        upload: uploaded - start,
        create: accepted_at - uploaded,
        accept_to_webhook: arrived - accepted_at,
        total: arrived - start,
        status_lagged,
    }
}

fn row(label: &str, values: impl Iterator<Item = Duration>) {
    let mut ms: Vec<f64> = values.map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{label:<34} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        rank(0.50),
        rank(0.90),
        rank(0.99),
        ms[ms.len() - 1],
        mean
    );
}
