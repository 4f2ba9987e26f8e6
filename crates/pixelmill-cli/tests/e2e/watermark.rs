use crate::{decode, spawn_app};
use image::{Rgba, RgbaImage};
use serde_json::json;

const GREY: [u8; 4] = [100, 100, 100, 255];
const RED: [u8; 4] = [255, 0, 0, 255];
const MISSING: &str = "img_00000000000000000000000000000000";

fn png(width: u32, height: u32, px: [u8; 4]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    RgbaImage::from_pixel(width, height, Rgba(px))
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a test image in memory cannot fail");
    out.into_inner()
}

/// An overlay uploaded next to the base lands, blended, where gravity and offsets put it, in a
/// job and in a render; a reference to an image that does not exist is refused up front.
#[tokio::test]
async fn a_stored_overlay_is_composited_in_jobs_and_renders() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let base = c.upload_ok(png(60, 40, GREY)).await;
    let logo = c.upload_ok(png(10, 8, RED)).await;

    let pipeline = json!([{"op": "watermark", "image": logo, "gravity": "southeast",
                           "offset_x": 5, "offset_y": 4, "opacity": 0.5}]);
    let job = json!({"image_id": base, "pipeline": pipeline, "output": {"format": "png"}});
    let out = decode(&c.run_job(&job).await).to_rgba8();
    assert_eq!(out.dimensions(), (60, 40));
    // The 10x8 mark covers x 45..55, y 28..36: half red over grey is 127.5 + 50 = 177.5 and 50.
    for (x, y, px) in out.enumerate_pixels() {
        let marked = (45..55).contains(&x) && (28..36).contains(&y);
        let expected = if marked { [178, 50, 50, 255] } else { GREY };
        assert_eq!(px.0, expected, "{x},{y}");
    }

    let render = |ops: String| {
        let url = c.url(&format!("/v1/images/{base}/render?ops={ops}&format=png"));
        let http = c.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let rendered = render(format!("watermark:image={logo},gravity=northwest")).await;
    assert_eq!(rendered.status(), 200);
    let etag = rendered.headers()["etag"].to_str().unwrap().to_owned();
    let out = decode(&rendered.bytes().await.unwrap()).to_rgba8();
    assert_eq!((out.get_pixel(0, 0).0, out.get_pixel(9, 7).0), (RED, RED));
    assert_eq!(
        (out.get_pixel(10, 0).0, out.get_pixel(0, 8).0),
        (GREY, GREY)
    );
    let plain = render(String::new()).await;
    assert_ne!(plain.headers()["etag"].to_str().unwrap(), etag);

    let (status, body) = c
        .create_job(
            &json!({"image_id": base, "output": {"format": "png"},
                    "pipeline": [{"op": "flip"}, {"op": "watermark", "image": MISSING}]}),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("invalid_pipeline")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("step 1 (watermark)") && message.contains(MISSING),
        "{message}"
    );
    let missing = render(format!("watermark:image={MISSING}")).await;
    assert_eq!(missing.status(), 422);
}

/// `pixelmill process` takes referenced images as local files and says how when one is missing.
#[test]
fn process_reads_overlays_from_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("base.png"), png(20, 10, GREY)).unwrap();
    std::fs::write(path("logo.png"), png(4, 2, RED)).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pixelmill"))
            .args(["process", &path("base.png"), "-o", &path("out.png")])
            .args(["--ops", "watermark:image=logo,gravity=northwest"])
            .args(extra)
            .output()
            .expect("pixelmill runs")
    };
    let missing = run(&[]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--image logo=PATH"), "{stderr}");

    let logo = format!("logo={}", path("logo.png"));
    let ok = run(&["--image", &logo]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = decode(&std::fs::read(path("out.png")).unwrap()).to_rgba8();
    assert_eq!((out.get_pixel(3, 1).0, out.get_pixel(4, 1).0), (RED, GREY));
}
