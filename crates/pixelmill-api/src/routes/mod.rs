//! One module per resource; each handler is a thin adapter from HTTP to the stores and scheduler.

pub mod admin;
pub mod downloads;
pub mod events;
pub mod filters;
pub mod images;
pub mod jobs;
pub mod keys;
pub mod ops;
pub mod render;
pub mod tenant;
