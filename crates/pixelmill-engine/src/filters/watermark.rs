use std::sync::{Arc, Mutex, PoisonError};

use image::RgbaImage;

use super::{resize, FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{premultiply, unpremultiply};
use crate::EngineError;

const OFFSET: Kind = Kind::Integer {
    min: -16384,
    max: 16384,
};

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "watermark",
    description: "Draws another stored image of yours over this one (source over, premultiplied \
                  alpha), placed by `gravity` and the offsets, or tiled over the whole image. \
                  Whatever falls outside the image is clipped.",
    params: &[
        ParamSpec {
            name: "image",
            kind: Kind::Text { max_len: 64 },
            presence: Presence::Required,
            description: "Id of the overlay image, as returned by POST /v1/images.",
        },
        ParamSpec {
            name: "gravity",
            kind: Kind::Enum(&[
                "north",
                "northeast",
                "east",
                "southeast",
                "south",
                "southwest",
                "west",
                "northwest",
                "center",
            ]),
            presence: Presence::DefaultStr("southeast"),
            description: "The edge or corner the overlay sits against; with `tile`, where one \
                          tile sits.",
        },
        ParamSpec {
            name: "offset_x",
            kind: OFFSET,
            presence: Presence::DefaultNum(0.0),
            description: "Pixels inwards from the gravity's left or right edge (rightwards for \
                          north, south and center); with `tile`, the gap between tiles.",
        },
        ParamSpec {
            name: "offset_y",
            kind: OFFSET,
            presence: Presence::DefaultNum(0.0),
            description: "Pixels inwards from the gravity's top or bottom edge (downwards for \
                          east, west and center); with `tile`, the gap between rows of tiles.",
        },
        ParamSpec {
            name: "opacity",
            kind: Kind::Number { min: 0.0, max: 1.0 },
            presence: Presence::DefaultNum(1.0),
            description: "Multiplies the overlay's alpha: 0 is invisible, 1 as stored.",
        },
        ParamSpec {
            name: "tile",
            kind: Kind::Boolean,
            presence: Presence::DefaultBool(false),
            description: "Repeat the overlay over the whole image.",
        },
        ParamSpec {
            name: "scale",
            kind: Kind::Number { min: 0.0, max: 1.0 },
            presence: Presence::Optional,
            description: "Overlay width as a fraction of the image width, more than 0; the \
                          height keeps the overlay's aspect ratio. Absent: its own size.",
        },
    ],
    build,
};

/// Where the overlay goes on one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Align {
    Start,
    Center,
    End,
}

#[derive(Debug)]
struct Watermark {
    image: String,
    horizontal: Align,
    vertical: Align,
    offset: (i64, i64),
    opacity: f32,
    tile: bool,
    scale: Option<f64>,
    overlay: Option<Arc<RgbaImage>>,
    /// The overlay at the last width `scale` asked for: every frame of an animation asks for
    /// the same one, so it is resized once.
    scaled: Mutex<Option<Arc<RgbaImage>>>,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let image = args.str("image").trim();
    if image.is_empty() {
        return Err(ParamError::param(
            "image",
            "parameter `image` is empty; give the id of the overlay (img_…) as returned by \
             POST /v1/images"
                .into(),
        ));
    }
    let scale = args.opt_num("scale");
    if scale == Some(0.0) {
        return Err(ParamError::param(
            "scale",
            "parameter `scale` must be more than 0 (a fraction of the image width, up to 1), \
             got 0; leave it out to keep the overlay's own size"
                .into(),
        ));
    }
    let tile = args.bool("tile");
    let offset = (args.int("offset_x"), args.int("offset_y"));
    for (name, value) in [("offset_x", offset.0), ("offset_y", offset.1)] {
        if tile && value < 0 {
            return Err(ParamError::param(
                name,
                format!(
                    "with tile=true, `{name}` is the gap between tiles and must be 0 or more, \
                     got {value}"
                ),
            ));
        }
    }
    let gravity = args.str("gravity");
    let horizontal = match gravity {
        g if g.ends_with("west") => Align::Start,
        g if g.ends_with("east") => Align::End,
        _ => Align::Center,
    };
    let vertical = match gravity {
        g if g.starts_with("north") => Align::Start,
        g if g.starts_with("south") => Align::End,
        _ => Align::Center,
    };
    Ok(Box::new(Watermark {
        image: image.to_owned(),
        horizontal,
        vertical,
        offset,
        opacity: args.num("opacity") as f32,
        tile,
        scale,
        overlay: None,
        scaled: Mutex::new(None),
    }))
}

