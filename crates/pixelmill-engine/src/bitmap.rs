//! The decoded pixels a pipeline carries: 8-bit RGB for opaque images, 8-bit RGBA with straight
//! alpha for the rest (`Bitmap`), and 16-bit frames where a 16-bit input can stay so (`Frame`).
//!
//! JPEG, the commonest input, has no alpha, and a fourth channel of 255s costs a quarter more
//! memory and work in every pass over the pixels: decode, blur, resize, encode. So an opaque
//! image whose every step can work on three channels (`Op::keeps_rgb`) is decoded to RGB and stays
//! RGB; any other image or pipeline runs on RGBA.

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bitmap {
    Rgb(RgbImage),
    Rgba(RgbaImage),
}

/// Runs the same code on whichever buffer a [`Bitmap`] holds (the image crate's buffer
/// operations are generic over the pixel type), keeping the layout.
macro_rules! on_buffer {
    ($bitmap:expr, $image:pat_param => $body:expr) => {
        match $bitmap {
            $crate::bitmap::Bitmap::Rgb($image) => $crate::bitmap::Bitmap::Rgb($body),
            $crate::bitmap::Bitmap::Rgba($image) => $crate::bitmap::Bitmap::Rgba($body),
        }
    };
}
pub(crate) use on_buffer;

impl Bitmap {
    /// A decoder's output as a bitmap: RGB when `keep_rgb` and the image has no alpha channel,
    /// otherwise RGBA.
    pub fn from_dynamic(image: DynamicImage, keep_rgb: bool) -> Self {
        if keep_rgb && !image.color().has_alpha() {
            Bitmap::Rgb(image.into_rgb8())
        } else {
            Bitmap::Rgba(image.into_rgba8())
        }
    }

    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Bitmap::Rgb(image) => image.dimensions(),
            Bitmap::Rgba(image) => image.dimensions(),
        }
    }

    pub fn width(&self) -> u32 {
        self.dimensions().0
    }

    pub fn height(&self) -> u32 {
        self.dimensions().1
    }

    /// A `width`×`height` bitmap of this one's layout, all zeros, for an op to fill.
    pub fn blank(&self, width: u32, height: u32) -> Self {
        match self {
            Bitmap::Rgb(_) => Bitmap::Rgb(RgbImage::new(width, height)),
            Bitmap::Rgba(_) => Bitmap::Rgba(RgbaImage::new(width, height)),
        }
    }

    /// Bytes per pixel: 3 or 4.
    pub fn channels(&self) -> usize {
        match self {
            Bitmap::Rgb(_) => 3,
            Bitmap::Rgba(_) => 4,
        }
    }

    /// The pixels, row-major, `channels()` bytes each.
    pub fn as_raw(&self) -> &[u8] {
        match self {
            Bitmap::Rgb(image) => image.as_raw(),
            Bitmap::Rgba(image) => image.as_raw(),
        }
    }

    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        match self {
            Bitmap::Rgb(image) => image,
            Bitmap::Rgba(image) => image,
        }
    }

    /// Whether every pixel is fully opaque; RGB always is.
    pub fn is_opaque(&self) -> bool {
        match self {
            Bitmap::Rgb(_) => true,
            Bitmap::Rgba(image) => crate::pixels::is_opaque(image),
        }
    }

    /// The pixels as RGBA, adding an opaque alpha channel to RGB (a copy; steps that need alpha
    /// take this only when an earlier step kept RGB).
    pub fn into_rgba(self) -> RgbaImage {
        match self {
            Bitmap::Rgb(image) => DynamicImage::ImageRgb8(image).into_rgba8(),
            Bitmap::Rgba(image) => image,
        }
    }

    /// Rotates and flips the pixels as EXIF `orientation` says.
    pub fn apply_orientation(self, orientation: Orientation) -> Self {
        let mut image = match self {
            Bitmap::Rgb(image) => DynamicImage::ImageRgb8(image),
            Bitmap::Rgba(image) => DynamicImage::ImageRgba8(image),
        };
        image.apply_orientation(orientation);
        // The buffer moves back out as it went in: the layout is unchanged.
        Bitmap::from_dynamic(image, true)
    }
}

/// A decoded frame as the pipeline carries it: 8 bits per channel, or 16 (RGB or RGBA, as the
/// image crate's `Rgb16`/`Rgba16`) when a 16-bit input goes to an output that can hold 16 bits
/// (PNG, TIFF). A 16-bit frame stays so through the steps that `apply_deep` and drops to 8 bits
/// at the first step that cannot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    Eight(Bitmap),
    Sixteen(DynamicImage),
}

