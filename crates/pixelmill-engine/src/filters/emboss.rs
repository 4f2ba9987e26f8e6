use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{convolve, Kernel};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "emboss",
    description: "Relief lit from the top left: mid-grey (128) plus strength x the directional \
                  difference across each pixel, per channel, on premultiplied alpha; alpha is \
                  kept.",
    params: &[ParamSpec {
        name: "strength",
        kind: Kind::Number {
            min: 0.0,
            max: 10.0,
        },
        presence: Presence::DefaultNum(1.0),
        description: "Depth of the relief; 0 = flat grey.",
    }],
    build,
};

/// Bottom-right minus top-left neighbours; sums to zero, so flat areas come out mid-grey.
const RELIEF: [f32; 9] = [-1.0, -1.0, 0.0, -1.0, 0.0, 1.0, 0.0, 1.0, 1.0];

#[derive(Debug)]
struct Emboss {
    kernel: Kernel,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let strength = args.num("strength") as f32;
    Ok(Box::new(Emboss {
        kernel: Kernel::new(3, RELIEF.iter().map(|w| w * strength).collect()),
    }))
}

impl Op for Emboss {
    fn cost_per_pixel(&self) -> u64 {
        // A 3x3 `convolve`.
        14
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(convolve(&image.into_rgba(), &self.kernel, 1.0, 128.0).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn flat_is_grey_and_a_rising_step_is_lit() {
        let img = RgbaImage::from_fn(6, 3, |x, _| {
            let v = if x < 3 { 0 } else { 50 };
            image::Rgba([v, v, 0, 255])
        });
        let out = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        // Either side of the step the right-hand column (weights 0, 1, 1) sees 50 more than the
        // left-hand one (-1, -1, 0): 128 + 2 x 50.
        let row: Vec<[u8; 4]> = (0..6).map(|x| out.get_pixel(x, 1).0).collect();
        assert_eq!(
            row,
            [
                [128, 128, 128, 255],
                [128, 128, 128, 255],
                [228, 228, 128, 255],
                [228, 228, 128, 255],
                [128, 128, 128, 255],
                [128, 128, 128, 255]
            ]
        );
        let deep = op(&FILTER, json!({"strength": 0.5})).apply(img).unwrap();
        assert_eq!(deep.get_pixel(2, 1).0, [178, 178, 128, 255]);
    }

    #[test]
    fn alpha_is_kept_and_hidden_colours_are_ignored() {
        let img = RgbaImage::from_fn(4, 4, |x, y| {
            if x < 2 {
                image::Rgba([90, 90, 90, 255])
            } else {
                image::Rgba([(y * 80) as u8, 255, 0, 0])
            }
        });
        let out = op(&FILTER, json!({})).apply(img).unwrap();
        let alphas: Vec<u8> = out.pixels().map(|p| p[3]).collect();
        assert_eq!(alphas, [255, 255, 0, 0].repeat(4));
        // Left column: its neighbours are all the same grey, so no relief.
        assert_eq!(out.get_pixel(0, 1).0, [128, 128, 128, 255]);
    }

    #[test]
    fn refuses_negative_strength() {
        let err = build_err(&FILTER, json!({"strength": -2}));
        assert_eq!(err.param.as_deref(), Some("strength"));
        assert!(err.message.contains("from 0 to 10"), "{}", err.message);
    }
}
