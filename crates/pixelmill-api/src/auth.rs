//! Who is calling. Every request's `Authorization: Bearer <key>` is checked here once, by the
//! `authenticate` middleware; handlers then ask for what they need with an extractor: `Tenant`
//! (any valid key), `Admin` (an admin key) or `Caller` as an `Option` (renders, which a signed
//! URL may authorise instead). A route without one of them is open: `/healthz`, `/readyz` and the
//! download links, which are bearer capabilities of their own.

use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pixelmill_core::{ApiKey, ApiKeyId, ApiKeyRecord, Role, TenantId};
use pixelmill_meta::MetaStore;
use quick_cache::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a key read from the store is trusted before it is read again: a key revoked on
/// another node stops working here within this time (at once on the node that revoked it).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Unknown key ids are remembered briefly too, so a flood of made-up keys does not become a flood
/// of store reads, while a key just created elsewhere works here soon after.
const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(2);
const KEY_CACHE_ENTRIES: usize = 100_000;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
    /// `None` for the bootstrap key, which has no record.
    pub key: Option<ApiKeyId>,
}

/// Checks bearer keys: the node's bootstrap key (configured, never stored) and the stored keys.
pub struct Keys {
    meta: Arc<dyn MetaStore>,
    /// SHA-256 of the bootstrap admin key, when the node has one.
    bootstrap: Option<[u8; 32]>,
    cache: Cache<ApiKeyId, (Option<ApiKeyRecord>, Instant)>,
}

impl Keys {
    pub fn new(meta: Arc<dyn MetaStore>, bootstrap_key: Option<&str>) -> Keys {
        Keys {
            meta,
            bootstrap: bootstrap_key.map(|key| digest(&ApiKey::from_bearer(key).sha256())),
            cache: Cache::new(KEY_CACHE_ENTRIES),
        }
    }

    /// The caller a bearer token stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let key = ApiKey::from_bearer(token);
        let presented = digest(&key.sha256());
        if let Some(bootstrap) = &self.bootstrap {
            if bool::from(presented.ct_eq(bootstrap)) {
                return Ok(Caller {
                    tenant: TenantId::default(),
                    role: Role::Admin,
                    key: None,
                });
            }
        }
        let refused = || {
            ApiError::unauthorized(
                "the API key is not valid (unknown, revoked or mistyped); ask an operator for a \
                 key (`pixelmill keys create --tenant T`)",
            )
        };
        let id = key.id().ok_or_else(refused)?;
        let record = self.record(&id).await?.ok_or_else(refused)?;
        let matches = bool::from(presented.ct_eq(&digest(&record.sha256)));
        if !matches || record.revoked_at.is_some() {
            return Err(refused());
        }
        Ok(Caller {
            tenant: record.tenant,
            role: record.role,
            key: Some(record.id),
        })
    }

    /// Drops a key from this node's cache, so a revocation takes effect here at once.
    pub fn forget(&self, id: &ApiKeyId) {
        self.cache.remove(id);
    }

    async fn record(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, ApiError> {
        if let Some((record, fetched)) = self.cache.get(id) {
            let ttl = if record.is_some() {
                KEY_CACHE_TTL
            } else {
                UNKNOWN_KEY_TTL
            };
            if fetched.elapsed() < ttl {
                return Ok(record);
            }
        }
        let record = self.meta.get_api_key(id).await?;
        self.cache
            .insert(id.clone(), (record.clone(), Instant::now()));
        Ok(record)
    }
}

/// Decodes a stored hex digest; a malformed one compares unequal to everything.
fn digest(hex_digest: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if hex::decode_to_slice(hex_digest, &mut out).is_err() {
        out = [0xff; 32];
    }
    out
}

/// Authenticates the bearer key when one is sent (a wrong key is refused on every route), and
/// leaves the `Caller` for the extractors.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(header) = request.headers().get(AUTHORIZATION) else {
        return next.run(request).await;
    };
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized("the Authorization header must be `Bearer <API key>`")
            .into_response();
    };
    match state.keys.authenticate(token).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

fn missing_key() -> ApiError {
    ApiError::unauthorized(
        "this endpoint needs an API key: send `Authorization: Bearer <key>` (an operator creates \
         keys with `pixelmill keys create --tenant T`)",
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(missing_key)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

/// The caller's tenant: every lookup of a handler that takes it is scoped by it.
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await
            .map(|caller| Tenant(caller.tenant))
    }
}

/// An operator: the caller's key has the admin role.
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.role {
            Role::Admin => Ok(Admin(caller)),
            Role::Tenant => Err(ApiError::forbidden(
                "this is an operator endpoint and the API key is a tenant's; use an admin key \
                 (`pixelmill keys create --tenant T --admin`)",
            )),
        }
    }
}
