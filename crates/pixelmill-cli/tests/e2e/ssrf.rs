//! Webhooks cannot reach inside: a node that allows only 127.0.0.2/32 refuses every other inside
//! address, however it is spelt, at submission (422) or, for names, when they resolve (recorded
//! on the job, nothing sent), and follows no redirect. Every address named here is either a
//! literal refused before anything is sent, or resolved by the test's own DNS authority; the
//! only packets go to loopback receivers the test started.

use crate::spawn_app;
use pixelmill_testkit::{jpeg, Client, Dns, Hooks};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Literal hosts refused at submission, with a part of the message that names why.
fn literal_urls(loop1: u16, loop3: u16) -> Vec<(String, &'static str)> {
    let mut urls: Vec<(String, &'static str)> = [
        // Loopback in every IPv4 spelling the url crate accepts.
        ("http://2130706433/hook", "127.0.0.0/8"),
        ("http://0x7f000001/hook", "127.0.0.0/8"),
        ("http://0177.0.0.1/hook", "127.0.0.0/8"),
        ("http://017700000001/hook", "127.0.0.0/8"),
        ("http://127.1/hook", "127.0.0.0/8"),
        ("http://0x7f.0.0.1/hook", "127.0.0.0/8"),
        // The cloud metadata service and private services.
        ("http://169.254.169.254/latest/meta-data/", "169.254.0.0/16"),
        ("http://0xa9fea9fe/latest/meta-data/", "169.254.0.0/16"),
        ("http://2852039166/latest/meta-data/", "169.254.0.0/16"),
        ("http://0251.0376.0251.0376/", "169.254.0.0/16"),
        ("http://10.0.0.5:9200/_search", "10.0.0.0/8"),
        ("http://012.0.0.5:9200/", "10.0.0.0/8"),
        ("http://172.16.0.1/", "172.16.0.0/12"),
        ("http://172.31.255.255/", "172.16.0.0/12"),
        ("http://192.168.1.1/", "192.168.0.0/16"),
        ("http://100.64.0.1/", "100.64.0.0/10"),
        ("http://0.0.0.0:8080/", "0.0.0.0/8"),
        ("http://0/", "0.0.0.0/8"),
        ("http://224.0.0.1/", "224.0.0.0/4"),
        ("http://255.255.255.255/", "255.255.255.255/32"),
        ("http://240.0.0.1/", "240.0.0.0/4"),
        ("http://192.0.0.8/", "192.0.0.0/24"),
        ("http://192.0.2.1/", "192.0.2.0/24"),
        ("http://198.18.0.1/", "198.18.0.0/15"),
        ("http://198.51.100.7/", "198.51.100.0/24"),
        ("http://203.0.113.9/", "203.0.113.0/24"),
        ("http://192.88.99.1/", "192.88.99.0/24"),
        // IPv6, and IPv6 forms that carry an inside IPv4 address.
        ("http://[::1]/hook", "::1/128"),
        ("http://[::]/hook", "::/128"),
        ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
        ("http://[::ffff:7f00:1]/hook", "IPv4-mapped"),
        ("http://[::ffff:169.254.169.254]/", "169.254.0.0/16"),
        ("http://[::ffff:10.0.0.5]:9200/", "10.0.0.0/8"),
        ("http://[::ffff:0:0]/", "0.0.0.0/8"),
        ("http://[::127.0.0.1]/", "IPv4-compatible"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64"),
        ("http://[64:ff9b::10.0.0.5]/", "NAT64"),
        ("http://[2002:7f00:1::]/", "6to4"),
        ("http://[2002:a9fe:a9fe::1]/", "6to4"),
        (
            "http://[2001:0:4136:e378:8000:63bf:f5ff:fffa]/",
            "Teredo client",
        ),
        ("http://[fd00::1]/", "fc00::/7"),
        ("http://[fc00::1]/", "fc00::/7"),
        ("http://[fe80::1]/", "fe80::/10"),
        ("http://[fec0::1]/", "fec0::/10"),
        ("http://[ff02::1]/", "ff00::/8"),
        ("http://[2001:db8::1]/", "2001:db8::/32"),
        // localhost names mean this machine (RFC 6761), and loopback is not allowed.
        ("http://LOCALHOST/hook", "RFC 6761"),
        ("http://localhost./hook", "RFC 6761"),
        ("http://api.localhost/hook", "RFC 6761"),
    ]
    .into_iter()
    .map(|(url, why)| (url.to_owned(), why))
    .collect();
    // Loopback receivers that are listening, but outside the allowed 127.0.0.2/32.
    urls.extend([
        (format!("http://127.0.0.1:{loop1}/hook"), "127.0.0.0/8"),
        (format!("http://127.0.0.3:{loop3}/hook"), "127.0.0.0/8"),
        (
            format!("http://[::ffff:127.0.0.1]:{loop1}/hook"),
            "IPv4-mapped",
        ),
        (format!("http://localhost:{loop1}/hook"), "RFC 6761"),
        (format!("http://a.b.localhost:{loop1}/hook"), "RFC 6761"),
    ]);
    urls
}

async fn submit(c: &Client, image: &str, url: &str) -> (u16, Value) {
    let (status, body) = c
        .create_job(
            &json!({"image_id": image, "pipeline": [{"op": "grayscale"}],
                    "notify": {"webhook": url}}),
            None,
        )
        .await;
    (status.as_u16(), body)
}

/// The job's recorded webhook failure, once there is one.
async fn webhook_failure(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = c.get_json(&format!("/v1/jobs/{id}")).await;
        if !job["webhook_failure"].is_null() || Instant::now() > deadline {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn webhooks_reach_only_public_or_allowed_addresses_in_every_spelling() {
    // Receivers on loopback addresses the node may not reach, and on the one it may.
    let loop1 = Hooks::start_at(ip("127.0.0.1")).await;
    let loop3 = Hooks::start_at(ip("127.0.0.3")).await;
    let allowed = Hooks::start_at(ip("127.0.0.2")).await;
    let to_loop1 = Hooks::redirecting(ip("127.0.0.2"), &loop1.url).await;
    let to_loop3 = Hooks::redirecting(ip("127.0.0.2"), &loop3.url).await;
    let port = |hooks: &Hooks| {
        hooks
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/hook")
            .parse::<u16>()
            .unwrap()
    };
    let (p1, p2, p3) = (port(&loop1), port(&allowed), port(&loop3));
    let dns = Dns::start(&[
        ("metadata.inside.test.", ip("169.254.169.254")),
        ("search.inside.test.", ip("10.0.0.5")),
        ("loop.inside.test.", ip("127.0.0.1")),
        ("loop3.inside.test.", ip("127.0.0.3")),
        ("loop6.inside.test.", ip("::1")),
        ("ula.inside.test.", ip("fd00::1")),
        ("mapped.inside.test.", ip("::ffff:127.0.0.1")),
        ("cgnat.inside.test.", ip("100.64.0.1")),
        ("mixed.inside.test.", ip("10.0.0.5")),
        ("mixed.inside.test.", ip("127.0.0.3")),
        ("allowed.test.", ip("127.0.0.2")),
    ])
    .await;
    let dns_addr = dns.addr.to_string();
    let app = spawn_app(&[
        ("PIXELMILL_WEBHOOK_ALLOW_NETS", "127.0.0.2/32"),
        ("PIXELMILL_OUTBOUND_DNS", &dns_addr),
    ]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(64, 48)).await;

    // Literal addresses and localhost names: refused at submission, saying which range and how
    // to allow it.
    let literals = literal_urls(p1, p3);
    for (url, why) in &literals {
        let (status, body) = submit(c, &image, url).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "webhook_refused", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{url}: {message}");
        assert!(
            message.contains("PIXELMILL_WEBHOOK_ALLOW_NETS"),
            "{url}: {message}"
        );
    }

    // Names that resolve inside, and redirects out of the allowed receiver: accepted, then
    // refused at delivery and recorded on the job.
    let delivered_later: Vec<(String, &str)> = vec![
        (
            format!("http://metadata.inside.test:{p1}/latest/meta-data/"),
            "169.254.169.254 is in 169.254.0.0/16",
        ),
        (
            format!("http://search.inside.test:{p1}/_search"),
            "10.0.0.5 is in 10.0.0.0/8",
        ),
        (
            format!("http://loop.inside.test:{p1}/hook"),
            "127.0.0.1 is in 127.0.0.0/8",
        ),
        (
            format!("http://loop3.inside.test:{p3}/hook"),
            "127.0.0.3 is in 127.0.0.0/8",
        ),
        (
            format!("http://loop6.inside.test:{p1}/hook"),
            "::1 is in ::1/128",
        ),
        (
            format!("http://ula.inside.test:{p1}/hook"),
            "fd00::1 is in fc00::/7",
        ),
        (
            format!("http://mapped.inside.test:{p1}/hook"),
            "IPv4-mapped form of 127.0.0.1",
        ),
        (
            format!("http://cgnat.inside.test:{p1}/hook"),
            "100.64.0.1 is in 100.64.0.0/10",
        ),
        (
            format!("http://mixed.inside.test:{p3}/hook"),
            "(and 1 more)",
        ),
        (to_loop1.url.clone(), "redirects are not followed"),
        (to_loop3.url.clone(), "redirects are not followed"),
    ];
    let mut jobs = Vec::new();
    for (url, why) in &delivered_later {
        let (status, body) = submit(c, &image, url).await;
        assert_eq!(status, 202, "{url}: {body}");
        jobs.push((body["id"].as_str().unwrap().to_owned(), url, why));
    }
    for (id, url, why) in &jobs {
        let job = webhook_failure(c, id).await;
        let failure = &job["webhook_failure"];
        let reason = failure["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("{url}: nothing recorded: {job}"));
        assert!(reason.contains(**why), "{url}: {reason}");
        assert!(failure["attempts"].as_u64() >= Some(1), "{url}: {failure}");
    }
    assert!(
        literals.len() + delivered_later.len() >= 50,
        "the matrix has {} refused URLs",
        literals.len() + delivered_later.len()
    );

    // The allowed net still receives webhooks, by address and by name.
    for url in [
        allowed.url.clone(),
        format!("http://allowed.test:{p2}/hook"),
    ] {
        let (status, body) = submit(c, &image, &url).await;
        assert_eq!(status, 202, "{url}: {body}");
    }
    let got = allowed.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(
        got.len(),
        2,
        "the allowed receiver got {} webhooks",
        got.len()
    );
    // The redirecting receivers were asked once each (a refused redirect is retried later, so
    // at least once); the receivers outside the allowed net heard nothing at all.
    assert!(!to_loop1.received().is_empty() && !to_loop3.received().is_empty());
    assert!(
        loop1.received().is_empty(),
        "127.0.0.1 received {:?}",
        loop1.received()
    );
    assert!(
        loop3.received().is_empty(),
        "127.0.0.3 received {:?}",
        loop3.received()
    );
}
