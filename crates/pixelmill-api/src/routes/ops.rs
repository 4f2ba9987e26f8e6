use crate::auth::Admin;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus::{Encoder, TextEncoder};
use serde_json::json;
use std::sync::atomic::Ordering;

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the stores answer, the scheduler has a leader with its log applied, and the
/// region is not draining. Geo-DNS answers with the nodes that are ready.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let meta = state.meta.ping().await.err().map(|e| e.to_string());
    let blob = state.blob.ping().await.err().map(|e| e.to_string());
    let sched = state.jobs.scheduler();
    let sched = (!sched.is_ready().await).then(|| "no leader yet".to_owned());
    let draining = state
        .draining
        .load(Ordering::SeqCst)
        .then(|| "taken out of service (`pixelmill region undrain` gives it back)".to_owned());
    let problems: Vec<String> = [
        ("metadata", meta),
        ("blobs", blob),
        ("scheduler", sched),
        ("region draining", draining),
    ]
    .into_iter()
    .filter_map(|(what, err)| err.map(|e| format!("{what}: {e}")))
    .collect();
    if problems.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not ready: {}", problems.join("; ")),
        )
        .retry_after(1)
        .into_response()
    }
}

/// `GET /metrics`: Prometheus text format, for admin keys (Prometheus sends one as its scrape's
/// `authorization` credentials).
pub async fn metrics(State(state): State<AppState>, _: Admin) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    match encoder.encode(&state.prometheus.gather(), &mut buf) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            buf,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("metrics encoding failed: {e}")).into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see docs/API.md for the routes")
}
