use crate::streams::EventStreams;
use crate::upload::Uploads;
use crate::{HttpMetrics, Keys, Renderer};
use pixelmill_blob::BlobStore;
use pixelmill_engine::Registry;
use pixelmill_jobs::Jobs;
use pixelmill_meta::{MetaStore, Tenants};
use pixelmill_notify::JobEvents;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What the API needs to know about the node's configuration.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Largest accepted upload body; enforced while streaming, not after buffering.
    pub max_body_bytes: u64,
    /// Absolute base URL for links handed to clients, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// When set, `GET /d/{token}` answers 307 to a presigned blob-store URL valid this long (never
    /// past the link's expiry) instead of streaming the bytes itself; stores without presigned
    /// URLs (files) still stream.
    pub download_redirect: Option<Duration>,
    /// Which addresses webhook URLs may name (checked again when they are delivered).
    pub outbound: pixelmill_outbound::Guard,
    /// Largest body of every request but an upload; refused with 413 past it.
    pub max_json_body_bytes: u64,
    /// A body that sends nothing this long is answered 408; a JSON body must arrive whole
    /// within it.
    pub body_idle_timeout: Duration,
    /// Longest an upload's body may take to arrive.
    pub upload_body_timeout: Duration,
    /// Largest pixel count of an image a pipeline reads besides its input (a watermark).
    pub max_overlay_pixels: u64,
    /// Job event streams one tenant may hold open on this node.
    pub max_event_streams_per_tenant: usize,
}

/// Shared handles given to every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetaStore>,
    /// Checks every request's API key.
    pub keys: Arc<Keys>,
    /// Tenants' signing secrets.
    pub tenants: Arc<Tenants>,
    pub blob: Arc<dyn BlobStore>,
    /// Every job's life: accepting them here, and the scheduler behind them.
    pub jobs: Arc<Jobs>,
    pub registry: Arc<Registry>,
    pub events: JobEvents,
    /// The node's `upload` role: runs each upload in its own supervised actor.
    pub uploads: Arc<dyn Uploads>,
    pub settings: ApiSettings,
    /// Real-time renditions: caches, single-flight and the render concurrency limit.
    pub render: Arc<Renderer>,
    pub http_metrics: HttpMetrics,
    pub prometheus: prometheus::Registry,
    /// This node's region is draining (taken out of geo-DNS on purpose): `/readyz` says so.
    pub draining: Arc<AtomicBool>,
    /// Job event streams open on this node, per tenant.
    pub event_streams: EventStreams,
}
