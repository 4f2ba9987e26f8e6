use crate::spawn_app;
use pixelmill_testkit::jpeg;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn an_idempotency_key_yields_one_job_even_under_concurrency() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(40, 40)).await;
    let body =
        json!({"image_id": image, "pipeline": [{"op": "sepia"}], "output": {"format": "jpeg"}});

    let (first, a) = c.create_job(&body, Some("key-1")).await;
    let (again, b) = c.create_job(&body, Some("key-1")).await;
    assert_eq!((first.as_u16(), again.as_u16()), (202, 200));
    assert_eq!(a["id"], b["id"]);

    let other =
        json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "jpeg"}});
    let (status, err) = c.create_job(&other, Some("key-1")).await;
    assert_eq!(
        (status.as_u16(), err["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );

    let racers = (0..20).map(|_| {
        let (c, body) = (c.clone(), body.clone());
        tokio::spawn(async move { c.create_job(&body, Some("key-race")).await })
    });
    let mut ids = BTreeSet::new();
    for racer in racers {
        let (status, job) = racer.await.unwrap();
        assert!(status == 200 || status == 202, "{status} {job}");
        ids.insert(job["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ids.len(),
        1,
        "20 concurrent requests with one key made {ids:?}"
    );
    let (_, unkeyed) = c.create_job(&body, None).await;
    assert_ne!(
        unkeyed["id"], a["id"],
        "without a key every request is a new job"
    );
}
