//! JPEG through libjpeg-turbo (the mozjpeg fork, built from source with its SIMD kernels when
//! `nasm` is installed). Two things make it the fast path: DCT-scaled decoding, which lets a
//! downscaling pipeline decode at 1/2, 1/4 or 1/8 size and skip most of the inverse DCT and
//! colour conversion (libvips calls this shrink-on-load), and libjpeg-turbo's encoder.

use image::metadata::Orientation;
use image::{RgbImage, RgbaImage};
use mozjpeg::{ColorSpace, Compress, Decompress, Marker};

use crate::bitmap::Bitmap;
use crate::decode::check_pixels;
use crate::{EngineError, Limits};

mod reduced;

/// The decoded first (only) frame, the size it has at full scale after orientation, and its
/// embedded ICC profile.
pub(crate) struct JpegImage {
    pub image: Bitmap,
    pub source: (u32, u32),
    pub icc: Option<Vec<u8>>,
}

/// Decodes at the smallest DCT scale `n/8` that is still at least `min_scale` of the full size
/// (pass 1.0 for a full decode), to RGB with `keep_rgb` and RGBA otherwise, then applies EXIF
/// orientation. CMYK files return `None`: libjpeg cannot convert them to RGB, so the caller
/// falls back to another decoder.
pub(crate) fn decode(
    bytes: &[u8],
    limits: &Limits,
    min_scale: impl FnOnce(u32, u32) -> f64,
    keep_rgb: bool,
) -> Result<Option<JpegImage>, EngineError> {
    let mut decoder = Decompress::builder()
        .with_markers(&[Marker::APP(1), Marker::APP(2)])
        .from_mem(bytes)
        .map_err(corrupt)?;
    if matches!(
        decoder.color_space(),
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK
    ) {
        return Ok(None);
    }
    let (width, height) = (decoder.width() as u32, decoder.height() as u32);
    check_pixels(width, height, limits)?;
    let orientation = decoder
        .markers()
        .find_map(|m| m.data.strip_prefix(b"Exif\0\0"))
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let icc = crate::color::jpeg_icc(
        decoder
            .markers()
            .filter(|m| m.marker == Marker::APP(2))
            .map(|m| m.data),
    );
    let source = if swaps_sides(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    let scale = dct_scale(min_scale(source.0, source.1));
    let image = match reduced::decode(bytes, scale, keep_rgb) {
        Some(image) => image,
        None => {
            decoder.scale(scale);
            let mut started = if keep_rgb {
                decoder.rgb()
            } else {
                decoder.rgba()
            }
            .map_err(corrupt)?;
            let (w, h) = (started.width() as u32, started.height() as u32);
            let pixels = started.read_scanlines::<u8>().map_err(corrupt)?;
            started.finish().map_err(corrupt)?;
            let image = if keep_rgb {
                RgbImage::from_raw(w, h, pixels).map(Bitmap::Rgb)
            } else {
                RgbaImage::from_raw(w, h, pixels).map(Bitmap::Rgba)
            };
            image.ok_or_else(|| {
                EngineError::Corrupt(
                    "the JPEG decoder returned fewer rows than the header promised; \
                     re-export the image and upload it again"
                        .into(),
                )
            })?
        }
    };
    Ok(Some(JpegImage {
        image: image.apply_orientation(orientation),
        source,
        icc,
    }))
}

/// Decodes a JPEG at `numerator`/8 of its size (1 to 8), oriented, to RGB bytes, exactly as the
/// first step of a shrinking pipeline does: the bench harness times it as the floor under
/// pixelmill's thumbnails.
pub fn decode_scaled(bytes: &[u8], numerator: u8, limits: &Limits) -> Result<Vec<u8>, EngineError> {
    let jpeg = decode(bytes, limits, |_, _| f64::from(numerator) / 8.0, true)?;
    jpeg.map(|jpeg| jpeg.image.as_raw().to_vec())
        .ok_or_else(|| {
            EngineError::UnsupportedFormat(
                "CMYK JPEGs are not decoded at reduced scale; decode them at full size".into(),
            )
        })
}

/// The numerator `n` of the smallest scale `n/8` that is not below `min_scale`.
fn dct_scale(min_scale: f64) -> u8 {
    (1..8u8)
        .find(|n| f64::from(*n) / 8.0 >= min_scale)
        .unwrap_or(8)
}

fn swaps_sides(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn corrupt(e: std::io::Error) -> EngineError {
    EngineError::Corrupt(format!(
        "the JPEG image is corrupt or truncated ({e}); re-export it from the original and \
         upload it again"
    ))
}

/// Encodes an opaque image (RGBA's alpha is ignored: callers flatten first) with libjpeg-turbo's
/// baseline settings: 4:2:0 chroma, Huffman tables optimised, no trellis search (mozjpeg's slow
/// extras). `icc` is written as APP2 `ICC_PROFILE` segments.
pub(crate) fn encode(
    image: &Bitmap,
    quality: u8,
    progressive: bool,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    // ICC.1 Annex B numbers the segments from 1 (mozjpeg's write_icc_profile counts from 0, which
    // libjpeg's own reader and browsers reject), at most 255 of them.
    const ICC_PER_SEGMENT: usize = 65533 - 14;
    let icc_segments = icc.map(|icc| icc.chunks(ICC_PER_SEGMENT));
    let icc_count = match &icc_segments {
        Some(segments) => u8::try_from(segments.len()).map_err(|_| {
            "the ICC profile is too large for JPEG (over 255 segments); leave icc out to convert \
             to sRGB"
                .to_string()
        })?,
        None => 0,
    };
    std::panic::catch_unwind(|| {
        let mut compress = Compress::new(match image {
            Bitmap::Rgb(_) => ColorSpace::JCS_RGB,
            Bitmap::Rgba(_) => ColorSpace::JCS_EXT_RGBA,
        });
        compress.set_fastest_defaults();
        compress.set_size(image.width() as usize, image.height() as usize);
        compress.set_quality(f32::from(quality));
        compress.set_optimize_coding(true);
        if progressive {
            compress.set_progressive_mode();
        }
        let mut started = compress.start_compress(Vec::new())?;
        for (n, segment) in icc_segments.into_iter().flatten().enumerate() {
            let data = [
                b"ICC_PROFILE\0".as_slice(),
                &[n as u8 + 1, icc_count],
                segment,
            ];
            started.write_marker(Marker::APP(2), &data.concat());
        }
        started.write_scanlines(image.as_raw())?;
        started.finish()
    })
    .map_err(|_| "libjpeg stopped with an internal error".to_string())?
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progressive_output_uses_progressive_scans() {
        let image = crate::filters::testutil::pattern(64, 48).into();
        let has = |bytes: &[u8], marker: u8| bytes.windows(2).any(|w| w == [0xFF, marker]);
        let baseline = encode(&image, 80, false, None).unwrap();
        let progressive = encode(&image, 80, true, None).unwrap();
        assert!(has(&baseline, 0xC0) && !has(&baseline, 0xC2));
        assert!(has(&progressive, 0xC2) && !has(&progressive, 0xC0));
        // Same pixels either way (both decode, same size).
        let decoded = image::load_from_memory(&progressive).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
    }

    #[test]
    fn dct_scale_is_the_smallest_that_still_covers_the_target() {
        assert_eq!(dct_scale(0.1), 1);
        assert_eq!(dct_scale(0.125), 1);
        assert_eq!(dct_scale(0.13), 2);
        assert_eq!(dct_scale(0.42), 4);
        assert_eq!(dct_scale(0.99), 8);
        assert_eq!(dct_scale(1.0), 8);
        assert_eq!(dct_scale(3.0), 8);
    }
}