/// The overlay's first column (or row) on one axis: `offset` inwards from the `align` edge, or
/// right of (below) the centred position.
fn place(align: Align, base: u32, overlay: u32, offset: i64) -> i64 {
    let free = i64::from(base) - i64::from(overlay);
    match align {
        Align::Start => offset,
        Align::Center => free.div_euclid(2) + offset,
        Align::End => free - offset,
    }
}

/// The first column (or row) of every tile that may reach into `0..base`: tiles `size` long with
/// `gap` between them, one of them at `anchor`.
fn tiles(anchor: i64, size: u32, gap: i64, base: u32) -> Vec<i64> {
    let period = i64::from(size) + gap;
    let mut first = anchor.rem_euclid(period);
    if first > 0 {
        first -= period;
    }
    (first..i64::from(base)).step_by(period as usize).collect()
}

/// Porter-Duff source over on premultiplied colour: out = src + dst × (1 − src alpha).
fn over(dst: [u8; 4], src: [u8; 4], opacity: f32) -> [u8; 4] {
    if src[3] == 0 {
        return dst;
    }
    let s = premultiply(src).map(|c| c * opacity);
    let d = premultiply(dst);
    let keep = 1.0 - s[3] / 255.0;
    unpremultiply(std::array::from_fn(|c| s[c] + d[c] * keep))
}

/// Composites `overlay` with its top-left corner at (`x`, `y`), clipped to `base`.
fn draw(base: &mut RgbaImage, overlay: &RgbaImage, (x, y): (i64, i64), opacity: f32) {
    let (bw, bh) = (i64::from(base.width()), i64::from(base.height()));
    let (ow, oh) = (i64::from(overlay.width()), i64::from(overlay.height()));
    let (x0, x1) = (x.max(0), (x + ow).min(bw));
    let (y0, y1) = (y.max(0), (y + oh).min(bh));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let row_bytes = |x0: i64, x1: i64, width: i64, row: i64| {
        (((row * width + x0) * 4) as usize)..(((row * width + x1) * 4) as usize)
    };
    let src = overlay.as_raw();
    let base: &mut [u8] = base;
    for row in y0..y1 {
        let dst = &mut base[row_bytes(x0, x1, bw, row)];
        let src = &src[row_bytes(x0 - x, x1 - x, ow, row - y)];
        for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
            let blended = over([d[0], d[1], d[2], d[3]], [s[0], s[1], s[2], s[3]], opacity);
            d.copy_from_slice(&blended);
        }
    }
}

impl Watermark {
    /// The overlay at the size to draw on an image `width` wide.
    fn overlay_for(&self, width: u32) -> Result<Arc<RgbaImage>, EngineError> {
        let overlay = self.overlay.as_ref().ok_or_else(|| {
            EngineError::InvalidOperation(format!(
                "watermark: the overlay image {} could not be loaded; check that it exists and \
                 submit again",
                self.image
            ))
        })?;
        let Some(scale) = self.scale else {
            return Ok(overlay.clone());
        };
        let target = ((f64::from(width) * scale).round() as u32).max(1);
        let mut scaled = self.scaled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hit) = scaled.as_ref().filter(|s| s.width() == target) {
            return Ok(hit.clone());
        }
        let resized = Arc::new(resize::to_width(overlay.as_ref().clone(), target)?);
        *scaled = Some(resized.clone());
        Ok(resized)
    }
}

impl Op for Watermark {
    fn cost_per_pixel(&self) -> u64 {
        2
    }

