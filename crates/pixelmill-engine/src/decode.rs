use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};
use pixelmill_core::{IccMode, ImageFormat};

use crate::animation::Looping;
use crate::bitmap::Frame;
use crate::sniff::sniff;
use crate::EngineError;

/// What a single upload or job may cost in memory. Checked against headers before any pixel
/// buffer is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum width × height of the image and of every animation frame.
    pub max_pixels: u64,
    /// Maximum number of animation frames.
    pub max_frames: u32,
    /// Maximum pixels decoded across every frame (canvas × frames): an animation of many large
    /// frames is refused from its headers even when each frame is within `max_pixels`.
    pub max_total_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_frames: 1000,
            max_total_pixels: 400_000_000,
        }
    }
}

/// What `inspect` learned about a sound image. Width and height are after EXIF orientation,
/// i.e. as the image is displayed and as filters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// 4x3-component blurhash of the (first frame of the) image, for placeholders.
    pub blurhash: String,
}

/// A decoded image, first frame only, with orientation applied: 8-bit RGBA, or what `Accept`
/// allowed (RGB for an image without alpha, 16 bits per channel for a 16-bit one).
pub(crate) struct Decoded {
    pub format: ImageFormat,
    pub image: Frame,
    /// The displayed size at full scale; larger than `image` when the decoder shrank on load.
    pub source: (u32, u32),
    pub frames: u32,
    /// The embedded ICC profile, when it was kept (`IccMode::Keep`) rather than applied.
    pub icc: Option<Vec<u8>>,
}

/// Sniffs, enforces `limits` from the headers, then decodes everything once so that corrupt or
/// truncated files are rejected at upload rather than in a job.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<ImageInfo, EngineError> {
    let decoded = decode(bytes, limits, |_, _| 1.0)?;
    // Every frame of an animation is decoded once too, so that a job cannot fail on a frame
    // the upload never looked at.
    let frames =
        crate::animation::check_frames(bytes, decoded.format, limits)?.unwrap_or(decoded.frames);
    Ok(ImageInfo {
        format: decoded.format,
        width: decoded.source.0,
        height: decoded.source.1,
        frames,
        blurhash: crate::placeholder::blurhash(&decoded.image.into_rgba())?,
    })
}

/// Decodes the first frame to RGBA, in sRGB. `min_scale` is asked, with the full displayed size,
/// how small the decoded image may be relative to it (1.0: full size); decoders that can shrink
/// on load (JPEG) decode at the smallest scale not below that.
pub(crate) fn decode(
    bytes: &[u8],
    limits: &Limits,
    min_scale: impl FnOnce(u32, u32) -> f64,
) -> Result<Decoded, EngineError> {
    decode_with(bytes, limits, min_scale, Accept::default())
}

/// What a caller takes from the decoder besides 8-bit RGBA in sRGB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Accept {
    /// `Keep`: an embedded profile is not applied but handed back in `Decoded::icc`, for the
    /// encoder to embed.
    pub icc: IccMode,
    /// An image without alpha may come back as RGB (see `Bitmap`).
    pub rgb: bool,
    /// A 16-bit image may keep its 16 bits (see `Frame`).
    pub deep: bool,
}

/// As `decode`, taking what `accept` allows.
pub(crate) fn decode_with(
    bytes: &[u8],
    limits: &Limits,
    min_scale: impl FnOnce(u32, u32) -> f64,
    accept: Accept,
) -> Result<Decoded, EngineError> {
    let format = sniff(bytes)?;
    let codec = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        // Decoded by crate::avif, not by image.
        ImageFormat::Avif => image::ImageFormat::Avif,
    };
    if let Some((width, height)) = png_header_size(bytes) {
        check_pixels(width, height, limits)?;
    }
    check_containers(bytes, format)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(EngineError::Corrupt(
            "the JPEG ends before its end-of-image marker, so it was cut off in transfer; upload \
             the complete file"
                .into(),
        ));
    }
    // Decoders are third-party code fed hostile input: a panic must become a clean rejection.
    catch_unwind(AssertUnwindSafe(|| {
        // Animations are checked from their headers before any frame is decoded.
        let frames = match format {
            ImageFormat::Gif => scan_gif(bytes, limits)?.0,
            ImageFormat::Webp => crate::animation::scan_webp(bytes, limits)?,
            _ => 1,
        };
        let first_frame = || decode_first_frame(bytes, codec, format, limits, accept);
        let (mut image, source, icc) = match format {
            ImageFormat::Jpeg => match crate::jpeg::decode(bytes, limits, min_scale, accept.rgb)? {
                Some(jpeg) => (jpeg.image.into(), jpeg.source, jpeg.icc),
                None => full_size(first_frame()?),
            },
            ImageFormat::Avif => {
                let (image, icc) = crate::avif::decode(bytes, limits)?;
                full_size((Frame::Eight(image.into()), icc))
            }
            _ => full_size(first_frame()?),
        };
        let icc = match (icc, accept.icc) {
            (Some(icc), IccMode::Srgb) => {
                crate::color::to_srgb(&mut image, &icc)?;
                None
            }
            (icc, _) => icc,
        };
        Ok(Decoded {
            format,
            image,
            source,
            frames,
            icc,
        })
    }))
    .unwrap_or_else(|_| {
        Err(EngineError::Corrupt(format!(
            "the {} decoder could not make sense of this file; re-export the image from its \
             original and upload it again",
            format.as_str()
        )))
    })
}

