use crate::auth::Tenant;
use crate::body::BodyPace;
use crate::{upload, views, ApiError, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use pixelmill_core::{Durability, ImageId, ImageRecord, TenantId};
use pixelmill_engine::Pipeline;

/// `POST /v1/images`: the raw image as the body, or `multipart/form-data` with one field `file`.
/// `Pixelmill-Durability: regions=2` answers only once a second region holds the upload
/// (`local`: once this region does; the default is the node's).
pub async fn upload(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    request: Request,
) -> ApiResult<Response> {
    let durability = durability(request.headers())?;
    if let Some(len) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        // Far too large to bother reading: refuse at once. A body just over the limit is refused
        // while streaming, after which the rest is drained so the client sees the 413.
        if len
            > state
                .settings
                .max_body_bytes
                .saturating_add(upload::LINGER_BYTES)
        {
            return Err(ApiError::payload_too_large(state.settings.max_body_bytes));
        }
    }
    let pace = BodyPace::starting_now(
        state.settings.body_idle_timeout,
        state.settings.upload_body_timeout,
    );
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let record = if is_multipart {
        upload_multipart(&state, tenant, request, durability, &pace).await?
    } else {
        let body = request.into_body().into_data_stream();
        upload::ingest(&state, tenant, body, durability, &pace).await?
    };
    Ok((StatusCode::CREATED, Json(views::image(&record))).into_response())
}

/// The `Pixelmill-Durability` header, if the client sent one.
fn durability(headers: &HeaderMap) -> ApiResult<Option<Durability>> {
    let Some(value) = headers.get("pixelmill-durability") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    text.parse()
        .map(Some)
        .map_err(|e: String| ApiError::bad_request(format!("Pixelmill-Durability: {e}")))
}

async fn upload_multipart(
    state: &AppState,
    tenant: TenantId,
    request: Request,
    durability: Option<Durability>,
    pace: &BodyPace,
) -> ApiResult<ImageRecord> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
    while let Some(field) = pace
        .within(multipart.next_field())
        .await?
        .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?
    {
        if field.name() == Some("file") {
            return upload::ingest(state, tenant, field.boxed(), durability, pace).await;
        }
    }
    Err(ApiError::bad_request(
        "the multipart body has no field named `file`; put the image in a field called file",
    ))
}

pub(crate) async fn find(state: &AppState, tenant: &TenantId, id: &str) -> ApiResult<ImageRecord> {
    state
        .meta
        .get_image(tenant, &ImageId::from_string(id))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "image {id} not found; upload it first with POST /v1/images"
            ))
        })
}

/// The tenant's images that the pipeline reads besides its input (a watermark's overlay), in
/// step order. A missing one makes the pipeline invalid, so it is a 422 naming the step; so does
/// one over `max_overlay_pixels`, refused from its record before anything is loaded or decoded.
pub(crate) async fn find_referenced(
    state: &AppState,
    tenant: &TenantId,
    pipeline: &Pipeline,
) -> ApiResult<Vec<ImageRecord>> {
    let mut found = Vec::new();
    for reference in pipeline.referenced_images() {
        let image = state
            .meta
            .get_image(tenant, &ImageId::from_string(reference.id))
            .await?
            .ok_or_else(|| {
                ApiError::invalid_pipeline(format!(
                    "step {} ({}): image {} not found; upload it first with POST /v1/images \
                     and use the id it returns",
                    reference.step, reference.op, reference.id
                ))
            })?;
        let pixels = u64::from(image.width) * u64::from(image.height);
        let max = state.settings.max_overlay_pixels;
        if pixels > max {
            return Err(ApiError::invalid_pipeline(format!(
                "step {} ({}): image {} is {}x{} ({pixels} pixels), over the limit of {max} \
                 pixels for an image a step reads; upload a smaller version of it",
                reference.step, reference.op, reference.id, image.width, image.height
            )));
        }
        found.push(image);
    }
    Ok(found)
}

/// `GET /v1/images/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let record = find(&state, &tenant, &id).await?;
    Ok(Json(views::image(&record)))
}

/// `GET /v1/images/{id}/original`: the uploaded bytes, streamed from the blob store.
pub async fn original(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = find(&state, &tenant, &id).await?;
    let read = state.blob.read(&record.blob_key, None).await?;
    let file = super::downloads::file_headers("inline", record.id.as_str(), record.format.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, record.format.mime().to_owned()),
            (header::ETAG, format!("\"{}\"", record.sha256)),
            (header::CONTENT_LENGTH, read.len.to_string()),
        ],
        file,
        Body::from_stream(read.body),
    )
        .into_response())
}
