//! Blurhash placeholders: a ~28-character string a client decodes into a blurred
//! preview while the real image loads. Computed at upload from the decoded pixels.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

use crate::EngineError;

/// Components across and down: 4x3 suits the usual landscape photo.
const COMPONENTS: (u32, u32) = (4, 3);
/// The hash only keeps low frequencies, so a small copy gives the same result far faster.
const SAMPLE_SIDE: u32 = 32;

pub(crate) fn blurhash(image: &RgbaImage) -> Result<String, EngineError> {
    let (w, h) = image.dimensions();
    let scale = (f64::from(SAMPLE_SIDE) / f64::from(w.max(h))).min(1.0);
    let (sw, sh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let mut small = RgbaImage::new(sw, sh);
    Resizer::new()
        .resize(
            image,
            &mut small,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box)),
        )
        .map_err(|e| EngineError::Encode(format!("blurhash sampling failed: {e}")))?;
    blurhash::encode(COMPONENTS.0, COMPONENTS.1, sw, sh, small.as_raw())
        .map_err(|e| EngineError::Encode(format!("blurhash encoding failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blurhash_decodes_back_to_the_images_colours() {
        // Left half red, right half blue.
        let image = RgbaImage::from_fn(300, 200, |x, _| {
            image::Rgba(if x < 150 {
                [220, 20, 20, 255]
            } else {
                [20, 20, 220, 255]
            })
        });
        let hash = blurhash(&image).unwrap();
        assert_eq!(hash.len(), 4 + 2 * 4 * 3, "{hash}");
        let preview = blurhash::decode(&hash, 30, 20, 1.0).unwrap();
        let at = |x: usize, y: usize| &preview[(y * 30 + x) * 4..(y * 30 + x) * 4 + 3];
        assert!(at(2, 10)[0] > 150 && at(2, 10)[2] < 100, "{:?}", at(2, 10));
        assert!(
            at(27, 10)[2] > 150 && at(27, 10)[0] < 100,
            "{:?}",
            at(27, 10)
        );
        // A 1x1 image still hashes.
        assert!(blurhash(&RgbaImage::new(1, 1)).is_ok());
    }
}
