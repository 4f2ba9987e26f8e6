//! Filtering in linear light. sRGB values are not proportional to light, so averaging them (what
//! every resize and blur does) darkens fine high-contrast detail: black and white 1-pixel stripes
//! average to 128, a much darker grey than the 50 % light (sRGB 188) they show as. Ops that offer
//! `light=linear` convert to 16-bit linear light, filter, and convert back.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{MulDiv, PixelType};

use crate::bitmap::Bitmap;

/// Pixels in 16-bit linear light, RGB or RGBA (alpha scaled to 16 bits, not converted).
#[derive(Debug)]
pub(crate) struct LinearImage {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub pixels: Vec<u16>,
}

impl LinearImage {
    /// A black `width`×`height` image with `channels` channels.
    pub fn new(width: u32, height: u32, channels: usize) -> Self {
        Self {
            width,
            height,
            channels,
            pixels: vec![0; width as usize * height as usize * channels],
        }
    }

    pub fn pixel_type(&self) -> PixelType {
        if self.channels == 3 {
            PixelType::U16x3
        } else {
            PixelType::U16x4
        }
    }

    /// The pixels as a read-only fast_image_resize image.
    pub fn image_ref(&self) -> ImageRef<'_> {
        ImageRef::new(
            self.width,
            self.height,
            bytemuck::cast_slice(&self.pixels),
            self.pixel_type(),
        )
        .expect("a buffer matches its own dimensions")
    }

    /// The pixels as a fast_image_resize image (a `Vec<u16>` is always aligned for it).
    pub fn view(&mut self) -> Image<'_> {
        let (width, height, pixel_type) = (self.width, self.height, self.pixel_type());
        Image::from_slice_u8(
            width,
            height,
            bytemuck::cast_slice_mut(&mut self.pixels),
            pixel_type,
        )
        .expect("a buffer matches its own dimensions")
    }

    /// Multiplies colour by alpha (RGBA only), so filters can average translucent pixels.
    pub fn premultiply(&mut self) {
        MulDiv::default()
            .multiply_alpha_inplace(&mut self.view())
            .expect("RGBA supports alpha");
    }

    /// The inverse of `premultiply`.
    pub fn unpremultiply(&mut self) {
        MulDiv::default()
            .divide_alpha_inplace(&mut self.view())
            .expect("RGBA supports alpha");
    }
}

/// `image` in 16-bit linear light, through `op` (which may change its size), then back to 8-bit
/// sRGB in the image's layout.
pub(crate) fn in_linear_light<E>(
    image: &Bitmap,
    op: impl FnOnce(LinearImage) -> Result<LinearImage, E>,
) -> Result<Bitmap, E> {
    let (width, height) = image.dimensions();
    let channels = image.channels();
    let narrow = if channels == 3 {
        PixelType::U8x3
    } else {
        PixelType::U8x4
    };
    let mapper = fast_image_resize::create_srgb_mapper();
    let mut linear = LinearImage::new(width, height, channels);
    let source = ImageRef::new(width, height, image.as_raw(), narrow)
        .expect("a buffer matches its own dimensions");
    mapper
        .forward_map(&source, &mut linear.view())
        .expect("the mapper converts 8-bit to 16-bit of the same channels");
    let result = op(linear)?;
    let mut out = image.blank(result.width, result.height);
    let mut target = Image::from_slice_u8(result.width, result.height, out.as_raw_mut(), narrow)
        .expect("a buffer matches its own dimensions");
    mapper
        .backward_map(&result.image_ref(), &mut target)
        .expect("the mapper converts 16-bit to 8-bit of the same channels");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{RgbImage, RgbaImage};

    #[test]
    fn the_round_trip_keeps_every_level_and_alpha() {
        let rgba = RgbaImage::from_fn(256, 2, |x, y| {
            image::Rgba([
                x as u8,
                255 - x as u8,
                (x * 7) as u8,
                if y == 0 { 255 } else { 77 },
            ])
        });
        let rgb = Bitmap::Rgb(image::DynamicImage::ImageRgba8(rgba.clone()).into_rgb8());
        for image in [Bitmap::Rgba(rgba), rgb] {
            let back = in_linear_light(&image, Ok::<_, ()>).unwrap();
            assert_eq!(back, image);
        }
    }

    #[test]
    fn half_the_light_is_srgb_188() {
        let grey = Bitmap::Rgb(RgbImage::from_pixel(1, 1, image::Rgb([188; 3])));
        let mut level = 0;
        in_linear_light(&grey, |linear| {
            level = linear.pixels[0];
            Ok::<_, ()>(linear)
        })
        .unwrap();
        // sRGB 188 is 50.2 % of the light.
        assert!((32_600..33_300).contains(&level), "{level}");
    }
}
