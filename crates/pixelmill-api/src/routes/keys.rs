//! `/v1/admin/keys`: an operator creates, lists and revokes API keys. A key is shown once, in the
//! answer that creates it; only its SHA-256 is stored.

use crate::auth::Admin;
use crate::{views, ApiError, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pixelmill_core::{now_ms, ApiKey, ApiKeyId, ApiKeyRecord, Role, TenantId};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    tenant: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    label: Option<String>,
}

/// `POST /v1/admin/keys` `{"tenant", "admin"?, "label"?}` → 201 with the key, shown this once.
/// The tenant is created (with fresh signing secrets) if it is new.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(request): Json<CreateKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = TenantId::parse(&request.tenant).map_err(ApiError::bad_request)?;
    if request.label.as_ref().is_some_and(|l| l.len() > 200) {
        return Err(ApiError::bad_request(
            "label is longer than 200 characters; shorten it",
        ));
    }
    state.tenants.get(&tenant).await?;
    let role = if request.admin {
        Role::Admin
    } else {
        Role::Tenant
    };
    let key = ApiKey::generate();
    let mut record =
        ApiKeyRecord::new(&key, tenant, role, now_ms()).expect("generated keys have an id");
    record.label = request.label;
    state.meta.put_api_key(&record).await?;
    tracing::info!(key = %record.id, tenant = %record.tenant, ?role, by = ?admin.key, "API key created");
    let mut body = view(&record);
    body["key"] = key.expose().into();
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/admin/keys`: every key (never the key itself), revoked ones included.
pub async fn list(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Value>> {
    let keys: Vec<Value> = state.meta.api_keys().await?.iter().map(view).collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /v1/admin/keys/{id}`: revokes the key. Refused from then on by this node, and by the
/// others within `KEY_CACHE_TTL`.
pub async fn revoke(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = ApiKeyId::from_string(id);
    let mut record = state.meta.get_api_key(&id).await?.ok_or_else(|| {
        ApiError::not_found(format!("no API key {id}; `pixelmill keys list` shows them"))
    })?;
    if record.revoked_at.is_none() {
        record.revoked_at = Some(now_ms());
        state.meta.put_api_key(&record).await?;
        tracing::info!(key = %record.id, tenant = %record.tenant, by = ?admin.key, "API key revoked");
    }
    state.keys.forget(&id);
    Ok(Json(view(&record)))
}

fn view(key: &ApiKeyRecord) -> Value {
    json!({
        "id": key.id,
        "tenant": key.tenant,
        "role": key.role,
        "label": key.label,
        "created_at": views::rfc3339(key.created_at),
        "revoked_at": key.revoked_at.map(views::rfc3339),
    })
}
