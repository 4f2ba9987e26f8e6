/// Blob errors. `Unavailable` and `Timeout` are retryable; the others are final.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob store unavailable: {0}; retry shortly")]
    Unavailable(String),
    #[error("blob store timed out: {0}; retry shortly")]
    Timeout(String),
    #[error("invalid blob key {0:?}: keys are relative paths of [a-z0-9_.-] segments separated by '/', none empty or starting with '.'")]
    InvalidKey(String),
    #[error("blob {key} is corrupt: {detail}; the stored copy no longer matches its checksum")]
    Corrupt { key: String, detail: String },
    /// The backend refused the request for good (access denied, no such bucket, bad request).
    #[error("blob store refused the request: {0}")]
    Refused(String),
    #[error("blob store I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl BlobError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}
