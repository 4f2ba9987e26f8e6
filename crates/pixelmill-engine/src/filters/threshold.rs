use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{clamp_u8, luma, map_rgb};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "threshold",
    description: "Black and white: pixels whose Rec.709 luma (rounded, as grayscale computes \
                  it) is at least level become white, the rest black; alpha is kept.",
    params: &[ParamSpec {
        name: "level",
        kind: Kind::Integer { min: 0, max: 255 },
        presence: Presence::DefaultNum(128.0),
        description: "Lowest luma that turns white; 0 makes everything white.",
    }],
    build,
};

#[derive(Debug)]
struct Threshold(u8);

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Threshold(args.int("level") as u8)))
}

impl Op for Threshold {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_rgb(&mut image, |rgb| {
            [if clamp_u8(luma(rgb)) >= self.0 {
                255
            } else {
                0
            }; 3]
        });
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn splits_on_luma_and_keeps_alpha() {
        // Lumas: 127, 128, 182 (pure green), 54 (pure red).
        let img = RgbaImage::from_fn(4, 1, |x, _| {
            image::Rgba(
                [
                    [127, 127, 127, 1],
                    [128, 128, 128, 2],
                    [0, 255, 0, 3],
                    [255, 0, 0, 4],
                ][x as usize],
            )
        });
        let out = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        let row: Vec<[u8; 4]> = out.pixels().map(|p| p.0).collect();
        assert_eq!(
            row,
            [
                [0, 0, 0, 1],
                [255, 255, 255, 2],
                [255, 255, 255, 3],
                [0, 0, 0, 4]
            ]
        );
        let low = op(&FILTER, json!({"level": 54})).apply(img).unwrap();
        assert_eq!(low.get_pixel(3, 0).0, [255, 255, 255, 4]);
    }

    #[test]
    fn refuses_fractional_level() {
        let err = build_err(&FILTER, json!({"level": 12.5}));
        assert_eq!(err.param.as_deref(), Some("level"));
        assert!(
            err.message.contains("an integer from 0 to 255, got 12.5"),
            "{}",
            err.message
        );
    }
}
