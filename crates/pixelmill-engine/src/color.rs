//! Colour management. Outputs carry no ICC profile, so viewers show them as sRGB: pixels that
//! arrive tagged with another profile (a phone's Display P3, Adobe RGB, a linear profile) are
//! converted to sRGB on decode with Little CMS, as a browser would show them.

use lcms2::{ColorSpaceSignature, InfoType, Intent, Locale, PixelFormat, Profile, Transform};

use crate::bitmap::Bitmap;
use crate::EngineError;

/// Converts `image` from the colour space of `icc` to sRGB in place. Profiles that already are
/// sRGB, or that are unreadable or not RGB, leave the pixels as they are: a viewer would treat
/// those images as sRGB too.
pub(crate) fn to_srgb(image: &mut Bitmap, icc: &[u8]) -> Result<(), EngineError> {
    let Ok(profile) = Profile::new_icc(icc) else {
        return Ok(());
    };
    if profile.color_space() != ColorSpaceSignature::RgbData || is_srgb(&profile) {
        return Ok(());
    }
    let failed = |e: lcms2::Error| {
        EngineError::Corrupt(format!(
            "the image's embedded colour profile cannot be applied ({e}); re-export it as sRGB \
             and upload it again"
        ))
    };
    let srgb = Profile::new_srgb();
    match image {
        Bitmap::Rgb(rgb) => {
            let format = PixelFormat::RGB_8;
            Transform::<[u8; 3], [u8; 3]>::new(&profile, format, &srgb, format, Intent::Perceptual)
                .map_err(failed)?
                .transform_in_place(bytemuck::cast_slice_mut(rgb.as_mut()));
        }
        Bitmap::Rgba(rgba) => {
            let format = PixelFormat::RGBA_8;
            Transform::<[u8; 4], [u8; 4]>::new(&profile, format, &srgb, format, Intent::Perceptual)
                .map_err(failed)?
                .transform_in_place(bytemuck::cast_slice_mut(rgba.as_mut()));
        }
    }
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
        for mut image in [Bitmap::Rgba(rgba), Bitmap::Rgb(rgb)] {
            to_srgb(&mut image, &linear_rgb_icc()).unwrap();
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
        let mut untouched = Bitmap::Rgba(original.clone());
        to_srgb(&mut untouched, &srgb).unwrap();
        to_srgb(&mut untouched, b"not a profile").unwrap();
        assert_eq!(untouched, Bitmap::Rgba(original));
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
