//! S3 failures as `BlobError`s: what a retry may cure (`Unavailable`, `Timeout`) apart from what
//! it cannot (`Refused`), each with the operation and the server's own words.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use pixelmill_blob::BlobError;

/// `err` from an S3 call made while `doing` (e.g. "uploading part 3 of orig/…"). The SDK has
/// already retried what its retry policy covers, so a retryable error here means S3 stayed
/// unreachable or overloaded for every attempt.
pub(crate) fn classify<E>(err: SdkError<E>, doing: &str) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let detail = format!("{doing}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) => BlobError::Timeout(detail),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => BlobError::Timeout(detail),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => BlobError::Unavailable(detail),
        _ => match status {
            Some(408) => BlobError::Timeout(detail),
            Some(429 | 500..=599) => BlobError::Unavailable(detail),
            _ => BlobError::Refused(detail),
        },
    }
}

/// Whether `err` is S3's 404 (no such key, or a HEAD of a missing object).
pub(crate) fn is_not_found<E>(err: &SdkError<E>) -> bool {
    err.raw_response()
        .is_some_and(|r| r.status().as_u16() == 404)
}

/// Whether `err` is S3's 416: a range starting at or past the end of the object.
pub(crate) fn is_unsatisfiable_range<E>(err: &SdkError<E>) -> bool {
    err.raw_response()
        .is_some_and(|r| r.status().as_u16() == 416)
}
