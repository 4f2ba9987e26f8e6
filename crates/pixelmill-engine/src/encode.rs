use std::borrow::Cow;
use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage, RgbaImage};
use pixelmill_core::{IccMode, ImageFormat, OutputFormat, OutputSpec};

use crate::bitmap::{Bitmap, Frame};
use crate::EngineError;

const JPEG_DEFAULT_QUALITY: u8 = 85;
const WEBP_DEFAULT_QUALITY: u8 = 80;
/// NeuQuant sampling step: 1 (image's default) is several times slower for no visible gain.
pub(crate) const GIF_QUANTIZE_SPEED: i32 = 10;
/// libwebp refuses larger canvases.
const WEBP_MAX_SIDE: u32 = 16383;

/// Validates an output spec before a job is accepted, so an unencodable request fails fast.
/// Options are checked against the requested format; with `original` the input decides later
/// (see `embeds_icc`), and a PNG-only option is simply not used when the original is no PNG.
pub fn check_output(output: &OutputSpec) -> Result<(), String> {
    let format = output.format;
    if format == OutputFormat::Avif && !cfg!(feature = "avif") {
        return Err(avif_message());
    }
    if let Some(q) = output.quality.filter(|q| !(1..=100).contains(q)) {
        return Err(format!(
            "output quality must be from 1 to 100, got {q}; pick e.g. 80, or leave it out for \
             the format's default"
        ));
    }
    if let Some(level) = output.compression {
        if level > 9 {
            return Err(format!(
                "output compression must be from 0 (fastest) to 9 (smallest), got {level}; pick \
                 e.g. 9, or leave it out for the fast default"
            ));
        }
        if !matches!(format, OutputFormat::Png | OutputFormat::Original) {
            return Err(format!(
                "output compression applies to png only, and the format is {}; leave \
                 compression out or choose png",
                format.as_str()
            ));
        }
    }
    let no_profile = [
        OutputFormat::Gif,
        OutputFormat::Avif,
        OutputFormat::Tiff,
        OutputFormat::Bmp,
    ];
    if output.icc == IccMode::Keep && no_profile.contains(&format) {
        return Err(format!(
            "output icc \"keep\" needs a format that can carry the profile, and {} here cannot; \
             choose jpeg, png or webp, or leave icc out to convert to sRGB",
            format.as_str()
        ));
    }
    Ok(())
}

/// Whether outputs of `format` carry the input's ICC profile under `IccMode::Keep`; the others
/// get sRGB pixels.
pub(crate) fn embeds_icc(format: ImageFormat) -> bool {
    matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Webp
    )
}

fn avif_message() -> String {
    "this server was built without the AVIF encoder (cargo feature `avif`); choose webp, jpeg or \
     png as the output format"
        .into()
}

/// CPU units per output pixel of each encoder (see `Pipeline::estimate_cost`), measured on a
/// photo at the default settings: libjpeg-turbo and PNG's fast zlib about 8 ns a pixel, libwebp
/// about 85, GIF's quantiser about 130, rav1e about 2.5 µs.
pub(crate) fn encode_cost_per_pixel(format: ImageFormat) -> u64 {
    match format {
        ImageFormat::Bmp | ImageFormat::Tiff => 4,
        ImageFormat::Jpeg | ImageFormat::Png => 16,
        ImageFormat::Webp => 170,
        ImageFormat::Gif => 260,
        ImageFormat::Avif => 5000,
    }
}

/// The concrete format an output spec produces for an input of `input` format.
pub fn resolve(output: OutputFormat, input: ImageFormat) -> Result<ImageFormat, EngineError> {
    Ok(match output {
        OutputFormat::Jpeg => ImageFormat::Jpeg,
        OutputFormat::Png => ImageFormat::Png,
        OutputFormat::Webp => ImageFormat::Webp,
        OutputFormat::Gif => ImageFormat::Gif,
        OutputFormat::Tiff => ImageFormat::Tiff,
        OutputFormat::Bmp => ImageFormat::Bmp,
        OutputFormat::Original => input,
        OutputFormat::Avif if cfg!(feature = "avif") => ImageFormat::Avif,
        OutputFormat::Avif => return Err(EngineError::Encode(avif_message())),
    })
}

