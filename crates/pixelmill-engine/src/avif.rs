//! AVIF decoding: the HEIF container through mp4parse, the AV1 images (colour and alpha) through
//! libdav1d, then YUV to 8-bit RGBA here. The dav1d binding that builds against Debian 12's
//! libdav1d 1.0 exposes neither the colour matrix nor the range, so both are read from the AV1
//! sequence header, which also gives the frame size before the decoder allocates anything.

use std::io::Cursor;

use dav1d::{PixelLayout, PlanarImageComponent, Plane};
use image::RgbaImage;
use mp4parse::{Feature, ImageRotation, ParseStrictness};

use crate::decode::check_pixels;
use crate::{EngineError, Limits};

/// Decodes the primary image of a still AVIF, with its alpha item when there is one, applying
/// `irot`. Returns the pixels and the embedded ICC profile.
pub(crate) fn decode(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(RgbaImage, Option<Vec<u8>>), EngineError> {
    let container = mp4parse::read_avif(&mut Cursor::new(bytes), ParseStrictness::Normal).map_err(
        |e| match e {
            mp4parse::Error::OutOfMemory => EngineError::TooLarge(
                "the AVIF container needs more memory than allowed; downscale the image before \
                 uploading"
                    .into(),
            ),
            mp4parse::Error::Unsupported(what) => unsupported(what),
            other => corrupt(&format!("its container does not parse ({other})")),
        },
    )?;
    let color = container
        .primary_item_coded_data()
        .filter(|data| !data.is_empty())
        .ok_or_else(|| {
            if container.unsupported_features.contains(Feature::Grid) {
                unsupported("images split into a grid of tiles")
            } else if container.sequence.is_some() {
                unsupported("an image sequence without a still image")
            } else {
                corrupt("it holds no primary image")
            }
        })?;
    let color_header = SequenceHeader::find(color)?;
    check_pixels(color_header.width, color_header.height, limits)?;
    let alpha = match container.alpha_item_coded_data() {
        Some(data) => {
            let header = SequenceHeader::find(data)?;
            if (header.width, header.height) != (color_header.width, color_header.height) {
                return Err(corrupt(
                    "its alpha image is not the size of its colour image",
                ));
            }
            Some((decode_av1(data, limits)?, header))
        }
        None => None,
    };
    let picture = decode_av1(color, limits)?;
    let mut image = to_rgba(&picture, &color_header)?;
    if let Some((alpha, header)) = alpha {
        apply_alpha(&mut image, &alpha, &header, container.premultiplied_alpha)?;
    }
    // irot turns anticlockwise.
    let image = match container.image_rotation() {
        Ok(ImageRotation::D90) => image::imageops::rotate270(&image),
        Ok(ImageRotation::D180) => image::imageops::rotate180(&image),
        Ok(ImageRotation::D270) => image::imageops::rotate90(&image),
        _ => image,
    };
    // A profile that cannot be read is ignored, as viewers do.
    let icc = container
        .icc_colour_information()
        .and_then(Result::ok)
        .map(<[u8]>::to_vec);
    Ok((image, icc))
}

fn corrupt(what: &str) -> EngineError {
    EngineError::Corrupt(format!(
        "the AVIF image is corrupt or truncated: {what}; re-export it from the original and \
         upload it again"
    ))
}

fn unsupported(what: &str) -> EngineError {
    EngineError::UnsupportedFormat(format!(
        "this AVIF file uses a feature pixelmill cannot decode ({what}); re-save it as a single \
         AVIF image, or as JPEG or PNG, and upload it again"
    ))
}

/// One AV1 still picture, decoded on the calling thread. dav1d refuses frames over the pixel limit
/// itself too, so a stream that contradicts its sequence header cannot allocate beyond it.
fn decode_av1(data: &[u8], limits: &Limits) -> Result<dav1d::Picture, EngineError> {
    let failed = |e: dav1d::Error| corrupt(&format!("the AV1 decoder stopped ({e})"));
    let mut settings = dav1d::Settings::new();
    settings.set_n_threads(1);
    settings.set_max_frame_delay(1);
    settings.set_frame_size_limit(u32::try_from(limits.max_pixels).unwrap_or(u32::MAX));
    let mut decoder = dav1d::Decoder::with_settings(&settings).map_err(failed)?;
    let mut sent = decoder.send_data(data.to_vec(), None, None, None);
    // Each round hands dav1d more of the data; a still image needs only a few.
    for _ in 0..64 {
        match sent {
            Ok(()) | Err(dav1d::Error::Again) => {}
            Err(e) => return Err(failed(e)),
        }
        match decoder.get_picture() {
            Ok(picture) => return Ok(picture),
            Err(dav1d::Error::Again) if sent.is_err() => sent = decoder.send_pending_data(),
            Err(dav1d::Error::Again) => break,
            Err(e) => return Err(failed(e)),
        }
    }
    Err(corrupt("its AV1 data ends before a whole picture"))
}

/// What the pixels need from the AV1 sequence header.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SequenceHeader {
    width: u32,
    height: u32,
    full_range: bool,
    /// ITU-T H.273 MatrixCoefficients.
    matrix: u8,
}

