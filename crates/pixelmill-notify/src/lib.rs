//! Notifications: HMAC-signed webhooks from a durable outbox with exponential backoff, and per-job
//! live events.
//!
//! Flow: when a job reaches a final status, the scheduler stores `outbox_event(..)` in the
//! `MetaStore` together with the job; a periodic task calls `WebhookDelivery::deliver_due`, which
//! sends each due event and deletes, reschedules or gives up on its row. Because the event lives in
//! the store until a receiver answers 2xx, a crash loses no notification (at-least-once delivery;
//! receivers deduplicate on `Pixelmill-Event-Id`).

mod event;
mod events;
mod metrics;
mod signature;
mod target;
mod webhook;

pub use event::{outbox_event, DEFAULT_RETRY_WINDOW, JOB_FAILED, JOB_SUCCEEDED};
pub use events::{JobEvent, JobEvents, DEFAULT_CAPACITY};
pub use metrics::NotifyMetrics;
pub use pixelmill_core::BackoffConfig;
pub use signature::{sign, sign_all, verify};
pub use target::{validate_webhook_url, WebhookUrlError};
pub use webhook::{DeliveryReport, NotifyError, WebhookConfig, WebhookDelivery};