/// Whether `format` stores 16 bits per channel, so a 16-bit input can keep them (see `Frame`).
pub(crate) fn holds_16_bits(format: ImageFormat) -> bool {
    matches!(format, ImageFormat::Png | ImageFormat::Tiff)
}

/// Encodes a frame with the options of `output`, embedding `icc` where the format can (see
/// `embeds_icc`). A 16-bit frame is written with 16 bits where the format holds them, reduced
/// to 8 bits otherwise.
pub(crate) fn encode(
    image: &Frame,
    format: ImageFormat,
    output: &OutputSpec,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, EngineError> {
    let deep = match image {
        Frame::Eight(bitmap) => return encode_8bit(bitmap, format, output, icc),
        Frame::Sixteen(deep) if holds_16_bits(format) => deep,
        Frame::Sixteen(deep) => {
            let bitmap = Bitmap::from_dynamic(deep.clone(), true);
            return encode_8bit(&bitmap, format, output, icc);
        }
    };
    let failed = |e: &dyn std::fmt::Display| {
        EngineError::Encode(format!(
            "encoding the 16-bit {}x{} result as {} failed ({e}); try another output format",
            deep.width(),
            deep.height(),
            format.as_str()
        ))
    };
    let mut out = Vec::new();
    if format == ImageFormat::Png {
        let mut encoder =
            PngEncoder::new_with_quality(&mut out, compression(output), FilterType::default());
        if let Some(icc) = icc {
            encoder
                .set_icc_profile(icc.to_vec())
                .map_err(|e| failed(&e))?;
        }
        deep.write_with_encoder(encoder).map_err(|e| failed(&e))?;
    } else {
        deep.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Tiff)
            .map_err(|e| failed(&e))?;
    }
    Ok(out)
}

/// PNG's zlib effort: the requested level, or the encoder's fast default.
fn compression(output: &OutputSpec) -> CompressionType {
    output
        .compression
        .map_or(CompressionType::default(), CompressionType::Level)
}

/// Encodes 8-bit pixels with the options of `output`, embedding `icc` where the format can.
/// JPEG has no alpha, so transparent areas are flattened onto white. WebP is lossy at `quality`
/// (default 80) unless quality is 100, which selects lossless.
fn encode_8bit(
    image: &Bitmap,
    format: ImageFormat,
    output: &OutputSpec,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, EngineError> {
    let quality = output.quality;
    let failed = |e: &dyn std::fmt::Display| {
        EngineError::Encode(format!(
            "encoding the {}x{} result as {} failed ({e}); try another output format",
            image.width(),
            image.height(),
            format.as_str()
        ))
    };
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let quality = quality.unwrap_or(JPEG_DEFAULT_QUALITY).clamp(1, 100);
            let flattened;
            let opaque = match image {
                Bitmap::Rgba(rgba) if !crate::pixels::is_opaque(rgba) => {
                    flattened = Bitmap::Rgb(flatten_on_white(rgba));
                    &flattened
                }
                opaque => opaque,
            };
            out = crate::jpeg::encode(opaque, quality, output.progressive, icc)
                .map_err(|e| failed(&e))?;
        }
        ImageFormat::Webp => {
            let webp = encode_webp(image, quality)?;
            return Ok(match icc {
                Some(icc) => webp_with_icc(&webp, icc, image),
                None => webp,
            });
        }
        ImageFormat::Gif => {
            GifEncoder::new_with_speed(&mut out, GIF_QUANTIZE_SPEED)
                .encode(
                    &to_rgba(image),
                    image.width(),
                    image.height(),
                    ExtendedColorType::Rgba8,
                )
                .map_err(|e| failed(&e))?;
        }
        ImageFormat::Png => {
            let mut encoder =
                PngEncoder::new_with_quality(&mut out, compression(output), FilterType::default());
            if let Some(icc) = icc {
                encoder
                    .set_icc_profile(icc.to_vec())
                    .map_err(|e| failed(&e))?;
            }
            let (pixels, color) = without_opaque_alpha(image);
            encoder
                .write_image(&pixels, image.width(), image.height(), color)
                .map_err(|e| failed(&e))?;
        }
        ImageFormat::Bmp | ImageFormat::Tiff => {
            let codec = match format {
                ImageFormat::Bmp => image::ImageFormat::Bmp,
                _ => image::ImageFormat::Tiff,
            };
            let (pixels, color) = without_opaque_alpha(image);
            let (w, h) = image.dimensions();
            image::write_buffer_with_format(
                &mut Cursor::new(&mut out),
                &pixels,
                w,
                h,
                color,
                codec,
            )
            .map_err(|e| failed(&e))?;
        }
        #[cfg(feature = "avif")]
        ImageFormat::Avif => return encode_avif(image, quality),
        #[cfg(not(feature = "avif"))]
        ImageFormat::Avif => return Err(EngineError::Encode(avif_message())),
    }
    Ok(out)
}

