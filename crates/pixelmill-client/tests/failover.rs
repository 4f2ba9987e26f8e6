//! The client against a real geo-DNS server and real HTTP nodes on loopback: it moves to the next
//! node when one fails, keeps one idempotency key across every retry of a submission, and when
//! its whole region goes it follows the DNS answer to the next region.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use pixelmill_client::{Client, ClientConfig, JobRequest, Service};
use pixelmill_core::{NotifySpec, OutputSpec, PipelineStep};
use pixelmill_geodns::{CheckConfig, GeoDns, GeoDnsConfig};
use pixelmill_regions::Regions;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stand-in API node: `/readyz` while up; `POST /v1/jobs` records the idempotency key it got
/// and answers 202, or 503 while `refusing`.
#[derive(Clone, Default)]
struct Node {
    up: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    keys: Arc<Mutex<Vec<String>>>,
}

async fn ready(State(node): State<Node>) -> StatusCode {
    if node.up.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn create(State(node): State<Node>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    node.keys.lock().unwrap().push(key);
    if !node.up.load(Ordering::SeqCst) || node.refusing.load(Ordering::SeqCst) {
        let error = json!({"error": {"code": "overloaded", "message": "try another node"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(error));
    }
    let accepted = json!({"id": "job_1", "status": "queued", "status_url": "/v1/jobs/job_1"});
    (StatusCode::ACCEPTED, Json(accepted))
}

/// Node `ip` on a port shared by every node (a DNS answer carries addresses, not ports).
async fn start_node(ip: &str, port: u16) -> Node {
    let node = Node::default();
    node.up.store(true, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let app = axum::Router::new()
        .route("/readyz", get(ready))
        .route("/v1/jobs", post(create))
        .with_state(node.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    node
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Lab {
    _dir: tempfile::TempDir,
    client: Client,
    a1: Node,
    a2: Node,
    b: Node,
}

/// Region a (nodes 127.0.1.1 and .2, clients 127.0.101.0/24, falls back to b) and region b
/// (127.0.2.1); the client is one of a's.
async fn lab() -> Lab {
    let port = free_port();
    let (a1, a2, b) = (
        start_node("127.0.1.1", port).await,
        start_node("127.0.1.2", port).await,
        start_node("127.0.2.1", port).await,
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, i, nodes, fallback) in [
        (
            "a",
            1,
            format!("\"127.0.1.1:{port}\", \"127.0.1.2:{port}\""),
            "b",
        ),
        ("b", 2, format!("\"127.0.2.1:{port}\""), "a"),
    ] {
        let file = format!(
            "datacenter = \"dc{i}\"\n[metadata]\ncql = [\"127.0.0.1:9042\"]\nreplicas = 1\n\
             [api]\nnodes = [{nodes}]\n[clients]\nprefixes = [\"127.0.{}.0/24\"]\nfallback = [\"{fallback}\"]\n",
            100 + i
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), file).unwrap();
    }
    let checks = CheckConfig {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        ..CheckConfig::default()
    };
    let config = GeoDnsConfig {
        name: "api.test".into(),
        ttl: 1,
        checks,
    };
    let regions = Regions::load(dir.path()).unwrap();
    let dns = GeoDns::start("127.0.0.1:0".parse().unwrap(), regions, config)
        .await
        .unwrap();
    let dns_addr = dns.addr;
    tokio::spawn(dns.wait());
    let mut config = ClientConfig::new(Service::Geo {
        dns: dns_addr,
        name: "api.test".into(),
        port,
        scheme: "http".into(),
    });
    config.local = Some(IpAddr::from([127, 0, 101, 1]));
    config.deadline = Duration::from_secs(15);
    // Wait until the DNS server has checked every node once and answers with region a.
    let started = Instant::now();
    loop {
        let options = pixelmill_client::LookupOptions {
            local: config.local,
            ..Default::default()
        };
        let answer = pixelmill_client::lookup(dns_addr, "api.test", &options).await;
        if answer.is_ok_and(|a| a.addrs.len() == 2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the DNS server never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Lab {
        _dir: dir,
        client: Client::new(config),
        a1,
        a2,
        b,
    }
}

fn request() -> JobRequest {
    JobRequest {
        image_id: "img_1".into(),
        pipeline: PipelineStep::parse_compact("grayscale").unwrap(),
        output: OutputSpec::default(),
        notify: NotifySpec::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_node_is_passed_over_and_the_retry_keeps_its_idempotency_key() {
    let lab = lab().await;
    lab.a1.refusing.store(true, Ordering::SeqCst);
    lab.a2.refusing.store(true, Ordering::SeqCst);
    let retried = {
        let a2 = lab.a2.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            a2.refusing.store(false, Ordering::SeqCst);
        })
    };
    let accepted = lab.client.create_job(&request(), None).await.unwrap();
    retried.await.unwrap();
    assert_eq!(accepted.id, "job_1");
    let mut keys: Vec<String> = lab.a1.keys.lock().unwrap().clone();
    keys.extend(lab.a2.keys.lock().unwrap().iter().cloned());
    assert!(
        keys.len() >= 3,
        "both nodes were tried, and a2 again: {keys:?}"
    );
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one key for every try: {keys:?}"
    );
    assert!(
        lab.b.keys.lock().unwrap().is_empty(),
        "region b was not needed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_region_goes_the_client_follows_the_dns_answer_to_the_next() {
    let lab = lab().await;
    lab.client
        .create_job(&request(), Some("first"))
        .await
        .unwrap();
    assert_eq!(
        lab.a1.keys.lock().unwrap().len() + lab.a2.keys.lock().unwrap().len(),
        1
    );

    // Region a goes: its nodes answer nothing but 503 and fail their health checks.
    lab.a1.up.store(false, Ordering::SeqCst);
    lab.a2.up.store(false, Ordering::SeqCst);
    let started = Instant::now();
    let accepted = lab
        .client
        .create_job(&request(), Some("second"))
        .await
        .unwrap();
    assert_eq!(accepted.id, "job_1");
    assert_eq!(
        *lab.b.keys.lock().unwrap(),
        ["second"],
        "served by region b"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "moved within {:?}",
        started.elapsed()
    );
}
