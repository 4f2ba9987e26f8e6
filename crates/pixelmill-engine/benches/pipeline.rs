//! End-to-end throughput of the common job: decode a 1920x1080 JPEG, resize to 800 wide, encode
//! JPEG q80. Criterion reports input pixels per second.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use pixelmill_core::{OutputFormat, OutputSpec, PipelineStep};
use pixelmill_engine::{process, Limits, Registry};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

/// Smooth gradients plus per-pixel noise, so the JPEG has photo-like entropy.
fn photo_like_jpeg() -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let img = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as i32 - 12;
        let base = [
            x * 255 / WIDTH,
            y * 255 / HEIGHT,
            (x + y) * 255 / (WIDTH + HEIGHT),
        ];
        Rgb(base.map(|c| (c as i32 + noise).clamp(0, 255) as u8))
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

fn resize_jpeg(c: &mut Criterion) {
    let input = photo_like_jpeg();
    let steps: Vec<PipelineStep> =
        serde_json::from_str(r#"[{"op": "resize", "width": 800}]"#).unwrap();
    let pipeline = Registry::builtin().compile(&steps).unwrap();
    let output = OutputSpec {
        format: OutputFormat::Jpeg,
        quality: Some(80),
        ..OutputSpec::default()
    };
    let limits = Limits::default();

    let mut group = c.benchmark_group("pipeline");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(u64::from(WIDTH * HEIGHT)));
    group.bench_function("jpeg_1920x1080_resize_800_jpeg_q80", |b| {
        b.iter(|| process(&input, &pipeline, &output, &limits).unwrap())
    });
    group.finish();
}

criterion_group!(benches, resize_jpeg);
criterion_main!(benches);
