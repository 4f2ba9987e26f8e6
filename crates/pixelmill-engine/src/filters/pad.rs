use image::RgbaImage;

use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::EngineError;

const SIDE: Kind = Kind::Integer { min: 0, max: 16384 };

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "pad",
    description: "Adds a border of the background colour. Give `all` for every side and/or \
                  top, right, bottom, left (which override `all`); at least one is required.",
    params: &[
        ParamSpec {
            name: "all",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Pixels added on every side not given on its own.",
        },
        ParamSpec {
            name: "top",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Pixels added above.",
        },
        ParamSpec {
            name: "right",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Pixels added on the right.",
        },
        ParamSpec {
            name: "bottom",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Pixels added below.",
        },
        ParamSpec {
            name: "left",
            kind: SIDE,
            presence: Presence::Optional,
            description: "Pixels added on the left.",
        },
        ParamSpec {
            name: "background",
            kind: Kind::Color { alpha: true },
            presence: Presence::DefaultStr("#00000000"),
            description: "Border colour as #rrggbb or #rrggbbaa; the default is transparent \
                          (JPEG output flattens it onto white).",
        },
    ],
    build,
};

#[derive(Debug)]
struct Pad {
    top: u32,
    right: u32,
    bottom: u32,
    left: u32,
    background: image::Rgba<u8>,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let names = ["all", "top", "right", "bottom", "left"];
    if names.iter().all(|n| args.opt_int(n).is_none()) {
        return Err(ParamError::step(
            "pad needs the border size: give `all` and/or `top`, `right`, `bottom`, `left` \
             (pixels, 0 to 16384)"
                .to_owned(),
        ));
    }
    let all = args.opt_int("all").unwrap_or(0);
    let side = |name| args.opt_int(name).unwrap_or(all) as u32;
    Ok(Box::new(Pad {
        top: side("top"),
        right: side("right"),
        bottom: side("bottom"),
        left: side("left"),
        background: image::Rgba(args.color("background")),
    }))
}

impl Op for Pad {
    fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        (
            w.saturating_add(self.left).saturating_add(self.right),
            h.saturating_add(self.top).saturating_add(self.bottom),
        )
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let (w, h) = self.output_size(image.width(), image.height());
        let mut out = RgbaImage::from_pixel(w, h, self.background);
        let (x, y) = (i64::from(self.left), i64::from(self.top));
        image::imageops::replace(&mut out, &image.into_rgba(), x, y);
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use serde_json::json;

    #[test]
    fn places_the_image_inside_the_border() {
        let img = pattern(5, 4);
        let pad = op(
            &FILTER,
            json!({"all": 2, "left": 3, "top": 0, "background": "#10203080"}),
        );
        assert_eq!(pad.output_size(5, 4), (10, 6));
        let out = pad.apply(img.clone()).unwrap();
        assert_eq!(out.dimensions(), (10, 6));
        for (x, y, px) in out.enumerate_pixels() {
            if (3..8).contains(&x) && y < 4 {
                assert_eq!(px, img.get_pixel(x - 3, y), "{x},{y}");
            } else {
                assert_eq!(px.0, [16, 32, 48, 128], "{x},{y}");
            }
        }
    }

    #[test]
    fn default_background_is_transparent_and_opaque_hex_works() {
        let img = RgbaImage::from_pixel(1, 1, image::Rgba([9, 9, 9, 255]));
        let out = op(&FILTER, json!({"right": 1})).apply(img.clone()).unwrap();
        assert_eq!(out.dimensions(), (2, 1));
        assert_eq!(out.get_pixel(1, 0).0, [0, 0, 0, 0]);
        let out = op(&FILTER, json!({"bottom": 1, "background": "#FFFFFF"}))
            .apply(img)
            .unwrap();
        assert_eq!(out.dimensions(), (1, 2));
        assert_eq!(out.get_pixel(0, 1).0, [255, 255, 255, 255]);
        assert_eq!(out.get_pixel(0, 0).0, [9, 9, 9, 255]);
    }

    #[test]
    fn refuses_no_sizes_and_bad_colours() {
        let err = build_err(&FILTER, json!({"background": "#ffffff"}));
        assert_eq!(err.param, None);
        assert!(
            err.message.contains("give `all` and/or `top`"),
            "{}",
            err.message
        );
        let err = build_err(&FILTER, json!({"all": 1, "background": "white"}));
        assert_eq!(err.param.as_deref(), Some("background"));
        assert!(
            err.message.contains("#rrggbb or #rrggbbaa"),
            "{}",
            err.message
        );
        let err = build_err(&FILTER, json!({"top": -1}));
        assert!(err.message.contains("from 0 to 16384"), "{}", err.message);
    }
}
