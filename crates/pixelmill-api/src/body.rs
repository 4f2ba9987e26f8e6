//! Bounds on reading request bodies, so that neither a large body nor a slow one holds the
//! server's memory or connections. Every route but uploads takes a small body (JSON): it is read
//! whole, within `max_json_body_bytes` and `body_idle_timeout`, before its handler runs. Uploads
//! stream theirs chunk by chunk through `next_chunk`, within their own byte limit and timeouts.

use crate::{ApiError, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;
use tokio::time::Instant;

/// Middleware: answers 413 for a body over the limit (at once when its Content-Length says so,
/// after reading at most the limit when it is chunked) and 408 for one that does not arrive in
/// time; otherwise hands the handler the body already read.
pub async fn limit_json_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let settings = &state.settings;
    match read_small(
        request,
        settings.max_json_body_bytes,
        settings.body_idle_timeout,
    )
    .await
    {
        Ok(request) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn read_small(request: Request, limit: u64, timeout: Duration) -> ApiResult<Request> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::json_too_large(limit));
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let read = tokio::time::timeout(timeout, limited.collect())
        .await
        .map_err(|_| {
            ApiError::request_timeout(format!(
                "the request body did not arrive within {}; send it whole, without pausing",
                humantime::format_duration(timeout)
            ))
        })?;
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(ApiError::json_too_large(limit)),
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "the request body was interrupted ({e}); send the request again"
            )))
        }
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// How long an upload's body may take: no pause longer than `idle`, and all of it by `deadline`.
#[derive(Clone, Copy, Debug)]
pub struct BodyPace {
    pub idle: Duration,
    pub deadline: Instant,
    /// The whole body's allowance, for the message.
    pub total: Duration,
}

impl BodyPace {
    pub fn starting_now(idle: Duration, total: Duration) -> Self {
        Self {
            idle,
            deadline: Instant::now() + total,
            total,
        }
    }

    /// Waits for `next` within this pace: 408 when the body pauses past `idle` or runs past
    /// the deadline.
    pub async fn within<T>(&self, next: impl std::future::Future<Output = T>) -> ApiResult<T> {
        let idle_until = Instant::now() + self.idle;
        match tokio::time::timeout_at(idle_until.min(self.deadline), next).await {
            Ok(item) => Ok(item),
            Err(_) if self.deadline <= idle_until => Err(ApiError::request_timeout(format!(
                "the upload took longer than {}, the most this server allows for one body; \
                 send it over a faster connection",
                humantime::format_duration(self.total)
            ))),
            Err(_) => Err(ApiError::request_timeout(format!(
                "the upload sent nothing for {}; send the body without pausing",
                humantime::format_duration(self.idle)
            ))),
        }
    }

    /// The next chunk of `body`, within this pace.
    pub async fn next_chunk<S: Stream + Unpin>(&self, body: &mut S) -> ApiResult<Option<S::Item>> {
        self.within(body.next()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Body, length: Option<u64>) -> Request {
        let mut builder = Request::post("/v1/jobs");
        if let Some(len) = length {
            builder = builder.header(header::CONTENT_LENGTH, len);
        }
        builder.body(body).unwrap()
    }

    fn code(result: ApiResult<Request>) -> String {
        let err = result.expect_err("refused");
        err.code().to_owned() + " " + err.clone().into_response().status().as_str()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_reaches_the_handler_whole() {
        let read = read_small(
            request(Body::from("{}"), Some(2)),
            2,
            Duration::from_secs(1),
        );
        let body = read.await.unwrap().into_body().collect().await.unwrap();
        assert_eq!(body.to_bytes(), "{}");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_without_reading() {
        // The body never ends: only a refusal that does not read it can answer.
        let endless =
            Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
        let read = read_small(request(endless, Some(1 << 30)), 64, Duration::from_secs(60));
        assert_eq!(code(read.await), "payload_too_large 413");
    }

    #[tokio::test]
    async fn a_chunked_body_is_cut_off_at_the_limit() {
        // An endless chunked body: refused once the limit is passed.
        let chunks = futures::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b' '; 1000]));
        let read = read_small(
            request(Body::from_stream(chunks), None),
            64 * 1024,
            Duration::from_secs(60),
        );
        assert_eq!(code(read.await), "payload_too_large 413");
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_answered_408() {
        let stalled =
            Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
        let read = read_small(request(stalled, Some(10)), 64, Duration::from_millis(100));
        assert_eq!(code(read.await), "request_timeout 408");
    }

    #[tokio::test]
    async fn an_upload_that_pauses_or_drags_is_answered_408() {
        let pace = BodyPace::starting_now(Duration::from_millis(100), Duration::from_secs(60));
        let mut silent = futures::stream::pending::<u8>();
        let err = pace.next_chunk(&mut silent).await.unwrap_err();
        assert_eq!(err.code(), "request_timeout");
        assert!(
            err.message().contains("sent nothing for 100ms"),
            "{}",
            err.message()
        );
        // A trickle that never pauses long still meets the whole body's deadline.
        let pace = BodyPace::starting_now(Duration::from_millis(300), Duration::from_secs(1));
        let mut trickle = futures::stream::repeat(1u8)
            .then(|b| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                b
            })
            .boxed();
        let mut received = 0;
        let err = loop {
            match pace.next_chunk(&mut trickle).await {
                Ok(_) => received += 1,
                Err(err) => break err,
            }
        };
        assert!(
            received > 5,
            "the trickle flowed until the deadline: {received}"
        );
        assert!(
            err.message().contains("took longer than 1s"),
            "{}",
            err.message()
        );
    }
}
