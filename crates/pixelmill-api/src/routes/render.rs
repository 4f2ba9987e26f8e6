//! `GET /v1/images/{id}/render?ops=…&format=…[&quality=…][&compression=…][&icc=…]`: the
//! pipeline applied on the fly. The caller is a tenant's API key, or the URL names the tenant and
//! carries its signature: `&tenant=T[&exp=UNIX SECONDS]&sig=HMAC` under one of the tenant's render
//! keys. The response is a pure function of the stored original, the images the pipeline
//! references (a watermark's overlay) and the canonical request, so its hash (with the tenant) is
//! the cache key, the ETag and the blob key of the second cache tier; a render too heavy to answer
//! at once becomes one job per such key, however often it is asked for.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use pixelmill_blob::BlobError;
use pixelmill_core::{
    now_ms, sha256_hex, BlobKey, IccMode, ImageFormat, ImageRecord, JobSpec, NotifySpec,
    OutputFormat, OutputSpec, PipelineStep, TenantId,
};
use serde::Deserialize;
use sha2::Sha256;

use super::downloads::etag_matches;
use super::jobs::{reserve, Reservation};
use crate::auth::Caller;
use crate::render::{Lookup, Rendition, Source};
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
    /// The tenant whose render key signed the URL (when no API key is sent).
    tenant: Option<String>,
    /// When the signed URL stops working, in Unix seconds; part of what is signed.
    exp: Option<i64>,
    sig: Option<String>,
}

pub async fn render(
    State(state): State<AppState>,
    caller: Option<Caller>,
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
    let tenant = match caller {
        Some(caller) => caller.tenant,
        None => authorize_url(&state, &query, uri.path(), uri.query().unwrap_or("")).await?,
    };
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

    let steps = pipeline.canonical_steps().to_vec();
    let key = cache_key(&tenant, &image, &referenced, &steps, format, &output);
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
        // One job per rendition: a repeat answers with the job the first request queued.
        let job_id =
            match reserve(&state, &tenant, &format!("render:{key}"), key.as_bytes()).await? {
                Reservation::Replay(job) => {
                    return Ok(super::jobs::accepted(&state, &job, StatusCode::ACCEPTED))
                }
                Reservation::Fresh(id) => id,
            };
        let spec = JobSpec {
            pipeline: steps,
            output,
            notify: NotifySpec::default(),
        };
        let job = state
            .jobs
            .accept(tenant, &image, &pipeline, spec, job_id)
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
    tenant: &TenantId,
    image: &ImageRecord,
    referenced: &[ImageRecord],
    steps: &[PipelineStep],
    format: ImageFormat,
    output: &OutputSpec,
) -> String {
    let mut canonical = serde_json::json!({
        "tenant": tenant,
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

/// The tenant of a render URL sent without an API key: the one it names, when its signature
/// verifies under one of the tenant's render keys (or unsigned URLs are allowed) and it has not
/// expired.
async fn authorize_url(
    state: &AppState,
    query: &RenderQuery,
    path: &str,
    raw_query: &str,
) -> ApiResult<TenantId> {
    let tenant = query.tenant.as_deref().ok_or_else(|| {
        unauthorized(
            "the render has neither an API key nor a signed URL: send `Authorization: Bearer \
             <key>`, or add tenant=<tenant>&sig=<signature> (see docs/API.md, Real-time renders)",
        )
    })?;
    let tenant = TenantId::parse(tenant).map_err(|e| unauthorized(&e))?;
    if let Some(exp) = query.exp {
        if exp * 1000 <= now_ms() {
            return Err(unauthorized(
                "the signed render URL has expired (`exp` is past); ask for a freshly signed URL",
            ));
        }
    }
    if state.render.settings().unsigned {
        return Ok(tenant);
    }
    let sig = query.sig.as_deref().ok_or_else(|| {
        unauthorized("the render URL has no `sig`; sign it with the tenant's render key")
    })?;
    let keys = state
        .tenants
        .find(&tenant)
        .await?
        .map(|t| t.render_keys)
        .unwrap_or_default();
    let message = signed_part(path, raw_query);
    if keys
        .iter()
        .any(|key| verify(key.secret.as_bytes(), &message, sig))
    {
        Ok(tenant)
    } else {
        Err(unauthorized(
            "`sig` does not match this URL under any of the tenant's render keys; sign the path \
             and query (without sig) with a current key from GET /v1/tenant",
        ))
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized(message.to_owned())
}

/// What a render signature covers: the path and the query exactly as sent, `sig` removed.
fn signed_part(path: &str, query: &str) -> String {
    let unsigned: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("sig="))
        .collect();
    format!("{path}?{}", unsigned.join("&"))
}

/// Whether `sig` is the hex HMAC-SHA256 of `message` under `key` (compared in constant time).
fn verify(key: &[u8], message: &str, sig: &str) -> bool {
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// The `sig` value for a render URL's path and query (`tenant` and any `exp` included); clients
/// compute the same with the tenant's render key (the `secret` of `GET /v1/tenant`'s first
/// `render_keys` entry).
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
        let sig = sign(key, &format!("{path}?ops=grayscale&tenant=t"));
        let check = |query: &str, sig: &str| verify(key, &signed_part(path, query), sig);
        assert!(check(&format!("ops=grayscale&tenant=t&sig={sig}"), &sig));
        // sig may sit anywhere in the query.
        assert!(check(&format!("sig={sig}&ops=grayscale&tenant=t"), &sig));
        assert!(!check(&format!("ops=invert&tenant=t&sig={sig}"), &sig));
        assert!(!check(&format!("ops=grayscale&tenant=u&sig={sig}"), &sig));
        assert!(!check("ops=grayscale&tenant=t", "zz"));
        assert!(!verify(
            b"other",
            &signed_part(path, "ops=grayscale&tenant=t"),
            &sig
        ));
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
        let tenant = pixelmill_core::TenantId::default();
        let key = |referenced: &[ImageRecord]| {
            cache_key(
                &tenant,
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
