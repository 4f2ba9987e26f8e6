use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, ParamError};
use crate::pixels::map_channels;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "invert",
    description: "Inverts R, G and B (255 - value); alpha is kept.",
    params: &[],
    build,
};

#[derive(Debug)]
struct Invert;

fn build(_: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Invert))
}

impl Op for Invert {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_channels(&mut image, |c| 255.0 - c);
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{op, pattern};
    use serde_json::json;

    #[test]
    fn inverts_rgb_only() {
        let img = pattern(6, 6);
        let out = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        for (src, dst) in img.pixels().zip(out.pixels()) {
            assert_eq!(dst.0, [255 - src[0], 255 - src[1], 255 - src[2], src[3]]);
        }
    }
}
