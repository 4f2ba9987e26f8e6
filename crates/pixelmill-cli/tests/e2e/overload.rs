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

/// The upload role admits at most `PIXELMILL_MAX_UPLOADS` uploads at once: beyond that 503
/// `overloaded` with Retry-After, and the slot returns when an upload ends.
#[tokio::test]
async fn uploads_beyond_the_bound_are_shed_and_the_slot_returns() {
    use futures::SinkExt;
    let app = spawn_app(&[("PIXELMILL_MAX_UPLOADS", "1")]);
    let c = app.client.clone();
    let png = pixelmill_testkit::png_rgba(64, 64);
    // An upload that sends its first bytes and then waits holds the only slot.
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

    let shed = c
        .http
        .post(c.url("/v1/images"))
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), 503, "log:\n{}", app.server.log());
    assert!(
        shed.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let err: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(err["error"]["code"], "overloaded");

    tx.send(Ok(png[40..].to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(stalled.await.unwrap(), 201);
    let (status, body) = c.upload(png).await;
    assert_eq!(status, 201, "the slot returns once an upload ends: {body}");
}
