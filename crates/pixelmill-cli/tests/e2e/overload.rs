use crate::spawn_app;
use pixelmill_testkit::jpeg;
use serde_json::json;
use std::time::Duration;

/// Over the queue bound new jobs get 503 `overloaded` with Retry-After; every job accepted before
/// that still completes once workers run.
#[tokio::test]
async fn a_full_queue_sheds_new_jobs_and_keeps_the_accepted_ones() {
    let mut app = spawn_app(&[("PIXELMILL_WORKERS", "0"), ("PIXELMILL_QUEUE_BOUND", "3")]);
    let c = app.client.clone();
    let image = c.upload_ok(jpeg(40, 40)).await;
    let body =
        json!({"image_id": image, "pipeline": [{"op": "grayscale"}], "output": {"format": "png"}});
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let (status, job) = c.create_job(&body, None).await;
        assert_eq!(status, 202, "{job}");
        accepted.push(job["id"].as_str().unwrap().to_owned());
    }
    let response = c
        .http
        .post(c.url("/v1/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let err: serde_json::Value = response.json().await.unwrap();
    assert_eq!(err["error"]["code"], "overloaded");

    app.restart_with(&[("PIXELMILL_WORKERS", "2")]);
    for id in &accepted {
        assert_eq!(
            app.client.wait_job(id, Duration::from_secs(30)).await["status"],
            "succeeded"
        );
    }
}

/// An upload takes one of `PIXELMILL_MAX_UPLOADS` slots only once its body has arrived: one that
/// stalls part-way holds none, so with a single slot another upload still goes through, and the
/// stalled one succeeds when it finishes sending.
#[tokio::test]
async fn a_stalled_upload_holds_no_slot_and_finishes_when_its_body_does() {
    use futures::SinkExt;
    let app = spawn_app(&[("PIXELMILL_MAX_UPLOADS", "1")]);
    let c = app.client.clone();
    let png = pixelmill_testkit::png_rgba(64, 64);
    // An upload that sends its first bytes and then waits.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok(png[..40].to_vec())).await.unwrap();
    let stalled = {
        let c = c.clone();
        tokio::spawn(async move {
            let body = reqwest::Body::wrap_stream(rx);
            c.http
                .post(c.url("/v1/images"))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stalled.is_finished(),
        "the stalled upload was answered early"
    );

    let (status, body) = c.upload(pixelmill_testkit::png_rgba(32, 32)).await;
    assert_eq!(
        status,
        201,
        "the only slot was free: {body}\nlog:\n{}",
        app.server.log()
    );

    tx.send(Ok(png[40..].to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(stalled.await.unwrap(), 201);
}
