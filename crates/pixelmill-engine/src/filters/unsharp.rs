use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{kernel_taps, unsharp_mask};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "unsharp",
    description: "Unsharp mask with a threshold: adds amount x (image - gaussian blur) to each \
                  of R, G and B whose difference from the blur exceeds threshold, so smooth \
                  areas and noise are left alone. The blur is alpha-aware; alpha is kept.",
    params: &[
        super::sharpen::SIGMA,
        super::sharpen::AMOUNT,
        ParamSpec {
            name: "threshold",
            kind: Kind::Number {
                min: 0.0,
                max: 255.0,
            },
            presence: Presence::DefaultNum(0.0),
            description: "Smallest difference (in 0-255 levels) that gets sharpened; 0 = all.",
        },
    ],
    build,
};

#[derive(Debug)]
struct Unsharp {
    sigma: f64,
    amount: f64,
    threshold: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Unsharp {
        sigma: args.num("sigma"),
        amount: args.num("amount"),
        threshold: args.num("threshold"),
    }))
}

impl Op for Unsharp {
    fn cost_per_pixel(&self) -> u64 {
        2 * kernel_taps(self.sigma) + 1
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(unsharp_mask(image, self.sigma, self.amount, self.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::RgbaImage;
    use serde_json::json;

    /// A faint ramp (+2 per pixel) next to a strong step (100 -> 200).
    fn ramp_and_step() -> RgbaImage {
        RgbaImage::from_fn(24, 3, |x, _| {
            let v = if x < 12 { 20 + 2 * x as u8 } else { 200 };
            image::Rgba([v, v, v, 255])
        })
    }

    #[test]
    fn threshold_spares_small_differences() {
        let img = ramp_and_step();
        let all = op(&FILTER, json!({"sigma": 1, "amount": 2}))
            .apply(img.clone())
            .unwrap();
        let picky = op(&FILTER, json!({"sigma": 1, "amount": 2, "threshold": 10}))
            .apply(img.clone())
            .unwrap();
        // The ramp's start differs from its blur (clamped edge) by under 1 level: untouched by
        // the threshold, but nudged without it.
        assert_eq!(picky.get_pixel(0, 1)[0], 20);
        assert_ne!(all.get_pixel(0, 1)[0], 20);
        // Both sharpen the step: the dark side dips, the bright side overshoots (clamped).
        for out in [&all, &picky] {
            assert!(out.get_pixel(11, 1)[0] < 42, "{:?}", out.get_pixel(11, 1));
            assert_eq!(out.get_pixel(12, 1)[0], 255);
        }
        // Far from the step the ramp is linear, so the blur equals the pixel: unchanged.
        assert_eq!(all.get_pixel(5, 1)[0], 30);
    }

    #[test]
    fn without_threshold_matches_sharpen() {
        let img = ramp_and_step();
        let params = json!({"sigma": 1.5, "amount": 0.7});
        let ours = op(&FILTER, params.clone()).apply(img.clone()).unwrap();
        let sharpen = op(&super::super::sharpen::FILTER, params)
            .apply(img)
            .unwrap();
        assert_eq!(ours, sharpen);
    }

    #[test]
    fn refuses_threshold_above_255() {
        let err = build_err(&FILTER, json!({"threshold": 300}));
        assert_eq!(err.param.as_deref(), Some("threshold"));
        assert!(
            err.message.contains("from 0 to 255, got 300"),
            "{}",
            err.message
        );
    }
}
