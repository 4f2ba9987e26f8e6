use crate::{decode, spawn_app, SECRET};
use pixelmill_testkit::{jpeg, Hooks};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn upload_job_webhook_and_download_work_end_to_end() {
    let hooks = Hooks::start().await;
    let app = spawn_app(&[]);
    let c = &app.client;
    let (status, image) = c.upload(jpeg(1200, 800)).await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(
        (
            image["format"].as_str(),
            image["width"].as_u64(),
            image["height"].as_u64()
        ),
        (Some("jpeg"), Some(1200), Some(800))
    );
    assert_eq!(image["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(
        image["blurhash"].as_str().map(str::len),
        Some(28),
        "{image}"
    );

    let (status, accepted) = c
        .create_job(
            &json!({"image_id": image["id"],
                    "pipeline": [{"op": "resize", "width": 300, "height": 200, "fit": "cover"},
                                 {"op": "grayscale"},
                                 {"op": "expr", "expr": "r = 255 - r; g = 255 - g; b = 255 - b"}],
                    "output": {"format": "png"},
                    "notify": {"webhook": hooks.url}}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let id = accepted["id"].as_str().unwrap();
    assert!(accepted["status_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/jobs/{id}")));

    // The webhook arrives, and the job already shows the outcome it announces.
    let deliveries = hooks.wait_for(1, Duration::from_secs(60)).await;
    let hook = deliveries.first().expect("a webhook arrives");
    let (_, job) = c.get_json(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["output"],
        json!({"format": "png", "width": 300, "height": 200, "bytes": job["output"]["bytes"]})
    );
    assert_eq!(job["attempts"], 1);
    let url = job["download_url"].as_str().unwrap().to_owned();
    let token = url.rsplit('/').next().unwrap();
    assert!(
        token.len() >= 32,
        "a link token carries at least 128 random bits: {token}"
    );

    assert!(
        hook.signature_valid(SECRET),
        "signature: {:?}",
        hook.header("pixelmill-signature")
    );
    let event = hook.json();
    assert_eq!(event["event"], "job.succeeded");
    assert_eq!(event["job_id"], id);
    assert_eq!(event["image_id"], image["id"]);
    assert_eq!(event["download_url"], url.as_str());
    assert_eq!(
        hook.header("pixelmill-event-id").as_deref(),
        event["event_id"].as_str()
    );

    let response = c.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    let out = decode(&bytes).to_rgb8();
    assert_eq!(out.dimensions(), (300, 200));
    assert!(
        out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grayscale output"
    );

    let partial = c
        .http
        .get(&url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 0-9/{}", bytes.len()).as_str()
    );
    assert_eq!(partial.bytes().await.unwrap(), bytes.slice(0..10));
    let cached = c
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    let (status, missing) = c.get_json(&format!("/d/{}", "0".repeat(64))).await;
    assert_eq!(
        (status.as_u16(), missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let original = c
        .http
        .get(c.url(&format!(
            "/v1/images/{}/original",
            image["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        original.bytes().await.unwrap().len() as u64,
        image["bytes"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn metrics_cover_requests_queues_ops_and_notifications() {
    let hooks = Hooks::start().await;
    let app = spawn_app(&[]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(64, 64)).await;
    let (_, accepted) = c
        .create_job(
            &json!({"image_id": image, "pipeline": [{"op": "sepia"}], "output": {"format": "jpeg"},
                            "notify": {"webhook": hooks.url}}),
            None,
        )
        .await;
    c.wait_job(accepted["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    hooks.wait_for(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // one scheduler tick publishes queue gauges
    let text = c.get_text("/metrics").await;
    for needle in [
        "pixelmill_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"202\"} 1",
        "pixelmill_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/images\"",
        "pixelmill_queue_depth{lane=\"fast\"} 0",
        "pixelmill_queue_oldest_age_seconds{lane=",
        "pixelmill_job_op_duration_seconds_count{op=\"sepia\"} 1",
        "pixelmill_notifications_total{channel=\"webhook\",outcome=\"delivered\"} 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    let (status, ready) = c.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
}

/// An animated GIF uploaded over HTTP comes back from a job as an animation: every frame
/// resized, delays and frame count kept; a WebP output is animated too.
#[tokio::test]
async fn animated_gifs_stay_animated_through_a_job() {
    use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
    use image::{AnimationDecoder, Delay, Frame, Rgba, RgbaImage};
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        for i in 0..5u8 {
            let frame = RgbaImage::from_pixel(80, 40, Rgba([i * 50, 0, 255 - i * 50, 255]));
            let delay = Delay::from_numer_denom_ms(70, 1);
            encoder
                .encode_frame(Frame::from_parts(frame, 0, 0, delay))
                .unwrap();
        }
    }
    let app = spawn_app(&[]);
    let c = &app.client;
    let (status, image) = c.upload(gif).await;
    assert_eq!(
        (status.as_u16(), image["frames"].as_u64()),
        (201, Some(5)),
        "{image}"
    );

    for format in ["gif", "webp"] {
        let bytes = c
            .run_job(&json!({"image_id": image["id"],
                             "pipeline": [{"op": "resize", "width": 40}],
                             "output": {"format": format}}))
            .await;
        if format == "gif" {
            let frames = GifDecoder::new(std::io::Cursor::new(&bytes))
                .unwrap()
                .into_frames()
                .collect_frames()
                .unwrap();
            assert_eq!(frames.len(), 5);
            assert!(frames.iter().all(|f| f.buffer().dimensions() == (40, 20)));
            assert!(frames
                .iter()
                .all(|f| f.delay() == Delay::from_numer_denom_ms(70, 1)));
        } else {
            assert_eq!(&bytes[8..12], b"WEBP");
            // An animated WebP carries one ANMF chunk per frame.
            let frames = bytes.windows(4).filter(|w| w == b"ANMF").count();
            assert_eq!(frames, 5);
        }
    }
}
