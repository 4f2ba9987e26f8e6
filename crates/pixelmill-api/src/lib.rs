//! The HTTP API (axum): images, jobs, job events, filters, downloads, health and metrics.
