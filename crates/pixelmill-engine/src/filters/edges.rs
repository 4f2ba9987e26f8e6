use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, ParamError};
use crate::pixels::{clamp_u8, sobel_magnitude};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "edges",
    description: "Sobel edge detection: grey level = gradient magnitude of the luma (a hard step \
                  of height v gives v), computed on premultiplied alpha; alpha is kept.",
    params: &[],
    build,
};

#[derive(Debug)]
struct Edges;

fn build(_: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Edges))
}

impl Op for Edges {
    fn cost_per_pixel(&self) -> u64 {
        // Two 3x3 passes over one channel plus luma and magnitude; measured at about 40% of a
        // sigma-2 `blur` (cost 26).
        10
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let mut image = image.into_rgba();
        let magnitude = sobel_magnitude(&image);
        for (px, m) in image.pixels_mut().zip(magnitude) {
            let v = clamp_u8(f64::from(m));
            px.0 = [v, v, v, px[3]];
        }
        Ok(image.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn step_gives_its_height_and_flat_areas_black() {
        let img = RgbaImage::from_fn(6, 4, |x, _| {
            let v = if x < 3 { 0 } else { 200 };
            image::Rgba([v, v / 2, v / 4, 255])
        });
        let out = op(&FILTER, json!({})).apply(img).unwrap();
        // Luma of (200, 100, 50) is 42.52 + 71.52 + 3.61 = 117.65.
        for y in 0..4 {
            let row: Vec<u8> = (0..6).map(|x| out.get_pixel(x, y)[0]).collect();
            assert_eq!(row, [0, 0, 118, 118, 0, 0], "row {y}");
        }
        assert!(out
            .pixels()
            .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255));
    }

    #[test]
    fn hidden_colours_of_transparent_pixels_make_no_edges() {
        // Fully transparent on the left with wildly different hidden colours; a flat
        // half-transparent grey on the right.
        let img = RgbaImage::from_fn(8, 5, |x, y| {
            if x < 4 {
                image::Rgba([(x * 60) as u8, (y * 60) as u8, 0, 0])
            } else {
                image::Rgba([100, 100, 100, 128])
            }
        });
        let out = op(&FILTER, json!({})).apply(img).unwrap();
        for (x, _, p) in out.enumerate_pixels() {
            match x {
                0..=2 => assert_eq!(p.0, [0, 0, 0, 0]),
                5..=7 => assert_eq!(p.0, [0, 0, 0, 128]),
                // The silhouette itself is an edge: premultiplied grey 50.2 against black.
                _ => assert_eq!(p[0], 50),
            }
        }
    }

    #[test]
    fn refuses_parameters() {
        let err = build_err(&FILTER, json!({"sigma": 1}));
        assert!(
            err.message.contains("edges takes no parameters"),
            "{}",
            err.message
        );
    }
}
