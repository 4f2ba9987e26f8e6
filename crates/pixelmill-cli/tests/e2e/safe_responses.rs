//! What the node hands out and refuses on the way: files that browsers will not sniff, junk
//! download tokens, jobs too costly or too slow, overlays too large, too many event streams, and
//! idempotency keys whose first job never made it into the queue.

use crate::spawn_app;
use pixelmill_testkit::{jpeg, png_rgba, Client};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn originals_and_downloads_are_never_sniffed_and_carry_a_safe_file_name() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let image = c.upload_ok(png_rgba(20, 20)).await;
    let original = c
        .http
        .get(c.url(&format!("/v1/images/{image}/original")))
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), 200);
    assert_eq!(original.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        original.headers()["content-disposition"],
        format!("inline; filename=\"{image}.png\"").as_str()
    );

    let job =
        json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "jpeg"}});
    let (_, accepted) = c.create_job(&job, None).await;
    let id = accepted["id"].as_str().unwrap();
    let done = c.wait_job(id, Duration::from_secs(60)).await;
    let url = done["download_url"].as_str().unwrap();
    let download = c.http.get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        download.headers()["content-disposition"],
        format!("attachment; filename=\"{id}.jpeg\"").as_str()
    );
}

#[tokio::test]
async fn download_tokens_of_the_wrong_shape_are_404() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let hex = "0123456789abcdef".repeat(4);
    for junk in [
        "short".to_owned(),
        hex.to_uppercase(),
        format!("{hex}00"),
        format!("{}zz", &hex[2..]),
        "%2e%2e%2fetc%2fpasswd".to_owned(),
    ] {
        let (status, body) = c.get_json(&format!("/d/{junk}")).await;
        assert_eq!(
            (status.as_u16(), body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{junk}"
        );
    }
    // A well-formed token that names nothing is looked up, and is just as unknown.
    assert_eq!(c.get_json(&format!("/d/{hex}")).await.0, 404);
}

#[tokio::test]
async fn a_job_over_the_cost_ceiling_is_refused_at_submission() {
    let app = spawn_app(&[("PIXELMILL_MAX_JOB_COST", "100000")]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(200, 200)).await;
    let job = json!({"image_id": image, "pipeline": [{"op": "blur", "sigma": 5}], "output": {"format": "png"}});
    let (status, body) = c.create_job(&job, None).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("job_too_costly")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 100000"),
        "{body}"
    );
}

#[tokio::test]
async fn an_attempt_past_its_time_limit_fails_the_job_and_says_why() {
    let app = spawn_app(&[("PIXELMILL_JOB_ATTEMPT_TIMEOUT", "1ms")]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(1500, 1500)).await;
    let job = json!({"image_id": image, "pipeline": [{"op": "blur", "sigma": 20}], "output": {"format": "png"}});
    let (status, accepted) = c.create_job(&job, None).await;
    assert_eq!(status, 202, "{accepted}");
    let done = c
        .wait_job(accepted["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.contains("ran past this server's limit of 1ms"),
        "{error}"
    );
}

#[tokio::test]
async fn an_overlay_over_its_pixel_cap_is_refused_before_it_is_loaded() {
    let app = spawn_app(&[("PIXELMILL_MAX_OVERLAY_PIXELS", "100")]);
    let c = &app.client;
    let base = c.upload_ok(png_rgba(40, 40)).await;
    let logo = c.upload_ok(png_rgba(20, 20)).await;
    let job = json!({"image_id": base, "pipeline": [{"op": "watermark", "image": logo}], "output": {"format": "png"}});
    let (status, body) = c.create_job(&job, None).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("invalid_pipeline")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20x20 (400 pixels)"),
        "{body}"
    );
    let render = c
        .get_json(&format!(
            "/v1/images/{base}/render?ops=watermark:image={logo}"
        ))
        .await;
    assert_eq!(render.0, 422, "{}", render.1);
}

#[tokio::test]
async fn event_streams_past_a_tenants_bound_are_answered_429() {
    let app = spawn_app(&[
        ("PIXELMILL_WORKERS", "0"),
        ("PIXELMILL_MAX_EVENT_STREAMS_PER_TENANT", "2"),
    ]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(20, 20)).await;
    let job = json!({"image_id": image, "pipeline": [{"op": "invert"}]});
    let (_, accepted) = c.create_job(&job, None).await;
    let events = c.url(&format!(
        "/v1/jobs/{}/events",
        accepted["id"].as_str().unwrap()
    ));
    let first = c.http.get(&events).send().await.unwrap();
    let second = c.http.get(&events).send().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = c.http.get(&events).send().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
}

fn submit(
    c: &Client,
    job: &serde_json::Value,
    key: &str,
) -> tokio::task::JoinHandle<(reqwest::StatusCode, serde_json::Value)> {
    let (c, job, key) = (c.clone(), job.clone(), key.to_owned());
    tokio::spawn(async move { c.create_job(&job, Some(&key)).await })
}

/// Jobs stored and then refused by a full queue never ran: repeating such a request (the same
/// key) must not keep answering with that failed job, but queue it once there is room.
#[tokio::test]
async fn an_idempotency_key_whose_job_was_never_queued_queues_it_on_a_repeat() {
    let mut app = spawn_app(&[("PIXELMILL_WORKERS", "0"), ("PIXELMILL_QUEUE_BOUND", "1")]);
    let image = app.client.upload_ok(jpeg(20, 20)).await;
    let job = json!({"image_id": image, "pipeline": [{"op": "invert"}]});
    // Concurrent submissions race past the queue's bound check; those the scheduler then
    // refuses were stored first.
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    let first: Vec<_> = keys.iter().map(|k| submit(&app.client, &job, k)).collect();
    let mut refused = 0;
    for answer in first {
        let (status, body) = answer.await.unwrap();
        assert!(status == 202 || status == 503, "{status} {body}");
        refused += usize::from(status == 503);
    }
    assert!(refused > 0, "a queue of one took 30 jobs");

    app.restart_with(&[("PIXELMILL_WORKERS", "2")]);
    let again: Vec<_> = keys.iter().map(|k| submit(&app.client, &job, k)).collect();
    for answer in again {
        let (status, body) = answer.await.unwrap();
        assert!(status == 200 || status == 202, "{status} {body}");
        let done = app
            .client
            .wait_job(body["id"].as_str().unwrap(), Duration::from_secs(60))
            .await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
}
