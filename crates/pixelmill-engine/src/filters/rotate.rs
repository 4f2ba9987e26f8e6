use image::{imageops, DynamicImage};

use super::{FilterDef, Op};
use crate::bitmap::{on_buffer, Bitmap};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "rotate",
    description: "Rotates clockwise by a multiple of 90 degrees (negative = anticlockwise). \
                  Other angles are rejected: they would need resampling onto a larger canvas.",
    params: &[ParamSpec {
        name: "degrees",
        kind: Kind::Integer {
            min: -360,
            max: 360,
        },
        presence: Presence::Required,
        description: "A multiple of 90: -360, -270, -180, -90, 0, 90, 180, 270 or 360.",
    }],
    build,
};

/// Number of clockwise quarter turns, 0..=3.
#[derive(Debug)]
struct Rotate(u8);

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let degrees = args.int("degrees");
    if degrees % 90 != 0 {
        return Err(ParamError::param(
            "degrees",
            format!(
                "parameter `degrees` must be a multiple of 90 (arbitrary angles are not \
                 supported), got {degrees}; use 90, 180 or 270"
            ),
        ));
    }
    Ok(Box::new(Rotate((degrees.rem_euclid(360) / 90) as u8)))
}

impl Op for Rotate {
    fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        if self.0 % 2 == 1 {
            (h, w)
        } else {
            (w, h)
        }
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply_deep(&self, image: &DynamicImage) -> Option<Result<DynamicImage, EngineError>> {
        Some(Ok(match self.0 {
            1 => image.rotate90(),
            2 => image.rotate180(),
            3 => image.rotate270(),
            _ => image.clone(),
        }))
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(on_buffer!(image, image => match self.0 {
            1 => imageops::rotate90(&image),
            2 => imageops::rotate180(&image),
            3 => imageops::rotate270(&image),
            _ => image,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use serde_json::json;

    #[test]
    fn four_quarter_turns_are_identity() {
        let img = pattern(7, 3);
        let quarter = op(&FILTER, json!({"degrees": 90}));
        let mut out = img.clone();
        for _ in 0..4 {
            out = quarter.apply(out).unwrap();
        }
        assert_eq!(out, img);
    }

    #[test]
    fn quarter_turn_moves_top_left_to_top_right() {
        let img = pattern(7, 3);
        let out = op(&FILTER, json!({"degrees": 90}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(out.dimensions(), (3, 7));
        assert_eq!(out.get_pixel(2, 0), img.get_pixel(0, 0));
        let back = op(&FILTER, json!({"degrees": -90})).apply(out).unwrap();
        assert_eq!(back, img);
    }

    #[test]
    fn rejects_non_right_angles() {
        let err = build_err(&FILTER, json!({"degrees": 45}));
        assert_eq!(err.param.as_deref(), Some("degrees"));
        assert!(err.message.contains("multiple of 90"));
    }
}
