//! The geo-DNS server over real UDP on loopback, checking real HTTP nodes: each region's clients
//! get their region's nodes, a region that turns unready leaves the answers within seconds and
//! its clients move to its nearest fallback, and it returns once ready again.

use axum::http::StatusCode;
use axum::routing::get;
use pixelmill_client::{lookup, LookupOptions, ResolveError};
use pixelmill_geodns::{CheckConfig, GeoDns, GeoDnsConfig};
use pixelmill_regions::Regions;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An API node answering `/readyz` with 200 while `ready` holds, 503 otherwise.
async fn node(ip: &str, ready: Arc<AtomicBool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/readyz",
        get(move || {
            let ready = ready.load(Ordering::SeqCst);
            async move {
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Lab {
    _dir: tempfile::TempDir,
    dns: SocketAddr,
    ready: Vec<Arc<AtomicBool>>,
}

/// Regions eu (1), us (2), ap (3): region I's node on 127.0.I.1, its clients 127.0.10I.0/24.
async fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let mut ready = Vec::new();
    for (name, i, fallback) in [
        ("eu", 1, "\"us\", \"ap\""),
        ("us", 2, "\"eu\", \"ap\""),
        ("ap", 3, "\"us\", \"eu\""),
    ] {
        let flag = Arc::new(AtomicBool::new(true));
        let addr = node(&format!("127.0.{i}.1"), flag.clone()).await;
        ready.push(flag);
        let file = format!(
            "datacenter = \"dc{i}\"\n[metadata]\ncql = [\"127.0.0.1:9042\"]\nreplicas = 1\n\
             [api]\nnodes = [\"{addr}\"]\n\
             [clients]\nprefixes = [\"127.0.{}.0/24\"]\nfallback = [{fallback}]\n",
            100 + i
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), file).unwrap();
    }
    let regions = Regions::load(dir.path()).unwrap();
    let config = GeoDnsConfig {
        name: "api.pixelmill.test".into(),
        ttl: 2,
        checks: CheckConfig {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(300),
            ..CheckConfig::default()
        },
    };
    let server = GeoDns::start("127.0.0.1:0".parse().unwrap(), regions, config)
        .await
        .unwrap();
    let dns = server.addr;
    tokio::spawn(server.wait());
    Lab {
        _dir: dir,
        dns,
        ready,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn answer_for(dns: SocketAddr, subnet: &str) -> Result<Vec<IpAddr>, ResolveError> {
    let options = LookupOptions {
        client_subnet: Some(subnet.parse().unwrap()),
        ..LookupOptions::default()
    };
    lookup(dns, "api.pixelmill.test", &options)
        .await
        .map(|r| r.addrs)
}

/// Polls until `subnet`'s answer is `expected`; how long that took.
async fn until_answer(dns: SocketAddr, subnet: &str, expected: &[IpAddr]) -> Duration {
    let started = Instant::now();
    loop {
        if answer_for(dns, subnet).await.ok().as_deref() == Some(expected) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{subnet} never got {expected:?}; last answer {:?}",
            answer_for(dns, subnet).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_region_serves_its_clients_and_hands_them_over_while_unready() {
    let lab = lab().await;
    let (eu, us, ap) = (ip("127.0.1.1"), ip("127.0.2.1"), ip("127.0.3.1"));
    until_answer(lab.dns, "127.0.101.0/24", &[eu]).await;
    until_answer(lab.dns, "127.0.102.7/32", &[us]).await;
    until_answer(lab.dns, "127.0.103.0/24", &[ap]).await;
    let ttl = lookup(lab.dns, "api.pixelmill.test", &LookupOptions::default())
        .await
        .unwrap()
        .ttl;
    assert_eq!(ttl, Duration::from_secs(2));

    // us turns unready (a drain, or its store is gone): its clients go to eu, its first fallback.
    lab.ready[1].store(false, Ordering::SeqCst);
    let left = until_answer(lab.dns, "127.0.102.0/24", &[eu]).await;
    assert!(
        left < Duration::from_secs(3),
        "us left the answers after {left:?}"
    );
    until_answer(lab.dns, "127.0.103.0/24", &[ap]).await;
    // eu too: us's clients go to ap.
    lab.ready[0].store(false, Ordering::SeqCst);
    until_answer(lab.dns, "127.0.102.0/24", &[ap]).await;
    until_answer(lab.dns, "127.0.101.0/24", &[ap]).await;

    // Back: each region's clients return to it.
    lab.ready[0].store(true, Ordering::SeqCst);
    lab.ready[1].store(true, Ordering::SeqCst);
    until_answer(lab.dns, "127.0.102.0/24", &[us]).await;
    until_answer(lab.dns, "127.0.101.0/24", &[eu]).await;
}

#[tokio::test]
async fn the_source_address_places_a_client_without_a_subnet_and_no_healthy_region_is_servfail() {
    let lab = lab().await;
    until_answer(lab.dns, "127.0.103.0/24", &[ip("127.0.3.1")]).await;
    let from_ap = LookupOptions {
        local: Some(ip("127.0.103.1")),
        ..LookupOptions::default()
    };
    let answer = lookup(lab.dns, "api.pixelmill.test", &from_ap)
        .await
        .unwrap();
    assert_eq!(answer.addrs, [ip("127.0.3.1")]);

    let other = lookup(lab.dns, "other.pixelmill.test", &from_ap)
        .await
        .unwrap_err();
    assert!(
        other.to_string().contains("NXDomain") || other.to_string().contains("Non-Existent"),
        "{other}"
    );
    assert!(!other.is_retryable());

    for ready in &lab.ready {
        ready.store(false, Ordering::SeqCst);
    }
    let started = Instant::now();
    let err = loop {
        match lookup(lab.dns, "api.pixelmill.test", &from_ap).await {
            Err(err) => break err,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "still answered"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("no region is healthy"), "{err}");
}
