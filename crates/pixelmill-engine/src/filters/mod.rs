//! Built-in filters, one per file. Each file exports a `FILTER` definition: its op name, the
//! typed parameter schema, and a constructor that turns validated arguments into an [`Op`].

use std::fmt::Debug;
use std::sync::Arc;

use image::{DynamicImage, RgbaImage};

use crate::bitmap::Bitmap;
use crate::params::{Args, ParamError, ParamSpec};
use crate::EngineError;

mod blur;
mod brightness;
mod contrast;
mod convolve;
mod crop;
mod duotone;
mod edges;
mod emboss;
mod expr;
mod flip;
mod flop;
mod gamma;
mod grayscale;
mod hue_rotate;
mod invert;
mod median;
mod pad;
mod pixelate;
mod posterize;
mod resize;
mod rotate;
mod round_corners;
mod saturation;
mod sepia;
mod sharpen;
mod smart_crop;
mod threshold;
mod tint;
mod trim;
mod unsharp;
mod vignette;
mod watermark;

/// `light`, for filters that average pixels (resize, blur): in stored sRGB values or in linear
/// light.
pub(crate) const LIGHT: ParamSpec = ParamSpec {
    name: "light",
    kind: crate::params::Kind::Enum(&["srgb", "linear"]),
    presence: crate::params::Presence::DefaultStr("srgb"),
    description: "linear filters in linear light (16-bit), which keeps fine high-contrast detail \
                  (text, stripes) and edges between bright and dark from darkening; srgb \
                  filters the stored values, like most image services, and is faster.",
};

#[derive(Debug)]
pub(crate) struct FilterDef {
    pub op: &'static str,
    pub description: &'static str,
    pub params: &'static [ParamSpec],
    pub build: fn(&Args) -> Result<Box<dyn Op>, ParamError>,
}

/// A compiled step, ready to run on any image. Ops see 8-bit RGBA with straight alpha, or 8-bit
/// RGB for an opaque image when every step of the pipeline `keeps_rgb`.
pub(crate) trait Op: Send + Sync + Debug {
    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError>;

    /// Whether `apply` works on RGB as it is and returns RGB, so an opaque image can skip the
    /// alpha channel (see `Bitmap`). Ops that add transparency or have only an RGBA kernel say
    /// no, and get RGBA.
    fn keeps_rgb(&self) -> bool {
        false
    }

    /// The size `apply` will produce, so limits and costs are known before running.
    fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        (width, height)
    }

    /// For a downscaling op: the smallest fraction of a `width`×`height` source it needs to
    /// produce the same output, so a decoder may shrink on load. `None`: needs the full size.
    fn shrink_on_load(&self, _width: u32, _height: u32) -> Option<f64> {
        None
    }

    /// Like `apply` on a `source`-sized image, given that image shrunk on load: the output is
    /// the one `source` would give. Only called when `shrink_on_load` returned a scale.
    fn apply_shrunk(&self, image: Bitmap, _source: (u32, u32)) -> Result<Bitmap, EngineError> {
        self.apply(image)
    }

    /// The op on a 16-bit frame (see `Frame`), for ops that keep 16 bits per channel (geometry
    /// and resize); `None`, the default, has the pipeline reduce the frame to 8 bits first.
    fn apply_deep(&self, _image: &DynamicImage) -> Option<Result<DynamicImage, EngineError>> {
        None
    }

    /// Rough CPU units per pixel; 1 is one cheap pass over the pixel.
    fn cost_per_pixel(&self) -> u64 {
        1
    }

    /// Whether `cost_per_pixel` counts input pixels (ops that scan the whole input to produce a
    /// smaller output) rather than output pixels.
    fn costs_per_input_pixel(&self) -> bool {
        false
    }

    /// Ids of the stored images this op reads besides its input (a watermark's overlay).
    fn referenced_images(&self) -> &[String] {
        &[]
    }

    /// Hands over the decoded image `id`, one of `referenced_images`, before the op runs.
    fn attach_image(&mut self, _id: &str, _image: Arc<RgbaImage>) {}
}

/// Maps R, G and B through a 3×3 matrix, alpha kept: the shape of every linear colour filter
/// (sepia, saturation, hue rotation).
#[derive(Debug)]
pub(crate) struct ColorMatrix(pub [[f64; 3]; 3]);

impl Op for ColorMatrix {
    fn cost_per_pixel(&self) -> u64 {
        2
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        crate::pixels::map_matrix(&mut image, &self.0);
        Ok(image)
    }
}

pub(crate) const BUILTIN: &[FilterDef] = &[
    resize::FILTER,
    crop::FILTER,
    rotate::FILTER,
    flip::FILTER,
    flop::FILTER,
    grayscale::FILTER,
    sepia::FILTER,
    invert::FILTER,
    brightness::FILTER,
    contrast::FILTER,
    blur::FILTER,
    sharpen::FILTER,
    expr::FILTER,
    // Colour and tone.
    gamma::FILTER,
    saturation::FILTER,
    hue_rotate::FILTER,
    tint::FILTER,
    duotone::FILTER,
    threshold::FILTER,
    posterize::FILTER,
    vignette::FILTER,
    // Neighbourhood filters (premultiplied alpha).
    pixelate::FILTER,
    edges::FILTER,
    emboss::FILTER,
    convolve::FILTER,
    median::FILTER,
    unsharp::FILTER,
    // Geometry.
    pad::FILTER,
    trim::FILTER,
    round_corners::FILTER,
    smart_crop::FILTER,
    // Compositing with other stored images.
    watermark::FILTER,
];

/// Test helpers shared by the filter tests: build an op from JSON params via the real parser.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub(crate) fn op(def: &FilterDef, params: serde_json::Value) -> TestOp {
        let args = Args::parse(def.op, def.params, params.as_object().unwrap()).unwrap();
        TestOp((def.build)(&args).unwrap())
    }

    /// An op under test: `apply` takes and gives RGBA, the layout every filter handles.
    pub(crate) struct TestOp(pub Box<dyn Op>);

    impl TestOp {
        pub(crate) fn apply(&self, image: RgbaImage) -> Result<RgbaImage, EngineError> {
            self.0.apply(image.into()).map(Bitmap::into_rgba)
        }
    }

    impl std::ops::Deref for TestOp {
        type Target = dyn Op;

        fn deref(&self) -> &Self::Target {
            &*self.0
        }
    }

    impl std::ops::DerefMut for TestOp {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut *self.0
        }
    }

    pub(crate) fn build_err(def: &FilterDef, params: serde_json::Value) -> ParamError {
        let args = Args::parse(def.op, def.params, params.as_object().unwrap());
        match args {
            Ok(args) => (def.build)(&args).unwrap_err(),
            Err(e) => e,
        }
    }

    pub(crate) fn steps(v: serde_json::Value) -> Vec<pixelmill_core::PipelineStep> {
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn pipeline(v: serde_json::Value) -> crate::Pipeline {
        crate::Registry::builtin().compile(&steps(v)).unwrap()
    }

    /// A deterministic image where every pixel differs, alpha included.
    pub(crate) fn pattern(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([
                (x * 37 + y * 11) as u8,
                (x * 5 + y * 71) as u8,
                (x * y + 3) as u8,
                (200 + x + y) as u8,
            ])
        })
    }
}
