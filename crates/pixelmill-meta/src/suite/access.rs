//! Conformance checks for API keys and tenants.

use super::unique_tenant;
use crate::{Inserted, MetaStore};
use pixelmill_core::{now_ms, ApiKey, ApiKeyRecord, Role, TenantRecord};

pub async fn api_keys(store: &dyn MetaStore) {
    let key = ApiKey::generate();
    let mut record = ApiKeyRecord::new(&key, unique_tenant(), Role::Tenant, now_ms()).unwrap();
    record.label = Some("ci".to_owned());
    assert_eq!(store.get_api_key(&record.id).await.unwrap(), None);
    store.put_api_key(&record).await.unwrap();
    assert_eq!(
        store.get_api_key(&record.id).await.unwrap(),
        Some(record.clone()),
        "get_api_key returns the stored key"
    );
    let admin =
        ApiKeyRecord::new(&ApiKey::generate(), unique_tenant(), Role::Admin, now_ms()).unwrap();
    store.put_api_key(&admin).await.unwrap();

    record.revoked_at = Some(now_ms());
    store.put_api_key(&record).await.unwrap();
    assert_eq!(
        store.get_api_key(&record.id).await.unwrap(),
        Some(record.clone()),
        "a revoked key stays readable, marked revoked"
    );
    let listed = store.api_keys().await.unwrap();
    assert!(
        listed.contains(&record) && listed.contains(&admin),
        "api_keys lists every key"
    );
    let ids: Vec<_> = listed.iter().map(|k| k.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "api_keys lists each key once, in id order");
}

pub async fn tenants(store: &dyn MetaStore) {
    let id = unique_tenant();
    assert_eq!(store.get_tenant(&id).await.unwrap(), None);
    let first = TenantRecord::new(id.clone(), now_ms());
    assert_eq!(store.insert_tenant(&first).await.unwrap(), Inserted::New);
    let second = TenantRecord::new(id.clone(), now_ms());
    assert_eq!(
        store.insert_tenant(&second).await.unwrap(),
        Inserted::Existing(first.clone()),
        "a second insert returns the first tenant's secrets and changes nothing"
    );
    let mut rotated = first.clone();
    pixelmill_core::rotate(
        &mut rotated.render_keys,
        pixelmill_core::SigningSecret::generate("rk_", now_ms()),
    );
    store.put_tenant(&rotated).await.unwrap();
    assert_eq!(store.get_tenant(&id).await.unwrap(), Some(rotated));
}
