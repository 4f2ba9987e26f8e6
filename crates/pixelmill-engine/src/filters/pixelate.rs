use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{premultiply, unpremultiply};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "pixelate",
    description: "Mosaic: fills each size x size block (from the top-left; blocks at the right \
                  and bottom edges may be smaller) with its average colour, weighted by alpha so \
                  transparent pixels' hidden colours do not count.",
    params: &[ParamSpec {
        name: "size",
        kind: Kind::Integer { min: 2, max: 1024 },
        presence: Presence::DefaultNum(8.0),
        description: "Block side in pixels.",
    }],
    build,
};

#[derive(Debug)]
struct Pixelate(u32);

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Pixelate(args.int("size") as u32)))
}

impl Op for Pixelate {
    fn cost_per_pixel(&self) -> u64 {
        2
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let mut image = image.into_rgba();
        let (w, h) = image.dimensions();
        let size = self.0;
        for by in (0..h).step_by(size as usize) {
            for bx in (0..w).step_by(size as usize) {
                let (xs, ys) = (bx..(bx + size).min(w), by..(by + size).min(h));
                let mut sum = [0f32; 4];
                for y in ys.clone() {
                    for x in xs.clone() {
                        let p = premultiply(image.get_pixel(x, y).0);
                        (0..4).for_each(|c| sum[c] += p[c]);
                    }
                }
                let n = (xs.len() * ys.len()) as f32;
                let average = image::Rgba(unpremultiply(sum.map(|s| s / n)));
                for y in ys {
                    for x in xs.clone() {
                        image.put_pixel(x, y, average);
                    }
                }
            }
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
    fn fills_blocks_with_their_average_including_partial_edges() {
        let img = RgbaImage::from_fn(3, 3, |x, y| {
            let v = (10 * (x + 3 * y)) as u8;
            image::Rgba([v, 100, 200, 255])
        });
        let out = op(&FILTER, json!({"size": 2})).apply(img).unwrap();
        // Top-left block: 0, 10, 30, 40 -> 20. Right column block: 20, 50 -> 35.
        // Bottom row block: 60, 70 -> 65. Corner: 80 alone.
        let reds: Vec<u8> = out.pixels().map(|p| p[0]).collect();
        assert_eq!(reds, [20, 20, 35, 20, 20, 35, 65, 65, 80]);
        assert!(out
            .pixels()
            .all(|p| p[1] == 100 && p[2] == 200 && p[3] == 255));
    }

    #[test]
    fn transparent_pixels_do_not_tint_the_block() {
        let img = RgbaImage::from_fn(2, 2, |x, _| {
            if x == 0 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0])
            }
        });
        let out = op(&FILTER, json!({"size": 2})).apply(img).unwrap();
        assert!(out.pixels().all(|p| p.0 == [255, 0, 0, 128]), "{out:?}");
    }

    #[test]
    fn refuses_one_pixel_blocks() {
        let err = build_err(&FILTER, json!({"size": 1}));
        assert_eq!(err.param.as_deref(), Some("size"));
        assert!(
            err.message.contains("from 2 to 1024, got 1"),
            "{}",
            err.message
        );
    }
}
