use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::map_channels;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "posterize",
    description: "Reduces R, G and B each to `levels` evenly spaced values (0 and 255 \
                  included), rounding to the nearest; alpha is kept.",
    params: &[ParamSpec {
        name: "levels",
        kind: Kind::Integer { min: 2, max: 256 },
        presence: Presence::DefaultNum(4.0),
        description: "Values per channel; 2 = pure primaries, 256 = unchanged.",
    }],
    build,
};

#[derive(Debug)]
struct Posterize {
    steps: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Posterize {
        steps: (args.int("levels") - 1) as f64,
    }))
}

impl Op for Posterize {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        let steps = self.steps;
        map_channels(&mut image, |v| (v / 255.0 * steps).round() * 255.0 / steps);
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
    fn snaps_to_even_levels() {
        let img = RgbaImage::from_fn(6, 1, |x, _| {
            let v = [0, 42, 43, 127, 128, 255][x as usize];
            image::Rgba([v, v, 255 - v, 33])
        });
        let four = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        // Levels 0, 85, 170, 255; 42.5 and 127.5 are the boundaries.
        let greens: Vec<u8> = four.pixels().map(|p| p[1]).collect();
        assert_eq!(greens, [0, 0, 85, 85, 170, 255]);
        assert!(four.pixels().all(|p| p[3] == 33 && p[0] == p[1]));
        let two = op(&FILTER, json!({"levels": 2})).apply(img).unwrap();
        let reds: Vec<u8> = two.pixels().map(|p| p[0]).collect();
        assert_eq!(reds, [0, 0, 0, 0, 255, 255]);
        let blues: Vec<u8> = two.pixels().map(|p| p[2]).collect();
        assert_eq!(blues, [255, 255, 255, 255, 0, 0]);
    }

    #[test]
    fn all_levels_is_identity() {
        let img = pattern(16, 16);
        let out = op(&FILTER, json!({"levels": 256}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn refuses_a_single_level() {
        let err = build_err(&FILTER, json!({"levels": 1}));
        assert_eq!(err.param.as_deref(), Some("levels"));
        assert!(
            err.message.contains("from 2 to 256, got 1"),
            "{}",
            err.message
        );
    }
}
