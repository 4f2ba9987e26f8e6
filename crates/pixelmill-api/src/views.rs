//! JSON shapes of the contract. Records store milliseconds; clients get RFC 3339.

use pixelmill_core::{ImageRecord, JobRecord, UnixMillis};
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};

pub fn rfc3339(ms: UnixMillis) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

pub fn image(record: &ImageRecord) -> Value {
    json!({
        "id": record.id,
        "format": record.format,
        "width": record.width,
        "height": record.height,
        "frames": record.frames,
        "bytes": record.bytes,
        "sha256": record.sha256,
        "blurhash": record.blurhash,
        "created_at": rfc3339(record.created_at),
    })
}

pub fn download_url(public_url: &str, token: &str) -> String {
    format!("{}/d/{token}", public_url.trim_end_matches('/'))
}

pub fn job(record: &JobRecord, public_url: &str) -> Value {
    json!({
        "id": record.id,
        "image_id": record.image_id,
        "status": record.status,
        "created_at": rfc3339(record.created_at),
        "started_at": record.started_at.map(rfc3339),
        "finished_at": record.finished_at.map(rfc3339),
        "attempts": record.attempts,
        "pipeline": record.spec.pipeline,
        "download_url": record.link.as_ref().map(|t| download_url(public_url, t.as_str())),
        "expires_at": record.expires_at.map(rfc3339),
        "output": record.output.as_ref().map(|o| json!({
            "format": o.format,
            "width": o.width,
            "height": o.height,
            "bytes": o.bytes,
        })),
        "error": record.error,
        // Why the webhook has not arrived: its latest failed attempt (a refused address, an
        // error answer, a redirect), until one delivers.
        "webhook_failure": record.webhook_failure.as_ref().map(|f| json!({
            "attempts": f.attempts,
            "failed_at": rfc3339(f.at),
            "reason": f.reason,
            "gave_up": f.gave_up,
        })),
        // The region that accepted the job, and the one that runs it (another, once adopted).
        "home_region": record.home,
        "region": record.owner,
    })
}
