//! The image engine: sniffing, limits, decoding, the filter registry (one filter per file), the
//! expr language, encoding.
//!
//! Images are processed with 8 bits per channel, as RGB when opaque and every step can keep it
//! so, otherwise as RGBA with straight alpha; a 16-bit input going to PNG or TIFF keeps 16 bits
//! through the steps that can (geometry, resize). An animation's frames go through the pipeline
//! one at a time when the output is animated too (GIF or WebP); other outputs take the first
//! frame.

mod allocator;
mod animation;
mod avif;
mod bitmap;
mod color;
#[cfg(test)]
mod conformance;
mod decode;
mod encode;
mod error;
mod expr;
mod filters;
mod jpeg;
mod linear;
mod params;
mod pipeline;
mod pixels;
mod placeholder;
mod process;
mod registry;
mod sniff;

pub use allocator::keep_freed_buffers_mapped;
pub use decode::{inspect, ImageInfo, Limits};
pub use encode::{check_output, resolve as resolve_output};
pub use error::{EngineError, PipelineError};
pub use jpeg::decode_scaled as decode_jpeg_scaled;
pub use params::ParamSchema;
pub use pipeline::{ImageRef, Pipeline};
pub use process::{process, Rendered};
pub use registry::{FilterSchema, Registry};
pub use sniff::sniff;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<Registry>();
        assert_send_sync::<Pipeline>();
        assert_send_sync::<Rendered>();
        assert_send_sync::<EngineError>();
        assert_send_sync::<PipelineError>();
    }
}
