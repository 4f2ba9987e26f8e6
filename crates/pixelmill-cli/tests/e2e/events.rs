use crate::spawn_app;
use futures::StreamExt;
use pixelmill_testkit::jpeg;
use serde_json::{json, Value};
use std::time::Duration;

/// Reads an SSE stream to its end and returns the `status` events' data.
pub(crate) async fn read_events(response: reqwest::Response) -> Vec<Value> {
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), body.next())
        .await
        .expect("the stream ends")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| l == "event: status"))
        .map(|block| {
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_late_subscriber_gets_the_final_status_and_the_stream_ends() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(80, 60)).await;
    let (_, body) = c
        .create_job(
            &json!({"image_id": image, "pipeline": [{"op": "flip"}], "output": {"format": "png"}}),
            None,
        )
        .await;
    let id = body["id"].as_str().unwrap();
    c.wait_job(id, Duration::from_secs(30)).await;
    let response = c
        .http
        .get(c.url(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_events(response).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["id"].as_str(), events[0]["status"].as_str()),
        (Some(id), Some("succeeded"))
    );
    let (status, _) = c.get_json("/v1/jobs/job_unknown/events").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_live_stream_sees_queued_running_and_succeeded() {
    let app = spawn_app(&[("PIXELMILL_WORKERS", "1")]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(2400, 1800)).await;
    // Occupy the only worker so the followed job is seen queued first.
    let busy = json!({"image_id": image, "pipeline": [{"op": "blur", "sigma": 12}], "output": {"format": "png"}});
    c.create_job(&busy, None).await;
    let (_, body) = c
        .create_job(&json!({"image_id": image, "pipeline": [{"op": "blur", "sigma": 6}], "output": {"format": "png"}}), None)
        .await;
    let id = body["id"].as_str().unwrap();
    let response = c
        .http
        .get(c.url(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    let statuses: Vec<String> = read_events(response)
        .await
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["queued", "running", "succeeded"]);
}
