use std::sync::Arc;
use std::time::{Duration, Instant};

use pixelmill_core::{ImageFormat, PipelineStep};

use crate::bitmap::{Bitmap, Frame};
use crate::decode::{check_pixels, decode};
use crate::filters::Op;
use crate::{EngineError, Limits};

/// Decoding is costed as a few cheap passes per pixel (encoding by format: `encode_cost_per_pixel`).
const DECODE_COST_PER_PIXEL: u64 = 3;

#[derive(Debug)]
pub(crate) struct Step {
    pub name: &'static str,
    pub op: Box<dyn Op>,
}

/// A validated, compiled list of steps, built by [`crate::Registry::compile`]. Steps that read
/// other stored images (see [`Pipeline::referenced_images`]) need them attached before it runs.
#[derive(Debug)]
pub struct Pipeline {
    steps: Vec<Step>,
    /// The steps as validated: every parameter parsed, defaults filled in, numbers in one form
    /// (`300` and `300.0` alike), so equal requests have equal canonical steps.
    canonical: Vec<PipelineStep>,
}

/// A stored image that a step reads besides the image being processed, e.g. a watermark's
/// overlay. The id is as the client wrote it; whether it exists is for the caller to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// 0-based index of the step, as in [`crate::PipelineError`].
    pub step: usize,
    pub op: &'static str,
    pub id: &'a str,
}

impl Pipeline {
    pub(crate) fn new(steps: Vec<Step>, canonical: Vec<PipelineStep>) -> Self {
        Self { steps, canonical }
    }

    /// The canonical form of the steps: what cache keys and work addresses hash.
    pub fn canonical_steps(&self) -> &[PipelineStep] {
        &self.canonical
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Every stored image the steps read, each once (with the first step that reads it), in
    /// step order. The engine does no I/O, so callers fetch each one and hand its bytes to
    /// [`Pipeline::attach_image`].
    pub fn referenced_images(&self) -> Vec<ImageRef<'_>> {
        let mut refs: Vec<ImageRef<'_>> = Vec::new();
        for (step, s) in self.steps.iter().enumerate() {
            for id in s.op.referenced_images() {
                if !refs.iter().any(|r| r.id == id) {
                    refs.push(ImageRef {
                        step,
                        op: s.name,
                        id,
                    });
                }
            }
        }
        refs
    }

