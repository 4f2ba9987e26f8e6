//! The HTTP API (axum): `/v1/images` (upload, original, real-time `render`), `/v1/jobs`, job events (SSE), `/v1/filters`, downloads under
//! `/d/{token}`, and `/healthz`, `/readyz`, `/metrics`. The contract is `docs/API.md`.
//!
//! Architecture invariant: handlers never choose backends; they get trait objects in `AppState` from
//! the node. Every error leaves through `ApiError`, so codes and statuses are mapped in one place.

mod body;
mod error;
mod metrics;
mod render;
mod routes;
mod state;
mod streams;
mod tenant;
mod upload;
mod views;

pub use error::{ApiError, ApiResult};
pub use metrics::HttpMetrics;
pub use render::{RenderSettings, Renderer};
pub use routes::render::sign as sign_render_url;
pub use state::{ApiSettings, AppState};
pub use streams::EventStreams;
pub use upload::{UploadSession, Uploads};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/images/{id}", get(routes::images::get))
        .route("/v1/images/{id}/original", get(routes::images::original))
        .route("/v1/images/{id}/render", get(routes::render::render))
        .route("/v1/jobs", post(routes::jobs::create))
        .route("/v1/jobs/{id}", get(routes::jobs::get))
        .route("/v1/jobs/{id}/events", get(routes::events::stream))
        .route("/v1/filters", get(routes::filters::list))
        .route("/d/{token}", get(routes::downloads::download))
        .route("/v1/admin/region", put(routes::admin::set_region))
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .fallback(routes::ops::not_found)
        // Every body but an upload's is small JSON: read whole, within a size and a time limit.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::limit_json_body,
        ))
        // Uploads stream with their own limit (`max_body_bytes`) and timeouts.
        .route("/v1/images", post(routes::images::upload))
        // The limits above replace axum's 2 MB default, which would cut uploads short.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}
