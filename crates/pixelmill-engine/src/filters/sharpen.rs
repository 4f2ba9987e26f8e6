use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{kernel_taps, unsharp_mask};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "sharpen",
    description: "Unsharp mask: adds amount x (image - gaussian blur of the image) to R, G and \
                  B; alpha is kept.",
    params: &[SIGMA, AMOUNT],
    build,
};

/// The mask's parameters, shared with `unsharp`.
pub(super) const SIGMA: ParamSpec = ParamSpec {
    name: "sigma",
    kind: Kind::Number {
        min: 0.1,
        max: 100.0,
    },
    presence: Presence::DefaultNum(1.0),
    description: "Blur radius (standard deviation) of the mask, in pixels.",
};

pub(super) const AMOUNT: ParamSpec = ParamSpec {
    name: "amount",
    kind: Kind::Number {
        min: 0.0,
        max: 10.0,
    },
    presence: Presence::DefaultNum(1.0),
    description: "Strength of the sharpening.",
};

#[derive(Debug)]
struct Sharpen {
    sigma: f64,
    amount: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Sharpen {
        sigma: args.num("sigma"),
        amount: args.num("amount"),
    }))
}

impl Op for Sharpen {
    fn cost_per_pixel(&self) -> u64 {
        2 * kernel_taps(self.sigma) + 1
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(unsharp_mask(image, self.sigma, self.amount, 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::op;
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn increases_edge_contrast_and_keeps_flat_areas() {
        let img = RgbaImage::from_fn(20, 3, |x, _| {
            let v = if x < 10 { 80 } else { 160 };
            image::Rgba([v, v, v, 255])
        });
        let out = op(&FILTER, json!({"sigma": 1.5})).apply(img).unwrap();
        let (dark, light) = (out.get_pixel(9, 1)[0], out.get_pixel(10, 1)[0]);
        assert!(dark < 80 && light > 160, "{dark} {light}");
        assert_eq!(out.get_pixel(0, 1)[0], 80);
        assert_eq!(out.get_pixel(19, 1)[0], 160);
    }
}
