use crate::auth::Caller;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// `GET /v1/filters`: every filter with its parameters, types, ranges and defaults.
pub async fn list(State(state): State<AppState>, _: Caller) -> Json<Value> {
    Json(json!({ "filters": state.registry.filters() }))
}
