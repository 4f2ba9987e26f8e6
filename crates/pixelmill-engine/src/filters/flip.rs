use image::{imageops, DynamicImage};

use super::{FilterDef, Op};
use crate::bitmap::{on_buffer, Bitmap};
use crate::params::{Args, ParamError};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "flip",
    description: "Mirrors the image vertically (top becomes bottom).",
    params: &[],
    build,
};

#[derive(Debug)]
struct Flip;

fn build(_: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Flip))
}

impl Op for Flip {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply_deep(&self, image: &DynamicImage) -> Option<Result<DynamicImage, EngineError>> {
        Some(Ok(image.flipv()))
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        Ok(on_buffer!(image, mut image => {
            imageops::flip_vertical_in_place(&mut image);
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
    fn mirrors_rows_and_twice_is_identity() {
        let img = pattern(5, 4);
        let flip = op(&FILTER, json!({}));
        let once = flip.apply(img.clone()).unwrap();
        assert_eq!(once.get_pixel(1, 0), img.get_pixel(1, 3));
        assert_eq!(once.get_pixel(4, 2), img.get_pixel(4, 1));
        assert_eq!(flip.apply(once).unwrap(), img);
    }
}