impl SequenceHeader {
    /// Parses the first sequence header OBU in `data` (AVIF item data carries one, AV1 §7.5).
    fn find(mut data: &[u8]) -> Result<Self, EngineError> {
        const OBU_SEQUENCE_HEADER: u8 = 1;
        let missing = || corrupt("its AV1 data has no readable sequence header");
        while let Some((&header, rest)) = data.split_first() {
            let kind = (header >> 3) & 0xF;
            let rest = rest
                .get(usize::from(header & 0x4 != 0)..)
                .ok_or_else(missing)?;
            let (len, rest) = if header & 0x2 != 0 {
                leb128(rest).ok_or_else(missing)?
            } else {
                (rest.len(), rest)
            };
            let payload = rest.get(..len).ok_or_else(missing)?;
            if kind == OBU_SEQUENCE_HEADER {
                return Self::parse(&mut Bits::new(payload)).ok_or_else(missing);
            }
            data = &rest[len..];
        }
        Err(missing())
    }

    /// `sequence_header_obu()` of the AV1 specification (§5.5) up to the colour range.
    fn parse(b: &mut Bits) -> Option<Self> {
        let profile = b.read(3)?;
        b.read(1)?; // still_picture
        let reduced = b.flag()?;
        if reduced {
            b.read(5)?; // seq_level_idx
        } else {
            let mut buffer_delay_bits = None;
            if b.flag()? {
                // timing_info
                b.read(32)?;
                b.read(32)?;
                if b.flag()? {
                    b.uvlc()?;
                }
                if b.flag()? {
                    // decoder_model_info
                    buffer_delay_bits = Some(b.read(5)? + 1);
                    b.read(32)?;
                    b.read(10)?; // two 5-bit lengths
                }
            }
            let initial_display_delay = b.flag()?;
            for _ in 0..=b.read(5)? {
                b.read(12)?; // operating_point_idc
                if b.read(5)? > 7 {
                    b.read(1)?; // seq_tier
                }
                if let Some(n) = buffer_delay_bits {
                    if b.flag()? {
                        b.read(n)?;
                        b.read(n)?;
                        b.read(1)?;
                    }
                }
                if initial_display_delay && b.flag()? {
                    b.read(4)?;
                }
            }
        }
        let (width_bits, height_bits) = (b.read(4)? + 1, b.read(4)? + 1);
        let width = b.read(width_bits)? + 1;
        let height = b.read(height_bits)? + 1;
        if !reduced && b.flag()? {
            b.read(7)?; // frame id lengths
        }
        b.read(3)?; // 128x128 superblocks, filter intra, intra edge
        if !reduced {
            b.read(4)?; // interintra, masked compound, warped motion, dual filter
            let order_hint = b.flag()?;
            if order_hint {
                b.read(2)?;
            }
            let screen_content = if b.flag()? { 2 } else { b.read(1)? };
            if screen_content > 0 && !b.flag()? {
                b.read(1)?; // seq_force_integer_mv
            }
            if order_hint {
                b.read(3)?;
            }
        }
        b.read(3)?; // superres, cdef, restoration
                    // color_config()
        let high_bitdepth = b.flag()?;
        if profile == 2 && high_bitdepth {
            b.read(1)?;
        }
        let monochrome = profile != 1 && b.flag()?;
        let (primaries, transfer, matrix) = if b.flag()? {
            (b.read(8)?, b.read(8)?, b.read(8)?)
        } else {
            (2, 2, 2)
        };
        // sRGB primaries and transfer with the identity matrix imply full range, unsignalled.
        let implied_full = !monochrome && (primaries, transfer, matrix) == (1, 13, 0);
        let full_range = implied_full || b.flag()?;
        Some(Self {
            width,
            height,
            full_range,
            matrix: matrix as u8,
        })
    }
}

