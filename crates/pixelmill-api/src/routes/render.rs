//! `GET /v1/images/{id}/render?ops=…&format=…[&quality=…][&compression=…][&icc=…][&sig=…]`: the
//! pipeline applied on
//! the fly. The response is a pure function of the stored original, the images the pipeline
//! references (a watermark's overlay) and the canonical request, so its hash is the cache key,
//! the ETag and the blob key of the second cache tier.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use pixelmill_blob::BlobError;
use pixelmill_core::{
    sha256_hex, BlobKey, IccMode, ImageFormat, ImageRecord, JobId, JobSpec, NotifySpec,
    OutputFormat, OutputSpec, PipelineStep,
};
use serde::Deserialize;
use sha2::Sha256;

use super::downloads::etag_matches;
use crate::render::{Lookup, Rendition, Source};
use crate::tenant::Tenant;
use crate::{ApiError, ApiResult, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderQuery {
    #[serde(default)]
    ops: String,
    #[serde(default)]
    format: Option<String>,
    quality: Option<u8>,
    #[serde(default)]
    progressive: bool,
    compression: Option<u8>,
    #[serde(default)]
    icc: IccMode,
    sig: Option<String>,
}

pub async fn render(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<RenderQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "the render query is malformed ({e}); use ops=<compact pipeline>, format=jpeg|png|\
             webp|gif|avif|auto|original, quality=1..100, compression=0..9 (png), icc=srgb|keep \
             and, when required, sig"
        ))
    })?;
    let settings = state.render.settings();
    if let Some(key) = &settings.signing_key {
        verify_signature(
            key,
            uri.path(),
            uri.query().unwrap_or(""),
            query.sig.as_deref(),
        )?;
    }
    let steps = if query.ops.trim().is_empty() {
        Vec::new()
    } else {
        PipelineStep::parse_compact(&query.ops).map_err(|e| {
            ApiError::invalid_pipeline(format!(
                "ops: {e}; write steps as op:param=value,param=value separated by |, e.g. \
             resize:width=300|grayscale"
            ))
        })?
    };
    let pipeline = state.registry.compile(&steps)?;
    let requested = requested_format(query.format.as_deref())?;
    let image = super::images::find(&state, &tenant, &id).await?;
    let negotiated = requested.is_none();
    let output = OutputSpec {
        format: match requested {
            Some(format) => format,
            None => negotiate(&headers, |format| {
                let cost = pipeline.estimate_cost(image.width, image.height, image.frames, format);
                cost <= settings.max_cost && (format != ImageFormat::Avif || settings.auto_avif)
            }),
        },
        quality: query.quality,
        progressive: query.progressive,
        compression: query.compression,
        icc: query.icc,
    };
    pixelmill_engine::check_output(&output)
        .map_err(|msg| ApiError::invalid_pipeline(format!("output options: {msg}")))?;
    let referenced = super::images::find_referenced(&state, &tenant, &pipeline).await?;
    let format = pixelmill_engine::resolve_output(output.format, image.format)?;

    let key = cache_key(&image, &referenced, &steps, format, &output);
    let etag = format!("\"{}\"", &key[..32]);
    let respond = |rendition: &Rendition, source: Source| {
        let mut response = Body::from(rendition.bytes.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.mime()),
        );
        headers.insert(
            "x-pixelmill-cache",
            HeaderValue::from_static(source.as_str()),
        );
        insert_caching(headers, &etag, negotiated);
        response
    };
    if etag_matches(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        insert_caching(response.headers_mut(), &etag, negotiated);
        return Ok(response);
    }
    if let Some(hit) = state.render.cached(&key) {
        return Ok(respond(&hit, Source::Memory));
    }

    let blob_key = BlobKey::rendition(&key);
    if pipeline.estimate_cost(image.width, image.height, image.frames, format) > settings.max_cost {
        if let Some(bytes) = stored(&state, &blob_key).await? {
            return Ok(respond(&Rendition { bytes, format }, Source::Store));
        }
        let spec = JobSpec {
            pipeline: steps,
            output,
            notify: NotifySpec::default(),
        };
        let job = state
            .jobs
            .accept(tenant, &image, &pipeline, spec, JobId::generate())
            .await?;
        return Ok(super::jobs::accepted(&state, &job, StatusCode::ACCEPTED));
    }

    let limits = settings.limits;
    let lookup = || async {
        if let Some(bytes) = stored(&state, &blob_key).await? {
            return Ok(Lookup::Stored(Rendition { bytes, format }));
        }
        let original = state.blob.get(&image.blob_key).await?;
        let mut attachments = Vec::with_capacity(referenced.len());
        for image in &referenced {
            attachments.push((image.id.clone(), state.blob.get(&image.blob_key).await?));
        }
        Ok(Lookup::Compute(move || {
            let mut pipeline = pipeline;
            for (id, bytes) in &attachments {
                pipeline.attach_image(id.as_str(), bytes, &limits)?;
            }
            let rendered = pixelmill_engine::process(&original, &pipeline, &output, &limits)?;
            Ok(Rendition {
                bytes: rendered.bytes.into(),
                format: rendered.format,
            })
        }))
    };
    let (blob, blob_key) = (state.blob.clone(), blob_key.clone());
    let save = |rendition: Arc<Rendition>| async move {
        // Losing the second-tier copy costs a recomputation later, never a wrong answer.
        if let Err(err) = blob.put(&blob_key, rendition.bytes.clone()).await {
            tracing::warn!(%err, key = %blob_key, "could not store a rendition");
        }
    };
    let (rendition, source) = state.render.get_or_render(&key, lookup, save).await?;
    Ok(respond(&rendition, source))
}

