use crate::{views, ApiError, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pixelmill_core::{now_ms, LinkToken};
use std::ops::Range;
use std::time::Duration;

/// `GET /d/{token}`: the output bytes, streamed from the blob store, with ETag (the content
/// address), immutable caching until the link expires, and single-range `Range` support; or, with
/// `download_redirect`, a 307 to a short-lived presigned URL of the blob store where it has them.
/// Unknown token 404 (one that cannot be a token at all without any lookup, here or in another
/// region), expired 410.
pub async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let no_link = || ApiError::not_found("no such download link; check that the URL is complete");
    let token = LinkToken::parse(&token).ok_or_else(no_link)?;
    let link = state.meta.get_link(&token).await?.ok_or_else(no_link)?;
    let now = now_ms();
    if let Some(revoked_at) = link.revoked_at {
        return Err(ApiError::new(
            StatusCode::GONE,
            "revoked",
            format!(
                "this download link was revoked by its owner at {}; ask them for a new one",
                views::rfc3339(revoked_at)
            ),
        ));
    }
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
    // Outputs are always images; the extension is the subtype of the type we stored ourselves.
    let extension = link
        .content_type
        .strip_prefix("image/")
        .filter(|ext| ext.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    common.extend(file_headers("attachment", link.job_id.as_str(), extension));
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    if let Some(ttl) = state.settings.download_redirect {
        // The signed URL never outlives the link.
        let ttl = ttl.min(Duration::from_millis((link.expires_at - now) as u64));
        let presigned = state
            .blob
            .presigned_get(&link.blob_key, ttl, &link.content_type)
            .await?;
        if let Some(url) = presigned {
            let location = [
                (header::LOCATION, header_value(&url)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ];
            return Ok((StatusCode::TEMPORARY_REDIRECT, location).into_response());
        }
    }
    let len = link.bytes;
    let (status, range) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (StatusCode::OK, None),
        Some(spec) => match parse_range(spec, len) {
            Some(range) => {
                common.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes {}-{}/{len}", range.start, range.end - 1)),
                );
                (StatusCode::PARTIAL_CONTENT, Some(range))
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
                return Ok(response);
            }
        },
    };
    // Streamed: a download holds one chunk at a time whatever its size.
    let read = state.blob.read(&link.blob_key, range).await?;
    common.insert(header::CONTENT_LENGTH, HeaderValue::from(read.len));
    Ok((status, common, Body::from_stream(read.body)).into_response())
}

/// Headers of a file handed to a browser: never sniffed as anything but its Content-Type, and
/// named `<name>.<extension>` as `disposition` (`inline` or `attachment`). Both parts are ours
/// (an id, a format name), so they need no quoting.
pub(crate) fn file_headers(disposition: &str, name: &str, extension: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&format!("{disposition}; filename=\"{name}.{extension}\"")),
    );
    headers
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
