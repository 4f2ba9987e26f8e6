//! `/v1/tenant`: the caller's own tenant: its signing secrets and their rotation, and revoking its
//! download links.

use crate::auth::{Caller, Tenant};
use crate::{views, ApiError, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::Json;
use pixelmill_core::{now_ms, LinkToken, SigningSecret, TenantRecord};
use pixelmill_meta::SecretKind;
use serde_json::{json, Value};

/// `GET /v1/tenant`: the tenant's render signing keys and webhook secrets, newest first (the
/// first signs; both verify). Any key of the tenant may read them: it can act as the tenant anyway.
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let record = state.tenants.get(&caller.tenant).await?;
    Ok(Json(view(&record, &caller)))
}

/// `POST /v1/tenant/render-keys`: a new render signing key; URLs signed with the previous one
/// keep working until the next rotation.
pub async fn rotate_render_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    rotate(state, caller, SecretKind::Render, "rk_").await
}

/// `POST /v1/tenant/webhook-secrets`: a new webhook signing secret; webhooks carry a signature
/// under it and one under the previous secret until the next rotation.
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    rotate(state, caller, SecretKind::Webhook, "whs_").await
}

async fn rotate(
    state: AppState,
    caller: Caller,
    kind: SecretKind,
    prefix: &str,
) -> ApiResult<Json<Value>> {
    let fresh = SigningSecret::generate(prefix, now_ms());
    let record = state.tenants.rotate(&caller.tenant, kind, fresh).await?;
    tracing::info!(tenant = %caller.tenant, ?kind, by = ?caller.key, "signing secret rotated");
    Ok(Json(view(&record, &caller)))
}

/// `DELETE /v1/links/{token}`: revokes a download link of the caller's tenant; `/d/{token}`
/// answers 410 from then on, in every region once the metadata has replicated.
pub async fn revoke_link(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(token): Path<String>,
) -> ApiResult<Json<Value>> {
    let token = LinkToken::from_string(token);
    let mut link = state
        .meta
        .get_link(&token)
        .await?
        .filter(|link| link.tenant == tenant)
        .ok_or_else(|| ApiError::not_found("no such download link; check the token"))?;
    if link.revoked_at.is_none() {
        link.revoked_at = Some(now_ms());
        state.meta.put_link(&link).await?;
    }
    Ok(Json(json!({
        "job_id": link.job_id,
        "revoked_at": link.revoked_at.map(views::rfc3339),
    })))
}

fn view(record: &TenantRecord, caller: &Caller) -> Value {
    let secrets = |secrets: &[SigningSecret]| -> Vec<Value> {
        secrets
            .iter()
            .map(|s| json!({"id": s.id, "secret": s.secret, "created_at": views::rfc3339(s.created_at)}))
            .collect()
    };
    json!({
        "tenant": record.id,
        "role": caller.role,
        "render_keys": secrets(&record.render_keys),
        "webhook_secrets": secrets(&record.webhook_secrets),
    })
}
