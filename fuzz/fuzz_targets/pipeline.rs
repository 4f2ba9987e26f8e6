//! Fuzzes PipelineStep::parse_compact, Registry::compile (expr programs included), cost estimates
//! and running the compiled pipeline on a small image (see src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: pixelmill_fuzz::init(),
    |data: &[u8]| pixelmill_fuzz::fuzz_pipeline(data)
);
