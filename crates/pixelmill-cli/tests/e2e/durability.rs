use crate::{spawn_app, SECRET};
use pixelmill_testkit::{jpeg, Hooks};
use serde_json::json;
use std::time::Duration;

/// `kill -9` with jobs queued and running, then restart on the same data dir: every accepted job
/// completes.
#[tokio::test]
async fn every_accepted_job_completes_after_kill_9_and_restart() {
    let mut app = spawn_app(&[("PIXELMILL_WORKERS", "2")]);
    let image = app.client.upload_ok(jpeg(1600, 1200)).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (status, body) = app
            .client
            .create_job(
                &json!({"image_id": image,
                        "pipeline": [{"op": "blur", "sigma": 3.0}, {"op": "rotate", "degrees": 90}],
                        "output": {"format": "webp"}}),
                None,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // Let some start running, then crash.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.server.kill9();
    app.restart();
    for id in &ids {
        let job = app.client.wait_job(id, Duration::from_secs(120)).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(
            (
                job["output"]["width"].as_u64(),
                job["output"]["height"].as_u64()
            ),
            (Some(1200), Some(1600))
        );
    }
}

/// A webhook whose receiver is down is kept in the durable outbox, survives a crash of pixelmill,
/// and is delivered with the same event id once the receiver is back.
#[tokio::test]
async fn webhooks_survive_a_down_receiver_and_a_crash() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut app = spawn_app(&[]);
    let image = app.client.upload_ok(jpeg(32, 32)).await;
    let (_, body) = app
        .client
        .create_job(
            &json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "png"},
                    "notify": {"webhook": format!("http://127.0.0.1:{port}/hook")}}),
            None,
        )
        .await;
    let id = body["id"].as_str().unwrap();
    app.client.wait_job(id, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the first attempt fails: nobody listens
    app.server.kill9();

    let hooks = Hooks::start_on(port, 1).await; // and the first attempt after the crash gets a 500
    app.server.restart();
    let got = hooks.wait_for(2, Duration::from_secs(40)).await;
    assert!(
        got.len() >= 2,
        "expected a failed and a successful delivery, got {}",
        got.len()
    );
    let ids: Vec<_> = got.iter().map(|d| d.header("pixelmill-event-id")).collect();
    assert!(
        ids.iter().all(|e| e == &ids[0]),
        "one event id on every retry: {ids:?}"
    );
    assert!(got
        .iter()
        .all(|d| d.signature_valid(SECRET) && d.json()["job_id"] == id));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hooks.received().len(),
        2,
        "delivered once accepted, not again"
    );
}

/// SIGTERM stops every role and the process exits 0 promptly (roles idle between turns do not hold
/// it up), and a restart serves the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_keeps_the_data() {
    let mut app = spawn_app(&[("PIXELMILL_SWEEP_INTERVAL", "1h")]);
    let image = app.client.upload_ok(jpeg(16, 16)).await;
    let status = tokio::task::block_in_place(|| app.server.terminate(Duration::from_secs(8)));
    let status = status.expect(
        "pixelmill exits within 8 s of SIGTERM (a role stuck in a wait would hold it 10 s)",
    );
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        app.server.log()
    );
    app.restart();
    let (code, body) = app.client.get_json(&format!("/v1/images/{image}")).await;
    assert_eq!(code, 200, "{body}");
}
