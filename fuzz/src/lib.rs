//! Shared harness code for the fuzz targets in `fuzz_targets/` (see README.md).

use std::sync::OnceLock;

use pixelmill_core::{ImageFormat, OutputFormat, OutputSpec, PipelineStep};
use pixelmill_engine::{inspect, process, sniff, Limits, Pipeline, Registry};

/// Small enough that the fuzzer hunts bugs rather than out-of-memory reports: a 4-megapixel RGBA
/// image is 16 MB, and image's own allocation cap is derived from this.
pub const LIMITS: Limits = Limits {
    max_pixels: 4_000_000,
    max_frames: 50,
};

/// Every image that inspects cleanly is also run through a job: a small resize, re-encoded to its
/// own format (so the encoders see decoder output of every shape too).
const IMAGE_PIPELINE: &str = "resize:width=48,height=48,fit=contain";
const IMAGE_MAX_SIDE: u32 = 48;

/// The engine's own decoders catch panics and turn them into `corrupt_image`, but libFuzzer's
/// panic hook aborts on *every* panic, caught or not: a panic in a decoder is a decoder bug we only
/// survive thanks to `catch_unwind`, so by default it is a finding. Set
/// `PIXELMILL_FUZZ_IGNORE_CAUGHT_PANICS=1` to put the default hook back, so that only panics that
/// escape the engine (and abort in libfuzzer-sys's own `catch_unwind`) count; use it to look past a
/// known decoder bug.
pub fn init() {
    if std::env::var_os("PIXELMILL_FUZZ_IGNORE_CAUGHT_PANICS").is_some_and(|v| v == "1") {
        // Dropping libfuzzer-sys's aborting hook leaves Rust's default one, which only prints.
        drop(std::panic::take_hook());
    }
}

fn no_accept_check() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| {
        std::env::var_os("PIXELMILL_FUZZ_NO_ACCEPT_CHECK").is_some_and(|v| v == "1")
    })
}

fn image_pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let steps = PipelineStep::parse_compact(IMAGE_PIPELINE).expect("fixed pipeline parses");
        Registry::builtin()
            .compile(&steps)
            .expect("fixed pipeline compiles")
    })
}

/// Makes sure `data` reaches `format`'s decoder: inputs that already carry the format's magic
/// bytes are used as they are (the seeds do), anything else gets the magic put in front.
pub fn force_format(format: ImageFormat, data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if sniff(data).ok() == Some(format) {
        return data.into();
    }
    let mut out = match format {
        ImageFormat::Jpeg => vec![0xFF, 0xD8, 0xFF],
        ImageFormat::Png => b"\x89PNG\r\n\x1a\n".to_vec(),
        ImageFormat::Gif => b"GIF89a".to_vec(),
        ImageFormat::Bmp => b"BM".to_vec(),
        ImageFormat::Tiff => b"II*\0".to_vec(),
        ImageFormat::Webp => {
            let riff_len = u32::try_from(data.len() + 4).unwrap_or(u32::MAX);
            [b"RIFF".as_slice(), &riff_len.to_le_bytes(), b"WEBP"].concat()
        }
        // An `ftyp` box with the avif brand; the fuzzed bytes follow as the next boxes.
        ImageFormat::Avif => b"\0\0\0\x14ftypavif\0\0\0\0mif1".to_vec(),
    };
    out.extend_from_slice(data);
    out.into()
}

