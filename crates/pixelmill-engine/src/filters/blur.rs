use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{gaussian_blur, kernel_taps};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "blur",
    description: "Gaussian blur (separable, alpha-aware, edges clamped).",
    params: &[ParamSpec {
        name: "sigma",
        kind: Kind::Number {
            min: 0.1,
            max: 100.0,
        },
        presence: Presence::Required,
        description: "Standard deviation in pixels; the kernel spans 3 sigma each side.",
    }],
    build,
};

#[derive(Debug)]
struct Blur {
    sigma: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Blur {
        sigma: args.num("sigma"),
    }))
}

impl Op for Blur {
    fn cost_per_pixel(&self) -> u64 {
        2 * kernel_taps(self.sigma)
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(gaussian_blur(&image, self.sigma))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::op;
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn constant_image_is_unchanged() {
        let blur = op(&FILTER, json!({"sigma": 2.5}));
        let opaque = RgbaImage::from_pixel(12, 9, image::Rgba([13, 130, 240, 255]));
        assert_eq!(blur.apply(opaque.clone()).unwrap(), opaque);
        // Translucent pixels go through 8-bit premultiplied alpha: at most one level off.
        let translucent = RgbaImage::from_pixel(12, 9, image::Rgba([13, 130, 240, 200]));
        let out = blur.apply(translucent.clone()).unwrap();
        for (a, b) in out.pixels().zip(translucent.pixels()) {
            assert!((0..4).all(|c| a[c].abs_diff(b[c]) <= 1), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn edge_is_smoothed_monotonically() {
        let img = RgbaImage::from_fn(20, 3, |x, _| {
            let v = if x < 10 { 0 } else { 255 };
            image::Rgba([v, v, v, 255])
        });
        let out = op(&FILTER, json!({"sigma": 2})).apply(img).unwrap();
        let row: Vec<u8> = (0..20).map(|x| out.get_pixel(x, 1)[0]).collect();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert!(
            row[9] > 0 && row[9] < 128 && row[10] > 128 && row[10] < 255,
            "{row:?}"
        );
        // Symmetric edge: values mirror around the step.
        assert_eq!(i32::from(row[9]) + i32::from(row[10]), 255);
        assert_eq!((row[0], row[19]), (0, 255));
    }
}
