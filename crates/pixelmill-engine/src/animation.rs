//! Animated GIF and WebP end to end: every frame goes through the pipeline, and the output keeps
//! each frame's delay and the loop count. Frames stream through one at a time: the decoder
//! composites the next full frame only when asked, and the GIF encoder writes each frame as it
//! comes (libwebp's animation encoder keeps the processed frames until it assembles the file).

use std::io::Cursor;
use std::time::Duration;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::{AnimationDecoder, Delay, Frame, RgbaImage};
use pixelmill_core::ImageFormat;

use crate::decode::{check_pixels, ChunkLayout};
use crate::{EngineError, Limits, Pipeline};

/// How often an animation plays, counting the first play (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Looping {
    Forever,
    Plays(u16),
}

/// An animation ready to stream: its frames, each with its delay, and how it loops.
pub(crate) struct Animation<'a> {
    pub frames: Box<dyn Iterator<Item = Result<(RgbaImage, Duration), EngineError>> + 'a>,
    pub looping: Looping,
}

/// The animation in `bytes` when it is a GIF or WebP with more than one frame, else `None`.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Option<Animation<'a>>, EngineError> {
    match format {
        ImageFormat::Gif => open_gif(bytes, limits),
        ImageFormat::Webp => open_webp(bytes, limits),
        _ => Ok(None),
    }
}

/// Decodes every frame of an animated GIF or WebP once and returns how many there are;
/// `None` for anything that is not an animation.
pub(crate) fn check_frames(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Option<u32>, EngineError> {
    // Decoders are third-party code fed hostile input: a panic must become a clean rejection.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(animation) = open(bytes, format, limits)? else {
            return Ok(None);
        };
        let mut count = 0;
        for frame in animation.frames {
            frame?;
            count += 1;
        }
        Ok(Some(count))
    }))
    .unwrap_or_else(|_| Err(corrupt(format, "a frame could not be decoded")))
}

fn open_gif<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Option<Animation<'a>>, EngineError> {
    let (frames, looping) = crate::decode::scan_gif(bytes, limits)?;
    if frames < 2 {
        return Ok(None);
    }
    let decoder = GifDecoder::new(Cursor::new(bytes)).map_err(|e| corrupt(ImageFormat::Gif, e))?;
    let frames = decoder.into_frames().map(|frame| {
        let frame = frame.map_err(|e| corrupt(ImageFormat::Gif, e))?;
        let delay = Duration::from(frame.delay());
        Ok((frame.into_buffer(), delay))
    });
    Ok(Some(Animation {
        frames: Box::new(frames),
        looping,
    }))
}

type WebpDecoder<'a> = image_webp::WebPDecoder<Cursor<&'a [u8]>>;

/// Reads a WebP's headers and checks its canvas, frame count and pixels across all frames
/// against `limits` before anything is decoded. Returns the decoder and its frame count.
fn webp_headers<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<(WebpDecoder<'a>, u32), EngineError> {
    let decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
        .map_err(|e| corrupt(ImageFormat::Webp, e))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    if !decoder.is_animated() {
        return Ok((decoder, 1));
    }
    let frames = decoder.num_frames();
    if frames > limits.max_frames {
        return Err(too_many_frames(limits));
    }
    crate::decode::check_total_pixels(width, height, frames, limits)?;
    Ok((decoder, frames.max(1)))
}

/// The number of frames of a WebP, refused from its headers when over `limits`.
pub(crate) fn scan_webp(bytes: &[u8], limits: &Limits) -> Result<u32, EngineError> {
    webp_headers(bytes, limits).map(|(_, frames)| frames)
}

