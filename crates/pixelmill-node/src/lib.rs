//! One pixelmill node: configuration, the ractor supervision tree and the only place backends are chosen.
