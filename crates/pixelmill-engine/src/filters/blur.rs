use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{gaussian_blur, gaussian_blur_linear, kernel_taps};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "blur",
    description: "Gaussian blur (separable, alpha-aware, edges clamped).",
    params: &[
        ParamSpec {
            name: "sigma",
            kind: Kind::Number {
                min: 0.1,
                max: 100.0,
            },
            presence: Presence::Required,
            description: "Standard deviation in pixels; the kernel spans 3 sigma each side.",
        },
        super::LIGHT,
    ],
    build,
};

#[derive(Debug)]
struct Blur {
    sigma: f64,
    linear: bool,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Blur {
        sigma: args.num("sigma"),
        linear: args.str("light") == "linear",
    }))
}

impl Op for Blur {
    fn cost_per_pixel(&self) -> u64 {
        // The linear-light conversions cost about two more passes.
        2 * kernel_taps(self.sigma) + if self.linear { 4 } else { 0 }
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(if self.linear {
            gaussian_blur_linear(&image, self.sigma)
        } else {
            gaussian_blur(&image, self.sigma)
        })
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

    /// Blurring fine black and white stripes to uniform grey: in linear light the grey has half
    /// the light (sRGB 188), as the stripes look from afar; averaging stored values gives 128.
    #[test]
    fn linear_light_keeps_the_brightness_of_fine_detail() {
        let stripes = RgbaImage::from_fn(40, 40, |x, _| {
            let v = if x % 2 == 0 { 255 } else { 0 };
            image::Rgba([v, v, v, 255])
        });
        let centre = |light: &str| {
            let out = op(&FILTER, json!({"sigma": 3, "light": light}))
                .apply(stripes.clone())
                .unwrap();
            out.get_pixel(20, 20)[0]
        };
        assert!(centre("srgb").abs_diff(128) <= 2, "{}", centre("srgb"));
        assert!(centre("linear").abs_diff(188) <= 2, "{}", centre("linear"));
    }

    #[test]
    fn linear_light_leaves_a_flat_image_flat() {
        let opaque = RgbaImage::from_pixel(6, 6, image::Rgba([13, 130, 240, 255]));
        let flat = op(&FILTER, json!({"sigma": 2, "light": "linear"}))
            .apply(opaque.clone())
            .unwrap();
        assert_eq!(flat, opaque);
    }
}