/// An unsigned LEB128 number and what follows it.
fn leb128(data: &[u8]) -> Option<(usize, &[u8])> {
    let mut value = 0usize;
    for (i, byte) in data.iter().take(8).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

/// Most-significant-bit-first reader; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    fn read(&mut self, n: u32) -> Option<u32> {
        let mut value = 0u64;
        for _ in 0..n {
            let byte = self.data.get(self.at / 8)?;
            value = (value << 1) | u64::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        u32::try_from(value).ok()
    }

    fn flag(&mut self) -> Option<bool> {
        self.read(1).map(|bit| bit == 1)
    }

    /// `uvlc()`: only skipped here, so the value is not kept.
    fn uvlc(&mut self) -> Option<()> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return Some(());
            }
        }
        self.read(zeros).map(drop)
    }
}

/// One plane of a picture, read as integers whatever the storage width.
struct Samples {
    plane: Plane,
    stride: usize,
    wide: bool,
}

impl Samples {
    fn new(picture: &dav1d::Picture, component: PlanarImageComponent) -> Self {
        Self {
            plane: picture.plane(component),
            stride: picture.stride(component) as usize,
            wide: picture.bit_depth() > 8,
        }
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        let row = &self.plane[y * self.stride..];
        if self.wide {
            f32::from(u16::from_ne_bytes([row[2 * x], row[2 * x + 1]]))
        } else {
            f32::from(row[x])
        }
    }
}

/// How code values map to 0.0–1.0 (luma, alpha) and to -0.5–0.5 (chroma).
struct Range {
    offset: f32,
    luma_scale: f32,
    chroma_scale: f32,
    chroma_mid: f32,
}

impl Range {
    fn new(picture: &dav1d::Picture, full: bool) -> Self {
        let bits = picture.bits_per_component().map_or(8, |b| b.0 as i32);
        let unit = 2f32.powi(bits - 8);
        let max = 2f32.powi(bits) - 1.0;
        let chroma_mid = 2f32.powi(bits - 1);
        if full {
            Self {
                offset: 0.0,
                luma_scale: 1.0 / max,
                chroma_scale: 1.0 / max,
                chroma_mid,
            }
        } else {
            Self {
                offset: 16.0 * unit,
                luma_scale: 1.0 / (219.0 * unit),
                chroma_scale: 1.0 / (224.0 * unit),
                chroma_mid,
            }
        }
    }

    fn luma(&self, v: f32) -> f32 {
        (v - self.offset) * self.luma_scale
    }

    fn chroma(&self, v: f32) -> f32 {
        (v - self.chroma_mid) * self.chroma_scale
    }
}

