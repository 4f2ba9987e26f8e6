use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::map_channels;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "gamma",
    description: "Gamma correction: each of R, G and B becomes 255 x (v / 255)^(1 / gamma); \
                  alpha is kept.",
    params: &[ParamSpec {
        name: "gamma",
        kind: Kind::Number {
            min: 0.1,
            max: 10.0,
        },
        presence: Presence::Required,
        description: "Above 1 lightens the midtones, below 1 darkens them, 1 = unchanged; black \
                      and white stay put.",
    }],
    build,
};

#[derive(Debug)]
struct Gamma {
    exponent: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Gamma {
        exponent: 1.0 / args.num("gamma"),
    }))
}

impl Op for Gamma {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        // `map_channels` evaluates the curve once per level into a 256-entry table.
        map_channels(&mut image, |v| 255.0 * (v / 255.0).powf(self.exponent));
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn lightens_midtones_and_keeps_ends_and_alpha() {
        let img = RgbaImage::from_fn(4, 1, |x, _| {
            let v = [0, 64, 128, 255][x as usize];
            image::Rgba([v, v, v, 10 * x as u8])
        });
        let out = op(&FILTER, json!({"gamma": 2.0})).apply(img).unwrap();
        // 255 * sqrt(v / 255): 0, 127.9, 180.7, 255.
        let row: Vec<[u8; 4]> = out.pixels().map(|p| p.0).collect();
        assert_eq!(
            row,
            [
                [0, 0, 0, 0],
                [128, 128, 128, 10],
                [181, 181, 181, 20],
                [255, 255, 255, 30]
            ]
        );
        let dark = op(&FILTER, json!({"gamma": 0.5}))
            .apply(RgbaImage::from_pixel(1, 1, image::Rgba([128, 64, 0, 255])))
            .unwrap();
        // 255 * (v / 255)^2: 64.25, 16.06, 0.
        assert_eq!(dark.get_pixel(0, 0).0, [64, 16, 0, 255]);
    }

    #[test]
    fn one_is_identity() {
        let img = pattern(9, 7);
        let out = op(&FILTER, json!({"gamma": 1})).apply(img.clone()).unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn refuses_out_of_range_gamma() {
        let err = build_err(&FILTER, json!({"gamma": 0}));
        assert_eq!(err.param.as_deref(), Some("gamma"));
        assert!(
            err.message
                .contains("must be a number from 0.1 to 10, got 0"),
            "{}",
            err.message
        );
    }
}
