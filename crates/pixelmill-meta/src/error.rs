/// Metadata errors. `Unavailable` and `Timeout` are retryable (the API answers 503 with
/// Retry-After); the others are final.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store unavailable: {0}; retry shortly")]
    Unavailable(String),
    #[error("metadata store timed out: {0}; retry shortly")]
    Timeout(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("metadata store failed: {0}")]
    Internal(String),
}

impl MetaError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}
