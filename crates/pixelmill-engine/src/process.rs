use std::time::{Duration, Instant};

use pixelmill_core::{ImageFormat, OutputSpec};

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::animation;
use crate::decode::decode;
use crate::encode::{encode, resolve};
use crate::sniff::sniff;
use crate::{EngineError, Limits, Pipeline};

/// The encoded result of a job, with per-stage timings for metrics.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// ("decode", ..), one entry per pipeline step named by its op, then ("encode", ..).
    pub op_timings: Vec<(&'static str, Duration)>,
}

/// Decodes `input` (EXIF orientation applied, reduced to 8-bit RGBA), runs the pipeline and
/// encodes to `output`. An animated GIF or WebP going to an animated format has every frame
/// processed; otherwise the first frame is.
pub fn process(
    input: &[u8],
    pipeline: &Pipeline,
    output: &OutputSpec,
    limits: &Limits,
) -> Result<Rendered, EngineError> {
    crate::check_output(output).map_err(EngineError::Encode)?;
    let mut timings = Vec::with_capacity(pipeline.len() + 2);
    let input_format = sniff(input)?;
    let format = resolve(output.format, input_format)?;
    if matches!(format, ImageFormat::Gif | ImageFormat::Webp) {
        // Decoders are third-party code fed hostile input: a panic must become a clean rejection.
        let animated = catch_unwind(AssertUnwindSafe(|| {
            let Some(animation) = animation::open(input, input_format, limits)? else {
                return Ok(None);
            };
            animation::process(
                animation,
                pipeline,
                format,
                output.quality,
                limits,
                &mut timings,
            )
            .map(Some)
        }))
        .unwrap_or_else(|_| {
            Err(EngineError::Corrupt(format!(
                "the {} decoder could not make sense of this animation; re-export it and \
                 upload it again",
                input_format.as_str()
            )))
        })?;
        if let Some((bytes, width, height)) = animated {
            return Ok(Rendered {
                bytes,
                format,
                width,
                height,
                op_timings: timings,
            });
        }
    }
    let started = Instant::now();
    let decoded = decode(input, limits, |w, h| pipeline.min_decode_scale(w, h))?;
    timings.push(("decode", started.elapsed()));

    let image = pipeline.run(decoded.image, decoded.source, limits, &mut timings)?;

    let started = Instant::now();
    let bytes = encode(&image, format, output.quality, output.progressive)?;
    timings.push(("encode", started.elapsed()));
    Ok(Rendered {
        bytes,
        format,
        width: image.width(),
        height: image.height(),
        op_timings: timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::pipeline;
    use pixelmill_core::OutputFormat;
    use serde_json::json;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = crate::filters::testutil::pattern(width, height);
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn runs_steps_and_reports_timings() {
        let p = pipeline(json!([{"op": "resize", "width": 50}, {"op": "rotate", "degrees": 90}]));
        let spec = OutputSpec {
            format: OutputFormat::Webp,
            quality: Some(70),
            ..OutputSpec::default()
        };
        let out = process(&png(100, 60), &p, &spec, &Limits::default()).unwrap();
        assert_eq!(
            (out.format, out.width, out.height),
            (ImageFormat::Webp, 30, 50)
        );
        let names: Vec<&str> = out.op_timings.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["decode", "resize", "rotate", "encode"]);
        let back = image::load_from_memory(&out.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (30, 50));
    }

    #[test]
    fn original_keeps_the_input_format_and_pixels() {
        let input = png(9, 7);
        let out = process(
            &input,
            &pipeline(json!([])),
            &OutputSpec::default(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.format, ImageFormat::Png);
        let expected = image::load_from_memory(&input).unwrap().to_rgba8();
        assert_eq!(
            image::load_from_memory(&out.bytes).unwrap().to_rgba8(),
            expected
        );
    }

    #[test]
    fn bad_crops_fail_with_their_code() {
        let crop = pipeline(json!([{"op": "crop", "x": 2, "y": 0, "width": 4, "height": 4}]));
        let err = process(
            &png(4, 4),
            &crop,
            &OutputSpec::default(),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_pipeline");
    }
}
