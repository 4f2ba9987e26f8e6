//! The one place where errors become HTTP: every 4xx/5xx carries
//! `{"error": {"code", "message"}}`, and retryable backend failures become 503 with Retry-After.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pixelmill_blob::BlobError;
use pixelmill_engine::{EngineError, PipelineError};
use pixelmill_jobs::AcceptError;
use pixelmill_meta::MetaError;
use pixelmill_notify::WebhookUrlError;
use pixelmill_sched::SchedError;
use serde_json::json;

#[derive(Clone, Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid_pipeline(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pipeline",
            message,
        )
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the {limit}-byte limit; send a smaller file or raise PIXELMILL_MAX_BODY_BYTES"),
        )
    }

    /// A JSON request body over `limit` bytes.
    pub fn json_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the {limit}-byte limit for JSON requests; send a smaller request (the limit is PIXELMILL_MAX_JSON_BODY_BYTES)"),
        )
    }

    /// The client stopped sending the body, or sent it too slowly.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }

    pub fn overloaded(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
            .retry_after(retry_after_secs)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        }
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pixelmill\""),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Retryable store trouble is the server's, not the client's: 503 with a hint to come back. The
/// dependency's error chain (endpoints, paths, SDK internals) goes to the log, not the client.
fn unavailable(what: &str, err: &dyn std::error::Error) -> ApiError {
    tracing::warn!(error = %chain(err), "{what} is unavailable");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        format!("{what} is temporarily unavailable; retry after the Retry-After delay"),
    )
    .retry_after(2)
}

/// A dependency failed for good: logged in full, answered plainly.
fn failed(what: &str, err: &dyn std::error::Error) -> ApiError {
    tracing::error!(error = %chain(err), "{what} failed");
    ApiError::internal(format!(
        "{what} failed; the server logged the details, retry later or report it"
    ))
}

/// An error and every source below it, for the log.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<MetaError> for ApiError {
    fn from(err: MetaError) -> Self {
        if err.is_retryable() {
            unavailable("the metadata store", &err)
        } else {
            failed("the metadata store", &err)
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::NotFound(key) => ApiError::not_found(format!("stored data {key} is gone")),
            err if err.is_retryable() => unavailable("the blob store", &err),
            err => failed("the blob store", &err),
        }
    }
}

impl From<SchedError> for ApiError {
    fn from(err: SchedError) -> Self {
        match err {
            SchedError::Overloaded { retry_after_ms } => ApiError::overloaded(
                "the job queue is full; nothing was queued, retry after the Retry-After delay",
                retry_after_ms.div_ceil(1000),
            ),
            err if err.is_retryable() => unavailable("the scheduler", &err),
            err => failed("the scheduler", &err),
        }
    }
}

impl From<WebhookUrlError> for ApiError {
    fn from(err: WebhookUrlError) -> Self {
        let message = format!("notify.webhook: {err}");
        match err {
            WebhookUrlError::Invalid { .. } => ApiError::bad_request(message),
            // A well-formed URL this server will not send to: docs/SECURITY.md, "Outbound requests".
            WebhookUrlError::Refused { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "webhook_refused", message)
            }
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(err: AcceptError) -> Self {
        match err {
            AcceptError::QueueFull { .. } => ApiError::overloaded(err.to_string(), 2),
            AcceptError::TooCostly { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "job_too_costly",
                err.to_string(),
            ),
            AcceptError::Output(err) => err.into(),
            AcceptError::Meta(err) => err.into(),
            AcceptError::Sched(err) => err.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let status = match err.code() {
            "unsupported_format" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        ApiError::invalid_pipeline(err.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_outage_answers_a_plain_message_without_the_dependency_error() {
        let detail = "dispatch failure: io error: Connection refused (os error 111) at \
                      http://minio.internal:9000/bucket/orig/ab";
        for err in [
            ApiError::from(BlobError::Unavailable(detail.into())),
            ApiError::from(BlobError::Refused(detail.into())),
            ApiError::from(BlobError::Io(std::io::Error::other(
                "open /var/lib/pixelmill/blobs/orig/ab: permission denied",
            ))),
        ] {
            assert!(!err.message.contains("minio"), "{}", err.message);
            assert!(!err.message.contains("/var/lib"), "{}", err.message);
            assert!(err.message.contains("the blob store"), "{}", err.message);
        }
    }

    #[test]
    fn the_log_gets_the_whole_error_chain() {
        let err = BlobError::Io(std::io::Error::other("disk gone"));
        assert_eq!(chain(&err), "blob store I/O failed: disk gone: disk gone");
    }
}
