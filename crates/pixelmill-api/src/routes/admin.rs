//! Operator endpoints: admin keys only.

use crate::auth::Admin;
use crate::{ApiError, ApiResult, AppState};
use axum::extract::State;
use axum::Json;
use pixelmill_core::{now_ms, RegionState};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRegion {
    draining: bool,
}

/// `PUT /v1/admin/region` `{"draining": true|false}`: drains this node's region (its nodes report
/// unready, so geo-DNS stops answering with them, and the other regions adopt its queued jobs)
/// or gives it its place back. The other nodes of the region follow within a heartbeat.
pub async fn set_region(
    State(state): State<AppState>,
    _: Admin,
    Json(request): Json<SetRegion>,
) -> ApiResult<Json<Value>> {
    let region = state.jobs.settings().region.clone().ok_or_else(|| {
        ApiError::bad_request(
            "this node belongs to no region (start it with --region); only a region can be drained",
        )
    })?;
    let record = RegionState {
        region: region.clone(),
        draining: request.draining,
        changed_at: now_ms(),
    };
    state.meta.put_region_state(&record).await?;
    state.draining.store(request.draining, Ordering::SeqCst);
    tracing::info!(%region, draining = request.draining, "region state changed");
    Ok(Json(
        json!({"region": region, "draining": request.draining}),
    ))
}
