use std::time::{Duration, Instant};

use pixelmill_core::{IccMode, ImageFormat, OutputSpec};

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::animation;
use crate::decode::{decode_with, Accept};
use crate::encode::{embeds_icc, encode, holds_16_bits, resolve};
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

/// Decodes `input` (EXIF orientation applied, reduced to 8-bit RGB or RGBA), runs the pipeline and
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
    // Only outputs that can carry the profile keep it; the others get sRGB pixels.
    let icc_mode = if embeds_icc(format) {
        output.icc
    } else {
        IccMode::Srgb
    };
    let min_scale = |w, h| pipeline.min_decode_scale(w, h);
    let accept = Accept {
        icc: icc_mode,
        rgb: pipeline.keeps_rgb(),
        deep: holds_16_bits(format),
    };
    let decoded = decode_with(input, limits, min_scale, accept)?;
    timings.push(("decode", started.elapsed()));

    let image = pipeline.run(decoded.image, decoded.source, limits, &mut timings)?;

    let started = Instant::now();
    let bytes = encode(&image, format, output, decoded.icc.as_deref())?;
    timings.push(("encode", started.elapsed()));
    let (width, height) = image.dimensions();
    Ok(Rendered {
        bytes,
        format,
        width,
        height,
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

    /// The profile a decoder finds in `bytes`.
    fn embedded_icc(bytes: &[u8]) -> Option<Vec<u8>> {
        use image::ImageDecoder;
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .unwrap();
        reader.into_decoder().unwrap().icc_profile().unwrap()
    }

    #[test]
    fn icc_keep_embeds_the_profile_and_leaves_the_pixels_alone() {
        let icc = crate::color::tests::linear_rgb_icc();
        let grey = image::RgbaImage::from_pixel(16, 16, image::Rgba([128, 128, 128, 255]));
        let jpeg = crate::jpeg::encode(&grey.into(), 95, false, Some(&icc)).unwrap();
        assert_eq!(embedded_icc(&jpeg).as_ref(), Some(&icc));
        let none = pipeline(json!([]));
        for format in [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp] {
            let keep = OutputSpec {
                format,
                quality: Some(100),
                icc: IccMode::Keep,
                ..OutputSpec::default()
            };
            let kept = process(&jpeg, &none, &keep, &Limits::default()).unwrap();
            assert_eq!(embedded_icc(&kept.bytes).as_ref(), Some(&icc), "{format:?}");
            let pixel = *image::load_from_memory(&kept.bytes)
                .unwrap()
                .to_rgba8()
                .get_pixel(8, 8);
            assert!(pixel[0].abs_diff(128) <= 2, "{format:?} kept {pixel:?}");

            let srgb = OutputSpec {
                icc: IccMode::Srgb,
                ..keep
            };
            let converted = process(&jpeg, &none, &srgb, &Limits::default()).unwrap();
            assert_eq!(embedded_icc(&converted.bytes), None, "{format:?}");
            let pixel = *image::load_from_memory(&converted.bytes)
                .unwrap()
                .to_rgba8()
                .get_pixel(8, 8);
            assert!(
                (185..=191).contains(&pixel[0]),
                "{format:?} converted {pixel:?}"
            );
        }
        // A transparent lossy WebP already has a VP8X chunk; the profile joins it.
        let mut translucent = crate::filters::testutil::pattern(16, 16);
        translucent.put_pixel(0, 0, image::Rgba([1, 2, 3, 4]));
        let webp = crate::encode::encode(
            &translucent.into(),
            ImageFormat::Webp,
            &OutputSpec::default(),
            Some(&icc),
        )
        .unwrap();
        assert_eq!(embedded_icc(&webp).as_ref(), Some(&icc));
        assert_eq!(
            image::load_from_memory(&webp)
                .unwrap()
                .to_rgba8()
                .get_pixel(0, 0)[3],
            4
        );
    }

    #[test]
    fn png_compression_changes_size_not_pixels() {
        let input = png(120, 90);
        let none = pipeline(json!([]));
        let at = |compression| OutputSpec {
            format: OutputFormat::Png,
            compression: Some(compression),
            ..OutputSpec::default()
        };
        let stored = process(&input, &none, &at(0), &Limits::default()).unwrap();
        let best = process(&input, &none, &at(9), &Limits::default()).unwrap();
        assert!(
            best.bytes.len() < stored.bytes.len() / 2,
            "{} vs {}",
            best.bytes.len(),
            stored.bytes.len()
        );
        let pixels = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().to_rgba8();
        assert_eq!(pixels(&best.bytes), pixels(&stored.bytes));
        assert_eq!(pixels(&best.bytes), pixels(&input));
    }

    #[test]
    fn options_that_the_format_cannot_honour_are_refused_up_front() {
        let spec = |format, compression, icc| OutputSpec {
            format,
            compression,
            icc,
            ..OutputSpec::default()
        };
        let mut refused = vec![
            spec(OutputFormat::Png, Some(10), IccMode::Srgb),
            spec(OutputFormat::Jpeg, Some(6), IccMode::Srgb),
            spec(OutputFormat::Webp, Some(6), IccMode::Srgb),
            spec(OutputFormat::Gif, None, IccMode::Keep),
        ];
        // Without the encoder, AVIF is refused for that reason first.
        if cfg!(feature = "avif") {
            refused.push(spec(OutputFormat::Avif, None, IccMode::Keep));
        }
        for output in refused {
            let message = crate::check_output(&output).unwrap_err();
            assert!(
                message.contains("compression") || message.contains("icc"),
                "{message}"
            );
        }
        for output in [
            spec(OutputFormat::Png, Some(0), IccMode::Keep),
            spec(OutputFormat::Original, Some(9), IccMode::Keep),
            spec(OutputFormat::Webp, None, IccMode::Keep),
        ] {
            assert_eq!(crate::check_output(&output), Ok(()), "{output:?}");
        }
    }

    /// A 16-bit PNG keeps 16 bits through geometry and resize to PNG and TIFF, and is reduced to
    /// 8 bits by a step or an output that cannot keep them.
    #[test]
    fn sixteen_bit_inputs_keep_their_depth_where_they_can() {
        use image::{DynamicImage, ImageBuffer, Rgb};
        // Levels 257 apart are one 8-bit level apart; these are not whole 8-bit levels.
        let deep = ImageBuffer::from_fn(64, 32, |x, y| {
            Rgb([x as u16 * 1000 + 7, y as u16 * 2000 + 3, 4660])
        });
        let mut png = Vec::new();
        DynamicImage::ImageRgb16(deep.clone())
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let run = |steps: serde_json::Value, format| {
            let spec = OutputSpec {
                format,
                ..OutputSpec::default()
            };
            let out = process(&png, &pipeline(steps), &spec, &Limits::default()).unwrap();
            image::load_from_memory(&out.bytes).unwrap()
        };
        let geometry = json!([{"op": "crop", "x": 4, "y": 2, "width": 40, "height": 20},
                              {"op": "flip"}, {"op": "rotate", "degrees": 180}]);
        for format in [
            OutputFormat::Png,
            OutputFormat::Tiff,
            OutputFormat::Original,
        ] {
            let DynamicImage::ImageRgb16(out) = run(geometry.clone(), format) else {
                panic!("{format:?} keeps 16 bits");
            };
            // Flipped vertically then turned 180°: mirrored left to right, exactly.
            assert_eq!(out.dimensions(), (40, 20));
            assert_eq!(out.get_pixel(0, 0), deep.get_pixel(4 + 39, 2));
        }
        let resized = run(
            json!([{"op": "resize", "width": 16, "light": "linear"}]),
            OutputFormat::Png,
        );
        assert!(
            matches!(resized, DynamicImage::ImageRgb16(_)),
            "{:?}",
            resized.color()
        );
        assert_eq!((resized.width(), resized.height()), (16, 8));
        let sepia = run(
            json!([{"op": "resize", "width": 16}, {"op": "sepia"}]),
            OutputFormat::Png,
        );
        assert_eq!(sepia.color(), image::ColorType::Rgb8);
        let jpeg = run(geometry, OutputFormat::Jpeg);
        assert_eq!(jpeg.color(), image::ColorType::Rgb8);
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
