/// Why the engine refused or failed an image. `code()` is the stable machine-readable form the API
/// puts in its error bodies; the message is for humans and always says how to fix the problem.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    UnsupportedFormat(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    TooLarge(String),
    /// A valid pipeline that cannot apply to this particular image (e.g. a crop outside it).
    #[error("{0}")]
    InvalidOperation(String),
    #[error("{0}")]
    Encode(String),
}

impl EngineError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::Corrupt(_) => "corrupt_image",
            Self::TooLarge(_) => "image_too_large",
            Self::InvalidOperation(_) => "invalid_pipeline",
            Self::Encode(_) => "internal",
        }
    }

    /// The same error with its message rewritten, e.g. to say which image it is about.
    pub(crate) fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::UnsupportedFormat(m) => Self::UnsupportedFormat(f(m)),
            Self::Corrupt(m) => Self::Corrupt(f(m)),
            Self::TooLarge(m) => Self::TooLarge(f(m)),
            Self::InvalidOperation(m) => Self::InvalidOperation(f(m)),
            Self::Encode(m) => Self::Encode(f(m)),
        }
    }
}

/// A pipeline step the registry could not compile. `step` is the 0-based index into the
/// client's pipeline array, so "step 1" is `pipeline[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step} ({op}): {message}")]
pub struct PipelineError {
    pub step: usize,
    pub op: String,
    pub param: Option<String>,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            EngineError::UnsupportedFormat(String::new()).code(),
            "unsupported_format"
        );
        assert_eq!(EngineError::Corrupt(String::new()).code(), "corrupt_image");
        assert_eq!(
            EngineError::TooLarge(String::new()).code(),
            "image_too_large"
        );
        assert_eq!(
            EngineError::InvalidOperation(String::new()).code(),
            "invalid_pipeline"
        );
        assert_eq!(EngineError::Encode(String::new()).code(), "internal");
    }

    #[test]
    fn pipeline_error_display_names_step_and_op() {
        let e = PipelineError {
            step: 1,
            op: "resize".into(),
            param: Some("width".into()),
            message: "parameter `width` must be an integer from 1 to 16384, got -5".into(),
        };
        assert_eq!(
            e.to_string(),
            "step 1 (resize): parameter `width` must be an integer from 1 to 16384, got -5"
        );
    }
}
