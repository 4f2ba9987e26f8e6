use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

use super::{FilterDef, Op};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::EngineError;

const SIDE: Kind = Kind::Integer { min: 1, max: 16384 };

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "resize",
    description: "Resizes with a Lanczos3 filter. Give width, height or both; with only one the \
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
    ],
    build,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fit {
    Contain,
    Cover,
    Fill,
}

#[derive(Debug)]
struct Resize {
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
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
    Ok(Box::new(Resize { width, height, fit }))
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

    fn apply(&self, image: RgbaImage) -> Result<RgbaImage, EngineError> {
        let (w, h) = self.output_size(image.width(), image.height());
        if (w, h) == image.dimensions() {
            return Ok(image);
        }
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        if self.fit == Fit::Cover {
            options = options.fit_into_destination(Some((0.5, 0.5)));
        }
        let mut out = RgbaImage::new(w, h);
        Resizer::new()
            .resize(&image, &mut out, &options)
            .map_err(|e| EngineError::Encode(format!("resize to {w}x{h} failed: {e}")))?;
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
    fn needs_a_side() {
        let err = build_err(&FILTER, json!({"fit": "cover"}));
        assert_eq!(err.param, None);
        assert!(err.message.contains("width"));
        let err = build_err(&FILTER, json!({"width": 0}));
        assert_eq!(err.param.as_deref(), Some("width"));
    }
}
