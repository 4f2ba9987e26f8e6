use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::pixels::{self, Kernel};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "convolve",
    description: "Applies a custom square kernel (3x3, 5x5 or 7x7) to R, G, B and alpha on \
                  premultiplied alpha, edges clamped. Weights sit as written over the \
                  neighbourhood (first row above the pixel, no flip). Alpha is filtered with the \
                  kernel scaled to sum 1, or kept when the kernel sums to 0.",
    params: &[
        ParamSpec {
            name: "kernel",
            kind: Kind::Text { max_len: 1000 },
            presence: Presence::Required,
            description: "Rows separated by `;`, weights by `,`, e.g. \"0,-1,0;-1,5,-1;0,-1,0\".",
        },
        ParamSpec {
            name: "divisor",
            kind: Kind::Number {
                min: -1_000_000.0,
                max: 1_000_000.0,
            },
            presence: Presence::Optional,
            description: "Divides the weighted sum; defaults to the sum of the weights, or 1 if \
                          that is 0. Must not be 0.",
        },
        ParamSpec {
            name: "offset",
            kind: Kind::Number {
                min: -255.0,
                max: 255.0,
            },
            presence: Presence::DefaultNum(0.0),
            description: "Added to R, G and B after dividing (128 centres signed results).",
        },
    ],
    build,
};

const SIZES: [usize; 3] = [3, 5, 7];

#[derive(Debug)]
struct Convolve {
    kernel: Kernel,
    divisor: f32,
    offset: f32,
}

fn kernel_error(detail: String) -> ParamError {
    ParamError::param(
        "kernel",
        format!(
            "parameter `kernel` must be a square 3x3, 5x5 or 7x7 matrix of numbers, rows \
             separated by `;` and weights by `,` (e.g. \"0,-1,0;-1,5,-1;0,-1,0\"); {detail}"
        ),
    )
}

fn parse_kernel(text: &str) -> Result<Kernel, ParamError> {
    let rows = text
        .trim()
        .trim_end_matches(';')
        .split(';')
        .map(|row| {
            row.split(',')
                .map(|w| {
                    let w = w.trim();
                    w.parse::<f32>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| kernel_error(format!("{w:?} is not a number")))
                })
                .collect::<Result<Vec<f32>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let size = rows.len();
    if let Some(row) = rows.iter().position(|r| r.len() != size) {
        return Err(kernel_error(format!(
            "got {size} rows but row {} has {} weights",
            row + 1,
            rows[row].len()
        )));
    }
    if !SIZES.contains(&size) {
        return Err(kernel_error(format!("got {size}x{size}")));
    }
    Ok(Kernel::new(size, rows.concat()))
}

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let kernel = parse_kernel(args.str("kernel"))?;
    let divisor = match args.opt_num("divisor") {
        Some(0.0) => {
            return Err(ParamError::param(
                "divisor",
                "parameter `divisor` must not be 0; leave it out to divide by the sum of the \
                 weights"
                    .to_owned(),
            ))
        }
        Some(d) => d as f32,
        None if kernel.sum().abs() > 1e-6 => kernel.sum(),
        None => 1.0,
    };
    Ok(Box::new(Convolve {
        kernel,
        divisor,
        offset: args.num("offset") as f32,
    }))
}

