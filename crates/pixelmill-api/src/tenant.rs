use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use pixelmill_core::TenantId;

/// The caller's tenant. Auth is off until API keys are configured (a later issue), so every request
/// belongs to the default tenant; handlers already scope every lookup by it.
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Tenant(TenantId::default()))
    }
}