    fn referenced_images(&self) -> &[String] {
        std::slice::from_ref(&self.image)
    }

    fn attach_image(&mut self, _id: &str, image: Arc<RgbaImage>) {
        self.overlay = Some(image);
        *self
            .scaled
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let mut image = image.into_rgba();
        let overlay = self.overlay_for(image.width())?;
        let (w, h) = image.dimensions();
        let (ow, oh) = overlay.dimensions();
        let (xs, ys) = if self.tile {
            (
                tiles(place(self.horizontal, w, ow, 0), ow, self.offset.0, w),
                tiles(place(self.vertical, h, oh, 0), oh, self.offset.1, h),
            )
        } else {
            (
                vec![place(self.horizontal, w, ow, self.offset.0)],
                vec![place(self.vertical, h, oh, self.offset.1)],
            )
        };
        for &y in &ys {
            for &x in &xs {
                draw(&mut image, &overlay, (x, y), self.opacity);
            }
        }
        Ok(image.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern, TestOp};
    use image::Rgba;
    use serde_json::json;

    const RED: [u8; 4] = [255, 0, 0, 255];
    const GREY: [u8; 4] = [100, 100, 100, 255];

    fn watermark(params: serde_json::Value, overlay: RgbaImage) -> TestOp {
        let mut params = params;
        params["image"] = json!("img_overlay");
        let mut op = op(&FILTER, params);
        op.attach_image("img_overlay", Arc::new(overlay));
        op
    }

    fn solid(w: u32, h: u32, px: [u8; 4]) -> RgbaImage {
        RgbaImage::from_pixel(w, h, Rgba(px))
    }

    /// The smallest rectangle (x, y, width, height) holding every pixel that differs from `px`.
    fn changed(image: &RgbaImage, px: [u8; 4]) -> Option<(u32, u32, u32, u32)> {
        let hits: Vec<(u32, u32)> = image
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 != px)
            .map(|(x, y, _)| (x, y))
            .collect();
        let x0 = hits.iter().map(|h| h.0).min()?;
        let y0 = hits.iter().map(|h| h.1).min()?;
        let x1 = hits.iter().map(|h| h.0).max()?;
        let y1 = hits.iter().map(|h| h.1).max()?;
        assert_eq!(
            hits.len() as u32,
            (x1 - x0 + 1) * (y1 - y0 + 1),
            "not a rectangle"
        );
        Some((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    }

    #[test]
    fn gravity_and_offsets_place_the_overlay() {
        // A 3x2 overlay on a 10x8 image, 1 px in from the side and 2 px from the top or bottom.
        for (gravity, x, y) in [
            ("northwest", 1, 2),
            ("north", 4, 2),
            ("northeast", 6, 2),
            ("west", 1, 5),
            ("center", 4, 5),
            ("east", 6, 5),
            ("southwest", 1, 4),
            ("south", 4, 4),
            ("southeast", 6, 4),
        ] {
            let op = watermark(
                json!({"gravity": gravity, "offset_x": 1, "offset_y": 2}),
                solid(3, 2, RED),
            );
            let out = op.apply(solid(10, 8, GREY)).unwrap();
            assert_eq!(changed(&out, GREY), Some((x, y, 3, 2)), "{gravity}");
            assert_eq!(out.get_pixel(x, y).0, RED, "{gravity}");
        }
        // The default is the bottom-right corner, flush.
        let out = watermark(json!({}), solid(3, 2, RED))
            .apply(solid(10, 8, GREY))
            .unwrap();
        assert_eq!(changed(&out, GREY), Some((7, 6, 3, 2)));
    }

    #[test]
    fn opacity_blends_source_over() {
        let out = watermark(json!({"opacity": 0.5}), solid(1, 1, [200, 0, 0, 255]))
            .apply(solid(1, 1, GREY))
            .unwrap();
        // 0.5 × 200 + 0.5 × 100 = 150; 0 + 0.5 × 100 = 50; alpha 127.5 + 0.5 × 255 = 255.
        assert_eq!(out.get_pixel(0, 0).0, [150, 50, 50, 255]);
        let out = watermark(json!({"opacity": 0}), solid(1, 1, RED))
            .apply(solid(1, 1, GREY))
            .unwrap();
        assert_eq!(out.get_pixel(0, 0).0, GREY);
        let out = watermark(json!({}), solid(1, 1, RED))
            .apply(solid(1, 1, GREY))
            .unwrap();
        assert_eq!(out.get_pixel(0, 0).0, RED);
    }

    #[test]
    fn translucent_overlays_composite_over_translucent_bases() {
        let over = |base: [u8; 4], overlay: [u8; 4]| {
            watermark(json!({}), solid(1, 1, overlay))
                .apply(solid(1, 1, base))
                .unwrap()
                .get_pixel(0, 0)
                .0
        };
        // Premultiplied: src (128, 0, 0, 128) + dst (0, 0, 128, 128) × 127/255 = (128, 0, 63.75,
        // 191.75), which is (170, 0, 85, 192) straight.
        assert_eq!(over([0, 0, 255, 128], [255, 0, 0, 128]), [170, 0, 85, 192]);
        // Over nothing, the overlay is itself; a transparent overlay changes nothing, not even
        // the hidden colour of a transparent base.
        assert_eq!(over([0, 0, 0, 0], [10, 20, 30, 40]), [10, 20, 30, 40]);
        assert_eq!(over([1, 2, 3, 0], [9, 9, 9, 0]), [1, 2, 3, 0]);
        // A transparent base pixel's hidden colour does not tint a translucent overlay.
        assert_eq!(over([255, 255, 255, 0], [0, 0, 200, 100]), [0, 0, 200, 100]);
    }

    #[test]
    fn tiles_repeat_with_gaps_anchored_at_the_gravity() {
        // 2x1 tiles (A then B) with 1 px gaps, one tile flush with the bottom-right corner of a
        // 10x5 image: columns repeat A, B, gap from x = 2, rows tile, gap from y = 0.
        const A: [u8; 4] = [255, 0, 0, 255];
        const B: [u8; 4] = [0, 0, 255, 255];
        let overlay = RgbaImage::from_fn(2, 1, |x, _| Rgba(if x == 0 { A } else { B }));
        let out = watermark(json!({"tile": true, "offset_x": 1, "offset_y": 1}), overlay)
            .apply(solid(10, 5, GREY))
            .unwrap();
        for (x, y, px) in out.enumerate_pixels() {
            let expected = match ((x + 1) % 3, y % 2) {
                (0, 0) => A,
                (1, 0) => B,
                _ => GREY,
            };
            assert_eq!(px.0, expected, "{x},{y}");
        }
        // Without gaps, a centred 3x3 tile over 7x7 covers everything, phase from the centre.
        let overlay = pattern(3, 3);
        let out = watermark(json!({"tile": true, "gravity": "center"}), overlay.clone())
            .apply(solid(7, 7, [0; 4]))
            .unwrap();
        for (x, y, px) in out.enumerate_pixels() {
            assert_eq!(px, overlay.get_pixel((x + 1) % 3, (y + 1) % 3), "{x},{y}");
        }
    }

    #[test]
    fn overlays_larger_than_the_image_or_outside_it_are_clipped() {
        let opaque = |w, h| {
            let mut img = pattern(w, h);
            img.pixels_mut().for_each(|p| p[3] = 255);
            img
        };
        let overlay = opaque(20, 20);
        // Centred: the image shows the overlay from (8, 8).
        let out = watermark(json!({"gravity": "center"}), overlay.clone())
            .apply(solid(5, 4, GREY))
            .unwrap();
        for (x, y, px) in out.enumerate_pixels() {
            assert_eq!(px, overlay.get_pixel(x + 8, y + 8), "{x},{y}");
        }
        // Pushed half out past the right edge, then entirely out.
        let out = watermark(json!({"gravity": "east", "offset_x": -2}), opaque(4, 4))
            .apply(solid(6, 4, GREY))
            .unwrap();
        assert_eq!(changed(&out, GREY), Some((4, 0, 2, 4)));
        let out = watermark(json!({"gravity": "west", "offset_x": 100}), opaque(4, 4))
            .apply(solid(6, 4, GREY))
            .unwrap();
        assert_eq!(changed(&out, GREY), None);
    }

    #[test]
    fn scale_sizes_the_overlay_by_the_image_width() {
        let op = watermark(json!({"scale": 0.5}), solid(4, 2, RED));
        let out = op.apply(solid(20, 10, GREY)).unwrap();
        assert_eq!(changed(&out, GREY), Some((10, 5, 10, 5)));
        assert_eq!(out.get_pixel(15, 7).0, RED);
        // The same op on a narrower image resizes again rather than reusing the cached size.
        let out = op.apply(solid(8, 8, GREY)).unwrap();
        assert_eq!(changed(&out, GREY), Some((4, 6, 4, 2)));
    }

    #[test]
    fn refuses_bad_parameters_and_a_missing_overlay() {
        let err = build_err(&FILTER, json!({}));
        assert_eq!(err.param.as_deref(), Some("image"));
        assert!(err.message.contains("missing required parameter `image`"));
        let err = build_err(&FILTER, json!({"image": " "}));
        assert!(err.message.contains("POST /v1/images"), "{}", err.message);
        let err = build_err(&FILTER, json!({"image": "img_1", "scale": 0}));
        assert_eq!(err.param.as_deref(), Some("scale"));
        let err = build_err(&FILTER, json!({"image": "img_1", "scale": 1.5}));
        assert!(err.message.contains("from 0 to 1"), "{}", err.message);
        let err = build_err(
            &FILTER,
            json!({"image": "img_1", "tile": true, "offset_y": -1}),
        );
        assert_eq!(err.param.as_deref(), Some("offset_y"));
        assert!(err.message.contains("gap between tiles"), "{}", err.message);
        let err = build_err(&FILTER, json!({"image": "img_1", "gravity": "up"}));
        assert_eq!(err.param.as_deref(), Some("gravity"));

        let unattached = op(&FILTER, json!({"image": "img_1"}));
        assert_eq!(unattached.referenced_images(), ["img_1"]);
        let err = unattached.apply(solid(2, 2, GREY)).unwrap_err();
        assert!(err.to_string().contains("img_1"), "{err}");
    }

    #[test]
    fn pipelines_list_their_references_and_decode_what_is_attached() {
        let mut pipeline = crate::filters::testutil::pipeline(json!([
            {"op": "watermark", "image": "img_a", "gravity": "northwest"},
            {"op": "flip"},
            {"op": "watermark", "image": "img_a", "gravity": "southeast"},
            {"op": "watermark", "image": "img_b"},
        ]));
        let refs: Vec<(usize, &str, &str)> = pipeline
            .referenced_images()
            .iter()
            .map(|r| (r.step, r.op, r.id))
            .collect();
        assert_eq!(refs, [(0, "watermark", "img_a"), (3, "watermark", "img_b")]);
        let png = |px| {
            let mut png = Vec::new();
            solid(1, 1, px)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        };
        const BLUE: [u8; 4] = [0, 0, 255, 255];
        let limits = crate::Limits::default();
        let err = pipeline
            .attach_image("img_a", b"not an image", &limits)
            .unwrap_err();
        assert!(
            err.to_string().starts_with("referenced image img_a: "),
            "{err}"
        );
        pipeline.attach_image("img_a", &png(RED), &limits).unwrap();
        pipeline.attach_image("img_b", &png(BLUE), &limits).unwrap();
        let out = pipeline
            .run(solid(3, 3, GREY).into(), (3, 3), &limits, &mut Vec::new())
            .unwrap()
            .into_rgba();
        // The first mark was flipped to the bottom-left; the third covers the second's.
        for (x, y, px) in out.enumerate_pixels() {
            let expected = match (x, y) {
                (0, 2) => RED,
                (2, 2) => BLUE,
                _ => GREY,
            };
            assert_eq!(px.0, expected, "{x},{y}");
        }
    }
}
