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

/// A PNG of `width`×`height` RGBA pixels, noise (as large as a PNG gets, the pixels' own size)
/// or one flat colour (a few KiB): the same decode work for very different bodies.
pub fn sized_png(width: u32, height: u32, noise: bool) -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut xorshift = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 32) as u8
    };
    let pixels: Vec<u8> = (0..width as usize * height as usize * 4)
        .map(|_| if noise { xorshift() } else { 0x80 })
        .collect();
    // Noise does not compress anyway; the flat image needs real deflate to shrink.
    let compression = match noise {
        true => CompressionType::Fast,
        false => CompressionType::Default,
    };
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, compression, FilterType::NoFilter)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgba8)
        .expect("encoding a test image in memory cannot fail");
    png
}

fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("encoding a test image in memory cannot fail");
    out.into_inner()
}
