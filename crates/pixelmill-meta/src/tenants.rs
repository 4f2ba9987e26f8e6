//! Tenants' settings as every node reads them: from the store, cached briefly, created with fresh
//! secrets the first time a tenant is seen.

use crate::{Inserted, MetaResult, MetaStore};
use pixelmill_core::{now_ms, rotate, SigningSecret, TenantId, TenantRecord};
use quick_cache::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a tenant read from the store is used before it is read again: a secret rotated on
/// another node is used here within this time (at once on the node that rotated it).
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Which of a tenant's secret sets a rotation replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    Render,
    Webhook,
}

pub struct Tenants {
    meta: Arc<dyn MetaStore>,
    cache: Cache<TenantId, (TenantRecord, Instant)>,
}

impl Tenants {
    pub fn new(meta: Arc<dyn MetaStore>) -> Tenants {
        Tenants {
            meta,
            cache: Cache::new(10_000),
        }
    }

    /// The tenant's settings, created with fresh secrets if it has none yet.
    pub async fn get(&self, id: &TenantId) -> MetaResult<TenantRecord> {
        match self.find(id).await? {
            Some(record) => Ok(record),
            None => self.create(TenantRecord::new(id.clone(), now_ms())).await,
        }
    }

    /// The tenant's settings if it exists; never creates one (for callers that are not yet
    /// authenticated).
    pub async fn find(&self, id: &TenantId) -> MetaResult<Option<TenantRecord>> {
        if let Some((record, fetched)) = self.cache.get(id) {
            if fetched.elapsed() < TENANT_CACHE_TTL {
                return Ok(Some(record));
            }
        }
        let record = self.meta.get_tenant(id).await?;
        if let Some(record) = &record {
            self.remember(record);
        }
        Ok(record)
    }

    /// Stores `record` unless the tenant exists; answers whichever is stored.
    pub async fn create(&self, record: TenantRecord) -> MetaResult<TenantRecord> {
        let stored = match self.meta.insert_tenant(&record).await? {
            Inserted::New => record,
            Inserted::Existing(existing) => existing,
        };
        self.remember(&stored);
        Ok(stored)
    }

    /// Makes `fresh` the tenant's current secret of `kind`; the previous one stays valid.
    pub async fn rotate(
        &self,
        id: &TenantId,
        kind: SecretKind,
        fresh: SigningSecret,
    ) -> MetaResult<TenantRecord> {
        self.cache.remove(id);
        let mut record = self.get(id).await?;
        let secrets = match kind {
            SecretKind::Render => &mut record.render_keys,
            SecretKind::Webhook => &mut record.webhook_secrets,
        };
        rotate(secrets, fresh);
        self.meta.put_tenant(&record).await?;
        self.remember(&record);
        Ok(record)
    }

    fn remember(&self, record: &TenantRecord) {
        self.cache
            .insert(record.id.clone(), (record.clone(), Instant::now()));
    }
}
