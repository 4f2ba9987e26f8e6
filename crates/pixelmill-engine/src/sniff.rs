use pixelmill_core::ImageFormat;

use crate::EngineError;

/// Identifies the format from magic bytes only; names, MIME types and extensions are never trusted.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, EngineError> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    let format = if bytes.starts_with(PNG) {
        ImageFormat::Png
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ImageFormat::Jpeg
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        ImageFormat::Gif
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        ImageFormat::Webp
    } else if bytes.starts_with(b"BM") {
        ImageFormat::Bmp
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        ImageFormat::Tiff
    } else if is_avif(bytes) {
        ImageFormat::Avif
    } else if bytes.is_empty() {
        return Err(EngineError::UnsupportedFormat(
            "the file is empty; upload a JPEG, PNG, GIF, WebP, AVIF, BMP or TIFF image".into(),
        ));
    } else {
        return Err(EngineError::UnsupportedFormat(
            "the file is not a recognised image (unknown magic bytes); upload a JPEG, PNG, GIF, \
             WebP, AVIF, BMP or TIFF image"
                .into(),
        ));
    };
    Ok(format)
}

/// AVIF is an ISO-BMFF `ftyp` box whose major or compatible brands include `avif`/`avis`.
fn is_avif(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let box_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let end = box_len.clamp(16, bytes.len());
    // Brands: major at 8..12, minor version at 12..16, then compatible brands.
    std::iter::once(&bytes[8..12])
        .chain(bytes[16..end].chunks_exact(4))
        .any(|brand| brand == b"avif" || brand == b"avis")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_magic() {
        let cases: [(&[u8], ImageFormat); 7] = [
            (b"\x89PNG\r\n\x1a\nrest", ImageFormat::Png),
            (&[0xFF, 0xD8, 0xFF, 0xE0], ImageFormat::Jpeg),
            (b"GIF89a....", ImageFormat::Gif),
            (b"RIFF\0\0\0\0WEBPVP8 ", ImageFormat::Webp),
            (b"BM\0\0", ImageFormat::Bmp),
            (b"MM\0*\0\0\0\x08", ImageFormat::Tiff),
            (b"\0\0\0\x1cftypmif1\0\0\0\0mif1avif", ImageFormat::Avif),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff(bytes).unwrap(), expected);
        }
    }

    #[test]
    fn rejects_text_empty_and_other_isobmff() {
        for bytes in [
            &b"hello, world"[..],
            b"",
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
        ] {
            let err = sniff(bytes).unwrap_err();
            assert_eq!(err.code(), "unsupported_format", "{bytes:?}");
        }
    }
}
