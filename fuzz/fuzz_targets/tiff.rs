//! Decodes fuzzed tiff files: inspect, then process with a small resize (see src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelmill_core::ImageFormat;

fuzz_target!(
    init: pixelmill_fuzz::init(),
    |data: &[u8]| pixelmill_fuzz::fuzz_image(ImageFormat::Tiff, data)
);