/// The body of every image target: inspect, then (when the image is accepted) process, checking the
/// promises the API relies on along the way. Errors are fine; panics, hangs and broken promises
/// are not.
pub fn fuzz_image(format: ImageFormat, data: &[u8]) {
    let data = force_format(format, data);
    assert_eq!(sniff(&data).ok(), Some(format), "force_format is broken");
    let info = match inspect(&data, &LIMITS) {
        Ok(info) => info,
        Err(_) => return,
    };
    assert_eq!(
        info.format, format,
        "inspect reports another format than sniff"
    );
    assert!(
        info.width >= 1 && info.height >= 1,
        "inspect accepted an empty image: {info:?}"
    );
    assert!(
        u64::from(info.width) * u64::from(info.height) <= LIMITS.max_pixels,
        "inspect accepted an image over the pixel limit: {info:?}"
    );
    assert!(
        (1..=LIMITS.max_frames).contains(&info.frames),
        "inspect accepted a frame count outside 1..=max_frames: {info:?}"
    );
    // The fuzz build leaves out the AVIF encoder (cargo feature `avif`), so AVIF goes to PNG.
    let (output, expected) = match format {
        ImageFormat::Avif => (OutputFormat::Png, ImageFormat::Png),
        _ => (OutputFormat::Original, format),
    };
    let output = OutputSpec {
        format: output,
        ..OutputSpec::default()
    };
    match process(&data, image_pipeline(), &output, &LIMITS) {
        Ok(out) => {
            assert_eq!(out.format, expected, "the output has another format than asked");
            assert!(
                (1..=IMAGE_MAX_SIDE).contains(&out.width)
                    && (1..=IMAGE_MAX_SIDE).contains(&out.height),
                "resize to fit {IMAGE_MAX_SIDE}x{IMAGE_MAX_SIDE} produced {}x{} from {info:?}",
                out.width,
                out.height
            );
            assert!(!out.bytes.is_empty(), "encoder produced no bytes");
        }
        Err(e) => {
            // inspect already decoded this very input successfully, so a decode-stage refusal now
            // would mean an accepted upload whose jobs always fail.
            // PIXELMILL_FUZZ_NO_ACCEPT_CHECK=1 skips this check, to look past a known case.
            assert!(
                no_accept_check() || !matches!(e.code(), "corrupt_image" | "unsupported_format"),
                "inspect accepted {info:?} but process refused it: {} ({e})",
                e.code()
            );
        }
    }
}

/// Pipelines run on this image (PngSuite basn6a08: 32x32 RGBA) with tighter limits, so a
/// fuzzed `resize:width=16384,height=16384` is refused rather than slow.
const PIPELINE_INPUT: &[u8] = include_bytes!("../corpus/png/basn6a08.png");
const PIPELINE_LIMITS: Limits = Limits {
    max_pixels: 128 * 128,
    max_frames: 1,
};

/// The pipeline target. A first byte of 0x01 means "the rest is an `expr` program" (so expr
/// sources need no quoting); anything else is the compact pipeline syntax.
pub fn fuzz_pipeline(data: &[u8]) {
    let steps = if let Some((&1, program)) = data.split_first() {
        let mut params = serde_json::Map::new();
        let program = String::from_utf8_lossy(program).into_owned();
        params.insert("expr".into(), serde_json::Value::String(program));
        vec![PipelineStep {
            op: "expr".into(),
            params,
        }]
    } else {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        match PipelineStep::parse_compact(text) {
            Ok(steps) => {
                assert!(!steps.is_empty(), "parse_compact accepted no steps");
                steps
            }
            Err(e) => {
                assert!(
                    e.position <= text.len() && text.is_char_boundary(e.position),
                    "error position {} is not a character boundary of the input",
                    e.position
                );
                let _ = e.to_string();
                return;
            }
        }
    };
    let mut pipeline = match Registry::builtin().compile(&steps) {
        Ok(pipeline) => pipeline,
        Err(e) => {
            assert!(
                e.step < steps.len(),
                "error names step {} of {}",
                e.step,
                steps.len()
            );
            let _ = e.to_string();
            return;
        }
    };
    // Every referenced image (a watermark's overlay) is the input itself, so compositing runs too.
    let ids: Vec<String> = pipeline
        .referenced_images()
        .iter()
        .map(|r| r.id.to_owned())
        .collect();
    for id in ids {
        pipeline
            .attach_image(&id, PIPELINE_INPUT, &PIPELINE_LIMITS)
            .expect("the pipeline input decodes");
    }
    // Costs are estimated for every accepted upload, up to the default 50-megapixel limit.
    for (w, h) in [(1, 1), (32, 32), (7071, 7071), (50_000_000, 1)] {
        let _ = pipeline.estimate_cost(w, h, 1, ImageFormat::Webp);
    }
    if let Ok(out) = process(
        PIPELINE_INPUT,
        &pipeline,
        &OutputSpec::default(),
        &PIPELINE_LIMITS,
    ) {
        assert!(u64::from(out.width) * u64::from(out.height) <= PIPELINE_LIMITS.max_pixels);
    }
}