fn full_size((image, icc): (Frame, Option<Vec<u8>>)) -> (Frame, (u32, u32), Option<Vec<u8>>) {
    let size = image.dimensions();
    (image, size, icc)
}

/// Structural checks the decoders get wrong on hostile input, so they run first: a WebP chunk
/// that claims to be larger than the file (image-webp allocates what it claims, and a failed
/// allocation aborts the process), and a PNG palette whose length is not whole RGB triples
/// (png 0.18 panics on it).
fn check_containers(bytes: &[u8], format: ImageFormat) -> Result<(), EngineError> {
    let corrupt = |what: &str| {
        EngineError::Corrupt(format!(
            "the {} file is corrupt: {what}; re-export it from the original and upload it again",
            format.as_str()
        ))
    };
    match format {
        ImageFormat::Webp => {
            for (_, at, len) in chunks(bytes, 12, ChunkLayout::Riff) {
                if at + len > bytes.len() {
                    return Err(corrupt("a chunk claims to be larger than the file"));
                }
            }
        }
        ImageFormat::Png => {
            for (kind, _, len) in chunks(bytes, 8, ChunkLayout::Png) {
                if kind == *b"PLTE" && len % 3 != 0 {
                    return Err(corrupt("its palette is not a whole number of colours"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[derive(Clone, Copy)]
pub(crate) enum ChunkLayout {
    /// Little-endian size after the type, payload padded to an even length (RIFF: WebP).
    Riff,
    /// Big-endian length before the type, a CRC after the payload (PNG).
    Png,
}

/// (type, payload offset, payload length) of each chunk from `start`, as the headers claim
/// them; stops at the first header that does not fit.
pub(crate) fn chunks(
    bytes: &[u8],
    start: usize,
    layout: ChunkLayout,
) -> impl Iterator<Item = ([u8; 4], usize, usize)> + '_ {
    let mut at = start;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at.checked_add(8)?)?;
        let word = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        let (kind, len) = match layout {
            ChunkLayout::Riff => (word(&header[..4]), u32::from_le_bytes(word(&header[4..]))),
            ChunkLayout::Png => (word(&header[4..]), u32::from_be_bytes(word(&header[..4]))),
        };
        let (payload, len) = (at + 8, len as usize);
        let trailer = match layout {
            ChunkLayout::Riff => len % 2,
            ChunkLayout::Png => 4,
        };
        at = payload.saturating_add(len).saturating_add(trailer);
        Some((kind, payload, len))
    })
}

/// A PNG's size sits at a fixed place in its first chunk; reading it there enforces the pixel limit
/// before the decoder validates anything (an oversized image is refused as such, whatever else is wrong).
fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24).filter(|h| h.starts_with(b"IHDR"))?;
    let field =
        |at: usize| u32::from_be_bytes([ihdr[at], ihdr[at + 1], ihdr[at + 2], ihdr[at + 3]]);
    Some((field(4), field(8)))
}

/// JPEG decoders fill a cut-off scan with grey and report success, so completeness is checked
/// here: the end-of-image marker must follow the last start-of-scan. (Entropy-coded data escapes
/// 0xFF, so neither marker can appear by accident inside a scan; a thumbnail's markers come earlier.)
/// Searched from the end for the last EOI, which sits in the final bytes of a complete file:
/// searching backwards for the last SOS instead walked the whole scan (1.4 ms for 12 MP).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOS: [u8; 2] = [0xFF, 0xDA];
    memchr::memmem::rfind(bytes, &[0xFF, 0xD9]).is_some_and(|eoi| {
        memchr::memmem::find(&bytes[eoi..], &SOS).is_none()
            && memchr::memmem::find(&bytes[..eoi], &SOS).is_some()
    })
}

