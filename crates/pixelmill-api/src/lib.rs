//! The HTTP API (axum): `/v1/images` (upload, original, real-time `render`), `/v1/jobs`, job events (SSE), `/v1/filters`, downloads under
//! `/d/{token}`, `/v1/tenant`, `/v1/links`, `/v1/admin/…`, and `/healthz`, `/readyz`, `/metrics`.
//! The contract is `docs/API.md`.
//!
//! Every route but `/healthz`, `/readyz` and `/d/{token}` needs an API key (`auth.rs`); a
//! render may instead carry a URL signed with the tenant's render key.
//!
//! Architecture invariant: handlers never choose backends; they get trait objects in `AppState` from
//! the node. Every error leaves through `ApiError`, so codes and statuses are mapped in one place.

mod auth;
mod body;
mod error;
mod metrics;
mod render;
mod routes;
mod state;
mod streams;
mod upload;
mod views;

pub use auth::{Caller, Keys, KEY_CACHE_TTL};
pub use error::{ApiError, ApiResult};
pub use metrics::HttpMetrics;
pub use render::{RenderSettings, Renderer};
pub use routes::render::sign as sign_render_url;
pub use state::{ApiSettings, AppState};
pub use streams::EventStreams;
pub use upload::{UploadSession, Uploads};

use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;
use axum::Router;

/// Declares the routes once: `router` serves them and `ROUTES` lists them, so tests can check
/// every route (for keys and tenant isolation) without a list to keep in step by hand. Routes
/// under `json` get their small bodies read whole within the JSON limits (`body.rs`); those
/// under `streamed` (uploads) read theirs chunk by chunk within their own.
macro_rules! routes {
    (
        json { $($path:literal => $($method:ident($handler:path)),+;)* }
        streamed { $($spath:literal => $($smethod:ident($shandler:path)),+;)* }
    ) => {
        /// Every route: its path (axum syntax) and methods.
        pub const ROUTES: &[(&str, &[&str])] = &[
            $(($path, &[$(stringify!($method)),+]),)*
            $(($spath, &[$(stringify!($smethod)),+]),)*
        ];

        fn routes(state: &AppState) -> Router<AppState> {
            Router::new()
                $(.route($path, MethodRouter::new()$(.$method($handler))+))*
                .fallback(routes::ops::not_found)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    body::limit_json_body,
                ))
                $(.route($spath, MethodRouter::new()$(.$smethod($shandler))+))*
        }
    };
}

routes! {
    json {
        "/v1/images/{id}" => get(routes::images::get);
        "/v1/images/{id}/original" => get(routes::images::original);
        "/v1/images/{id}/render" => get(routes::render::render);
        "/v1/jobs" => post(routes::jobs::create);
        "/v1/jobs/{id}" => get(routes::jobs::get);
        "/v1/jobs/{id}/events" => get(routes::events::stream);
        "/v1/filters" => get(routes::filters::list);
        "/d/{token}" => get(routes::downloads::download);
        "/v1/links/{token}" => delete(routes::tenant::revoke_link);
        "/v1/tenant" => get(routes::tenant::get);
        "/v1/tenant/render-keys" => post(routes::tenant::rotate_render_key);
        "/v1/tenant/webhook-secrets" => post(routes::tenant::rotate_webhook_secret);
        "/v1/admin/region" => put(routes::admin::set_region);
        "/v1/admin/keys" => post(routes::keys::create), get(routes::keys::list);
        "/v1/admin/keys/{id}" => delete(routes::keys::revoke);
        "/healthz" => get(routes::ops::healthz);
        "/readyz" => get(routes::ops::readyz);
        "/metrics" => get(routes::ops::metrics);
    }
    streamed {
        "/v1/images" => post(routes::images::upload);
    }
}

pub fn router(state: AppState) -> Router {
    routes(&state)
        // The limits of `routes` replace axum's 2 MB default, which would cut uploads short.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}
