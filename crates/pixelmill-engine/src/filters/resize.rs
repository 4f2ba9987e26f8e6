use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{Filter, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbaImage};

use crate::bitmap::Bitmap;
use crate::linear::{in_linear_light, LinearImage};

use super::{FilterDef, Op};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::EngineError;

const SIDE: Kind = Kind::Integer { min: 1, max: 16384 };

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "resize",
    description: "Resizes (with a Lanczos3 filter unless `kernel` names another). Give width, \
                  height or both; with only one the \
                  other follows the aspect ratio.",
    params: &[
        ParamSpec {
            name: "width",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Target width in pixels.",
        },
        ParamSpec {
            name: "height",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Target height in pixels.",
        },
        ParamSpec {
            name: "fit",
            kind: Kind::Enum(&["contain", "cover", "fill"]),
            presence: Presence::DefaultStr("contain"),
            description: "With both sides: contain = fit inside keeping aspect; cover = fill \
                          exactly width x height, centre-cropping the overflow; fill = stretch.",
        },
        ParamSpec {
            name: "kernel",
            kind: Kind::Enum(&[
                "nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3",
            ]),
            presence: Presence::DefaultStr("lanczos3"),
            description: "The resampling filter, as libvips names them: nearest (picks source \
                          pixels: hard edges, for pixel art), linear (triangle), cubic \
                          (Catmull-Rom), mitchell (Mitchell-Netravali: softer, little ringing), \
                          lanczos2, lanczos3 (sharpest). Downscaling widens the filter to the \
                          scale, and a JPEG is first shrunk on load as libvips does.",
        },
        super::LIGHT,
    ],
    build,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fit {
    Contain,
    Cover,
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Nearest,
    Linear,
    Cubic,
    Mitchell,
    Lanczos2,
    Lanczos3,
}

impl Kernel {
    fn algorithm(self) -> ResizeAlg {
        let filter = match self {
            Kernel::Nearest => return ResizeAlg::Nearest,
            Kernel::Linear => FilterType::Bilinear,
            Kernel::Cubic => FilterType::CatmullRom,
            Kernel::Mitchell => FilterType::Mitchell,
            Kernel::Lanczos2 => FilterType::Custom(
                Filter::new("lanczos2", lanczos2, 2.0).expect("a finite, positive support"),
            ),
            Kernel::Lanczos3 => FilterType::Lanczos3,
        };
        ResizeAlg::Convolution(filter)
    }
}

/// The Lanczos window with two lobes: sinc(x) sinc(x/2) on (-2, 2).
fn lanczos2(x: f64) -> f64 {
    let sinc = |x: f64| {
        if x == 0.0 {
            1.0
        } else {
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
    };
    if (-2.0..2.0).contains(&x) {
        sinc(x) * sinc(x / 2.0)
    } else {
        0.0
    }
}

#[derive(Debug)]
struct Resize {
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    kernel: Kernel,
    linear: bool,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let side = |name| args.opt_int(name).map(|v| v as u32);
    let (width, height) = (side("width"), side("height"));
    if width.is_none() && height.is_none() {
        return Err(ParamError::step(
            "resize needs `width`, `height` or both; add at least one".into(),
        ));
    }
    let fit = match args.str("fit") {
        "cover" => Fit::Cover,
        "fill" => Fit::Fill,
        _ => Fit::Contain,
    };
    let kernel = match args.str("kernel") {
        "nearest" => Kernel::Nearest,
        "linear" => Kernel::Linear,
        "cubic" => Kernel::Cubic,
        "mitchell" => Kernel::Mitchell,
        "lanczos2" => Kernel::Lanczos2,
        _ => Kernel::Lanczos3,
    };
    Ok(Box::new(Resize {
        width,
        height,
        fit,
        kernel,
        linear: args.str("light") == "linear",
    }))
}

/// `image` resized as the `resize` filter does to `width` wide, keeping its aspect ratio; for
/// filters that size an image of their own (a watermark's overlay).
pub(super) fn to_width(image: RgbaImage, width: u32) -> Result<RgbaImage, EngineError> {
    Resize {
        width: Some(width),
        height: None,
        fit: Fit::Contain,
        kernel: Kernel::Lanczos3,
        linear: false,
    }
    .apply(image.into())
    .map(Bitmap::into_rgba)
}

fn scaled(side: u32, scale: f64) -> u32 {
    ((f64::from(side) * scale).round() as u32).max(1)
}

impl Op for Resize {
    fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        match (self.width, self.height) {
            (Some(tw), None) => (tw, scaled(h, f64::from(tw) / f64::from(w))),
            (None, Some(th)) => (scaled(w, f64::from(th) / f64::from(h)), th),
            (Some(tw), Some(th)) if self.fit == Fit::Contain => {
                let scale = (f64::from(tw) / f64::from(w)).min(f64::from(th) / f64::from(h));
                (scaled(w, scale).min(tw), scaled(h, scale).min(th))
            }
            (Some(tw), Some(th)) => (tw, th),
            (None, None) => (w, h),
        }
    }

    fn cost_per_pixel(&self) -> u64 {
        4
    }

    fn shrink_on_load(&self, width: u32, height: u32) -> Option<f64> {
        let (w, h) = self.output_size(width, height);
        let scale = (f64::from(w) / f64::from(width)).max(f64::from(h) / f64::from(height));
        (scale < 1.0).then_some(scale * SHRINK_ON_LOAD_HEADROOM)
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let source = image.dimensions();
        self.resize(image, source)
    }

    fn apply_shrunk(&self, image: Bitmap, source: (u32, u32)) -> Result<Bitmap, EngineError> {
        self.resize(image, source)
    }

    fn apply_deep(&self, image: &DynamicImage) -> Option<Result<DynamicImage, EngineError>> {
        Some(self.resize_deep(image))
    }
}