/// The second tier: a rendition stored earlier, or `None`.
async fn stored(state: &AppState, key: &BlobKey) -> ApiResult<Option<bytes::Bytes>> {
    if !state.render.settings().store_results {
        return Ok(None);
    }
    match state.blob.get(key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Renditions never change for a URL (the original is immutable), so caches may keep them; with
/// `format=auto` the bytes depend on `Accept`, which caches must key on too.
fn insert_caching(headers: &mut HeaderMap, etag: &str, negotiated: bool) {
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if negotiated {
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
    }
}

/// The output format asked for, or `None` for `format=auto` (see `negotiate`). Without `format`
/// the original's format is kept.
fn requested_format(format: Option<&str>) -> ApiResult<Option<OutputFormat>> {
    let Some(name) = format else {
        return Ok(Some(OutputFormat::Original));
    };
    if name == "auto" {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map(Some)
        .map_err(|_| {
            ApiError::invalid_pipeline(format!(
                "format: unknown output format {name:?}; use jpeg, png, webp, gif, avif, tiff, \
                 bmp, auto (picks from the Accept header) or original"
            ))
        })
}

/// `format=auto`: the first of AVIF (smallest files, slowest encoder), WebP and JPEG that the
/// client's `Accept` lists and `affordable` allows (this server's encoders and render budget).
fn negotiate(headers: &HeaderMap, affordable: impl Fn(ImageFormat) -> bool) -> OutputFormat {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let candidates = [
        (OutputFormat::Avif, ImageFormat::Avif),
        (OutputFormat::Webp, ImageFormat::Webp),
    ];
    candidates
        .into_iter()
        .find(|&(output, format)| {
            accepts(accept, format.mime())
                && pixelmill_engine::resolve_output(output, format).is_ok()
                && affordable(format)
        })
        .map_or(OutputFormat::Jpeg, |(output, _)| output)
}

/// Whether an `Accept` header lists `mime` with a non-zero quality.
fn accepts(accept: &str, mime: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next() == Some(mime)
            && parts.all(|p| {
                p.strip_prefix("q=")
                    .is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
            })
    })
}

/// Hash of everything the bytes depend on: the original's content and the canonical request
/// (parameters are kept sorted by the step's map, and the format is resolved).
fn cache_key(
    image: &ImageRecord,
    referenced: &[ImageRecord],
    steps: &[PipelineStep],
    format: ImageFormat,
    output: &OutputSpec,
) -> String {
    let mut canonical = serde_json::json!({
        "input": image.sha256,
        "pipeline": steps,
        "format": format.as_str(),
        "quality": output.quality,
        "progressive": output.progressive,
    });
    // Later options join the key only when set, so keys of requests without them stay as they were.
    if let Some(level) = output.compression {
        canonical["compression"] = level.into();
    }
    if output.icc != IccMode::default() {
        canonical["icc"] = serde_json::json!(output.icc);
    }
    // Images the steps read (a watermark's overlay) are inputs too; only pipelines that have
    // them get the field, so every other key stays as it was.
    if !referenced.is_empty() {
        let hashes: serde_json::Map<String, serde_json::Value> = referenced
            .iter()
            .map(|r| (r.id.to_string(), r.sha256.clone().into()))
            .collect();
        canonical["referenced"] = hashes.into();
    }
    sha256_hex(canonical.to_string().as_bytes())
}

/// `sig` must be the hex HMAC-SHA256, under the render signing key, of the path and the query
/// exactly as sent with the `sig` parameter removed: `/v1/images/{id}/render?ops=…&format=…`.
fn verify_signature(key: &[u8], path: &str, query: &str, sig: Option<&str>) -> ApiResult<()> {
    let unauthorized = |what: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "{what}: this server signs render URLs; add sig=<hex HMAC-SHA256 of the path and \
                 query without sig, under the render signing key> (see docs/API.md, Real-time \
                 renders)"
            ),
        )
    };
    let sig = sig.ok_or_else(|| unauthorized("the render URL has no `sig`"))?;
    let sig = hex::decode(sig).map_err(|_| unauthorized("`sig` is not hex"))?;
    let unsigned: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("sig="))
        .collect();
    let message = format!("{path}?{}", unsigned.join("&"));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| unauthorized("`sig` does not match this URL"))
}

