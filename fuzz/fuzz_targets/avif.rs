//! Decodes fuzzed avif files: inspect, then process with a small resize to PNG (see src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelmill_core::ImageFormat;

fuzz_target!(
    init: pixelmill_fuzz::init(),
    |data: &[u8]| pixelmill_fuzz::fuzz_image(ImageFormat::Avif, data)
);