/// How much larger than the target a shrunk-on-load image stays, so the Lanczos pass (not the
/// decoder's block average) does the final filtering.
const SHRINK_ON_LOAD_HEADROOM: f64 = 1.0;

impl Resize {
    /// The resampling of a `size`d image showing a `source`-sized picture: the kernel, alpha
    /// handling, and for `cover` the centred box of the source with the output's aspect.
    fn options(&self, size: (u32, u32), source: (u32, u32), opaque: bool) -> ResizeOptions {
        let options = ResizeOptions::new()
            .resize_alg(self.kernel.algorithm())
            .use_alpha(!opaque);
        if self.fit != Fit::Cover {
            return options;
        }
        let (w, h) = self.output_size(source.0, source.1);
        let (iw, ih) = (f64::from(size.0), f64::from(size.1));
        let scale = (f64::from(w) / f64::from(source.0)).max(f64::from(h) / f64::from(source.1));
        let to_image = iw / f64::from(source.0);
        let (crop_w, crop_h) = (
            (f64::from(w) / scale * to_image).min(iw),
            (f64::from(h) / scale * to_image).min(ih),
        );
        options.crop((iw - crop_w) / 2.0, (ih - crop_h) / 2.0, crop_w, crop_h)
    }

    /// `resize` on a 16-bit frame (never shrunk on load: only JPEG is).
    fn resize_deep(&self, image: &DynamicImage) -> Result<DynamicImage, EngineError> {
        let size = (image.width(), image.height());
        let (w, h) = self.output_size(size.0, size.1);
        let options = self.options(size, size, !image.color().has_alpha());
        let failed = |e: &dyn std::fmt::Display| {
            EngineError::Encode(format!("resize to {w}x{h} failed: {e}"))
        };
        let mut out = DynamicImage::new(w, h, image.color());
        if self.linear {
            let mapper = fast_image_resize::create_srgb_mapper();
            let mut linear = image.clone();
            mapper
                .forward_map_inplace(&mut linear)
                .map_err(|e| failed(&e))?;
            Resizer::new()
                .resize(&linear, &mut out, &options)
                .map_err(|e| failed(&e))?;
            mapper
                .backward_map_inplace(&mut out)
                .map_err(|e| failed(&e))?;
        } else {
            Resizer::new()
                .resize(image, &mut out, &options)
                .map_err(|e| failed(&e))?;
        }
        Ok(out)
    }

