use pixelmill_core::PipelineStep;
use serde::Serialize;

use crate::filters::{FilterDef, BUILTIN};
use crate::params::{Args, ParamSchema};
use crate::pipeline::{Pipeline, Step};
use crate::PipelineError;

/// A filter as published by `GET /v1/filters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterSchema {
    pub op: &'static str,
    pub description: &'static str,
    pub params: Vec<ParamSchema>,
}

/// The set of filters a pipeline may use. Immutable, so it is shared across threads freely.
#[derive(Debug, Clone)]
pub struct Registry {
    filters: &'static [FilterDef],
}

impl Registry {
    pub fn builtin() -> Registry {
        Registry { filters: BUILTIN }
    }

    pub fn filters(&self) -> Vec<FilterSchema> {
        self.filters
            .iter()
            .map(|f| FilterSchema {
                op: f.op,
                description: f.description,
                params: f.params.iter().map(|p| p.schema()).collect(),
            })
            .collect()
    }

    /// Validates every step against its filter's schema and builds the runnable pipeline; the
    /// first bad step is reported with its 0-based index, op and parameter.
    pub fn compile(&self, steps: &[PipelineStep]) -> Result<Pipeline, PipelineError> {
        let compiled = steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let fail = |param: Option<String>, message: String| PipelineError {
                    step: index,
                    op: step.op.clone(),
                    param,
                    message,
                };
                let def = self
                    .filters
                    .iter()
                    .find(|f| f.op == step.op)
                    .ok_or_else(|| {
                        let ops: Vec<&str> = self.filters.iter().map(|f| f.op).collect();
                        fail(
                            None,
                            format!(
                                "unknown operation `{}`; use one of: {}",
                                step.op,
                                ops.join(", ")
                            ),
                        )
                    })?;
                let args = Args::parse(def.op, def.params, &step.params)
                    .map_err(|e| fail(e.param, e.message))?;
                let op = (def.build)(&args).map_err(|e| fail(e.param, e.message))?;
                let canonical = PipelineStep {
                    op: step.op.clone(),
                    params: args.canonical(),
                };
                Ok((Step { name: def.op, op }, canonical))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (steps, canonical) = compiled.into_iter().unzip();
        Ok(Pipeline::new(steps, canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::steps;
    use serde_json::json;

    #[test]
    fn schema_lists_every_filter_with_typed_params() {
        let schema = serde_json::to_value(Registry::builtin().filters()).unwrap();
        let ops: Vec<&str> = schema
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["op"].as_str().unwrap())
            .collect();
        for op in [
            "resize",
            "crop",
            "rotate",
            "flip",
            "flop",
            "grayscale",
            "sepia",
            "invert",
        ] {
            assert!(ops.contains(&op), "{op} missing from {ops:?}");
        }
        for op in ["brightness", "contrast", "blur", "sharpen", "expr"] {
            assert!(ops.contains(&op), "{op} missing from {ops:?}");
        }
        for op in [
            "gamma",
            "saturation",
            "hue_rotate",
            "tint",
            "duotone",
            "threshold",
            "posterize",
            "pixelate",
            "vignette",
            "edges",
            "emboss",
            "convolve",
            "median",
            "unsharp",
            "pad",
            "trim",
            "round_corners",
            "smart_crop",
            "watermark",
        ] {
            assert!(ops.contains(&op), "{op} missing from {ops:?}");
        }
        let unique: std::collections::HashSet<&str> = ops.iter().copied().collect();
        assert_eq!(unique.len(), ops.len(), "duplicate op names in {ops:?}");
        let resize = &schema[0];
        assert_eq!(resize["params"][0]["name"], "width");
        assert_eq!(resize["params"][0]["type"], "integer");
        assert_eq!(resize["params"][0]["max"], 16384);
        assert_eq!(
            resize["params"][2]["values"],
            json!(["contain", "cover", "fill"])
        );
        assert_eq!(resize["params"][2]["default"], "contain");
    }

    #[test]
    fn errors_name_step_op_and_param() {
        let registry = Registry::builtin();
        let err = registry
            .compile(&steps(
                json!([{"op": "flip"}, {"op": "resize", "width": -5}]),
            ))
            .unwrap_err();
        assert_eq!(
            (err.step, err.op.as_str(), err.param.as_deref()),
            (1, "resize", Some("width"))
        );
        assert_eq!(
            err.to_string(),
            "step 1 (resize): parameter `width` must be an integer from 1 to 16384, got -5"
        );

        let err = registry
            .compile(&steps(json!([{"op": "blurr", "sigma": 1}])))
            .unwrap_err();
        assert_eq!((err.step, err.param.clone()), (0, None));
        assert!(err
            .message
            .contains("unknown operation `blurr`; use one of: resize"));

        let err = registry
            .compile(&steps(
                json!([{"op": "grayscale"}, {"op": "invert"}, {"op": "blur", "sgma": 1}]),
            ))
            .unwrap_err();
        assert_eq!((err.step, err.param.as_deref()), (2, Some("sgma")));
        assert!(
            err.message.contains("blur accepts: sigma"),
            "{}",
            err.message
        );
    }

    /// The colour, neighbourhood and geometry filters on tiny and one-pixel-thin images: none
    /// panics at the edges, and `output_size` predicts the result (`trim` only bounds it).
    #[test]
    fn filters_handle_thin_images_and_predict_their_size() {
        use crate::filters::testutil::{op, pattern};
        let cases = [
            ("gamma", json!({"gamma": 2})),
            ("saturation", json!({"factor": 2})),
            ("hue_rotate", json!({"degrees": 90})),
            ("tint", json!({"color": "#ff0000"})),
            ("duotone", json!({})),
            ("threshold", json!({})),
            ("posterize", json!({})),
            ("pixelate", json!({"size": 3})),
            ("vignette", json!({})),
            ("edges", json!({})),
            ("emboss", json!({})),
            ("convolve", json!({"kernel": "1,2,1;2,4,2;1,2,1"})),
            ("median", json!({"radius": 3})),
            ("unsharp", json!({})),
            ("pad", json!({"left": 2, "bottom": 1})),
            ("trim", json!({})),
            ("round_corners", json!({"radius": 3})),
            ("smart_crop", json!({"width": 2, "height": 5})),
        ];
        for (name, params) in cases {
            let def = BUILTIN.iter().find(|f| f.op == name).unwrap();
            let filter = op(def, params);
            for (w, h) in [(1, 1), (1, 7), (7, 1), (4, 3)] {
                let out = filter.apply(pattern(w, h)).unwrap();
                let (pw, ph) = filter.output_size(w, h);
                if name == "trim" {
                    assert!(out.width() <= pw && out.height() <= ph, "{name} {w}x{h}");
                } else {
                    assert_eq!(out.dimensions(), (pw, ph), "{name} {w}x{h}");
                }
            }
        }
    }

    /// Every op that says it keeps RGB does, and gives an opaque image's RGB the pixels of its
    /// RGBA form: the pipeline picks the layout, not the result. (The blur's fixed-point SIMD
    /// kernels round three- and four-channel rows apart by at most one level.)
    #[test]
    fn ops_that_keep_rgb_match_their_rgba_results() {
        use crate::bitmap::Bitmap;
        use crate::filters::testutil::{op, pattern};
        let params = |name: &str| match name {
            "resize" => json!({"width": 9, "light": "linear"}),
            "crop" => json!({"x": 1, "y": 2, "width": 5, "height": 4}),
            "rotate" => json!({"degrees": 90}),
            "blur" | "sharpen" | "unsharp" => json!({"sigma": 1.5}),
            "tint" => json!({"color": "#ff8000"}),
            "brightness" | "contrast" => json!({"amount": 0.3}),
            "gamma" => json!({"gamma": 2}),
            "saturation" => json!({"factor": 2}),
            "hue_rotate" => json!({"degrees": 90}),
            "pixelate" => json!({"size": 3}),
            "median" => json!({"radius": 2}),
            "pad" => json!({"all": 2}),
            "convolve" => json!({"kernel": "1,2,1;2,4,2;1,2,1"}),
            "round_corners" => json!({"radius": 3}),
            "smart_crop" => json!({"width": 4, "height": 4}),
            "expr" => json!({"expr": "r = g"}),
            _ => json!({}),
        };
        let opaque = image::DynamicImage::ImageRgba8(pattern(17, 11)).into_rgb8();
        let mut kept = Vec::new();
        for def in BUILTIN.iter().filter(|def| def.op != "watermark") {
            let filter = op(def, params(def.op));
            if !filter.keeps_rgb() {
                continue;
            }
            kept.push(def.op);
            let from_rgb = filter.0.apply(Bitmap::Rgb(opaque.clone())).unwrap();
            assert!(matches!(from_rgb, Bitmap::Rgb(_)), "{} gave RGBA", def.op);
            let from_rgba = filter
                .apply(Bitmap::Rgb(opaque.clone()).into_rgba())
                .unwrap();
            let from_rgb = from_rgb.into_rgba();
            assert_eq!(from_rgb.dimensions(), from_rgba.dimensions(), "{}", def.op);
            let pairs = from_rgb.as_raw().iter().zip(from_rgba.as_raw());
            let worst = pairs.map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(worst <= 1, "{} differs by {worst} levels", def.op);
        }
        for expected in ["resize", "crop", "blur", "grayscale", "sepia", "vignette"] {
            assert!(kept.contains(&expected), "{expected} keeps RGB: {kept:?}");
        }
    }

    /// Every op that keeps 16 bits gives a 16-bit image what it gives the same image in 8 bits,
    /// to within rounding: up to two levels where resizing translucent pixels premultiplies them
    /// in 8 bits.
    #[test]
    fn ops_that_keep_16_bits_match_their_8_bit_results() {
        use crate::filters::testutil::op;
        use image::{DynamicImage, ImageBuffer, Rgba};
        let deep = DynamicImage::ImageRgba16(ImageBuffer::from_fn(17, 11, |x, y| {
            Rgba([
                x as u16 * 3001,
                y as u16 * 5003,
                (x * y) as u16 * 211,
                60_000 - x as u16 * 900,
            ])
        }));
        let mut kept = Vec::new();
        for (name, params) in [
            ("resize", json!({"width": 9})),
            (
                "resize",
                json!({"width": 9, "light": "linear", "kernel": "mitchell"}),
            ),
            ("crop", json!({"x": 1, "y": 2, "width": 5, "height": 4})),
            ("rotate", json!({"degrees": 270})),
            ("flip", json!({})),
            ("flop", json!({})),
            ("sepia", json!({})),
        ] {
            let def = BUILTIN.iter().find(|f| f.op == name).unwrap();
            let filter = op(def, params);
            let Some(from_deep) = filter.apply_deep(&deep) else {
                continue;
            };
            kept.push(name);
            let from_deep = from_deep.unwrap().into_rgba8();
            let from_eight = filter.apply(deep.to_rgba8()).unwrap();
            assert_eq!(from_deep.dimensions(), from_eight.dimensions(), "{name}");
            let pairs = from_deep.as_raw().iter().zip(from_eight.as_raw());
            let worst = pairs.map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(worst <= 2, "{name} differs by {worst} levels");
        }
        assert_eq!(kept, ["resize", "resize", "crop", "rotate", "flip", "flop"]);
    }

    #[test]
    fn compiles_a_valid_pipeline() {
        let pipeline = Registry::builtin()
            .compile(&steps(
                json!([{"op": "resize", "width": 10}, {"op": "sepia"}]),
            ))
            .unwrap();
        assert!(!pipeline.is_empty());
        assert!(Registry::builtin().compile(&[]).unwrap().is_empty());
    }
}