fn to_byte(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// Converts the colour picture to opaque RGBA with the matrix and range of its sequence header;
/// chroma is upsampled by repetition.
fn to_rgba(picture: &dav1d::Picture, header: &SequenceHeader) -> Result<RgbaImage, EngineError> {
    let layout = picture.pixel_layout();
    // (Kr, Kb) of ITU-T H.273; 2 (unspecified) is read as BT.601, as browsers do.
    let (kr, kb) = match header.matrix {
        0 if layout != PixelLayout::I444 => {
            return Err(corrupt("its identity colour matrix needs 4:4:4 chroma"))
        }
        0 => (0.0, 0.0),
        1 => (0.2126, 0.0722),
        4 => (0.30, 0.11),
        2 | 5 | 6 => (0.299, 0.114),
        7 => (0.212, 0.087),
        9 | 10 => (0.2627, 0.0593),
        other => return Err(unsupported(&format!("colour matrix {other}"))),
    };
    let kg = 1.0 - kr - kb;
    let range = Range::new(picture, header.full_range);
    let (shift_x, shift_y) = match layout {
        PixelLayout::I420 => (1, 1),
        PixelLayout::I422 => (1, 0),
        PixelLayout::I400 | PixelLayout::I444 => (0, 0),
    };
    let luma = Samples::new(picture, PlanarImageComponent::Y);
    // A monochrome picture has no chroma planes at all.
    let chroma = (layout != PixelLayout::I400).then(|| {
        (
            Samples::new(picture, PlanarImageComponent::U),
            Samples::new(picture, PlanarImageComponent::V),
        )
    });
    let (width, height) = (picture.width(), picture.height());
    Ok(RgbaImage::from_fn(width, height, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let l = luma.at(x, y);
        let Some((u, v)) = &chroma else {
            let grey = to_byte(range.luma(l));
            return image::Rgba([grey, grey, grey, 255]);
        };
        let (cx, cy) = (x >> shift_x, y >> shift_y);
        let (u, v) = (u.at(cx, cy), v.at(cx, cy));
        let (r, g, b) = if header.matrix == 0 {
            // Identity: the planes are G, B, R.
            (range.luma(v), range.luma(l), range.luma(u))
        } else {
            let (l, cb, cr) = (range.luma(l), range.chroma(u), range.chroma(v));
            let r = l + 2.0 * (1.0 - kr) * cr;
            let b = l + 2.0 * (1.0 - kb) * cb;
            (r, (l - kr * r - kb * b) / kg, b)
        };
        image::Rgba([to_byte(r), to_byte(g), to_byte(b), 255])
    }))
}

