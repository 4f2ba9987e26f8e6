use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, ParamError};
use crate::pixels::{clamp_u8, luma, map_rgb};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "grayscale",
    description: "Replaces colour with Rec.709 luma (0.2126 R + 0.7152 G + 0.0722 B); alpha is \
                  kept.",
    params: &[],
    build,
};

#[derive(Debug)]
struct Grayscale;

fn build(_: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Grayscale))
}

impl Op for Grayscale {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_rgb(&mut image, |rgb| [clamp_u8(luma(rgb)); 3]);
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{op, pattern};
    use serde_json::json;

    #[test]
    fn equal_channels_from_rec709_and_alpha_kept() {
        let img = pattern(9, 9);
        let out = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        for (src, dst) in img.pixels().zip(out.pixels()) {
            let y = 0.2126 * f64::from(src[0])
                + 0.7152 * f64::from(src[1])
                + 0.0722 * f64::from(src[2]);
            assert_eq!(dst[0], dst[1]);
            assert_eq!(dst[1], dst[2]);
            assert!((f64::from(dst[0]) - y).abs() <= 0.5, "{src:?} -> {dst:?}");
            assert_eq!(dst[3], src[3]);
        }
        // Pure primaries land on their coefficients.
        assert_eq!(clamp_u8(luma([0, 255, 0])), 182);
        assert_eq!(clamp_u8(luma([0, 0, 255])), 18);
    }
}
