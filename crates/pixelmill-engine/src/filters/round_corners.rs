use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::clamp_u8;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "round_corners",
    description: "Makes the corners transparent outside quarter circles of the given radius, \
                  anti-aliased by each pixel's coverage. The radius is capped at half the \
                  shorter side.",
    params: &[ParamSpec {
        name: "radius",
        kind: Kind::Integer { min: 1, max: 16384 },
        presence: Presence::Required,
        description: "Corner radius in pixels.",
    }],
    build,
};

#[derive(Debug)]
struct RoundCorners {
    radius: u32,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(RoundCorners {
        radius: args.int("radius") as u32,
    }))
}

/// How much of the pixel whose centre is `d` from the circle's centre lies inside a circle of
/// radius `r`: the signed distance to the rim, clamped to one pixel's width.
fn coverage(d: f64, r: f64) -> f64 {
    (r - d + 0.5).clamp(0.0, 1.0)
}

impl Op for RoundCorners {
    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let mut image = image.into_rgba();
        let (w, h) = image.dimensions();
        let r = self.radius.min(w / 2).min(h / 2);
        if r == 0 {
            return Ok(image.into());
        }
        let rf = f64::from(r);
        // Only the r x r corner squares can change; each is mirrored from the top-left one.
        for cy in 0..r {
            for cx in 0..r {
                let (dx, dy) = (rf - (f64::from(cx) + 0.5), rf - (f64::from(cy) + 0.5));
                let keep = coverage(dx.hypot(dy), rf);
                if keep >= 1.0 {
                    continue;
                }
                for (x, y) in [
                    (cx, cy),
                    (w - 1 - cx, cy),
                    (cx, h - 1 - cy),
                    (w - 1 - cx, h - 1 - cy),
                ] {
                    let px = image.get_pixel_mut(x, y);
                    px[3] = clamp_u8(f64::from(px[3]) * keep);
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
    fn corners_fade_smoothly_and_the_rest_is_untouched() {
        let img = RgbaImage::from_pixel(20, 12, image::Rgba([50, 60, 70, 255]));
        let out = op(&FILTER, json!({"radius": 4})).apply(img).unwrap();
        let corner = |x: u32, y: u32| {
            [
                out.get_pixel(x, y)[3],
                out.get_pixel(19 - x, y)[3],
                out.get_pixel(x, 11 - y)[3],
                out.get_pixel(19 - x, 11 - y)[3],
            ]
        };
        // Centre (0.5, 0.5) is 4.95 from the circle's centre (4, 4): outside.
        assert_eq!(corner(0, 0), [0; 4]);
        // (1.5, 0.5) is 4.30 away: 20% covered.
        assert_eq!(corner(1, 0), [51; 4]);
        // (2.5, 0.5) is 3.81 away: 69% covered. (0.5, 2.5) likewise.
        assert_eq!(corner(2, 0), [176; 4]);
        assert_eq!(corner(0, 2), [176; 4]);
        // (3.5, 0.5) is 3.54 away: 96% covered. (1.5, 1.5) is 3.54 away too.
        assert_eq!(corner(3, 0), [246; 4]);
        assert_eq!(corner(1, 1), [246; 4]);
        assert_eq!(corner(4, 0), [255; 4]);
        assert_eq!(corner(2, 2), [255; 4]);
        let transparent = out.pixels().filter(|p| p[3] < 255).count();
        assert!(out.pixels().all(|p| p[0] == 50 && p[1] == 60 && p[2] == 70));
        // Eight partly or fully cleared pixels per corner.
        assert_eq!(transparent, 4 * 8);
    }

    #[test]
    fn radius_is_capped_and_existing_alpha_scaled() {
        let img = RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 200]));
        let out = op(&FILTER, json!({"radius": 100})).apply(img).unwrap();
        // Capped at 2. (0.5, 0.5) is 2.12 from (2, 2): 38% of 200.
        assert_eq!(out.get_pixel(0, 0)[3], 76);
        assert_eq!(out.get_pixel(1, 1)[3], 200);
        // (1.5, 0.5) is 1.58 from (2, 2): 92% of 200.
        assert_eq!(out.get_pixel(1, 0)[3], 184);
    }

    #[test]
    fn refuses_zero_radius() {
        let err = build_err(&FILTER, json!({"radius": 0}));
        assert_eq!(err.param.as_deref(), Some("radius"));
        assert!(
            err.message.contains("from 1 to 16384, got 0"),
            "{}",
            err.message
        );
    }
}