fn open_webp<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Option<Animation<'a>>, EngineError> {
    let (mut decoder, frames) = webp_headers(bytes, limits)?;
    if frames < 2 {
        return Ok(None);
    }
    let (width, height) = decoder.dimensions();
    let looping = match decoder.loop_count() {
        image_webp::LoopCount::Forever => Looping::Forever,
        image_webp::LoopCount::Times(n) => Looping::Plays(n.get()),
    };
    let mut remaining = decoder.num_frames();
    // Frames come as RGB or RGBA, as the file stores them.
    let has_alpha = decoder.has_alpha();
    let frames = std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        remaining -= 1;
        let channels = if has_alpha { 4 } else { 3 };
        let mut canvas = vec![0; width as usize * height as usize * channels];
        let frame = decoder
            .read_frame(&mut canvas)
            .map_err(|e| corrupt(ImageFormat::Webp, e))
            .map(|ms| {
                let image = if has_alpha {
                    RgbaImage::from_raw(width, height, canvas)
                } else {
                    image::RgbImage::from_raw(width, height, canvas)
                        .map(|rgb| image::DynamicImage::ImageRgb8(rgb).into_rgba8())
                };
                let image = image.expect("the canvas was sized from the header");
                (image, Duration::from_millis(u64::from(ms)))
            });
        Some(frame)
    });
    Ok(Some(Animation {
        frames: Box::new(frames),
        looping,
    }))
}

