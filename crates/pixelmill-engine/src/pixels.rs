//! Pixel kernels shared by several filters: per-pixel colour maps and the gaussian blur that
//! both `blur` and `sharpen` build on.

use image::RgbaImage;

/// Replaces every pixel's RGB with `f(rgb)`, leaving alpha untouched.
pub(crate) fn map_rgb(image: &mut RgbaImage, f: impl Fn([u8; 3]) -> [u8; 3]) {
    for px in image.pixels_mut() {
        let [r, g, b] = f([px[0], px[1], px[2]]);
        px.0 = [r, g, b, px[3]];
    }
}

/// Applies a per-channel lookup table to R, G and B (alpha untouched): one table lookup per
/// channel is far cheaper than float maths per pixel.
pub(crate) fn map_channels(image: &mut RgbaImage, f: impl Fn(f64) -> f64) {
    let lut: [u8; 256] = std::array::from_fn(|i| clamp_u8(f(i as f64)));
    map_rgb(image, |[r, g, b]| {
        [lut[r as usize], lut[g as usize], lut[b as usize]]
    });
}

pub(crate) fn clamp_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Normalised 1-D gaussian weights covering ±3 sigma.
fn kernel(sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as i64;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / sum) as f32).collect()
}

/// Number of kernel taps for `sigma`, for cost estimates.
pub(crate) fn kernel_taps(sigma: f64) -> u64 {
    2 * (3.0 * sigma).ceil().max(1.0) as u64 + 1
}

/// Separable gaussian blur with clamped edges. Works on premultiplied alpha so transparent
/// pixels' (meaningless) colours do not bleed into their neighbours.
pub(crate) fn gaussian_blur(image: &RgbaImage, sigma: f64) -> RgbaImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let weights = kernel(sigma);
    let radius = (weights.len() / 2) as isize;
    let premul: Vec<[f32; 4]> = image
        .pixels()
        .map(|p| {
            let a = f32::from(p[3]) / 255.0;
            [
                f32::from(p[0]) * a,
                f32::from(p[1]) * a,
                f32::from(p[2]) * a,
                f32::from(p[3]),
            ]
        })
        .collect();
    let clamp = |i: isize, len: usize| i.clamp(0, len as isize - 1) as usize;

    let mut horizontal = vec![[0f32; 4]; w * h];
    for y in 0..h {
        let row = &premul[y * w..(y + 1) * w];
        for (x, out) in horizontal[y * w..(y + 1) * w].iter_mut().enumerate() {
            for (k, weight) in weights.iter().enumerate() {
                let src = row[clamp(x as isize + k as isize - radius, w)];
                for c in 0..4 {
                    out[c] += src[c] * weight;
                }
            }
        }
    }

    // The vertical pass accumulates whole rows at a time so memory is read sequentially.
    let mut out = RgbaImage::new(w as u32, h as u32);
    let mut acc = vec![[0f32; 4]; w];
    for (y, out_row) in out.chunks_exact_mut(w * 4).enumerate() {
        acc.iter_mut().for_each(|a| *a = [0.0; 4]);
        for (k, weight) in weights.iter().enumerate() {
            let sy = clamp(y as isize + k as isize - radius, h);
            for (a, src) in acc.iter_mut().zip(&horizontal[sy * w..(sy + 1) * w]) {
                for c in 0..4 {
                    a[c] += src[c] * weight;
                }
            }
        }
        for (px, a) in out_row.chunks_exact_mut(4).zip(&acc) {
            let alpha = a[3];
            let unpremul = if alpha > 0.0 { 255.0 / alpha } else { 0.0 };
            for c in 0..3 {
                px[c] = clamp_u8(f64::from(a[c] * unpremul));
            }
            px[3] = clamp_u8(f64::from(alpha));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = kernel(2.0);
        assert_eq!(k.len() as u64, kernel_taps(2.0));
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(k[0], k[k.len() - 1]);
        assert!(k[k.len() / 2] > k[0]);
    }

    #[test]
    fn transparent_neighbours_do_not_bleed_colour() {
        // Left half opaque red, right half fully transparent green.
        let img = RgbaImage::from_fn(8, 1, |x, _| {
            if x < 4 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0])
            }
        });
        let out = gaussian_blur(&img, 1.0);
        for px in out.pixels().filter(|p| p[3] > 0) {
            assert_eq!([px[0], px[1], px[2]], [255, 0, 0], "{px:?}");
        }
        assert!(out.get_pixel(4, 0)[3] > 0 && out.get_pixel(4, 0)[3] < 255);
    }
}