fn encode_webp(image: &Bitmap, quality: Option<u8>) -> Result<Vec<u8>, EngineError> {
    let (w, h) = image.dimensions();
    if w > WEBP_MAX_SIDE || h > WEBP_MAX_SIDE {
        return Err(EngineError::Encode(format!(
            "WebP images can be at most {WEBP_MAX_SIDE} pixels on a side and the result is \
             {w}x{h}; resize it smaller or choose png or jpeg"
        )));
    }
    let encoder = match image {
        Bitmap::Rgb(rgb) => webp::Encoder::from_rgb(rgb, w, h),
        Bitmap::Rgba(rgba) => webp::Encoder::from_rgba(rgba, w, h),
    };
    let encoded = encoder
        .encode_advanced(&webp_config(quality)?)
        .map_err(|e| {
            EngineError::Encode(format!(
                "encoding the {w}x{h} result as webp failed ({e:?}); try png or jpeg"
            ))
        })?;
    Ok(encoded.to_vec())
}

/// Tags an encoded WebP with an ICCP chunk, turning a simple file (one VP8/VP8L chunk) into an
/// extended one first. Done on the RIFF chunks because the webp crate has no mux.
fn webp_with_icc(webp: &[u8], icc: &[u8], image: &Bitmap) -> Vec<u8> {
    const ICC_FLAG: u8 = 0x20;
    const ALPHA_FLAG: u8 = 0x10;
    // 12: "RIFF", size, "WEBP"; an extended file's VP8X chunk is 8 + 10 bytes.
    let body = &webp[12..];
    let mut chunks = Vec::with_capacity(webp.len() + icc.len() + 32);
    let image_chunks = if body.starts_with(b"VP8X") {
        chunks.extend(&body[..18]);
        chunks[8] |= ICC_FLAG;
        &body[18..]
    } else {
        let alpha = if image.is_opaque() { 0 } else { ALPHA_FLAG };
        chunks.extend(b"VP8X");
        chunks.extend(10u32.to_le_bytes());
        chunks.extend([ICC_FLAG | alpha, 0, 0, 0]);
        chunks.extend(&(image.width() - 1).to_le_bytes()[..3]);
        chunks.extend(&(image.height() - 1).to_le_bytes()[..3]);
        body
    };
    chunks.extend(b"ICCP");
    chunks.extend((icc.len() as u32).to_le_bytes());
    chunks.extend(icc);
    if icc.len() % 2 == 1 {
        chunks.push(0);
    }
    chunks.extend(image_chunks);
    let mut out = b"RIFF".to_vec();
    out.extend((chunks.len() as u32 + 4).to_le_bytes());
    out.extend(b"WEBP");
    out.extend(chunks);
    out
}

