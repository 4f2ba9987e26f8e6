use crate::dns::ResolveError;
use std::net::SocketAddr;

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered, and the answer is final (a 4xx, or a 5xx other than 502/503/504).
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Every node tried, over every round of re-resolving, failed or answered "try again".
    #[error("no node answered after {attempts} attempts within {waited:?}; the last, at {last_addr:?}: {last_error}")]
    Unavailable {
        attempts: u32,
        waited: std::time::Duration,
        last_addr: Option<SocketAddr>,
        last_error: String,
    },
    #[error("finding the service: {0}")]
    Resolve(#[from] ResolveError),
    #[error("the service's answer is not what the API promises: {0}")]
    Decode(String),
    #[error("{0}")]
    Usage(String),
    #[error("job {id} did not finish within {waited:?} (last status {status})")]
    WaitTimeout {
        id: String,
        waited: std::time::Duration,
        status: String,
    },
}

impl ClientError {
    /// The HTTP status of a final answer, if the service gave one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