fn decode_first_frame(
    bytes: &[u8],
    codec: image::ImageFormat,
    format: ImageFormat,
    limits: &Limits,
    accept: Accept,
) -> Result<(Frame, Option<Vec<u8>>), EngineError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec);
    let mut codec_limits = image::Limits::default();
    // Room for a 16-bit RGBA decode buffer plus the decoder's own scratch; a lying header then
    // fails inside the decoder instead of allocating without bound.
    codec_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8) + (64 << 20));
    reader.limits(codec_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, format))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // A profile that cannot be read is ignored, as viewers do.
    let icc = decoder.icc_profile().ok().flatten();
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, format))?;
    image.apply_orientation(orientation);
    Ok((Frame::from_dynamic(image, accept.rgb, accept.deep), icc))
}

/// Counts GIF frames without LZW-decoding them, checking every frame's size on the way, and
/// reads how the animation loops.
pub(crate) fn scan_gif(bytes: &[u8], limits: &Limits) -> Result<(u32, Looping), EngineError> {
    let corrupt = |e: gif::DecodingError| {
        let e = match e {
            gif::DecodingError::Io(e) => ImageError::IoError(e),
            other => ImageError::IoError(std::io::Error::other(other)),
        };
        map_image_error(e, ImageFormat::Gif)
    };
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(corrupt)?;
    let canvas = (u32::from(decoder.width()), u32::from(decoder.height()));
    check_pixels(canvas.0, canvas.1, limits)?;
    let mut frames = 0u32;
    // Frame headers only: reading frames, even with decoding skipped, lets the gif crate
    // reserve a buffer sized from the header before the limits below have been checked.
    while let Some(frame) = decoder.next_frame_info().map_err(corrupt)? {
        let (w, h) = (u32::from(frame.width), u32::from(frame.height));
        check_pixels(w, h, limits)?;
        frames += 1;
        if frames > limits.max_frames {
            return Err(crate::animation::too_many_frames(limits));
        }
        // Every frame is composed onto the whole canvas, so each costs the canvas's pixels.
        check_total_pixels(canvas.0, canvas.1, frames, limits)?;
    }
    if frames == 0 {
        return Err(EngineError::Corrupt(
            "the GIF contains no image frames; upload a GIF with at least one frame".into(),
        ));
    }
    let looping = match decoder.repeat() {
        gif::Repeat::Infinite => Looping::Forever,
        // The NETSCAPE extension counts repeats after the first play; no extension: play once.
        gif::Repeat::Finite(n) => Looping::Plays(n.saturating_add(1)),
    };
    Ok((frames, looping))
}

pub(crate) fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), EngineError> {
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(EngineError::Corrupt(format!(
            "the image claims to be {width}x{height} pixels, which is empty; upload a real image"
        )));
    }
    if pixels > limits.max_pixels {
        return Err(EngineError::TooLarge(format!(
            "the image is {width}x{height} ({pixels} pixels), over the limit of {} pixels; \
             downscale it before uploading",
            limits.max_pixels
        )));
    }
    Ok(())
}

/// Refuses an animation whose `frames` frames of `width`×`height` pass `max_total_pixels`.
pub(crate) fn check_total_pixels(
    width: u32,
    height: u32,
    frames: u32,
    limits: &Limits,
) -> Result<(), EngineError> {
    let total = u64::from(width) * u64::from(height) * u64::from(frames);
    if total > limits.max_total_pixels {
        return Err(EngineError::TooLarge(format!(
            "the animation has {frames} or more frames of {width}x{height}, {total} pixels in \
             all, over the limit of {} pixels across all frames; use fewer or smaller frames",
            limits.max_total_pixels
        )));
    }
    Ok(())
}