/// AVIF through rav1e (pure Rust, no assembly, one thread): 10-bit AV1, quality default 60
/// (AVIF's scale runs lower than JPEG's for the same look), speed 8 of 10 so that an output
/// still takes a fraction of a second.
#[cfg(feature = "avif")]
fn encode_avif(image: &Bitmap, quality: Option<u8>) -> Result<Vec<u8>, EngineError> {
    use rgb::FromSlice;
    const AVIF_DEFAULT_QUALITY: u8 = 60;
    const AVIF_SPEED: u8 = 8;
    let quality = f32::from(quality.unwrap_or(AVIF_DEFAULT_QUALITY).clamp(1, 100));
    let (w, h) = image.dimensions();
    let (w, h) = (w as usize, h as usize);
    let encoder = ravif::Encoder::new()
        .with_quality(quality)
        .with_alpha_quality(quality)
        .with_speed(AVIF_SPEED);
    let encoded = match image {
        Bitmap::Rgb(rgb) => encoder.encode_rgb(ravif::Img::new(rgb.as_rgb(), w, h)),
        Bitmap::Rgba(rgba) => encoder.encode_rgba(ravif::Img::new(rgba.as_rgba(), w, h)),
    }
    .map_err(|e| {
        EngineError::Encode(format!(
            "encoding the {w}x{h} result as avif failed ({e}); try webp or jpeg"
        ))
    })?;
    Ok(encoded.avif_file)
}

/// libwebp's settings for `quality` (default 80): lossy, or lossless at 100.
pub(crate) fn webp_config(quality: Option<u8>) -> Result<webp::WebPConfig, EngineError> {
    let quality = quality.unwrap_or(WEBP_DEFAULT_QUALITY).clamp(1, 100);
    let mut config = webp::WebPConfig::new()
        .map_err(|()| EngineError::Encode("libwebp could not set up its encoder".into()))?;
    config.lossless = i32::from(quality == 100);
    config.quality = f32::from(quality);
    Ok(config)
}

/// Lossless formats store opaque images as RGB: a quarter smaller and identical pixels.
fn without_opaque_alpha(image: &Bitmap) -> (Cow<'_, [u8]>, ExtendedColorType) {
    match image {
        Bitmap::Rgb(rgb) => (Cow::Borrowed(rgb.as_raw()), ExtendedColorType::Rgb8),
        Bitmap::Rgba(rgba) if crate::pixels::is_opaque(rgba) => {
            let rgb = rgba.as_raw().chunks_exact(4).flat_map(|p| &p[..3]);
            (Cow::Owned(rgb.copied().collect()), ExtendedColorType::Rgb8)
        }
        Bitmap::Rgba(rgba) => (Cow::Borrowed(rgba.as_raw()), ExtendedColorType::Rgba8),
    }
}

/// RGBA for encoders that only take RGBA (GIF).
fn to_rgba(image: &Bitmap) -> Cow<'_, RgbaImage> {
    match image {
        Bitmap::Rgb(_) => Cow::Owned(image.clone().into_rgba()),
        Bitmap::Rgba(rgba) => Cow::Borrowed(rgba),
    }
}

