use image::RgbaImage;

use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{clamp_u8, premultiply, sobel_magnitude};
use crate::EngineError;

const SIDE: Kind = Kind::Integer { min: 1, max: 16384 };

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "smart_crop",
    description: "Crops to width x height keeping the most interesting region, like libvips' \
                  attention strategy: every window position is scored by the edge energy \
                  (Sobel) plus colour saturation inside it, and the best wins; ties go to the \
                  most central. Sides larger than the image are reduced to it.",
    params: &[
        ParamSpec {
            name: "width",
            kind: SIDE,
            presence: Presence::Required,
            description: "Width of the crop.",
        },
        ParamSpec {
            name: "height",
            kind: SIDE,
            presence: Presence::Required,
            description: "Height of the crop.",
        },
    ],
    build,
};

#[derive(Debug)]
struct SmartCrop {
    width: u32,
    height: u32,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(SmartCrop {
        width: args.int("width") as u32,
        height: args.int("height") as u32,
    }))
}

/// Per-pixel interest: edge strength plus saturation (max - min of the premultiplied
/// channels), both 0..=255, so transparent areas are never interesting.
fn interest(image: &RgbaImage) -> Vec<u32> {
    image
        .pixels()
        .zip(sobel_magnitude(image))
        .map(|(p, edge)| {
            let q = premultiply(p.0);
            let (hi, lo) = (q[0].max(q[1]).max(q[2]), q[0].min(q[1]).min(q[2]));
            u32::from(clamp_u8(f64::from(edge))) + u32::from(clamp_u8(f64::from(hi - lo)))
        })
        .collect()
}

/// Top-left corner of the `cw` x `ch` window of `image` with the highest total interest.
fn best_window(image: &RgbaImage, cw: u32, ch: u32) -> (u32, u32) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (cw, ch) = (cw as usize, ch as usize);
    // Summed-area table, one row and column of zeros in front, so each window sums in O(1).
    let scores = interest(image);
    let mut sat = vec![0u64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u64;
        for x in 0..w {
            row += u64::from(scores[y * w + x]);
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    let at = |x: usize, y: usize| sat[y * (w + 1) + x];
    let mut best = (0u64, i64::MIN, 0, 0);
    for y in 0..=h - ch {
        for x in 0..=w - cw {
            let score = at(x + cw, y + ch) + at(x, y) - at(x + cw, y) - at(x, y + ch);
            // Doubled offsets of the window's centre from the image's, to stay in integers.
            let dx = (2 * x + cw) as i64 - w as i64;
            let dy = (2 * y + ch) as i64 - h as i64;
            let candidate = (score, -(dx * dx + dy * dy), x, y);
            if (candidate.0, candidate.1) > (best.0, best.1) {
                best = candidate;
            }
        }
    }
    (best.2 as u32, best.3 as u32)
}

impl Op for SmartCrop {
    fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        (self.width.min(w), self.height.min(h))
    }

    fn cost_per_pixel(&self) -> u64 {
        // Sobel, saturation and the summed-area table, all over the input.
        12
    }

    fn costs_per_input_pixel(&self) -> bool {
        true
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let image = image.into_rgba();
        let (cw, ch) = self.output_size(image.width(), image.height());
        if (cw, ch) == image.dimensions() {
            return Ok(image.into());
        }
        let (x, y) = best_window(&image, cw, ch);
        Ok(image::imageops::crop_imm(&image, x, y, cw, ch)
            .to_image()
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::imageops::crop_imm;
    use serde_json::json;

    #[test]
    fn keeps_the_busy_region() {
        // Flat grey with a colourful 6x6 checkerboard at (30, 10).
        let img = RgbaImage::from_fn(40, 20, |x, y| {
            if (30..36).contains(&x) && (10..16).contains(&y) {
                if (x + y) % 2 == 0 {
                    image::Rgba([255, 0, 0, 255])
                } else {
                    image::Rgba([0, 0, 255, 255])
                }
            } else {
                image::Rgba([128, 128, 128, 255])
            }
        });
        let crop = op(&FILTER, json!({"width": 10, "height": 10}));
        let out = crop.apply(img.clone()).unwrap();
        // The interest (the patch plus its one-pixel Sobel rim) spans x 29..=36, y 9..=16; of
        // the windows holding all of it, (27, 7) is the most central.
        assert_eq!(out, crop_imm(&img, 27, 7, 10, 10).to_image());
    }

    #[test]
    fn nothing_of_interest_gives_a_centred_crop() {
        // Fully transparent, so hidden colour noise must not count as detail.
        let img = RgbaImage::from_fn(30, 20, |x, y| {
            image::Rgba([
                (x * 97 % 256) as u8,
                (y * 57 % 256) as u8,
                (x * y % 256) as u8,
                0,
            ])
        });
        let out = op(&FILTER, json!({"width": 10, "height": 10}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(out, crop_imm(&img, 10, 5, 10, 10).to_image());
    }

    #[test]
    fn sides_beyond_the_image_are_reduced() {
        let mut img = RgbaImage::from_pixel(30, 20, image::Rgba([0, 0, 0, 255]));
        img.put_pixel(3, 17, image::Rgba([255, 255, 0, 255]));
        let crop = op(&FILTER, json!({"width": 100, "height": 5}));
        assert_eq!(crop.output_size(30, 20), (30, 5));
        let out = crop.apply(img.clone()).unwrap();
        // The yellow dot and its rim span rows 16..=18: windows from row 14 or 15 hold them, and
        // 14 is the more central.
        assert_eq!(out.dimensions(), (30, 5));
        assert_eq!(out.get_pixel(3, 17 - 14).0, [255, 255, 0, 255]);
        let whole = op(&FILTER, json!({"width": 30, "height": 20}));
        assert_eq!(whole.apply(img.clone()).unwrap(), img);
    }

    #[test]
    fn refuses_empty_sizes() {
        let err = build_err(&FILTER, json!({"width": 0, "height": 10}));
        assert_eq!(err.param.as_deref(), Some("width"));
        assert!(
            err.message.contains("from 1 to 16384, got 0"),
            "{}",
            err.message
        );
        let err = build_err(&FILTER, json!({"width": 10}));
        assert!(err.message.contains("missing required parameter `height`"));
    }
}