fn map_image_error(e: ImageError, format: ImageFormat) -> EngineError {
    let name = format.as_str();
    match e {
        ImageError::Limits(e) => EngineError::TooLarge(format!(
            "decoding this {name} image would need more memory than allowed ({e}); downscale it \
             before uploading"
        )),
        ImageError::Unsupported(e) => EngineError::UnsupportedFormat(format!(
            "this {name} file uses a feature pixelmill cannot decode ({e}); re-save it as a \
             standard JPEG or PNG and upload it again"
        )),
        other => EngineError::Corrupt(format!(
            "the {name} image is corrupt or truncated ({other}); re-export it from the original \
             and upload it again"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::RgbaImage;
    use image::{Frame, Rgba};

    fn encoded(format: image::ImageFormat, width: u32, height: u32) -> Vec<u8> {
        let img = crate::filters::testutil::pattern(width, height);
        let img = DynamicImage::ImageRgba8(img);
        // JPEG cannot carry alpha.
        let img = match format {
            image::ImageFormat::Jpeg => DynamicImage::ImageRgb8(img.to_rgb8()),
            _ => img,
        };
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn gif(frames: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let frames = (0..frames)
            .map(|i| Frame::new(RgbaImage::from_pixel(6, 4, Rgba([i as u8 * 40, 0, 0, 255]))));
        GifEncoder::new(&mut out).encode_frames(frames).unwrap();
        out
    }

    /// Inserts an EXIF APP1 segment (little-endian TIFF, one Orientation entry) after SOI.
    fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0]); // tag 0x0112, SHORT, count 1
        tiff.extend(orientation.to_le_bytes());
        tiff.extend([0, 0, 0, 0, 0, 0]); // value padding, next IFD = none
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend((app1.len() as u16 + 2).to_be_bytes());
        out.extend(app1);
        out.extend(&jpeg[2..]);
        out
    }

    #[test]
    fn inspects_every_supported_format() {
        use image::ImageFormat as F;
        let cases = [
            (F::Png, ImageFormat::Png),
            (F::Jpeg, ImageFormat::Jpeg),
            (F::WebP, ImageFormat::Webp),
            (F::Bmp, ImageFormat::Bmp),
            (F::Tiff, ImageFormat::Tiff),
            (F::Gif, ImageFormat::Gif),
        ];
        for (codec, format) in cases {
            let info = inspect(&encoded(codec, 12, 5), &Limits::default()).unwrap();
            let expected = (format, 12, 5, 1);
            let got = (info.format, info.width, info.height, info.frames);
            assert_eq!(got, expected, "{codec:?}");
        }
    }

    #[test]
    fn exif_orientation_6_swaps_dimensions_and_rotates() {
        let plain = encoded(image::ImageFormat::Jpeg, 16, 8);
        let rotated = with_exif_orientation(&plain, 6);
        let info = inspect(&rotated, &Limits::default()).unwrap();
        assert_eq!((info.width, info.height), (8, 16));
        let upright = decode(&plain, &Limits::default(), |_, _| 1.0)
            .unwrap()
            .image
            .into_rgba();
        let turned = decode(&rotated, &Limits::default(), |_, _| 1.0)
            .unwrap()
            .image
            .into_rgba();
        // Orientation 6 = rotate 90 clockwise to display: top-left ends at top-right.
        assert_eq!(turned, image::imageops::rotate90(&upright));
    }

    #[test]
    fn jpeg_shrinks_on_load_and_reports_its_full_size() {
        let plain = encoded(image::ImageFormat::Jpeg, 64, 48);
        let decoded = decode(&plain, &Limits::default(), |w, h| {
            assert_eq!((w, h), (64, 48));
            0.2
        })
        .unwrap();
        assert_eq!(decoded.image.dimensions(), (16, 12));
        assert_eq!(decoded.source, (64, 48));
        // The scale is asked with the displayed (rotated) size and applies to both sides.
        let rotated = with_exif_orientation(&plain, 6);
        let decoded = decode(&rotated, &Limits::default(), |w, h| {
            assert_eq!((w, h), (48, 64));
            0.5
        })
        .unwrap();
        assert_eq!(decoded.image.dimensions(), (24, 32));
        assert_eq!(decoded.source, (48, 64));
    }

    #[test]
    fn embedded_profiles_are_converted_to_srgb() {
        use image::ImageEncoder;
        let grey = RgbaImage::from_pixel(4, 4, image::Rgba([128, 128, 128, 255]));
        let mut png = Vec::new();
        let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
        encoder
            .set_icc_profile(crate::color::tests::linear_rgb_icc())
            .unwrap();
        encoder
            .write_image(&grey, 4, 4, image::ExtendedColorType::Rgba8)
            .unwrap();
        let decoded = decode(&png, &Limits::default(), |_, _| 1.0).unwrap();
        let p = *decoded.image.into_rgba().get_pixel(1, 1);
        assert!(
            (186..=190).contains(&p[0]),
            "linear 128 shows as sRGB ~188: {p:?}"
        );
    }

    #[test]
    fn gif_frames_are_counted_and_limited() {
        let bytes = gif(3);
        assert_eq!(inspect(&bytes, &Limits::default()).unwrap().frames, 3);
        let limits = Limits {
            max_frames: 2,
            ..Limits::default()
        };
        assert_eq!(
            inspect(&bytes, &limits).unwrap_err().code(),
            "image_too_large"
        );
    }

    #[test]
    fn an_animation_over_the_pixels_across_its_frames_is_refused() {
        // Three 6x4 frames: 72 pixels in all.
        let bytes = gif(3);
        let limits = |max_total_pixels| Limits {
            max_total_pixels,
            ..Limits::default()
        };
        assert_eq!(inspect(&bytes, &limits(72)).unwrap().frames, 3);
        let err = inspect(&bytes, &limits(71)).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
        assert!(err.to_string().contains("across all frames"), "{err}");
    }

    #[test]
    fn oversized_headers_are_refused_before_decoding() {
        let png = encoded(image::ImageFormat::Png, 100, 100);
        let limits = Limits {
            max_pixels: 9_999,
            ..Limits::default()
        };
        let err = inspect(&png, &limits).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
        assert!(err.to_string().contains("100x100"), "{err}");
        // A PNG header claiming 100000x100000 with a wrong CRC is still refused for its size.
        let mut lying_png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
        lying_png.extend_from_slice(&[
            0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 2, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(
            inspect(&lying_png, &Limits::default()).unwrap_err().code(),
            "image_too_large"
        );
        // A GIF whose screen descriptor claims 65535x65535 pixels.
        let mut lying = gif(1);
        lying[6..10].copy_from_slice(&[0xFF; 4]);
        assert_eq!(
            inspect(&lying, &Limits::default()).unwrap_err().code(),
            "image_too_large"
        );
    }

    #[test]
    fn a_jpeg_cut_after_its_embedded_thumbnail_is_incomplete() {
        let main = encoded(image::ImageFormat::Jpeg, 64, 48);
        let thumbnail = encoded(image::ImageFormat::Jpeg, 8, 8);
        // The thumbnail (its own SOS and EOI) rides in an APP1 segment, as EXIF thumbnails do.
        let segment_len = u16::try_from(thumbnail.len() + 2).unwrap();
        let mut with_thumbnail = main[..2].to_vec();
        with_thumbnail.extend([0xFF, 0xE1]);
        with_thumbnail.extend(segment_len.to_be_bytes());
        with_thumbnail.extend(&thumbnail);
        with_thumbnail.extend(&main[2..]);
        assert!(jpeg_is_complete(&with_thumbnail));
        let cut = &with_thumbnail[..with_thumbnail.len() - 40];
        assert!(!jpeg_is_complete(cut));
        assert!(!jpeg_is_complete(&main[..main.len() - 2]));
        assert!(jpeg_is_complete(&[main.as_slice(), &[0u8; 16]].concat()));
    }

    #[test]
    fn junk_truncated_and_mislabelled_files_are_rejected_cleanly() {
        let limits = Limits::default();
        assert_eq!(
            inspect(b"just some text", &limits).unwrap_err().code(),
            "unsupported_format"
        );
        // An AVIF signature with no image boxes behind it.
        let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf";
        assert_eq!(inspect(avif, &limits).unwrap_err().code(), "corrupt_image");
        // PNG body behind a JPEG signature.
        let mut mislabelled = vec![0xFF, 0xD8, 0xFF];
        mislabelled.extend(encoded(image::ImageFormat::Png, 8, 8));
        assert_eq!(
            inspect(&mislabelled, &limits).unwrap_err().code(),
            "corrupt_image"
        );
        use image::ImageFormat as F;
        // Decoders tolerate some cuts; a JPEG is refused wherever it is cut.
        let jpeg = encoded(F::Jpeg, 64, 48);
        let jpeg = with_exif_orientation(&jpeg, 1);
        for len in (0..jpeg.len() - 1).step_by(5) {
            let code = inspect(&jpeg[..len], &limits).unwrap_err().code();
            assert!(
                matches!(code, "corrupt_image" | "unsupported_format"),
                "cut at {len}"
            );
        }
        assert!(inspect(&[jpeg.as_slice(), b"trailing bytes"].concat(), &limits).is_ok());
        for codec in [F::Png, F::Jpeg, F::WebP, F::Bmp, F::Tiff, F::Gif] {
            let whole = encoded(codec, 24, 16);
            for len in (0..whole.len() - 1).step_by(7) {
                if let Err(e) = inspect(&whole[..len], &limits) {
                    assert!(
                        matches!(e.code(), "corrupt_image" | "unsupported_format"),
                        "{codec:?} cut at {len}: {e}"
                    );
                }
            }
        }
    }
}