fn flatten_on_white(image: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let p = image.get_pixel(x, y);
        let a = u32::from(p[3]);
        image::Rgb(std::array::from_fn(|c| {
            ((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbaImage {
        RgbaImage::from_fn(40, 30, |x, y| {
            image::Rgba([(x * 6) as u8, (y * 8) as u8, 90, 255])
        })
    }

    fn options(quality: Option<u8>) -> OutputSpec {
        OutputSpec {
            quality,
            ..OutputSpec::default()
        }
    }

    fn encode_rgba(
        image: &RgbaImage,
        format: ImageFormat,
        output: &OutputSpec,
        icc: Option<&[u8]>,
    ) -> Result<Vec<u8>, EngineError> {
        encode(&image.clone().into(), format, output, icc)
    }

    #[test]
    fn opaque_images_encode_the_same_from_rgb_as_from_rgba() {
        let rgba = crate::filters::testutil::pattern(40, 30);
        let opaque = Bitmap::Rgb(image::DynamicImage::ImageRgba8(rgba).into_rgb8());
        let widened = Bitmap::Rgba(opaque.clone().into_rgba());
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Webp,
            ImageFormat::Gif,
            ImageFormat::Bmp,
        ] {
            let from_rgb = encode(&opaque.clone().into(), format, &options(None), None).unwrap();
            let from_rgba = encode(&widened.clone().into(), format, &options(None), None).unwrap();
            assert_eq!(decode(&from_rgb), decode(&from_rgba), "{format:?}");
        }
    }

    fn decode(bytes: &[u8]) -> RgbaImage {
        image::load_from_memory(bytes).unwrap().to_rgba8()
    }

    #[test]
    fn lossless_formats_round_trip_exactly() {
        let mut img = sample();
        img.put_pixel(0, 0, image::Rgba([1, 2, 3, 4]));
        for format in [ImageFormat::Png, ImageFormat::Tiff, ImageFormat::Bmp] {
            let bytes = encode_rgba(&img, format, &options(None), None).unwrap();
            assert_eq!(crate::sniff::sniff(&bytes).unwrap(), format);
            assert_eq!(decode(&bytes), img, "{format:?}");
        }
        let lossless_webp =
            encode_rgba(&img, ImageFormat::Webp, &options(Some(100)), None).unwrap();
        assert_eq!(decode(&lossless_webp), img);
    }

    #[test]
    fn lossy_formats_stay_close_and_quality_matters() {
        let img = sample();
        for format in [ImageFormat::Jpeg, ImageFormat::Webp] {
            let bytes = encode_rgba(&img, format, &options(None), None).unwrap();
            assert_eq!(crate::sniff::sniff(&bytes).unwrap(), format);
            let back = decode(&bytes);
            let max_err = img
                .pixels()
                .zip(back.pixels())
                .flat_map(|(a, b)| (0..3).map(move |c| a[c].abs_diff(b[c])))
                .max()
                .unwrap();
            assert!(max_err < 40, "{format:?} error {max_err}");
            // Headers dominate a tiny image, so quality is compared on a larger, busier one.
            let busy = crate::filters::testutil::pattern(400, 300);
            let small = encode_rgba(&busy, format, &options(Some(5)), None).unwrap();
            let large = encode_rgba(&busy, format, &options(Some(90)), None).unwrap();
            assert!(small.len() * 3 < large.len(), "{format:?}");
        }
        let gif = encode_rgba(&img, ImageFormat::Gif, &options(None), None).unwrap();
        assert_eq!(decode(&gif).dimensions(), (40, 30));
    }

    #[test]
    fn jpeg_flattens_transparency_onto_white() {
        let img = RgbaImage::from_pixel(16, 16, image::Rgba([0, 0, 0, 0]));
        let back = decode(&encode_rgba(&img, ImageFormat::Jpeg, &options(Some(95)), None).unwrap());
        assert!(back
            .pixels()
            .all(|p| p[0] > 250 && p[1] > 250 && p[2] > 250));
    }

    #[test]
    fn bad_quality_is_rejected_up_front() {
        let spec = |format, quality| OutputSpec {
            format,
            quality,
            ..OutputSpec::default()
        };
        assert!(check_output(&spec(OutputFormat::Jpeg, Some(0))).is_err());
        assert!(check_output(&spec(OutputFormat::Webp, Some(101))).is_err());
        assert!(check_output(&spec(OutputFormat::Original, Some(100))).is_ok());
        assert_eq!(
            resolve(OutputFormat::Original, ImageFormat::Bmp).unwrap(),
            ImageFormat::Bmp
        );
    }

    #[cfg(feature = "avif")]
    #[test]
    fn avif_encodes_with_alpha_and_quality_matters() {
        let busy = crate::filters::testutil::pattern(96, 64);
        let high = encode_rgba(&busy, ImageFormat::Avif, &options(Some(90)), None).unwrap();
        let low = encode_rgba(&busy, ImageFormat::Avif, &options(Some(20)), None).unwrap();
        assert_eq!(crate::sniff::sniff(&high).unwrap(), ImageFormat::Avif);
        assert!(low.len() < high.len(), "{} vs {}", low.len(), high.len());
        let avif = OutputSpec {
            format: OutputFormat::Avif,
            ..OutputSpec::default()
        };
        assert!(check_output(&avif).is_ok());
        assert_eq!(
            resolve(OutputFormat::Avif, ImageFormat::Png).unwrap(),
            ImageFormat::Avif
        );
    }

    #[cfg(not(feature = "avif"))]
    #[test]
    fn avif_is_refused_up_front_without_the_encoder() {
        let avif = OutputSpec {
            format: OutputFormat::Avif,
            ..OutputSpec::default()
        };
        assert!(check_output(&avif).unwrap_err().contains("webp"));
        let err = resolve(OutputFormat::Avif, ImageFormat::Png).unwrap_err();
        assert_eq!(err.code(), "internal");
    }
}
