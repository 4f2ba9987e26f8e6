use crate::auth::Tenant;
use crate::{views, ApiError, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use pixelmill_core::{
    now_ms, sha256_hex, IdempotencyRecord, JobId, JobRecord, JobSpec, NotifySpec, OutputSpec,
    PipelineStep, TenantId,
};
use pixelmill_meta::Inserted;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJob {
    image_id: String,
    pipeline: Vec<PipelineStep>,
    #[serde(default)]
    output: OutputSpec,
    #[serde(default)]
    notify: NotifySpec,
}

/// `POST /v1/jobs`: validates everything, stores the job, queues it, then answers 202. With an
/// `Idempotency-Key`, a repeat of the same body answers 200 with the job the first request created.
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let request: CreateJob = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the job request is not valid JSON of the expected shape: {e}; see docs/API.md (Jobs)"
        ))
    })?;
    validate_notify(&state, &request.notify)?;
    pixelmill_engine::check_output(&request.output)
        .map_err(|msg| ApiError::invalid_pipeline(format!("output: {msg}")))?;
    let pipeline = state.registry.compile(&request.pipeline)?;
    let image = super::images::find(&state, &tenant, &request.image_id).await?;
    super::images::find_referenced(&state, &tenant, &pipeline).await?;

    let job_id = match idempotency_key(&headers)? {
        Some(key) => match reserve(&state, &tenant, key, &body).await? {
            Reservation::Replay(job) => return Ok(accepted(&state, &job, StatusCode::OK)),
            Reservation::Fresh(id) => id,
        },
        None => JobId::generate(),
    };
    let spec = JobSpec {
        pipeline: request.pipeline,
        output: request.output,
        notify: request.notify,
    };
    let job = state
        .jobs
        .accept(tenant, &image, &pipeline, spec, job_id)
        .await?;
    Ok(accepted(&state, &job, StatusCode::ACCEPTED))
}

/// `GET /v1/jobs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let job = find(&state, &tenant, &id).await?;
    Ok(Json(views::job(&job, &state.settings.public_url)))
}

pub(crate) async fn find(state: &AppState, tenant: &TenantId, id: &str) -> ApiResult<JobRecord> {
    state
        .meta
        .get_job(tenant, &JobId::from_string(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

pub(crate) fn accepted(state: &AppState, job: &JobRecord, status: StatusCode) -> Response {
    let status_url = format!(
        "{}/v1/jobs/{}",
        state.settings.public_url.trim_end_matches('/'),
        job.id
    );
    (
        status,
        [(header::LOCATION, status_url.clone())],
        Json(json!({"id": job.id, "status": job.status, "status_url": status_url})),
    )
        .into_response()
}

fn validate_notify(state: &AppState, notify: &NotifySpec) -> ApiResult<()> {
    if let Some(url) = &notify.webhook {
        pixelmill_notify::validate_webhook_url(url, &state.settings.outbound)?;
    }
    if notify.email.is_some() {
        return Err(ApiError::bad_request(
            "notify.email: e-mail notifications are not available on this server yet; \
             use notify.webhook or follow GET /v1/jobs/{id}/events",
        ));
    }
    Ok(())
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 255 => Ok(Some(key)),
        _ => Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID",
        )),
    }
}

pub(crate) enum Reservation {
    /// The key is ours: create the job under this id.
    Fresh(JobId),
    /// The key was used before with the same body: answer with that job.
    Replay(Box<JobRecord>),
}

/// Reserves a job id for an idempotency key with a conditional insert, so concurrent repeats of one
/// request agree on a single job.
pub(crate) async fn reserve(
    state: &AppState,
    tenant: &TenantId,
    key: &str,
    body: &[u8],
) -> ApiResult<Reservation> {
    let now = now_ms();
    let record = IdempotencyRecord {
        tenant: tenant.clone(),
        key: key.to_owned(),
        body_sha256: sha256_hex(body),
        job_id: JobId::generate(),
        expires_at: now + state.settings.idempotency_ttl.as_millis() as i64,
    };
    let existing = match state.meta.insert_idempotency_key(&record, now).await? {
        Inserted::New => return Ok(Reservation::Fresh(record.job_id)),
        Inserted::Existing(existing) => existing,
    };
    if existing.body_sha256 != record.body_sha256 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            format!("Idempotency-Key {key:?} was already used with a different request body; use a new key for a new request"),
        ));
    }
    // The first request may still be between reserving the key and storing its job.
    for _ in 0..40 {
        if let Some(job) = state.meta.get_job(tenant, &existing.job_id).await? {
            // Stored but refused by the queue: nothing ran, so this request tries again.
            if job.never_queued() {
                return Ok(Reservation::Fresh(existing.job_id));
            }
            return Ok(Reservation::Replay(Box::new(job)));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The first request reserved the id but never stored the job (it was refused or crashed): the
    // id is still this key's, so this request creates it.
    Ok(Reservation::Fresh(existing.job_id))
}
