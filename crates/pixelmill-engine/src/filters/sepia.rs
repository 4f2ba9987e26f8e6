use super::{ColorMatrix, FilterDef, Op};
use crate::params::{Args, ParamError};

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "sepia",
    description: "Applies the classic sepia tone matrix; alpha is kept.",
    params: &[],
    build,
};

const MATRIX: [[f64; 3]; 3] = [
    [0.393, 0.769, 0.189],
    [0.349, 0.686, 0.168],
    [0.272, 0.534, 0.131],
];

fn build(_: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(ColorMatrix(MATRIX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::op;
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn tones_grey_warm_and_keeps_alpha() {
        let img = RgbaImage::from_fn(3, 1, |x, _| image::Rgba([100, 100, 100, 40 * x as u8]));
        let out = op(&FILTER, json!({})).apply(img).unwrap();
        for (x, _, px) in out.enumerate_pixels() {
            // 100 * row sums: 1.351, 1.203, 0.937.
            assert_eq!(px.0, [135, 120, 94, 40 * x as u8]);
        }
        let white = RgbaImage::from_pixel(1, 1, image::Rgba([255, 255, 255, 255]));
        assert_eq!(
            op(&FILTER, json!({}))
                .apply(white)
                .unwrap()
                .get_pixel(0, 0)
                .0,
            [255, 255, 239, 255]
        );
    }
}