/// The `sig` value for a render URL's path and query; clients compute the same.
pub fn sign(key: &[u8], path_and_query: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(path_and_query.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_lists_are_read_with_their_quality() {
        assert!(accepts("image/avif,image/webp,*/*;q=0.8", "image/webp"));
        assert!(accepts("image/webp;q=0.5", "image/webp"));
        assert!(!accepts("image/webp;q=0", "image/webp"));
        assert!(!accepts("image/png,*/*", "image/webp"));
        assert!(!accepts("", "image/webp"));
    }

    #[test]
    fn auto_prefers_avif_then_webp_then_jpeg_among_what_is_accepted_and_affordable() {
        let headers = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            headers
        };
        let all = headers("image/avif,image/webp,image/apng,*/*;q=0.8");
        // Whether this build has the AVIF encoder depends on the engine's features.
        let avif = if pixelmill_engine::resolve_output(OutputFormat::Avif, ImageFormat::Png).is_ok()
        {
            OutputFormat::Avif
        } else {
            OutputFormat::Webp
        };
        assert_eq!(negotiate(&all, |_| true), avif);
        assert_eq!(
            negotiate(&all, |f| f != ImageFormat::Avif),
            OutputFormat::Webp
        );
        assert_eq!(negotiate(&all, |_| false), OutputFormat::Jpeg);
        assert_eq!(
            negotiate(&headers("image/webp"), |_| true),
            OutputFormat::Webp
        );
        assert_eq!(negotiate(&HeaderMap::new(), |_| true), OutputFormat::Jpeg);
    }

    #[test]
    fn signatures_cover_path_and_query_without_sig() {
        let key = b"secret";
        let path = "/v1/images/img_1/render";
        let sig = sign(key, &format!("{path}?ops=grayscale&format=png"));
        let with_sig = format!("ops=grayscale&format=png&sig={sig}");
        assert!(verify_signature(key, path, &with_sig, Some(&sig)).is_ok());
        // sig may sit anywhere in the query.
        let first = format!("sig={sig}&ops=grayscale&format=png");
        assert!(verify_signature(key, path, &first, Some(&sig)).is_ok());
        let tampered = format!("ops=invert&format=png&sig={sig}");
        let err = verify_signature(key, path, &tampered, Some(&sig)).unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        assert!(verify_signature(key, path, "ops=grayscale", None).is_err());
        assert!(verify_signature(b"other", path, &with_sig, Some(&sig)).is_err());
        assert!(verify_signature(key, path, &with_sig, Some("zz")).is_err());
    }

    #[test]
    fn the_cache_key_covers_the_content_of_referenced_images() {
        let record = |id: &str, sha256: &str| ImageRecord {
            tenant: pixelmill_core::TenantId::default(),
            id: pixelmill_core::ImageId::from_string(id),
            format: ImageFormat::Png,
            width: 8,
            height: 8,
            frames: 1,
            bytes: 100,
            sha256: sha256.to_owned(),
            blob_key: BlobKey::original(sha256),
            created_at: 0,
            blurhash: None,
        };
        let base = record("img_base", "aa");
        let steps = PipelineStep::parse_compact("watermark:image=img_logo").unwrap();
        let key = |referenced: &[ImageRecord]| {
            cache_key(
                &base,
                referenced,
                &steps,
                ImageFormat::Png,
                &OutputSpec::default(),
            )
        };
        let first = key(&[record("img_logo", "bb")]);
        assert_eq!(first, key(&[record("img_logo", "bb")]));
        assert_ne!(first, key(&[record("img_logo", "cc")]));
        assert_ne!(first, key(&[]));
    }
}
