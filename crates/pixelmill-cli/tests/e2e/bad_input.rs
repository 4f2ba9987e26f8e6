use crate::spawn_app;
use pixelmill_testkit::{jpeg, png_rgba};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(
        (status.as_u16(), code(body)),
        (want_status, want_code),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.len() > 20,
        "the message should say what is wrong and how to fix it: {body}"
    );
}

#[tokio::test]
async fn bad_uploads_get_the_right_4xx_and_never_a_500() {
    let app = spawn_app(&[
        ("PIXELMILL_MAX_BODY_BYTES", "200000"),
        ("PIXELMILL_MAX_PIXELS", "100000"),
    ]);
    let c = &app.client;

    let (s, b) = c.upload(Vec::new()).await;
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = c.upload(b"hello, this is not an image\n".repeat(10)).await;
    assert_error(s, &b, 415, "unsupported_format");
    let full = jpeg(300, 200);
    let (s, b) = c.upload(full[..full.len() / 3].to_vec()).await;
    assert_error(s, &b, 422, "corrupt_image");

    // A lying header is refused before any pixel is decoded.
    let mut huge = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    huge.extend_from_slice(&100_000u32.to_be_bytes());
    huge.extend_from_slice(&100_000u32.to_be_bytes());
    huge.extend_from_slice(b"\x08\x02\x00\x00\x00\x00\x00\x00\x00");
    let (s, b) = c.upload(huge).await;
    assert_error(s, &b, 422, "image_too_large");
    let (s, b) = c.upload(png_rgba(400, 300)).await;
    assert_error(s, &b, 422, "image_too_large");

    // Too many bytes: refused by Content-Length, and while streaming when there is none.
    // The body starts like a PNG so it passes the early sniff and reaches the byte limit.
    let mut noise = png_rgba(8, 8);
    noise.extend((0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let (s, b) = c.upload(noise.clone()).await;
    assert_error(s, &b, 413, "payload_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        noise.chunks(16_384).map(|c| Ok(c.to_vec())).collect();
    let streamed = c
        .http
        .post(c.url("/v1/images"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    // A body refused early (by its first bytes) is drained too, so the client reads the 415.
    let text: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"just text, no image; ".repeat(8_000))];
    let refused_early = c
        .http
        .post(c.url("/v1/images"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(text)))
        .send()
        .await
        .unwrap();
    assert_eq!(refused_early.status(), 415);

    // The format comes from the bytes, not from what the client claims.
    let png = png_rgba(10, 10);
    let labelled = c
        .http
        .post(c.url("/v1/images"))
        .header("content-type", "image/jpeg")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(labelled.status(), 201);
    assert_eq!(labelled.json::<Value>().await.unwrap()["format"], "png");

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(jpeg(30, 20)).file_name("x.png"),
    );
    let multipart = c
        .http
        .post(c.url("/v1/images"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status(), 201);
    assert_eq!(multipart.json::<Value>().await.unwrap()["width"], 30);
    let form = reqwest::multipart::Form::new().text("other", "x");
    let response = c
        .http
        .post(c.url("/v1/images"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let (s, b) = c.get_json("/v1/images/img_doesnotexist").await;
    assert_error(s, &b, 404, "not_found");
}

#[tokio::test]
async fn invalid_jobs_name_the_step_and_parameter() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let image = c.upload_ok(jpeg(50, 40)).await;
    let job = |pipeline: Value| json!({"image_id": image, "pipeline": pipeline, "output": {"format": "png"}});

    let (s, b) = c
        .create_job(&job(json!([{"op": "grayscale"}, {"op": "nope"}])), None)
        .await;
    assert_error(s, &b, 422, "invalid_pipeline");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("step 1"),
        "{b}"
    );
    let (s, b) = c
        .create_job(
            &job(json!([{"op": "resize", "width": -5, "height": 10}])),
            None,
        )
        .await;
    assert_error(s, &b, 422, "invalid_pipeline");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("width"),
        "{b}"
    );
    let (s, b) = c
        .create_job(&job(json!([{"op": "expr", "expr": "r = (255 - "}])), None)
        .await;
    assert_error(s, &b, 422, "invalid_pipeline");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("column"),
        "{b}"
    );
    let (s, b) = c
        .create_job(&job(json!([{"op": "blur", "sigma": 2, "radius": 3}])), None)
        .await;
    assert_error(s, &b, 422, "invalid_pipeline");

    let (s, b) = c
        .create_job(
            &json!({"image_id": image, "pipeline": [], "output": {"format": "webp", "quality": 0}}),
            None,
        )
        .await;
    assert_error(s, &b, 422, "invalid_pipeline");
    let (s, b) = c
        .create_job(&json!({"image_id": "img_missing", "pipeline": []}), None)
        .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = c
        .create_job(&json!({"image_id": image, "pipline": []}), None)
        .await;
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = c
        .create_job(
            &json!({"image_id": image, "pipeline": [], "notify": {"webhook": "ftp://x"}}),
            None,
        )
        .await;
    assert_error(s, &b, 400, "bad_request");
    let raw = c
        .http
        .post(c.url("/v1/jobs"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let (s, b) = c.get_json("/v1/jobs/job_missing").await;
    assert_error(s, &b, 404, "not_found");
}

/// PngSuite over HTTP: every deliberately corrupt `x*.png` gets a clear 4xx, every valid file is accepted
/// with its real size.
#[tokio::test]
async fn pngsuite_corrupt_files_are_refused_and_valid_ones_accepted() {
    let app = spawn_app(&[]);
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pixelmill-engine/testdata/pngsuite");
    let mut checked = (0, 0);
    for entry in std::fs::read_dir(&dir).expect("PngSuite test data") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".png") || name == "PngSuite.png" {
            continue;
        }
        let (s, b) = app.client.upload(std::fs::read(&path).unwrap()).await;
        if name.starts_with('x') {
            assert!(matches!(s.as_u16(), 415 | 422), "{name}: {s} {b}");
            assert!(
                matches!(code(&b), "unsupported_format" | "corrupt_image"),
                "{name}: {b}"
            );
            checked.0 += 1;
        } else {
            assert_eq!(s, 201, "{name}: {b}");
            let image =
                image::ImageReader::new(std::io::Cursor::new(std::fs::read(&path).unwrap()))
                    .with_guessed_format()
                    .unwrap()
                    .into_dimensions()
                    .unwrap();
            assert_eq!(
                (
                    b["width"].as_u64().unwrap() as u32,
                    b["height"].as_u64().unwrap() as u32
                ),
                image,
                "{name}"
            );
            checked.1 += 1;
        }
    }
    assert!(checked.0 >= 10 && checked.1 >= 140, "checked {checked:?}");
}