/// Runs every frame through `pipeline` and encodes them as an animated `format` (GIF or WebP).
/// Returns the bytes and the output size; decode and step timings are summed over the frames.
pub(crate) fn process(
    animation: Animation<'_>,
    pipeline: &Pipeline,
    format: ImageFormat,
    quality: Option<u8>,
    limits: &Limits,
    timings: &mut Vec<(&'static str, Duration)>,
) -> Result<(Vec<u8>, u32, u32), EngineError> {
    let mut gif_bytes = Vec::new();
    let mut sink = match format {
        ImageFormat::Gif => Sink::gif(&mut gif_bytes, animation.looping)?,
        _ => Sink::Webp {
            frames: Vec::new(),
            looping: animation.looping,
        },
    };
    let mut size = None;
    let mut decoding = Duration::ZERO;
    let mut step_timings: Vec<(&'static str, Duration)> = Vec::new();
    let mut frames = animation.frames;
    loop {
        let started = std::time::Instant::now();
        let Some(frame) = frames.next() else { break };
        let (image, delay) = frame?;
        decoding += started.elapsed();
        let mut frame_timings = Vec::new();
        let source = image.dimensions();
        let image = pipeline
            .run(image.into(), source, limits, &mut frame_timings)?
            .into_rgba();
        accumulate(&mut step_timings, frame_timings);
        match size {
            None => size = Some(image.dimensions()),
            Some(first) if first != image.dimensions() => {
                return Err(EngineError::InvalidOperation(format!(
                    "the pipeline made animation frames of different sizes ({}x{} and {}x{}); \
                     filters that size each frame by its content (trim, smart_crop) cannot be used \
                     on animations, use crop or resize instead",
                    first.0,
                    first.1,
                    image.width(),
                    image.height()
                )))
            }
            Some(_) => {}
        }
        sink.push(image, delay)?;
    }
    timings.push(("decode", decoding));
    timings.extend(step_timings);
    let (width, height) = size.ok_or_else(|| {
        EngineError::Corrupt("the animation has no frames; upload one with at least one".into())
    })?;
    let started = std::time::Instant::now();
    // The GIF encoder writes into `gif_bytes` as it goes and ends the file when dropped.
    let bytes = sink.finish(width, height, quality)?.unwrap_or(gif_bytes);
    timings.push(("encode", started.elapsed()));
    Ok((bytes, width, height))
}

/// Adds one frame's step timings to the running totals, step by step.
fn accumulate(totals: &mut Vec<(&'static str, Duration)>, frame: Vec<(&'static str, Duration)>) {
    if totals.is_empty() {
        *totals = frame;
        return;
    }
    for (total, (_, spent)) in totals.iter_mut().zip(frame) {
        total.1 += spent;
    }
}

enum Sink<'a> {
    Gif(Box<GifEncoder<&'a mut Vec<u8>>>),
    Webp {
        frames: Vec<(RgbaImage, Duration)>,
        looping: Looping,
    },
}

impl<'a> Sink<'a> {
    fn gif(out: &'a mut Vec<u8>, looping: Looping) -> Result<Sink<'a>, EngineError> {
        let mut encoder = GifEncoder::new_with_speed(out, crate::encode::GIF_QUANTIZE_SPEED);
        // GIF counts repeats after the first play, and a count of 0 means forever; a GIF that
        // plays once carries no count at all.
        let repeat = match looping {
            Looping::Forever => Some(Repeat::Infinite),
            Looping::Plays(n) if n > 1 => Some(Repeat::Finite(n - 1)),
            Looping::Plays(_) => None,
        };
        if let Some(repeat) = repeat {
            encoder.set_repeat(repeat).map_err(encode_failed)?;
        }
        Ok(Sink::Gif(Box::new(encoder)))
    }

    fn push(&mut self, image: RgbaImage, delay: Duration) -> Result<(), EngineError> {
        match self {
            Sink::Gif(encoder) => {
                let delay = Delay::from_saturating_duration(delay);
                encoder
                    .encode_frame(Frame::from_parts(image, 0, 0, delay))
                    .map_err(encode_failed)
            }
            Sink::Webp { frames, .. } => {
                frames.push((image, delay));
                Ok(())
            }
        }
    }

    /// The encoded WebP, or `None` for a GIF, which is complete in its buffer once this returns.
    fn finish(
        self,
        width: u32,
        height: u32,
        quality: Option<u8>,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        match self {
            Sink::Gif(encoder) => {
                drop(encoder);
                Ok(None)
            }
            Sink::Webp { frames, looping } => {
                let config = crate::encode::webp_config(quality)?;
                let mut encoder = webp::AnimEncoder::new(width, height, &config);
                encoder.set_loop_count(match looping {
                    Looping::Forever => 0,
                    Looping::Plays(n) => i32::from(n),
                });
                let mut timestamp = 0u32;
                for (image, delay) in &frames {
                    let ms = i32::try_from(timestamp).unwrap_or(i32::MAX);
                    encoder.add_frame(webp::AnimFrame::from_rgba(image, width, height, ms));
                    timestamp = timestamp.saturating_add(millis(*delay));
                }
                let encoded = encoder.try_encode().map_err(|e| {
                    EngineError::Encode(format!(
                        "encoding the animation as webp failed ({e:?}); try gif"
                    ))
                })?;
                let mut bytes = encoded.to_vec();
                set_last_frame_duration(&mut bytes, timestamp);
                Ok(Some(bytes))
            }
        }
    }
}

fn millis(delay: Duration) -> u32 {
    u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)
}

/// The `webp` crate ends an animation without an end time, so libwebp gives the last frame the
/// average duration; this sets it to what remains of `total_ms` in the last `ANMF` chunk.
fn set_last_frame_duration(webp: &mut [u8], total_ms: u32) {
    const DURATION_AT: usize = 12; // X, Y, width-1, height-1: 3 bytes each.
    let durations: Vec<(usize, u32)> = crate::decode::chunks(webp, 12, ChunkLayout::Riff)
        .filter(|(kind, _, _)| kind == b"ANMF")
        .filter_map(|(_, payload, _)| {
            let field = webp.get(payload + DURATION_AT..payload + DURATION_AT + 3)?;
            Some((
                payload + DURATION_AT,
                u32::from_le_bytes([field[0], field[1], field[2], 0]),
            ))
        })
        .collect();
    let Some(((field, _), earlier)) = durations.split_last() else {
        return;
    };
    let elapsed = earlier
        .iter()
        .fold(0u32, |sum, (_, ms)| sum.saturating_add(*ms));
    let remaining = total_ms.saturating_sub(elapsed).min(0xFF_FFFF);
    webp[*field..*field + 3].copy_from_slice(&remaining.to_le_bytes()[..3]);
}

fn encode_failed(e: image::ImageError) -> EngineError {
    EngineError::Encode(format!(
        "encoding the animation as gif failed ({e}); try webp"
    ))
}

fn corrupt(format: ImageFormat, e: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(format!(
        "the animated {} is corrupt or truncated ({e}); re-export it and upload it again",
        format.as_str()
    ))
}

pub(crate) fn too_many_frames(limits: &Limits) -> EngineError {
    EngineError::TooLarge(format!(
        "the animation has more than {} frames; reduce the number of frames and upload it again",
        limits.max_frames
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::pipeline;
    use pixelmill_core::{OutputFormat, OutputSpec};
    use serde_json::json;

    const COLOURS: [[u8; 4]; 3] = [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]];

    /// A 12x8 GIF whose frames are solid red, green, blue, shown 100, 200 and 300 ms.
    fn gif(repeat: Option<Repeat>) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut out);
            if let Some(repeat) = repeat {
                encoder.set_repeat(repeat).unwrap();
            }
            for (i, colour) in COLOURS.iter().enumerate() {
                let image = RgbaImage::from_pixel(12, 8, image::Rgba(*colour));
                let delay = Delay::from_numer_denom_ms(100 * (i as u32 + 1), 1);
                encoder
                    .encode_frame(Frame::from_parts(image, 0, 0, delay))
                    .unwrap();
            }
        }
        out
    }

    fn render(input: &[u8], steps: serde_json::Value, format: OutputFormat) -> crate::Rendered {
        let output = OutputSpec {
            format,
            ..OutputSpec::default()
        };
        crate::process(input, &pipeline(steps), &output, &Limits::default()).unwrap()
    }

    fn close(a: &image::Rgba<u8>, b: [u8; 4]) -> bool {
        (0..4).all(|c| a[c].abs_diff(b[c]) <= 8)
    }

    #[test]
    fn gif_to_gif_keeps_every_frame_delay_and_loop_count() {
        let input = gif(Some(Repeat::Finite(2)));
        let out = render(
            &input,
            json!([{"op": "resize", "width": 6}]),
            OutputFormat::Gif,
        );
        assert_eq!((out.width, out.height), (6, 4));
        let names: Vec<&str> = out.op_timings.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["decode", "resize", "encode"]);
        let frames = GifDecoder::new(Cursor::new(&out.bytes))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(frames.len(), 3);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.buffer().dimensions(), (6, 4));
            assert!(
                close(frame.buffer().get_pixel(3, 2), COLOURS[i]),
                "frame {i}"
            );
            let expected = Delay::from_numer_denom_ms(100 * (i as u32 + 1), 1);
            assert_eq!(frame.delay(), expected, "frame {i}");
        }
        let (count, looping) = crate::decode::scan_gif(&out.bytes, &Limits::default()).unwrap();
        assert_eq!((count, looping), (3, Looping::Plays(3)));
    }

    #[test]
    fn a_gif_that_plays_once_still_plays_once() {
        let out = render(&gif(None), json!([{"op": "invert"}]), OutputFormat::Gif);
        let (_, looping) = crate::decode::scan_gif(&out.bytes, &Limits::default()).unwrap();
        assert_eq!(looping, Looping::Plays(1));
        let forever = render(&gif(Some(Repeat::Infinite)), json!([]), OutputFormat::Gif);
        let (_, looping) = crate::decode::scan_gif(&forever.bytes, &Limits::default()).unwrap();
        assert_eq!(looping, Looping::Forever);
    }

    #[test]
    fn gif_to_webp_and_back_keeps_the_animation() {
        let input = gif(Some(Repeat::Infinite));
        let webp = render(&input, json!([{"op": "flop"}]), OutputFormat::Webp);
        assert_eq!(
            crate::inspect(&webp.bytes, &Limits::default())
                .unwrap()
                .frames,
            3
        );
        let mut decoder = image_webp::WebPDecoder::new(Cursor::new(&webp.bytes)).unwrap();
        assert!(decoder.is_animated());
        assert_eq!(decoder.num_frames(), 3);
        assert_eq!(decoder.loop_count(), image_webp::LoopCount::Forever);
        let channels = if decoder.has_alpha() { 4 } else { 3 };
        let mut canvas = vec![0; 12 * 8 * channels];
        let durations: Vec<u32> = (0..3)
            .map(|_| decoder.read_frame(&mut canvas).unwrap())
            .collect();
        assert_eq!(durations, [100, 200, 300]);

        // Animated WebP in, animated GIF out.
        let back = render(&webp.bytes, json!([]), OutputFormat::Gif);
        let frames = GifDecoder::new(Cursor::new(&back.bytes))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(frames.len(), 3);
        assert!(close(frames[2].buffer().get_pixel(0, 0), COLOURS[2]));
    }

    #[test]
    fn a_watermark_lands_on_every_frame() {
        let mut overlay = Vec::new();
        RgbaImage::from_pixel(4, 3, image::Rgba([255; 4]))
            .write_to(&mut Cursor::new(&mut overlay), image::ImageFormat::Png)
            .unwrap();
        let mut steps = pipeline(json!([{"op": "watermark", "image": "img_logo"}]));
        steps
            .attach_image("img_logo", &overlay, &Limits::default())
            .unwrap();
        let output = OutputSpec {
            format: OutputFormat::Gif,
            ..OutputSpec::default()
        };
        let out = crate::process(&gif(None), &steps, &output, &Limits::default()).unwrap();
        let frames = GifDecoder::new(Cursor::new(&out.bytes))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(frames.len(), 3);
        for (i, frame) in frames.iter().enumerate() {
            let frame = frame.buffer();
            assert!(close(frame.get_pixel(10, 6), [255; 4]), "frame {i}");
            assert!(close(frame.get_pixel(7, 4), COLOURS[i]), "frame {i}");
        }
    }

    #[test]
    fn still_outputs_take_the_first_frame() {
        let out = render(&gif(None), json!([]), OutputFormat::Png);
        let image = image::load_from_memory(&out.bytes).unwrap().to_rgba8();
        assert!(close(image.get_pixel(0, 0), COLOURS[0]));
    }

    #[test]
    fn size_changing_per_frame_filters_are_refused_on_animations() {
        // Frame 0 has a one-pixel white border that trim removes; frame 1 has none.
        let mut out = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut out);
            let bordered = RgbaImage::from_fn(6, 6, |x, y| {
                let edge = x == 0 || y == 0 || x == 5 || y == 5;
                image::Rgba(if edge { [255; 4] } else { [0, 0, 0, 255] })
            });
            let plain = RgbaImage::from_fn(6, 6, |x, _| image::Rgba([x as u8 * 40, 0, 0, 255]));
            for image in [bordered, plain] {
                encoder.encode_frame(Frame::new(image)).unwrap();
            }
        }
        let output = OutputSpec {
            format: OutputFormat::Gif,
            ..OutputSpec::default()
        };
        let err = crate::process(
            &out,
            &pipeline(json!([{"op": "trim"}])),
            &output,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("different sizes"), "{err}");
    }

    #[test]
    fn frame_limits_hold_for_webp_too() {
        let webp = render(&gif(None), json!([]), OutputFormat::Webp);
        let limits = Limits {
            max_frames: 2,
            ..Limits::default()
        };
        let err = open(&webp.bytes, ImageFormat::Webp, &limits).err().unwrap();
        assert_eq!(err.code(), "image_too_large");
    }

    #[test]
    fn a_webp_over_the_pixels_across_its_frames_is_refused_from_its_headers() {
        let webp = render(&gif(None), json!([]), OutputFormat::Webp);
        let (width, height, frames) = (webp.width, webp.height, COLOURS.len() as u32);
        let limits = Limits {
            max_total_pixels: u64::from(width * height * frames) - 1,
            ..Limits::default()
        };
        let err = crate::inspect(&webp.bytes, &limits).unwrap_err();
        assert!(err.to_string().contains("across all frames"), "{err}");
    }
}
