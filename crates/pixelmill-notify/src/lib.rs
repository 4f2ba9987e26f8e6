//! Notifications: HMAC-signed webhooks from a durable outbox with exponential backoff, and per-job live events.