impl Op for Convolve {
    fn cost_per_pixel(&self) -> u64 {
        // Measured against `blur`: premultiplying and dividing back dominate small kernels, and
        // the taps vectorise well, so 3x3 costs 14 and 7x7 only 24.
        let taps = self.kernel.size() * self.kernel.size();
        12 + taps as u64 / 4
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let image = image.into_rgba();
        let out = pixels::convolve(&image, &self.kernel, self.divisor, self.offset);
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use image::RgbaImage;
    use serde_json::json;

    fn run(params: serde_json::Value, image: &RgbaImage) -> RgbaImage {
        op(&FILTER, params).apply(image.clone()).unwrap()
    }

    #[test]
    fn identity_kernels_change_nothing() {
        let img = pattern(9, 7);
        assert_eq!(run(json!({"kernel": "0,0,0;0,1,0;0,0,0"}), &img), img);
        let five = "0,0,0,0,0; 0,0,0,0,0; 0,0,2,0,0; 0,0,0,0,0; 0,0,0,0,0;";
        assert_eq!(run(json!({ "kernel": five }), &img), img);
    }

    #[test]
    fn box_blur_averages_and_sharpen_overshoots() {
        let img = RgbaImage::from_fn(5, 1, |x, _| {
            image::Rgba([[0, 0, 90, 90, 90][x as usize], 7, 0, 255])
        });
        // 3x3 box, divided by the weights' sum (9) by default; rows are clamped copies.
        let blurred = run(json!({"kernel": "1,1,1;1,1,1;1,1,1"}), &img);
        let reds: Vec<u8> = blurred.pixels().map(|p| p[0]).collect();
        assert_eq!(reds, [0, 30, 60, 90, 90]);
        let sharp = run(json!({"kernel": "0,-1,0;-1,5,-1;0,-1,0"}), &img);
        let reds: Vec<u8> = sharp.pixels().map(|p| p[0]).collect();
        assert_eq!(reds, [0, 0, 180, 90, 90]);
        assert!(sharp.pixels().all(|p| p[1] == 7 && p[3] == 255));
        // Explicit divisor and offset: sum / 2 + 10.
        let halved = run(
            json!({"kernel": "0,0,0;0,1,0;0,0,0", "divisor": 2, "offset": 10}),
            &img,
        );
        assert_eq!(halved.get_pixel(4, 0).0, [55, 14, 10, 255]);
    }

    #[test]
    fn zero_sum_kernels_keep_alpha_and_transparent_colours_do_not_bleed() {
        let img = RgbaImage::from_fn(4, 3, |x, _| {
            if x < 2 {
                image::Rgba([200, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0])
            }
        });
        let blurred = run(json!({"kernel": "1,1,1;1,1,1;1,1,1"}), &img);
        // Next to the transparent half: still pure red, alpha averaged (2/3 and 1/3 opaque).
        assert_eq!(blurred.get_pixel(1, 1).0, [200, 0, 0, 170]);
        assert_eq!(blurred.get_pixel(2, 1).0, [200, 0, 0, 85]);
        let laplace = run(json!({"kernel": "0,1,0;1,-4,1;0,1,0", "offset": 128}), &img);
        let alphas: Vec<u8> = laplace.pixels().map(|p| p[3]).collect();
        assert_eq!(alphas, [255, 255, 0, 0].repeat(3));
        assert_eq!(laplace.get_pixel(0, 1).0, [128, 128, 128, 255]);
        // The silhouette: one transparent (black) neighbour pulls red down by 200.
        assert_eq!(laplace.get_pixel(1, 1).0, [0, 128, 128, 255]);
    }

    #[test]
    fn refuses_kernels_that_are_not_odd_squares() {
        for (kernel, detail) in [
            ("1,2;3,4", "; got 2x2"),
            ("1,2,3;4,5,6", "got 2 rows but row 1 has 3 weights"),
            ("1,1,1;1,1,1;1,1", "got 3 rows but row 3 has 2 weights"),
            ("1,1,1;1,x,1;1,1,1", "\"x\" is not a number"),
            ("1,1,1;1,NaN,1;1,1,1", "\"NaN\" is not a number"),
            ("", "\"\" is not a number"),
            ("5", "got 1x1"),
        ] {
            let err = build_err(&FILTER, json!({ "kernel": kernel }));
            assert_eq!(err.param.as_deref(), Some("kernel"));
            assert!(
                err.message.starts_with(
                    "parameter `kernel` must be a square 3x3, 5x5 or 7x7 matrix of numbers"
                ) && err.message.ends_with(detail),
                "{kernel}: {}",
                err.message
            );
        }
        let nine = ["1"; 9].join(",");
        let err = build_err(&FILTER, json!({ "kernel": vec![nine; 9].join(";") }));
        assert!(err.message.ends_with("got 9x9"), "{}", err.message);
        let err = build_err(
            &FILTER,
            json!({"kernel": "0,0,0;0,1,0;0,0,0", "divisor": 0}),
        );
        assert_eq!(err.param.as_deref(), Some("divisor"));
        assert!(err.message.contains("must not be 0"), "{}", err.message);
    }
}