impl Frame {
    /// A decoder's output: 16-bit when `keep_deep` and the decoder produced more than 8 bits per
    /// channel, otherwise as `Bitmap::from_dynamic`.
    pub fn from_dynamic(image: DynamicImage, keep_rgb: bool, keep_deep: bool) -> Self {
        let deep = image.color().bytes_per_pixel() > image.color().channel_count();
        match (keep_deep && deep, image.color().has_alpha()) {
            (true, false) => Frame::Sixteen(DynamicImage::ImageRgb16(image.into_rgb16())),
            (true, true) => Frame::Sixteen(DynamicImage::ImageRgba16(image.into_rgba16())),
            (false, _) => Frame::Eight(Bitmap::from_dynamic(image, keep_rgb)),
        }
    }

    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Frame::Eight(bitmap) => bitmap.dimensions(),
            Frame::Sixteen(image) => (image.width(), image.height()),
        }
    }

    /// The frame with 8 bits per channel (RGB where `keep_rgb` allows and there is no alpha).
    pub fn into_eight(self, keep_rgb: bool) -> Bitmap {
        match self {
            Frame::Eight(bitmap) => bitmap,
            Frame::Sixteen(image) => Bitmap::from_dynamic(image, keep_rgb),
        }
    }

    pub fn into_rgba(self) -> RgbaImage {
        self.into_eight(false).into_rgba()
    }
}

impl From<Bitmap> for Frame {
    fn from(bitmap: Bitmap) -> Self {
        Frame::Eight(bitmap)
    }
}

impl From<RgbaImage> for Frame {
    fn from(image: RgbaImage) -> Self {
        Frame::Eight(Bitmap::Rgba(image))
    }
}

impl From<RgbaImage> for Bitmap {
    fn from(image: RgbaImage) -> Self {
        Bitmap::Rgba(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alpha_free_images_stay_rgb() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::new(3, 2));
        assert_eq!(Bitmap::from_dynamic(rgb.clone(), true).channels(), 3);
        assert_eq!(Bitmap::from_dynamic(rgb, false).channels(), 4);
        let gray = DynamicImage::ImageLuma8(image::GrayImage::new(3, 2));
        assert_eq!(Bitmap::from_dynamic(gray, true).channels(), 3);
        let rgba = DynamicImage::ImageRgba8(RgbaImage::new(3, 2));
        assert_eq!(Bitmap::from_dynamic(rgba, true).channels(), 4);
    }

    #[test]
    fn widening_to_rgba_adds_opaque_alpha() {
        let rgb = RgbImage::from_fn(2, 2, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let rgba = Bitmap::Rgb(rgb).into_rgba();
        assert_eq!(rgba.get_pixel(1, 0).0, [1, 0, 7, 255]);
        assert!(Bitmap::Rgba(rgba).is_opaque());
    }

    #[test]
    fn orientation_applies_to_either_layout() {
        let rgb = RgbImage::from_fn(3, 2, |x, _| image::Rgb([x as u8; 3]));
        let turned = Bitmap::Rgb(rgb).apply_orientation(Orientation::Rotate90);
        assert_eq!(turned.dimensions(), (2, 3));
        assert_eq!(turned.channels(), 3);
    }

    #[test]
    fn sixteen_bits_are_kept_only_when_asked_for_and_present() {
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            2,
            2,
            image::Rgb([0x1234u16; 3]),
        ));
        assert!(matches!(
            Frame::from_dynamic(deep.clone(), true, true),
            Frame::Sixteen(DynamicImage::ImageRgb16(_))
        ));
        let eight = Frame::from_dynamic(deep, true, false);
        assert_eq!(
            eight,
            Frame::Eight(Bitmap::Rgb(RgbImage::from_pixel(
                2,
                2,
                image::Rgb([0x12; 3])
            )))
        );
        let shallow = DynamicImage::ImageRgba8(RgbaImage::new(2, 2));
        assert!(matches!(
            Frame::from_dynamic(shallow, true, true),
            Frame::Eight(Bitmap::Rgba(_))
        ));
        let grey16 = DynamicImage::ImageLumaA16(image::ImageBuffer::new(1, 1));
        assert!(matches!(
            Frame::from_dynamic(grey16, true, true),
            Frame::Sixteen(DynamicImage::ImageRgba16(_))
        ));
    }
}
