//! Test helpers shared by pixelmill's end-to-end tests: a real `pixelmill` process on a loopback
//! port with its own data dir, a real webhook receiver, test images and a small HTTP client.

mod client;
mod hooks;
mod images;
mod server;

pub use client::Client;
pub use hooks::{Delivery, Hooks};
pub use images::{jpeg, png_rgba};
pub use server::Server;
