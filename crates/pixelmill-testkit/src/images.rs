use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use std::io::Cursor;

/// A photo-like JPEG (gradients plus deterministic noise) of the given size.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 41;
        Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            ((x * y + noise) % 256) as u8,
        ])
    });
    encode(image::DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}

/// A PNG with a varying alpha channel.
pub fn png_rgba(width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 128, ((x + y) % 256) as u8])
    });
    encode(image::DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("encoding a test image in memory cannot fail");
    out.into_inner()
}
