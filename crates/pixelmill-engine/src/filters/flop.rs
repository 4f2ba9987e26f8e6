use image::{imageops, DynamicImage};

use super::{FilterDef, Op};
use crate::bitmap::{on_buffer, Bitmap};
use crate::params::{Args, ParamError};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "flop",
    description: "Mirrors the image horizontally (left becomes right).",
    params: &[],
    build,
};

#[derive(Debug)]
struct Flop;

fn build(_: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Flop))
}

impl Op for Flop {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply_deep(&self, image: &DynamicImage) -> Option<Result<DynamicImage, EngineError>> {
        Some(Ok(image.fliph()))
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(on_buffer!(image, mut image => {
            imageops::flip_horizontal_in_place(&mut image);
            image
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{op, pattern};
    use serde_json::json;

    #[test]
    fn mirrors_columns_and_twice_is_identity() {
        let img = pattern(5, 4);
        let flop = op(&FILTER, json!({}));
        let once = flop.apply(img.clone()).unwrap();
        assert_eq!(once.get_pixel(0, 1), img.get_pixel(4, 1));
        assert_eq!(once.get_pixel(3, 2), img.get_pixel(1, 2));
        assert_eq!(flop.apply(once).unwrap(), img);
    }
}
