use crate::{views, ApiError, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pixelmill_core::{now_ms, LinkToken};
use std::ops::Range;

/// `GET /d/{token}`: the output bytes, with ETag (the content address), immutable caching until the
/// link expires, and single-range `Range` support. Unknown token 404, expired 410.
pub async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let link = state
        .meta
        .get_link(&LinkToken::from_string(&token))
        .await?
        .ok_or_else(|| {
            ApiError::not_found("no such download link; check that the URL is complete")
        })?;
    let now = now_ms();
    if link.expires_at <= now {
        return Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            format!(
                "this download link expired at {}; run the job again for a new link",
                views::rfc3339(link.expires_at)
            ),
        ));
    }
    let etag = format!(
        "\"{}\"",
        link.blob_key.as_str().rsplit('/').next().unwrap_or("")
    );
    let max_age = ((link.expires_at - now) / 1000).max(0);
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, header_value(&etag));
    common.insert(
        header::CACHE_CONTROL,
        header_value(&format!("public, max-age={max_age}, immutable")),
    );
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    common.insert(header::CONTENT_TYPE, header_value(&link.content_type));
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let len = link.bytes;
    match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => {
            let bytes = state.blob.get(&link.blob_key).await?;
            Ok((common, Body::from(bytes)).into_response())
        }
        Some(spec) => match parse_range(spec, len) {
            Some(range) => {
                let bytes = state.blob.get_range(&link.blob_key, range.clone()).await?;
                common.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes {}-{}/{len}", range.start, range.end - 1)),
                );
                Ok((StatusCode::PARTIAL_CONTENT, common, Body::from(bytes)).into_response())
            }
            None => {
                let mut response = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the Range {spec:?} does not fit the {len}-byte file; ask for bytes=START-END within it"),
                )
                .into_response();
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{len}")),
                );
                Ok(response)
            }
        },
    }
}

/// Whether `If-None-Match` names `etag` (or `*`), so the client's copy is current: answer 304.
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Parses one `bytes=` range (`a-b`, `a-`, `-n`) into a half-open range within `len`.
fn parse_range(spec: &str, len: u64) -> Option<Range<u64>> {
    let spec = spec.strip_prefix("bytes=")?.trim();
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            len.saturating_sub(n)..len
        }
        (start, "") => start.parse().ok()?..len,
        (start, end) => start.parse().ok()?..end.parse::<u64>().ok()?.saturating_add(1).min(len),
    };
    (range.start < range.end).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