    /// Resizes `image`, which shows a `source`-sized picture (smaller when shrunk on load), to
    /// the output `source` calls for.
    fn resize(&self, image: Bitmap, source: (u32, u32)) -> Result<Bitmap, EngineError> {
        let (w, h) = self.output_size(source.0, source.1);
        if (w, h) == image.dimensions() {
            return Ok(image);
        }
        let (iw, ih) = image.dimensions();
        // Premultiplying is only needed where something is translucent (never for JPEG input).
        let options = self.options((iw, ih), source, image.is_opaque());
        let failed = |e: &dyn std::fmt::Display| {
            EngineError::Encode(format!("resize to {w}x{h} failed: {e}"))
        };
        let resize = |input: &ImageRef<'_>, output: &mut Image<'_>| {
            Resizer::new()
                .resize(input, output, &options)
                .map_err(|e| failed(&e))
        };
        if self.linear {
            return in_linear_light(&image, |linear| {
                let mut resized = LinearImage::new(w, h, linear.channels);
                resize(&linear.image_ref(), &mut resized.view())?;
                Ok(resized)
            });
        }
        let pixel_type = match image {
            Bitmap::Rgb(_) => PixelType::U8x3,
            Bitmap::Rgba(_) => PixelType::U8x4,
        };
        let input = ImageRef::new(iw, ih, image.as_raw(), pixel_type).map_err(|e| failed(&e))?;
        let mut out = image.blank(w, h);
        let mut output =
            Image::from_slice_u8(w, h, out.as_raw_mut(), pixel_type).map_err(|e| failed(&e))?;
        resize(&input, &mut output)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use serde_json::json;

    #[test]
    fn sizes_follow_fit_mode() {
        let cases = [
            (json!({"width": 100}), (100, 50)),
            (json!({"height": 25}), (50, 25)),
            (json!({"width": 100, "height": 100}), (100, 50)),
            (
                json!({"width": 100, "height": 100, "fit": "cover"}),
                (100, 100),
            ),
            (json!({"width": 30, "height": 70, "fit": "fill"}), (30, 70)),
        ];
        for (params, expected) in cases {
            let out = op(&FILTER, params.clone())
                .apply(pattern(200, 100))
                .unwrap();
            assert_eq!(out.dimensions(), expected, "{params}");
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbaImage::from_pixel(64, 48, image::Rgba([10, 200, 30, 255]));
        let out = op(&FILTER, json!({"width": 17, "height": 9, "fit": "cover"}))
            .apply(img)
            .unwrap();
        assert!(out.pixels().all(|p| p.0 == [10, 200, 30, 255]));
    }

    #[test]
    fn cover_crops_the_centre() {
        // Wide image: left third red, middle third green, right third blue.
        let img = RgbaImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => image::Rgba([255, 0, 0, 255]),
            1 => image::Rgba([0, 255, 0, 255]),
            _ => image::Rgba([0, 0, 255, 255]),
        });
        let out = op(&FILTER, json!({"width": 10, "height": 10, "fit": "cover"}))
            .apply(img)
            .unwrap();
        // Lanczos may pull a little colour from just outside the crop box into the edges.
        assert!(
            out.pixels().all(|p| p[1] > 200 && p[0] < 60 && p[2] < 60),
            "{out:?}"
        );
        assert_eq!(out.get_pixel(5, 5).0, [0, 255, 0, 255]);
    }

    #[test]
    fn shrunk_input_gives_the_output_of_its_source() {
        let resize = op(&FILTER, json!({"width": 30, "height": 30, "fit": "cover"}));
        // 4:3 source shrunk to a rounded 3:2-ish size still gives the square crop of the source.
        assert_eq!(
            resize.shrink_on_load(400, 300),
            Some(0.1 * SHRINK_ON_LOAD_HEADROOM)
        );
        let out = resize
            .apply_shrunk(pattern(50, 38).into(), (400, 300))
            .unwrap();
        assert_eq!(out.dimensions(), (30, 30));
        let contain = op(&FILTER, json!({"width": 100}));
        // 1001x667 -> 100x67: the taller side needs the larger fraction.
        let scale = contain.shrink_on_load(1001, 667).unwrap();
        assert!((scale - 67.0 / 667.0 * SHRINK_ON_LOAD_HEADROOM).abs() < 1e-9);
        let out = contain
            .apply_shrunk(pattern(126, 84).into(), (1001, 667))
            .unwrap();
        assert_eq!(out.dimensions(), contain.output_size(1001, 667));
        assert_eq!(
            op(&FILTER, json!({"width": 2000})).shrink_on_load(1000, 500),
            None
        );
    }

