use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::premultiply;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "trim",
    description: "Crops away uniform borders: the colour of the top-left pixel, within \
                  tolerance on every channel (compared premultiplied, so all fully transparent \
                  pixels match each other). An image that is all border is left as it is.",
    params: &[ParamSpec {
        name: "tolerance",
        kind: Kind::Integer { min: 0, max: 255 },
        presence: Presence::DefaultNum(10.0),
        description: "Largest per-channel difference from the border colour still counted as \
                      border; 0 = exact match.",
    }],
    build,
};

#[derive(Debug)]
struct Trim {
    tolerance: f32,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Trim {
        tolerance: args.int("tolerance") as f32,
    }))
}

impl Op for Trim {
    // The trimmed size depends on the pixels, so it cannot be known before running. The input
    // size is a safe upper bound for the limit check and the cost estimate: trimming only
    // shrinks.
    fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        (width, height)
    }

    fn cost_per_pixel(&self) -> u64 {
        2
    }

    fn costs_per_input_pixel(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let image = image.into_rgba();
        if image.width() == 0 || image.height() == 0 {
            return Ok(image.into());
        }
        let border = premultiply(image.get_pixel(0, 0).0);
        let is_content = |x: u32, y: u32| {
            let p = premultiply(image.get_pixel(x, y).0);
            // Half a level of slack absorbs the rounding of premultiplication.
            (0..4).any(|c| (p[c] - border[c]).abs() > self.tolerance + 0.5)
        };
        let (w, h) = image.dimensions();
        let mut bounds: Option<(u32, u32, u32, u32)> = None;
        for y in 0..h {
            for x in 0..w {
                if is_content(x, y) {
                    let (x0, y0, x1, y1) = bounds.unwrap_or((x, y, x, y));
                    bounds = Some((x0.min(x), y0.min(y), x1.max(x), y1.max(y)));
                }
            }
        }
        Ok(match bounds {
            Some((x0, y0, x1, y1)) => {
                image::imageops::crop_imm(&image, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image()
            }
            None => image,
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use image::RgbaImage;
    use serde_json::json;

    /// `inner` pasted at (3, 2) on a 12 x 9 canvas of `border`.
    fn framed(border: [u8; 4], inner: &RgbaImage) -> RgbaImage {
        let mut img = RgbaImage::from_pixel(12, 9, image::Rgba(border));
        image::imageops::replace(&mut img, inner, 3, 2);
        img
    }

    #[test]
    fn cuts_the_border_down_to_the_content() {
        let inner = pattern(5, 4);
        let img = framed([250, 250, 250, 255], &inner);
        let trim = op(&FILTER, json!({"tolerance": 0}));
        assert_eq!(trim.output_size(12, 9), (12, 9));
        assert_eq!(trim.apply(img).unwrap(), inner);
    }

    #[test]
    fn tolerance_absorbs_near_border_noise() {
        let mut img = framed(
            [250, 250, 250, 255],
            &RgbaImage::from_pixel(4, 4, image::Rgba([0, 0, 0, 255])),
        );
        img.put_pixel(11, 8, image::Rgba([244, 250, 250, 255]));
        let loose = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        assert_eq!(loose.dimensions(), (4, 4));
        // At tolerance 5 the off-by-6 corner counts as content and widens the box.
        let strict = op(&FILTER, json!({"tolerance": 5})).apply(img).unwrap();
        assert_eq!(strict.dimensions(), (9, 7));
    }

    #[test]
    fn transparent_borders_match_whatever_their_hidden_colour() {
        let inner = RgbaImage::from_pixel(2, 3, image::Rgba([10, 200, 10, 255]));
        let mut img = framed([0, 0, 0, 0], &inner);
        img.put_pixel(0, 8, image::Rgba([255, 255, 255, 0]));
        let out = op(&FILTER, json!({"tolerance": 0})).apply(img).unwrap();
        assert_eq!(out, inner);
    }

    #[test]
    fn all_border_is_left_alone() {
        let img = RgbaImage::from_pixel(4, 3, image::Rgba([1, 2, 3, 4]));
        assert_eq!(op(&FILTER, json!({})).apply(img.clone()).unwrap(), img);
    }

    #[test]
    fn refuses_tolerance_above_255() {
        let err = build_err(&FILTER, json!({"tolerance": 256}));
        assert_eq!(err.param.as_deref(), Some("tolerance"));
        assert!(
            err.message.contains("from 0 to 255, got 256"),
            "{}",
            err.message
        );
    }
}
