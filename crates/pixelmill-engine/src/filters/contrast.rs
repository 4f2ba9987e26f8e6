use std::f64::consts::FRAC_PI_4;

use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::map_channels;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "contrast",
    description: "Scales R, G and B away from (or towards) mid-grey; alpha is kept.",
    params: &[ParamSpec {
        name: "amount",
        kind: Kind::Number {
            min: -1.0,
            max: 1.0,
        },
        presence: Presence::Required,
        description: "-1 = flat grey, 0 = unchanged, 1 = hard threshold; the slope is \
                      tan((amount + 1) x 45 degrees).",
    }],
    build,
};

#[derive(Debug)]
struct Contrast {
    slope: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    // tan maps -1..1 onto slopes 0..infinity symmetrically in log space around 1.
    let slope = ((args.num("amount") + 1.0) * FRAC_PI_4).tan();
    Ok(Box::new(Contrast { slope }))
}

impl Op for Contrast {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_channels(&mut image, |c| (c - 127.5) * self.slope + 127.5);
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{op, pattern};
    use image::RgbaImage;
    use serde_json::json;

    fn spread(img: &RgbaImage) -> i32 {
        let v: Vec<i32> = img.pixels().map(|p| i32::from(p[1])).collect();
        v.iter().max().unwrap() - v.iter().min().unwrap()
    }

    #[test]
    fn zero_is_identity_and_sign_sets_direction() {
        let img = RgbaImage::from_fn(16, 1, |x, _| image::Rgba([0, 60 + 8 * x as u8, 0, 9]));
        assert_eq!(
            op(&FILTER, json!({"amount": 0}))
                .apply(img.clone())
                .unwrap(),
            img
        );
        let more = op(&FILTER, json!({"amount": 0.5}))
            .apply(img.clone())
            .unwrap();
        let less = op(&FILTER, json!({"amount": -0.5}))
            .apply(img.clone())
            .unwrap();
        assert!(spread(&more) > spread(&img) && spread(&less) < spread(&img));
        let flat = op(&FILTER, json!({"amount": -1}))
            .apply(pattern(4, 4))
            .unwrap();
        assert!(flat
            .pixels()
            .all(|p| p[0] == 128 && p[1] == 128 && p[2] == 128));
        assert!(more.pixels().all(|p| p[3] == 9));
    }
}
