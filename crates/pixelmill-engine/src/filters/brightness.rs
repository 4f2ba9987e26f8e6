use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::map_channels;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "brightness",
    description: "Shifts R, G and B by amount x 255 (additive, clamped); alpha is kept.",
    params: &[ParamSpec {
        name: "amount",
        kind: Kind::Number {
            min: -1.0,
            max: 1.0,
        },
        presence: Presence::Required,
        description: "-1 = black, 0 = unchanged, 1 = white.",
    }],
    build,
};

#[derive(Debug)]
struct Brightness(f64);

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Brightness(args.num("amount"))))
}

impl Op for Brightness {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_channels(&mut image, |c| c + self.0 * 255.0);
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::op;
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn shifts_and_clamps() {
        let img = RgbaImage::from_pixel(2, 2, image::Rgba([0, 100, 250, 77]));
        let out = op(&FILTER, json!({"amount": 0.2}))
            .apply(img.clone())
            .unwrap();
        assert!(out.pixels().all(|p| p.0 == [51, 151, 255, 77]));
        let out = op(&FILTER, json!({"amount": -1})).apply(img).unwrap();
        assert!(out.pixels().all(|p| p.0 == [0, 0, 0, 77]));
    }
}
