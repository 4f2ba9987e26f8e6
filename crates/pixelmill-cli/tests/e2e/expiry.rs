use crate::spawn_app;
use pixelmill_testkit::jpeg;
use serde_json::json;
use std::time::{Duration, Instant};

/// Links answer 200 until they expire, 410 during the grace period, and then the sweeper removes the
/// link and the output nothing else refers to (404 from then on); the original stays.
#[tokio::test]
async fn links_expire_then_the_sweeper_removes_them_and_their_outputs() {
    let app = spawn_app(&[
        ("PIXELMILL_LINK_TTL", "2s"),
        ("PIXELMILL_EXPIRED_LINK_GRACE", "2s"),
        ("PIXELMILL_SWEEP_INTERVAL", "500ms"),
    ]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(64, 48)).await;
    let (_, body) = c
        .create_job(&json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "png"}}), None)
        .await;
    let job = c
        .wait_job(body["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    let url = job["download_url"].as_str().unwrap();
    assert_eq!(c.http.get(url).send().await.unwrap().status(), 200);
    assert_eq!(app.blobs_under("out/").await, 1);

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (status, body) = c.get_json(url.strip_prefix(&c.base).unwrap()).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (410, Some("expired")),
        "{body}"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    while app.blobs_under("out/").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the sweeper did not remove the output"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.http.get(url).send().await.unwrap().status(), 404);
    assert_eq!(app.blobs_under("orig/").await, 1, "originals are not swept");
}
