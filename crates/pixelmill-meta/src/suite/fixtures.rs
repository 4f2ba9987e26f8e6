//! Records for the suite: realistic, and unique per call so runs never see each other's data.

use pixelmill_core::{
    now_ms, sha256_hex, BlobKey, EventId, IdempotencyRecord, ImageFormat, ImageId, ImageRecord,
    JobId, JobRecord, JobSpec, LinkRecord, LinkToken, OutboxEvent, PipelineStep, TenantId,
    UnixMillis,
};

/// A tenant no other run uses.
pub fn unique_tenant() -> TenantId {
    TenantId::new(format!("suite-{}", ImageId::generate()))
}

/// A content address no other run uses.
pub fn unique_blob() -> BlobKey {
    BlobKey::output(&sha256_hex(ImageId::generate().as_str().as_bytes()))
}

pub fn image(tenant: &TenantId) -> ImageRecord {
    let sha256 = sha256_hex(ImageId::generate().as_str().as_bytes());
    ImageRecord {
        tenant: tenant.clone(),
        id: ImageId::generate(),
        format: ImageFormat::Png,
        width: 640,
        height: 480,
        frames: 1,
        bytes: 12_345,
        blob_key: BlobKey::original(&sha256),
        sha256,
        created_at: now_ms(),
        blurhash: Some("LEHV6nWB2yk8pyo0adR*.7kCMdnj".to_owned()),
    }
}

pub fn job(tenant: &TenantId) -> JobRecord {
    owned_job(tenant, None)
}

/// A queued job accepted in `region` (its home and owner).
pub fn owned_job(tenant: &TenantId, region: Option<&str>) -> JobRecord {
    let step = PipelineStep {
        op: "resize".to_owned(),
        params: serde_json::json!({ "width": 100 })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let spec = JobSpec {
        pipeline: vec![step],
        output: Default::default(),
        notify: Default::default(),
    };
    JobRecord::queued(
        tenant.clone(),
        JobId::generate(),
        ImageId::generate(),
        spec,
        now_ms(),
        region,
    )
}

pub fn link(blob: &BlobKey, expires_at: UnixMillis) -> LinkRecord {
    LinkRecord {
        token: LinkToken::generate(),
        tenant: unique_tenant(),
        job_id: JobId::generate(),
        blob_key: blob.clone(),
        content_type: "image/webp".to_owned(),
        bytes: 4_096,
        created_at: expires_at - 60_000,
        expires_at,
        revoked_at: None,
    }
}

pub fn outbox_event(next_attempt_at: UnixMillis) -> OutboxEvent {
    OutboxEvent {
        event_id: EventId::generate(),
        tenant: unique_tenant(),
        job_id: JobId::generate(),
        target: "https://example.invalid/hook".to_owned(),
        payload: r#"{"event":"job.succeeded"}"#.to_owned(),
        attempts: 0,
        next_attempt_at,
        created_at: next_attempt_at,
        give_up_at: next_attempt_at + 86_400_000,
    }
}

pub fn idempotency_key(tenant: &TenantId, key: &str, expires_at: UnixMillis) -> IdempotencyRecord {
    IdempotencyRecord {
        tenant: tenant.clone(),
        key: key.to_owned(),
        body_sha256: sha256_hex(JobId::generate().as_str().as_bytes()),
        job_id: JobId::generate(),
        expires_at,
    }
}