/// Puts the alpha picture's luma into `image`'s alpha channel, undoing premultiplication when the
/// file says the colour was stored premultiplied.
fn apply_alpha(
    image: &mut RgbaImage,
    alpha: &dav1d::Picture,
    header: &SequenceHeader,
    premultiplied: bool,
) -> Result<(), EngineError> {
    if (alpha.width(), alpha.height()) != image.dimensions() {
        return Err(corrupt(
            "its alpha image is not the size of its colour image",
        ));
    }
    let range = Range::new(alpha, header.full_range);
    let samples = Samples::new(alpha, PlanarImageComponent::Y);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let a = to_byte(range.luma(samples.at(x as usize, y as usize)));
        if premultiplied && a > 0 {
            for c in &mut pixel.0[..3] {
                *c = (u32::from(*c) * 255 / u32::from(a)).min(255) as u8;
            }
        }
        pixel[3] = a;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reduced still-picture sequence header: profile 0, 8-bit 4:2:0, the given size, with a
    /// colour description (BT.709 primaries/transfer, `matrix`) and `full_range`.
    fn sequence_header_obu(width: u32, height: u32, matrix: u8, full_range: bool) -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        let mut put = |value: u32, n: u32| {
            for i in (0..n).rev() {
                bits.push((value >> i) & 1 == 1);
            }
        };
        put(0, 3); // seq_profile
        put(1, 1); // still_picture
        put(1, 1); // reduced_still_picture_header
        put(31, 5); // seq_level_idx
        put(15, 4); // frame_width_bits_minus_1
        put(15, 4);
        put(width - 1, 16);
        put(height - 1, 16);
        put(0, 3); // superblock size, filter intra, intra edge
        put(0, 3); // superres, cdef, restoration
        put(0, 1); // high_bitdepth
        put(0, 1); // mono_chrome
        put(1, 1); // color_description_present_flag
        put(1, 8);
        put(1, 8);
        put(u32::from(matrix), 8);
        put(u32::from(full_range), 1);
        put(0, 2); // chroma_sample_position
        put(0, 1); // separate_uv_delta_q
        put(0, 1); // film_grain_params_present
        let payload: Vec<u8> = bits
            .chunks(8)
            .map(|byte| (0..8).fold(0, |acc, i| acc << 1 | u8::from(byte.get(i) == Some(&true))))
            .collect();
        // Temporal delimiter first, as encoders write it; then the header with its size field.
        let mut obus = vec![0x12, 0x00, 0x0A, payload.len() as u8];
        obus.extend(payload);
        obus
    }

    /// A smooth picture with a gradient alpha: what lossy coding keeps close.
    #[cfg(feature = "avif")]
    fn gradient(width: u32, height: u32, alpha: bool) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            let a = if alpha { 60 + x * 2 } else { 255 };
            image::Rgba([(x * 4) as u8, (y * 5) as u8, (200 - x - y) as u8, a as u8])
        })
    }

    #[cfg(feature = "avif")]
    fn ravif(
        image: &RgbaImage,
        configure: impl FnOnce(ravif::Encoder) -> ravif::Encoder,
    ) -> Vec<u8> {
        use rgb::FromSlice;
        let (w, h) = image.dimensions();
        let pixels = ravif::Img::new(image.as_raw().as_rgba(), w as usize, h as usize);
        let encoder = ravif::Encoder::new()
            .with_quality(95.0)
            .with_alpha_quality(95.0)
            .with_speed(10);
        configure(encoder).encode_rgba(pixels).unwrap().avif_file
    }

    /// The largest difference in any channel.
    #[cfg(feature = "avif")]
    fn max_error(a: &RgbaImage, b: &RgbaImage) -> u8 {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap()
    }

    #[cfg(feature = "avif")]
    #[test]
    fn the_engines_own_avif_output_decodes_back_within_tolerance() {
        use pixelmill_core::ImageFormat;
        let original = gradient(48, 32, true);
        let bytes = crate::encode::encode(
            &original.clone().into(),
            ImageFormat::Avif,
            &pixelmill_core::OutputSpec {
                quality: Some(95),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let info = crate::inspect(&bytes, &Limits::default()).unwrap();
        assert_eq!(
            (info.format, info.width, info.height, info.frames),
            (ImageFormat::Avif, 48, 32, 1)
        );
        let (decoded, _) = decode(&bytes, &Limits::default()).unwrap();
        let error = max_error(&original, &decoded);
        assert!(error <= 12, "max error {error}");
    }

    #[cfg(feature = "avif")]
    #[test]
    fn bit_depths_matrices_and_alpha_modes_decode() {
        use ravif::{AlphaColorMode, BitDepth, ColorModel};
        let modes = [
            AlphaColorMode::UnassociatedDirty,
            AlphaColorMode::UnassociatedClean,
        ];
        for alpha in [true, false] {
            let original = gradient(40, 24, alpha);
            for depth in [BitDepth::Eight, BitDepth::Ten] {
                for (model, mode) in [ColorModel::YCbCr, ColorModel::RGB].into_iter().zip(modes) {
                    let bytes = ravif(&original, |e| {
                        e.with_bit_depth(depth)
                            .with_internal_color_model(model)
                            .with_alpha_color_mode(mode)
                    });
                    let (decoded, icc) = decode(&bytes, &Limits::default()).unwrap();
                    assert_eq!(icc, None);
                    let error = max_error(&original, &decoded);
                    let case = format!("{depth:?} {model:?} {mode:?}, alpha {alpha}");
                    assert!(error <= 12, "{case}: max error {error}");
                }
            }
        }
    }

    /// Planes written directly: ravif's own premultiplying divides instead of multiplying.
    #[cfg(feature = "avif")]
    #[test]
    fn premultiplied_alpha_and_limited_range_bt709_decode() {
        use ravif::{AlphaColorMode, MatrixCoefficients, PixelRange};
        let original = gradient(40, 24, true);
        let encoder = || {
            ravif::Encoder::new()
                .with_quality(95.0)
                .with_alpha_quality(95.0)
                .with_speed(10)
        };
        // Premultiplied colour as the identity matrix's G, B, R planes.
        let premultiplied = original.pixels().map(|p| {
            let times_alpha = |c: u8| (u16::from(c) * u16::from(p[3]) / 255) as u8;
            [times_alpha(p[1]), times_alpha(p[2]), times_alpha(p[0])]
        });
        let alpha = original.pixels().map(|p| p[3]);
        let bytes = encoder()
            .with_alpha_color_mode(AlphaColorMode::Premultiplied)
            .encode_raw_planes_8_bit(
                40,
                24,
                premultiplied,
                Some(alpha),
                PixelRange::Full,
                MatrixCoefficients::Identity,
            )
            .unwrap()
            .avif_file;
        let (decoded, _) = decode(&bytes, &Limits::default()).unwrap();
        // Where alpha is 60, one step of premultiplied colour is four steps of the original.
        let error = max_error(&original, &decoded);
        assert!(error <= 16, "premultiplied: max error {error}");

        let opaque = gradient(40, 24, false);
        let limited_bt709 = opaque.pixels().map(|p| {
            let [r, g, b] = [p[0], p[1], p[2]].map(|c| f32::from(c) / 255.0);
            let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            let (cb, cr) = ((b - y) / 1.8556, (r - y) / 1.5748);
            [16.0 + 219.0 * y, 128.0 + 224.0 * cb, 128.0 + 224.0 * cr].map(|v| v.round() as u8)
        });
        let bytes = encoder()
            .encode_raw_planes_8_bit(
                40,
                24,
                limited_bt709,
                None::<[u8; 0]>,
                PixelRange::Limited,
                MatrixCoefficients::BT709,
            )
            .unwrap()
            .avif_file;
        let (decoded, _) = decode(&bytes, &Limits::default()).unwrap();
        let error = max_error(&opaque, &decoded);
        assert!(error <= 12, "limited range BT.709: max error {error}");
    }

    #[cfg(feature = "avif")]
    #[test]
    fn sizes_over_the_limit_and_cut_files_are_refused_cleanly() {
        let bytes = ravif(&gradient(40, 24, true), |e| e);
        let small = Limits {
            max_pixels: 40 * 24 - 1,
            ..Limits::default()
        };
        let err = crate::inspect(&bytes, &small).unwrap_err();
        assert_eq!(err.code(), "image_too_large", "{err}");
        assert!(err.to_string().contains("40x24"), "{err}");
        for len in 0..bytes.len() - 1 {
            let err = crate::inspect(&bytes[..len], &Limits::default()).unwrap_err();
            assert!(
                matches!(err.code(), "corrupt_image" | "unsupported_format"),
                "cut at {len}: {err}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 40;
        flipped[last..].iter_mut().for_each(|b| *b ^= 0x5A);
        if let Err(err) = crate::inspect(&flipped, &Limits::default()) {
            assert_eq!(err.code(), "corrupt_image", "{err}");
        }
    }

    #[test]
    fn sequence_headers_give_size_matrix_and_range() {
        let header = SequenceHeader::find(&sequence_header_obu(40_000, 30_000, 1, false)).unwrap();
        assert_eq!(
            header,
            SequenceHeader {
                width: 40_000,
                height: 30_000,
                full_range: false,
                matrix: 1,
            }
        );
        let header = SequenceHeader::find(&sequence_header_obu(3, 2, 6, true)).unwrap();
        assert_eq!((header.matrix, header.full_range), (6, true));
        let whole = sequence_header_obu(3, 2, 6, true);
        for len in 0..whole.len() - 1 {
            assert!(SequenceHeader::find(&whole[..len]).is_err(), "cut at {len}");
        }
    }
}