    #[test]
    fn linear_light_keeps_the_brightness_of_fine_stripes() {
        // One-pixel black and white stripes halved: the true average is 50% light, which is
        // sRGB 188; averaging the stored values gives 128 (too dark).
        let stripes = RgbaImage::from_fn(64, 8, |x, _| {
            let v = if x % 2 == 0 { 255 } else { 0 };
            image::Rgba([v, v, v, 255])
        });
        let mean = |img: &RgbaImage| {
            img.pixels().map(|p| f64::from(p[0])).sum::<f64>()
                / f64::from(img.width() * img.height())
        };
        let srgb = op(&FILTER, json!({"width": 16}))
            .apply(stripes.clone())
            .unwrap();
        let linear = op(&FILTER, json!({"width": 16, "light": "linear"}))
            .apply(stripes)
            .unwrap();
        assert!((mean(&srgb) - 128.0).abs() < 6.0, "{}", mean(&srgb));
        assert!((mean(&linear) - 188.0).abs() < 6.0, "{}", mean(&linear));
        assert_eq!(linear.dimensions(), (16, 2));
    }

    #[test]
    fn nearest_keeps_source_pixels() {
        let src = pattern(8, 6);
        let nearest = op(&FILTER, json!({"width": 3, "kernel": "nearest"}));
        let out = nearest.apply(src.clone()).unwrap();
        assert_eq!(out.dimensions(), (3, 2));
        assert!(out.pixels().all(|p| src.pixels().any(|q| q == p)));
        let up = op(&FILTER, json!({"width": 16, "kernel": "nearest"}))
            .apply(src.clone())
            .unwrap();
        assert_eq!(up.get_pixel(0, 0), src.get_pixel(0, 0));
        assert_eq!(up.get_pixel(1, 1), src.get_pixel(0, 0));
    }

    /// Upscaling a step shows each kernel's shape: linear stays monotonic within the step's
    /// levels, the others ring next to it, Mitchell least and Lanczos3 furthest out.
    #[test]
    fn kernels_shape_a_step_as_their_filters_do() {
        let step = RgbaImage::from_fn(8, 1, |x, _| {
            let v = if x < 4 { 50 } else { 200 };
            image::Rgba([v, v, v, 255])
        });
        let row = |kernel: &str| -> Vec<u8> {
            let params = json!({"width": 32, "height": 1, "fit": "fill", "kernel": kernel});
            let out = op(&FILTER, params).apply(step.clone()).unwrap();
            out.pixels().map(|p| p[0]).collect()
        };
        let linear = row("linear");
        assert!(linear.windows(2).all(|w| w[0] <= w[1]), "{linear:?}");
        assert_eq!((linear[0], linear[31]), (50, 200));
        let overshoot = |values: &[u8]| {
            let (low, high) = (*values.iter().min().unwrap(), *values.iter().max().unwrap());
            50u8.saturating_sub(low).max(high.saturating_sub(200))
        };
        let rings: Vec<u8> = ["mitchell", "cubic", "lanczos2", "lanczos3"]
            .iter()
            .map(|k| overshoot(&row(k)))
            .collect();
        assert!(rings.iter().all(|&r| r > 0), "{rings:?}");
        assert!(
            rings[0] < rings[1],
            "mitchell rings less than cubic: {rings:?}"
        );
        let spread = |values: Vec<u8>| values.iter().filter(|&&v| v != 50 && v != 200).count();
        assert!(spread(row("lanczos3")) > spread(row("lanczos2")));
    }

    #[test]
    fn needs_a_side() {
        let err = build_err(&FILTER, json!({"fit": "cover"}));
        assert_eq!(err.param, None);
        assert!(err.message.contains("width"));
        let err = build_err(&FILTER, json!({"width": 0}));
        assert_eq!(err.param.as_deref(), Some("width"));
    }
}
