use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{clamp_u8, luma, map_rgb};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "duotone",
    description: "Maps each pixel's Rec.709 luma onto the gradient from the shadow colour \
                  (black) to the highlight colour (white); alpha is kept.",
    params: &[
        ParamSpec {
            name: "shadow",
            kind: Kind::Color { alpha: false },
            presence: Presence::DefaultStr("#000000"),
            description: "Colour that black becomes, as #rrggbb.",
        },
        ParamSpec {
            name: "highlight",
            kind: Kind::Color { alpha: false },
            presence: Presence::DefaultStr("#ffffff"),
            description: "Colour that white becomes, as #rrggbb.",
        },
    ],
    build,
};

#[derive(Debug)]
struct Duotone {
    /// The gradient's colour at each rounded luma.
    gradient: Vec<[u8; 3]>,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let (dark, light) = (args.color("shadow"), args.color("highlight"));
    let gradient = (0..256)
        .map(|level| {
            let t = f64::from(level) / 255.0;
            std::array::from_fn(|c| {
                clamp_u8(f64::from(dark[c]) + t * (f64::from(light[c]) - f64::from(dark[c])))
            })
        })
        .collect();
    Ok(Box::new(Duotone { gradient }))
}

impl Op for Duotone {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_rgb(&mut image, |rgb| {
            self.gradient[clamp_u8(luma(rgb)) as usize]
        });
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use image::RgbaImage;
    use serde_json::json;

    #[test]
    fn maps_luma_between_the_two_colours() {
        let img = RgbaImage::from_fn(4, 1, |x, _| {
            image::Rgba(
                [
                    [0, 0, 0, 255],
                    [255, 255, 255, 128],
                    [128, 128, 128, 7],
                    [0, 255, 0, 255],
                ][x as usize],
            )
        });
        let out = op(
            &FILTER,
            json!({"shadow": "#200040", "highlight": "#ffc000"}),
        )
        .apply(img)
        .unwrap();
        let row: Vec<[u8; 4]> = out.pixels().map(|p| p.0).collect();
        // Grey 128: halfway (t = 128/255); pure green has luma 182 (t = 182/255).
        assert_eq!(
            row,
            [
                [32, 0, 64, 255],
                [255, 192, 0, 128],
                [144, 96, 32, 7],
                [191, 137, 18, 255]
            ]
        );
    }

    #[test]
    fn defaults_are_grayscale() {
        let img = pattern(8, 8);
        let out = op(&FILTER, json!({})).apply(img.clone()).unwrap();
        let gray = op(&super::super::grayscale::FILTER, json!({}))
            .apply(img)
            .unwrap();
        assert_eq!(out, gray);
    }

    #[test]
    fn refuses_colours_with_alpha() {
        let err = build_err(&FILTER, json!({"shadow": "#00000080"}));
        assert_eq!(err.param.as_deref(), Some("shadow"));
        assert!(err.message.contains("#rrggbb"), "{}", err.message);
    }
}
