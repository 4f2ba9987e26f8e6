use super::{ColorMatrix, FilterDef, Op};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::LUMA;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "saturation",
    description: "Scales colourfulness around each pixel's Rec.709 luma, so brightness is kept: \
                  v' = luma + factor x (v - luma) for R, G and B; alpha is kept.",
    params: &[ParamSpec {
        name: "factor",
        kind: Kind::Number {
            min: 0.0,
            max: 10.0,
        },
        presence: Presence::Required,
        description: "0 = grayscale (as the grayscale filter), 1 = unchanged, above 1 = more \
                      vivid.",
    }],
    build,
};

/// luma + f x (v - luma) is linear in RGB, so it folds into one matrix: f x I + (1 - f) x L,
/// where every row of L is the luma weights.
fn saturation_matrix(factor: f64) -> [[f64; 3]; 3] {
    std::array::from_fn(|row| {
        std::array::from_fn(|col| {
            let identity = if row == col { factor } else { 0.0 };
            identity + (1.0 - factor) * LUMA[col]
        })
    })
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(ColorMatrix(saturation_matrix(args.num("factor")))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn zero_matches_grayscale_and_one_is_identity() {
        let img = pattern(11, 9);
        let gray = op(&FILTER, json!({"factor": 0}))
            .apply(img.clone())
            .unwrap();
        let by_grayscale = op(&super::super::grayscale::FILTER, json!({}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(gray, by_grayscale);
        let same = op(&FILTER, json!({"factor": 1}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(same, img);
    }

    #[test]
    fn boosts_chroma_around_luma() {
        // Luma of (100, 150, 200) is 0.2126*100 + 0.7152*150 + 0.0722*200 = 142.98.
        let img = RgbaImage::from_pixel(1, 1, image::Rgba([100, 150, 200, 77]));
        let out = op(&FILTER, json!({"factor": 2})).apply(img).unwrap();
        // 2v - 142.98: 57.02, 157.02, 257.02 (clamped).
        assert_eq!(out.get_pixel(0, 0).0, [57, 157, 255, 77]);
        let half = op(&FILTER, json!({"factor": 0.5}))
            .apply(RgbaImage::from_pixel(
                1,
                1,
                image::Rgba([100, 150, 200, 77]),
            ))
            .unwrap();
        // (v + 142.98) / 2: 121.49, 146.49, 171.49.
        assert_eq!(half.get_pixel(0, 0).0, [121, 146, 171, 77]);
    }

    #[test]
    fn refuses_negative_factor() {
        let err = build_err(&FILTER, json!({"factor": -1}));
        assert_eq!(err.param.as_deref(), Some("factor"));
        assert!(err.message.contains("from 0 to 10"), "{}", err.message);
    }
}
