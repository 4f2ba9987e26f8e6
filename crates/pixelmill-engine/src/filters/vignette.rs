use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::clamp_u8;
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "vignette",
    description: "Darkens towards the corners: R, G and B are multiplied by 1 - strength x \
                  min(1, (d / radius)^2), where d is the distance from the centre scaled so the \
                  corners are at 1 (an ellipse following the aspect ratio); alpha is kept.",
    params: &[
        ParamSpec {
            name: "strength",
            kind: Kind::Number { min: 0.0, max: 1.0 },
            presence: Presence::DefaultNum(0.5),
            description: "Darkening at full falloff: 0 = none, 1 = black.",
        },
        ParamSpec {
            name: "radius",
            kind: Kind::Number { min: 0.0, max: 2.0 },
            presence: Presence::DefaultNum(1.0),
            description: "Distance (1 = the corners) where darkening reaches full strength; \
                          larger is gentler, 0 darkens everything evenly.",
        },
    ],
    build,
};

#[derive(Debug)]
struct Vignette {
    strength: f64,
    radius: f64,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    Ok(Box::new(Vignette {
        strength: args.num("strength"),
        radius: args.num("radius"),
    }))
}

impl Vignette {
    /// Brightness factor at pixel (x, y) of a w x h image, sampled at the pixel's centre.
    fn factor(&self, x: u32, y: u32, w: u32, h: u32) -> f64 {
        let offset = |i: u32, n: u32| (f64::from(i) + 0.5) / (f64::from(n) / 2.0) - 1.0;
        let (nx, ny) = (offset(x, w), offset(y, h));
        // Divided by 2 so the corners, where nx and ny are both +-1, sit at distance 1.
        let d2 = (nx * nx + ny * ny) / 2.0;
        let falloff = if self.radius > 0.0 {
            (d2 / (self.radius * self.radius)).min(1.0)
        } else {
            1.0
        };
        1.0 - self.strength * falloff
    }
}

impl Op for Vignette {
    fn cost_per_pixel(&self) -> u64 {
        // A square root and three multiplies per pixel.
        3
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        let (w, h) = image.dimensions();
        let channels = image.channels();
        for (i, px) in image.as_raw_mut().chunks_exact_mut(channels).enumerate() {
            let (x, y) = ((i % w as usize) as u32, (i / w as usize) as u32);
            let k = self.factor(x, y, w, h);
            for c in &mut px[..3] {
                *c = clamp_u8(f64::from(*c) * k);
            }
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn darkens_quadratically_from_the_centre() {
        let img = RgbaImage::from_pixel(4, 4, image::Rgba([200, 100, 0, 90]));
        let out = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        // Inner pixels: nx = ny = +-0.25, d^2 = 0.0625: factor 1 - 0.5 x 0.0625 = 0.96875.
        assert_eq!(out.get_pixel(1, 2).0, [194, 97, 0, 90]);
        // Corner pixels: nx = ny = +-0.75, d^2 = 0.5625: factor 0.71875.
        for (x, y) in [(0, 0), (3, 0), (0, 3), (3, 3)] {
            assert_eq!(out.get_pixel(x, y).0, [144, 72, 0, 90]);
        }
        // Edge-middle pixels: nx = 0.75, ny = 0.25, d^2 = 0.3125: factor 0.84375.
        assert_eq!(out.get_pixel(3, 1).0, [169, 84, 0, 90]);
        // A small radius saturates the falloff: the corners get the full strength.
        let hard = op(&FILTER, json!({"strength": 1, "radius": 0.5}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(hard.get_pixel(0, 0).0, [0, 0, 0, 90]);
        let even = op(&FILTER, json!({"strength": 0.25, "radius": 0}))
            .apply(img)
            .unwrap();
        assert!(even.pixels().all(|p| p.0 == [150, 75, 0, 90]));
    }

    #[test]
    fn refuses_radius_beyond_two() {
        let err = build_err(&FILTER, json!({"radius": 3}));
        assert_eq!(err.param.as_deref(), Some("radius"));
        assert!(
            err.message.contains("from 0 to 2, got 3"),
            "{}",
            err.message
        );
    }
}
