use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{lut, map_luts};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "tint",
    description: "Views the image through coloured glass: R, G and B are multiplied by the \
                  colour (so white becomes the colour and black stays black), mixed with the \
                  original by strength; alpha is kept.",
    params: &[
        ParamSpec {
            name: "color",
            kind: Kind::Color { alpha: false },
            presence: Presence::Required,
            description: "The tint, as #rrggbb.",
        },
        ParamSpec {
            name: "strength",
            kind: Kind::Number { min: 0.0, max: 1.0 },
            presence: Presence::DefaultNum(0.5),
            description: "0 = unchanged, 1 = fully multiplied by the colour.",
        },
    ],
    build,
};

#[derive(Debug)]
struct Tint {
    luts: [[u8; 256]; 3],
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let color = args.color("color");
    let strength = args.num("strength");
    // Each channel is scaled by a constant, so one table per channel covers every pixel.
    let luts = std::array::from_fn(|c| {
        let gain = 1.0 - strength + strength * f64::from(color[c]) / 255.0;
        lut(|v| v * gain)
    });
    Ok(Box::new(Tint { luts }))
}

impl Op for Tint {
    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply(&self, mut image: Bitmap) -> Result<Bitmap, EngineError> {
        map_luts(&mut image, &self.luts);
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op};
    use image::RgbaImage;
    use serde_json::json;

    fn tint(params: serde_json::Value, rgba: [u8; 4]) -> [u8; 4] {
        let img = RgbaImage::from_pixel(1, 1, image::Rgba(rgba));
        op(&FILTER, params).apply(img).unwrap().get_pixel(0, 0).0
    }

    #[test]
    fn multiplies_by_the_colour_by_strength() {
        let orange = json!({"color": "#ff8000", "strength": 1});
        assert_eq!(tint(orange.clone(), [200, 100, 50, 60]), [200, 50, 0, 60]);
        assert_eq!(tint(orange, [255, 255, 255, 255]), [255, 128, 0, 255]);
        // Default strength 0.5: gains 1, 0.751, 0.5.
        assert_eq!(
            tint(json!({"color": "#ff8000"}), [200, 100, 50, 255]),
            [200, 75, 25, 255]
        );
        assert_eq!(
            tint(json!({"color": "#123456", "strength": 0}), [1, 2, 3, 4]),
            [1, 2, 3, 4]
        );
        assert_eq!(
            tint(json!({"color": "#ff8000", "strength": 1}), [0, 0, 0, 255]),
            [0, 0, 0, 255]
        );
    }

    #[test]
    fn refuses_a_colour_that_is_not_hex() {
        let err = build_err(&FILTER, json!({"color": "orange"}));
        assert_eq!(err.param.as_deref(), Some("color"));
        assert!(
            err.message
                .contains("a colour like \"#ff8800\" (#rrggbb), got \"orange\""),
            "{}",
            err.message
        );
        let err = build_err(&FILTER, json!({}));
        assert!(err.message.contains("missing required parameter `color`"));
    }
}
