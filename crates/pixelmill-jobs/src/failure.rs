//! Why an attempt ended without success, and so what the scheduler does with its job.

use pixelmill_blob::BlobError;
use pixelmill_meta::MetaError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The job itself is at fault (an image the engine refuses, a missing input): it fails now.
    Final,
    /// Another attempt may succeed: retried after a backoff, and the attempt counts.
    Retry,
    /// Nothing the job did: a store is unavailable or the region is cut off from the others. The
    /// job waits and the attempt does not count, so an outage of any length fails no job.
    Defer,
    /// Another region has adopted the job: this region drops its ticket and writes nothing.
    Disowned,
}

/// An attempt's failure: what kind, and the error the job records.
#[derive(Clone, Debug)]
pub struct JobFailure {
    pub kind: FailureKind,
    pub error: String,
}

impl JobFailure {
    pub fn final_(error: impl Into<String>) -> Self {
        Self::of(FailureKind::Final, error)
    }

    pub fn retry(error: impl Into<String>) -> Self {
        Self::of(FailureKind::Retry, error)
    }

    pub fn defer(error: impl Into<String>) -> Self {
        Self::of(FailureKind::Defer, error)
    }

    pub fn disowned(error: impl Into<String>) -> Self {
        Self::of(FailureKind::Disowned, error)
    }

    fn of(kind: FailureKind, error: impl Into<String>) -> Self {
        Self {
            kind,
            error: error.into(),
        }
    }

    /// A metadata error while `doing` something: an outage defers, anything else is retried.
    pub fn meta(doing: &str, err: MetaError) -> Self {
        let error = format!("{doing} failed: {err}");
        if err.is_retryable() {
            Self::defer(error)
        } else {
            Self::retry(error)
        }
    }

    /// A blob store error while `doing` something: an outage defers, a missing or refused blob
    /// is retried (and in the end fails the job).
    pub fn blob(doing: &str, err: BlobError) -> Self {
        let error = format!("{doing} failed: {err}");
        if err.is_retryable() {
            Self::defer(error)
        } else {
            Self::retry(error)
        }
    }
}
