//! Job event streams open on this node, counted per tenant, so one tenant's followers cannot
//! take every connection the node can hold.

use crate::{ApiError, ApiResult};
use axum::http::StatusCode;
use pixelmill_core::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct EventStreams {
    open: Arc<Mutex<HashMap<TenantId, usize>>>,
}

/// One open stream; dropping it (the stream ended or its client left) frees its place.
pub struct StreamPermit {
    streams: EventStreams,
    tenant: TenantId,
}

impl EventStreams {
    /// A place for one more stream of `tenant`, or 429 when it already holds `max`.
    pub fn open(&self, tenant: &TenantId, max: usize) -> ApiResult<StreamPermit> {
        let mut open = self.open.lock().unwrap();
        let count = open.entry(tenant.clone()).or_default();
        if *count >= max {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "{count} job event streams are already open for your account on this \
                     server, the most it allows; close one, or follow jobs with GET \
                     /v1/jobs/{{id}} or a webhook, then retry"
                ),
            )
            .retry_after(5));
        }
        *count += 1;
        Ok(StreamPermit {
            streams: self.clone(),
            tenant: tenant.clone(),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap();
        if let Some(count) = open.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_past_its_bound_gets_429_and_a_closed_stream_frees_a_place() {
        let streams = EventStreams::default();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let first = streams.open(&a, 2).unwrap();
        let _second = streams.open(&a, 2).unwrap();
        let refused = streams.open(&a, 2).err().unwrap();
        assert_eq!(refused.code(), "too_many_streams");
        assert!(
            streams.open(&b, 2).is_ok(),
            "other tenants keep their own places"
        );
        drop(first);
        assert!(streams.open(&a, 2).is_ok());
    }
}
