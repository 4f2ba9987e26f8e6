use crate::{decode, spawn_app};
use image::RgbaImage;
use pixelmill_testkit::{jpeg, png_rgba, Client};
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn run(c: &Client, image: &str, pipeline: Value) -> RgbaImage {
    let job = json!({"image_id": image, "pipeline": pipeline, "output": {"format": "png"}});
    decode(&c.run_job(&job).await).to_rgba8()
}

#[tokio::test]
async fn filters_list_every_contract_op_with_parameter_schemas() {
    let app = spawn_app(&[]);
    let (status, body) = app.client.get_json("/v1/filters").await;
    assert_eq!(status, 200);
    let filters = body["filters"].as_array().expect("a filters array");
    let names: BTreeSet<&str> = filters.iter().filter_map(|f| f["op"].as_str()).collect();
    for op in [
        "resize",
        "crop",
        "rotate",
        "flip",
        "flop",
        "grayscale",
        "sepia",
        "invert",
        "brightness",
        "contrast",
        "blur",
        "sharpen",
        "expr",
    ] {
        assert!(names.contains(op), "{op} missing from {names:?}");
    }
    let resize = filters.iter().find(|f| f["op"] == "resize").unwrap();
    let fit = resize["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "fit")
        .expect("resize has fit");
    assert_eq!(fit["default"], "contain");
}

/// Every contract filter through the whole service (upload → job → download), checked on pixels.
#[tokio::test]
async fn every_filter_runs_through_the_service_with_the_expected_pixels() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let source_png = png_rgba(40, 30);
    let source = decode(&source_png).to_rgba8();
    let image = c.upload_ok(source_png).await;

    let invert = run(c, &image, json!([{"op": "invert"}])).await;
    let expr = run(
        c,
        &image,
        json!([{"op": "expr", "expr": "r = 255 - r; g = 255 - g; b = 255 - b"}]),
    )
    .await;
    assert_eq!(invert, expr, "expr invert equals the built-in invert");
    let (p, q) = (source.get_pixel(7, 5), invert.get_pixel(7, 5));
    assert_eq!([255 - p[0], 255 - p[1], 255 - p[2], p[3]], q.0);

    let flipped = run(c, &image, json!([{"op": "flip"}])).await;
    assert_eq!(flipped.get_pixel(3, 0), source.get_pixel(3, 29));
    let flopped = run(c, &image, json!([{"op": "flop"}])).await;
    assert_eq!(flopped.get_pixel(0, 4), source.get_pixel(39, 4));
    let rotated = run(c, &image, json!([{"op": "rotate", "degrees": 90}])).await;
    assert_eq!(rotated.dimensions(), (30, 40));
    let cropped = run(
        c,
        &image,
        json!([{"op": "crop", "x": 5, "y": 6, "width": 10, "height": 8}]),
    )
    .await;
    assert_eq!(
        (cropped.dimensions(), cropped.get_pixel(0, 0)),
        ((10, 8), source.get_pixel(5, 6))
    );
    for (fit, size) in [
        ("contain", (20, 15)),
        ("cover", (20, 20)),
        ("fill", (20, 20)),
    ] {
        let resized = run(
            c,
            &image,
            json!([{"op": "resize", "width": 20, "height": 20, "fit": fit}]),
        )
        .await;
        assert_eq!(resized.dimensions(), size, "fit={fit}");
    }
    let gray = run(c, &image, json!([{"op": "grayscale"}])).await;
    assert!(gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    let sepia = run(c, &image, json!([{"op": "sepia"}])).await;
    assert!(
        sepia
            .pixels()
            .filter(|p| p[0] < 250)
            .all(|p| p[0] >= p[1] && p[1] >= p[2]),
        "sepia is warm"
    );

    let mean = |img: &RgbaImage| {
        img.pixels()
            .map(|p| p[0] as f64 + p[1] as f64 + p[2] as f64)
            .sum::<f64>()
            / img.len() as f64
    };
    let spread = |img: &RgbaImage| {
        img.pixels()
            .map(|p| p[0] as f64)
            .fold((255f64, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    assert!(
        mean(&run(c, &image, json!([{"op": "brightness", "amount": 0.3}])).await) > mean(&source)
    );
    assert!(
        mean(&run(c, &image, json!([{"op": "brightness", "amount": -0.3}])).await) < mean(&source)
    );
    let (lo, hi) = spread(&source);
    let (clo, chi) = spread(&run(c, &image, json!([{"op": "contrast", "amount": -0.5}])).await);
    assert!(chi - clo < hi - lo, "less contrast narrows the range");

    let roughness = |img: &RgbaImage| {
        let mut sum = 0f64;
        for y in 0..img.height() {
            for x in 1..img.width() {
                sum += (img.get_pixel(x, y)[2] as f64 - img.get_pixel(x - 1, y)[2] as f64).abs();
            }
        }
        sum
    };
    // Blur and sharpen are judged on a noisy photo-like image (the PNG's blue channel is flat).
    let photo_jpeg = jpeg(60, 40);
    let photo = decode(&photo_jpeg).to_rgba8();
    let photo_id = c.upload_ok(photo_jpeg).await;
    let blurred = run(c, &photo_id, json!([{"op": "blur", "sigma": 2.0}])).await;
    let sharpened = run(c, &photo_id, json!([{"op": "sharpen", "sigma": 1.0}])).await;
    assert!(
        roughness(&blurred) < roughness(&photo) * 0.5,
        "blur smooths"
    );
    assert!(
        roughness(&sharpened) > roughness(&photo),
        "sharpen adds edge contrast"
    );
}

/// A 16-bit PNG resized and flipped in a job comes back as a 16-bit PNG; levels finer than 8 bits
/// survive.
#[tokio::test]
async fn sixteen_bit_pngs_keep_sixteen_bits_through_a_job() {
    let app = spawn_app(&[]);
    let c = &app.client;
    let deep = image::ImageBuffer::from_fn(40, 20, |x, y| {
        image::Rgb([x as u16 * 1600 + 5, y as u16 * 3000 + 9, 0x1234u16])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb16(deep.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let image = c.upload_ok(png).await;
    let job = json!({"image_id": image,
                     "pipeline": [{"op": "flop"}, {"op": "resize", "width": 20}],
                     "output": {"format": "png"}});
    let out = decode(&c.run_job(&job).await);
    let image::DynamicImage::ImageRgb16(out) = out else {
        panic!("a 16-bit PNG, got {:?}", out.color());
    };
    assert_eq!(out.dimensions(), (20, 10));
    // The blue channel is flat at 0x1234, which no 8-bit level gives back (0x12 is 0x1212).
    assert!(
        out.pixels().all(|p| p[2].abs_diff(0x1234) <= 1),
        "{:?}",
        out.get_pixel(0, 0)
    );
}
