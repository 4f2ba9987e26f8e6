//! Colour management. Outputs carry no ICC profile, so viewers show them as sRGB: pixels that
//! arrive tagged with another profile (a phone's Display P3, Adobe RGB, a linear profile) are
//! converted to sRGB on decode with Little CMS, as a browser would show them.

use lcms2::{ColorSpaceSignature, InfoType, Intent, Locale, PixelFormat, Profile, Transform};

use image::DynamicImage;

use crate::bitmap::{Bitmap, Frame};
use crate::EngineError;

/// Converts `image` from the colour space of `icc` to sRGB in place. Profiles that already are
/// sRGB, or that are unreadable or not RGB, leave the pixels as they are: a viewer would treat
/// those images as sRGB too.
pub(crate) fn to_srgb(image: &mut Frame, icc: &[u8]) -> Result<(), EngineError> {
    let Ok(profile) = Profile::new_icc(icc) else {
        return Ok(());
    };
    if profile.color_space() != ColorSpaceSignature::RgbData || is_srgb(&profile) {
        return Ok(());
    }
    let converted = match image {
        Frame::Eight(Bitmap::Rgb(rgb)) => {
            in_place::<_, [u8; 3]>(&profile, PixelFormat::RGB_8, rgb.as_mut())
        }
        Frame::Eight(Bitmap::Rgba(rgba)) => {
            in_place::<_, [u8; 4]>(&profile, PixelFormat::RGBA_8, rgba.as_mut())
        }
        Frame::Sixteen(DynamicImage::ImageRgb16(rgb)) => {
            in_place::<_, [u16; 3]>(&profile, PixelFormat::RGB_16, rgb.as_mut())
        }
        Frame::Sixteen(DynamicImage::ImageRgba16(rgba)) => {
            in_place::<_, [u16; 4]>(&profile, PixelFormat::RGBA_16, rgba.as_mut())
        }
        // A 16-bit frame is RGB or RGBA by construction (`Frame::from_dynamic`).
        Frame::Sixteen(_) => Ok(()),
    };
    converted.map_err(|e| {
        EngineError::Corrupt(format!(
            "the image's embedded colour profile cannot be applied ({e}); re-export it as sRGB \
             and upload it again"
        ))
    })
}

/// Converts `samples`, pixels `P` of `format` in the colour space of `profile`, to sRGB.
fn in_place<S: bytemuck::Pod, P: bytemuck::Pod>(
    profile: &Profile,
    format: PixelFormat,
    samples: &mut [S],
) -> Result<(), lcms2::Error> {
    let srgb = Profile::new_srgb();
    let transform = Transform::<P, P>::new(profile, format, &srgb, format, Intent::Perceptual)?;
    transform.transform_in_place(bytemuck::cast_slice_mut(samples));
    Ok(())
}

/// sRGB profiles (the IEC 61966-2.1 profile and the many copies of it) name themselves so.
fn is_srgb(profile: &Profile) -> bool {
    profile
        .info(InfoType::Description, Locale::none())
        .is_some_and(|name| name.contains("sRGB"))
}

/// Reassembles the ICC profile a JPEG carries in `ICC_PROFILE` APP2 segments (numbered chunks).
pub(crate) fn jpeg_icc<'a>(app2_segments: impl Iterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, &[u8])> = app2_segments
        .filter_map(|data| data.strip_prefix(b"ICC_PROFILE\0"))
        .filter_map(|rest| Some((*rest.first()?, rest.get(2..)?)))
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    Some(
        chunks
            .into_iter()
            .flat_map(|(_, data)| data)
            .copied()
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{RgbImage, RgbaImage};
    use lcms2::{CIExyY, CIExyYTRIPLE, ToneCurve};

    /// A profile with sRGB's primaries and white but a linear (gamma 1) tone curve.
    pub(crate) fn linear_rgb_icc() -> Vec<u8> {
        let white = CIExyY {
            x: 0.3127,
            y: 0.3290,
            Y: 1.0,
        };
        let xy = |x, y| CIExyY { x, y, Y: 1.0 };
        let primaries = CIExyYTRIPLE {
            Red: xy(0.64, 0.33),
            Green: xy(0.30, 0.60),
            Blue: xy(0.15, 0.06),
        };
        let linear = ToneCurve::new(1.0);
        Profile::new_rgb(&white, &primaries, &[&linear, &linear, &linear])
            .unwrap()
            .icc()
            .unwrap()
    }

    #[test]
    fn linear_light_is_converted_to_srgb_and_srgb_is_left_alone() {
        let rgba = RgbaImage::from_pixel(2, 2, image::Rgba([128, 128, 128, 77]));
        let rgb = RgbImage::from_pixel(2, 2, image::Rgb([128, 128, 128]));
        for image in [Bitmap::Rgba(rgba), Bitmap::Rgb(rgb)] {
            let mut frame = Frame::Eight(image);
            to_srgb(&mut frame, &linear_rgb_icc()).unwrap();
            let image = frame.into_eight(true);
            // Linear 0.5 is sRGB 0.735 (188 of 255); alpha untouched.
            let p = &image.as_raw()[..image.channels()];
            assert!(
                (186..=190).contains(&p[0]) && p[0] == p[1] && p[1] == p[2],
                "{p:?}"
            );
            assert_eq!(p.get(3).copied().unwrap_or(77), 77);
        }

        let srgb = Profile::new_srgb().icc().unwrap();
        let original = RgbaImage::from_pixel(1, 1, image::Rgba([128, 10, 200, 255]));
        let mut untouched = Frame::Eight(Bitmap::Rgba(original.clone()));
        to_srgb(&mut untouched, &srgb).unwrap();
        to_srgb(&mut untouched, b"not a profile").unwrap();
        assert_eq!(untouched, Frame::Eight(Bitmap::Rgba(original)));
        // 16-bit samples convert as 16-bit: linear 0x8000 is sRGB 0.735 (48 200 of 65 535).
        let deep = image::ImageBuffer::from_pixel(1, 1, image::Rgb([0x8000u16; 3]));
        let mut deep = Frame::Sixteen(DynamicImage::ImageRgb16(deep));
        to_srgb(&mut deep, &linear_rgb_icc()).unwrap();
        let Frame::Sixteen(DynamicImage::ImageRgb16(deep)) = deep else {
            panic!("stays 16-bit RGB");
        };
        let level = deep.get_pixel(0, 0)[0];
        assert!((47_900..48_500).contains(&level), "{level}");
    }

    #[test]
    fn jpeg_profiles_are_reassembled_in_chunk_order() {
        let seg = |seq: u8, data: &[u8]| [b"ICC_PROFILE\0".as_slice(), &[seq, 2], data].concat();
        let (second, first) = (seg(2, b"world"), seg(1, b"hello "));
        let other = b"something else".to_vec();
        let icc = jpeg_icc([second.as_slice(), other.as_slice(), first.as_slice()].into_iter());
        assert_eq!(icc.as_deref(), Some(b"hello world".as_slice()));
        assert_eq!(jpeg_icc(std::iter::empty()), None);
    }
}
