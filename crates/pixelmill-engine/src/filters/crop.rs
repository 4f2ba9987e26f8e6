use image::DynamicImage;

use super::{FilterDef, Op};
use crate::bitmap::{on_buffer, Bitmap};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::EngineError;

const OFFSET: Kind = Kind::Integer {
    min: 0,
    max: 1_000_000,
};
const SIDE: Kind = Kind::Integer {
    min: 1,
    max: 1_000_000,
};

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "crop",
    description: "Cuts out the rectangle at (x, y) of width x height pixels. The rectangle must \
                  lie inside the image; otherwise the job fails with invalid_pipeline.",
    params: &[
        ParamSpec {
            name: "x",
            kind: OFFSET,
            presence: Presence::Required,
            description: "Left edge, from the image's left.",
        },
        ParamSpec {
            name: "y",
            kind: OFFSET,
            presence: Presence::Required,
            description: "Top edge, from the image's top.",
        },
        ParamSpec {
            name: "width",
            kind: SIDE,
            presence: Presence::Required,
            description: "Width of the rectangle.",
        },
        ParamSpec {
            name: "height",
            kind: SIDE,
            presence: Presence::Required,
            description: "Height of the rectangle.",
        },
    ],
    build,
};

#[derive(Debug)]
struct Crop {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let get = |name| args.int(name) as u32;
    Ok(Box::new(Crop {
        x: get("x"),
        y: get("y"),
        width: get("width"),
        height: get("height"),
    }))
}

impl Op for Crop {
    fn output_size(&self, _: u32, _: u32) -> (u32, u32) {
        (self.width, self.height)
    }

    fn keeps_rgb(&self) -> bool {
        true
    }

    fn apply_deep(&self, image: &DynamicImage) -> Option<Result<DynamicImage, EngineError>> {
        let cropped = self.fits((image.width(), image.height()));
        Some(cropped.map(|()| image.crop_imm(self.x, self.y, self.width, self.height)))
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        self.fits(image.dimensions())?;
        let (x, y, width, height) = (self.x, self.y, self.width, self.height);
        Ok(on_buffer!(image, image => {
            image::imageops::crop_imm(&image, x, y, width, height).to_image()
        }))
    }
}

impl Crop {
    /// The rectangle must lie inside a `w`×`h` image.
    fn fits(&self, (w, h): (u32, u32)) -> Result<(), EngineError> {
        let Crop {
            x,
            y,
            width,
            height,
        } = *self;
        if x + width > w || y + height > h {
            return Err(EngineError::InvalidOperation(format!(
                "crop rectangle {x},{y} {width}x{height} lies outside the {w}x{h} image; keep \
                 x + width <= {w} and y + height <= {h}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{op, pattern};
    use serde_json::json;

    #[test]
    fn copies_the_rectangle() {
        let img = pattern(20, 10);
        let out = op(&FILTER, json!({"x": 3, "y": 2, "width": 5, "height": 4}))
            .apply(img.clone())
            .unwrap();
        assert_eq!(out.dimensions(), (5, 4));
        for (x, y, px) in out.enumerate_pixels() {
            assert_eq!(px, img.get_pixel(x + 3, y + 2));
        }
    }

    #[test]
    fn outside_rectangle_is_an_invalid_operation() {
        let err = op(
            &FILTER,
            json!({"x": 10, "y": 10, "width": 500, "height": 500}),
        )
        .apply(pattern(300, 200))
        .unwrap_err();
        assert_eq!(err.code(), "invalid_pipeline");
        assert!(err
            .to_string()
            .starts_with("crop rectangle 10,10 500x500 lies outside the 300x200 image"));
    }
}
