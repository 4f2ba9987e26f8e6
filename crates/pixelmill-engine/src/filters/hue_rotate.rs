use super::{ColorMatrix, FilterDef, Op};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::LUMA;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "hue_rotate",
    description: "Rotates hue around the grey axis, keeping each pixel's Rec.709 luma (the \
                  chroma plane of Y'CbCr is rotated); greys and alpha are kept.",
    params: &[ParamSpec {
        name: "degrees",
        kind: Kind::Number {
            min: -360.0,
            max: 360.0,
        },
        presence: Presence::Required,
        description: "Angle; positive turns red towards yellow and green, 0 or 360 = unchanged.",
    }],
    build,
};

/// Rec.709 RGB to (Y, Cb, Cr), chroma unscaled by the usual 0.5 (it cancels on the way back).
fn to_ycc([r, g, b]: [f64; 3]) -> [f64; 3] {
    let y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b;
    [y, (b - y) / (1.0 - LUMA[2]), (r - y) / (1.0 - LUMA[0])]
}

fn from_ycc([y, cb, cr]: [f64; 3]) -> [f64; 3] {
    let r = y + cr * (1.0 - LUMA[0]);
    let b = y + cb * (1.0 - LUMA[2]);
    [r, (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1], b]
}

/// The whole transform is linear, so the matrix's columns are the images of the unit vectors.
fn rotation_matrix(degrees: f64) -> [[f64; 3]; 3] {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let columns: [[f64; 3]; 3] = std::array::from_fn(|i| {
        let mut unit = [0.0; 3];
        unit[i] = 1.0;
        let [y, cb, cr] = to_ycc(unit);
        from_ycc([y, cos * cb - sin * cr, sin * cb + cos * cr])
    });
    std::array::from_fn(|row| std::array::from_fn(|col| columns[col][row]))
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(ColorMatrix(rotation_matrix(args.num("degrees")))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use crate::pixels::luma;
    use image::RgbaImage;
    use serde_json::json;

    fn rotate(degrees: f64, rgba: [u8; 4]) -> [u8; 4] {
        let img = RgbaImage::from_pixel(1, 1, image::Rgba(rgba));
        op(&FILTER, json!({ "degrees": degrees }))
            .apply(img)
            .unwrap()
            .get_pixel(0, 0)
            .0
    }

    #[test]
    fn zero_and_full_turns_are_identity_and_greys_stay() {
        let img = pattern(10, 10);
        for degrees in [0.0, 360.0, -360.0] {
            let out = op(&FILTER, json!({ "degrees": degrees }))
                .apply(img.clone())
                .unwrap();
            assert_eq!(out, img, "{degrees}");
        }
        assert_eq!(rotate(123.0, [90, 90, 90, 5]), [90, 90, 90, 5]);
    }

    #[test]
    fn turns_red_towards_green_and_back() {
        let warm = rotate(60.0, [200, 40, 40, 255]);
        assert!(warm[1] > 40 && warm[0] > warm[2], "{warm:?}");
        let green = rotate(120.0, [200, 40, 40, 255]);
        assert!(green[1] > green[0] && green[1] > green[2], "{green:?}");
        // Half a turn negates chroma: 2 x luma - v, with luma 110.63.
        assert_eq!(rotate(180.0, [150, 100, 100, 9]), [71, 121, 121, 9]);
        let there = rotate(-75.0, [120, 110, 90, 255]);
        let back = rotate(75.0, there);
        for c in 0..3 {
            assert!(back[c].abs_diff([120, 110, 90][c]) <= 1, "{back:?}");
        }
    }

    #[test]
    fn keeps_luma_in_gamut() {
        for degrees in [30.0, 90.0, 200.0, -45.0] {
            let before = [130, 120, 100];
            let [r, g, b, _] = rotate(degrees, [130, 120, 100, 255]);
            assert!((luma([r, g, b]) - luma(before)).abs() < 1.0, "{degrees}");
        }
    }

    #[test]
    fn refuses_more_than_a_turn() {
        let err = build_err(&FILTER, json!({"degrees": 400}));
        assert_eq!(err.param.as_deref(), Some("degrees"));
        assert!(err.message.contains("from -360 to 360"), "{}", err.message);
    }
}
