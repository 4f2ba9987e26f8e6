//! Test helpers: spawning a real pixelmill process, test images and a webhook receiver.