    /// Decodes `bytes` (first frame, orientation applied, 8-bit RGBA) under the same `limits` as
    /// the input and gives it to every step that references image `id`.
    pub fn attach_image(
        &mut self,
        id: &str,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<(), EngineError> {
        let decoded = decode(bytes, limits, |_, _| 1.0)
            .map_err(|e| e.map_message(|m| format!("referenced image {id}: {m}")))?;
        let image = Arc::new(decoded.image.into_rgba());
        for step in &mut self.steps {
            if step.op.referenced_images().iter().any(|r| r == id) {
                step.op.attach_image(id, image.clone());
            }
        }
        Ok(())
    }

    /// Rough CPU units (about one cheap per-pixel pass, half a nanosecond, each) for decoding a
    /// `width`×`height` image, running every step at the size it will see, and encoding the
    /// result as `output`; an animation of `frames` going to an animated format (GIF, WebP)
    /// pays for every frame.
    pub fn estimate_cost(&self, width: u32, height: u32, frames: u32, output: ImageFormat) -> u64 {
        let animated = matches!(output, ImageFormat::Gif | ImageFormat::Webp);
        let frames = if animated {
            u64::from(frames.max(1))
        } else {
            1
        };
        self.frame_cost(width, height, output)
            .saturating_mul(frames)
    }

    fn frame_cost(&self, width: u32, height: u32, output: ImageFormat) -> u64 {
        let pixels = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        let mut size = (width.max(1), height.max(1));
        let mut cost = pixels(size) * DECODE_COST_PER_PIXEL;
        for step in &self.steps {
            let input = size;
            size = step.op.output_size(size.0, size.1);
            let counted = if step.op.costs_per_input_pixel() {
                input
            } else {
                size
            };
            cost = cost.saturating_add(pixels(counted).saturating_mul(step.op.cost_per_pixel()));
        }
        cost.saturating_add(pixels(size) * crate::encode::encode_cost_per_pixel(output))
    }

    /// Whether every step works on RGB as it is, so an opaque input can be decoded to RGB and
    /// stay so (see `Bitmap`).
    pub(crate) fn keeps_rgb(&self) -> bool {
        self.steps.iter().all(|step| step.op.keeps_rgb())
    }

    /// How small, relative to a `width`×`height` source, the decoded image may be: a pipeline
    /// that starts by downscaling lets the decoder shrink on load.
    pub(crate) fn min_decode_scale(&self, width: u32, height: u32) -> f64 {
        self.steps
            .first()
            .and_then(|step| step.op.shrink_on_load(width, height))
            .map_or(1.0, |scale| scale.min(1.0))
    }

    /// Runs the steps in order, refusing any step whose output would exceed `limits`. `source`
    /// is the full size of the decoded image, which differs from its size if it shrank on load.
    pub(crate) fn run(
        &self,
        mut image: Frame,
        source: (u32, u32),
        limits: &Limits,
        timings: &mut Vec<(&'static str, Duration)>,
    ) -> Result<Frame, EngineError> {
        let keep_rgb = self.keeps_rgb();
        for (index, step) in self.steps.iter().enumerate() {
            let shrunk = index == 0 && image.dimensions() != source;
            let (w, h) = if shrunk { source } else { image.dimensions() };
            let (w, h) = step.op.output_size(w, h);
            check_pixels(w, h, limits)?;
            let started = Instant::now();
            image = match image {
                Frame::Sixteen(deep) => match step.op.apply_deep(&deep) {
                    Some(result) => Frame::Sixteen(result?),
                    None => Frame::Eight(step.op.apply(Bitmap::from_dynamic(deep, keep_rgb))?),
                },
                Frame::Eight(bitmap) if shrunk => {
                    Frame::Eight(step.op.apply_shrunk(bitmap, source)?)
                }
                Frame::Eight(bitmap) => Frame::Eight(step.op.apply(bitmap)?),
            };
            timings.push((step.name, started.elapsed()));
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use crate::filters::testutil::pipeline as compile;
    use pixelmill_core::ImageFormat;
    use serde_json::json;

    #[test]
    fn cost_grows_with_pixels_and_work() {
        let cost = |pipeline: &crate::Pipeline, side| {
            pipeline.estimate_cost(side, side, 1, ImageFormat::Jpeg)
        };
        let light = compile(json!([{"op": "flip"}]));
        let heavy = compile(json!([{"op": "flip"}, {"op": "blur", "sigma": 10}]));
        assert!(cost(&light, 1000) > cost(&light, 100));
        assert!(cost(&heavy, 1000) > 5 * cost(&light, 1000));
        // Downscaling first makes the blur cheaper than blurring at full size.
        let small_blur =
            compile(json!([{"op": "resize", "width": 100}, {"op": "blur", "sigma": 10}]));
        assert!(cost(&small_blur, 1000) < cost(&heavy, 1000));
        // A small smart crop still scans its whole input.
        let crop = compile(json!([{"op": "smart_crop", "width": 10, "height": 10}]));
        let codec = 3 * 1_000_000 + 16 * 100;
        assert!(cost(&crop, 1000) >= codec + 12 * 1_000_000);
    }

    #[test]
    fn cost_counts_the_encoder_and_every_animated_frame() {
        let thumb = compile(json!([{"op": "resize", "width": 300}]));
        let as_jpeg = thumb.estimate_cost(1920, 1080, 1, ImageFormat::Jpeg);
        let as_avif = thumb.estimate_cost(1920, 1080, 1, ImageFormat::Avif);
        assert!(as_avif > 20 * as_jpeg, "{as_avif} vs {as_jpeg}");
        // 40 frames cost 40 times one when the output animates, one frame's when it cannot.
        let one = thumb.estimate_cost(480, 270, 1, ImageFormat::Gif);
        assert_eq!(
            thumb.estimate_cost(480, 270, 40, ImageFormat::Gif),
            40 * one
        );
        assert_eq!(
            thumb.estimate_cost(480, 270, 40, ImageFormat::Png),
            thumb.estimate_cost(480, 270, 1, ImageFormat::Png)
        );
    }

    #[test]
    fn upscale_beyond_limits_is_refused_before_allocating() {
        let pipeline =
            compile(json!([{"op": "resize", "width": 16384, "height": 16384, "fit": "fill"}]));
        let limits = crate::Limits {
            max_pixels: 1_000_000,
            max_frames: 1,
            max_total_pixels: 1_000_000,
        };
        let err = pipeline
            .run(
                image::RgbaImage::new(10, 10).into(),
                (10, 10),
                &limits,
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "image_too_large");
    }
}
