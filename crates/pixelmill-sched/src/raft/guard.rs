//! The raft listener's gate: a request passes only with a valid signature (`auth.rs`) made for
//! this node, within `WINDOW` of this node's clock, with a nonce not seen before. It runs before
//! any handler, so nothing unauthenticated is deserialised or reaches raft.

use super::auth::{RaftSecret, Recipient, Signature, RAFT_AUTH_HEADER};
use super::network::STATUS_PATH;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pixelmill_core::now_ms;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How far a request's timestamp may be from this node's clock, either way. Five minutes rides
/// out the chaos suite's +90 s clock skew (and NTP hiccups) with room to spare; a captured request
/// is useless to a replayer sooner than that only because its nonce is remembered.
pub(crate) const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Nonces remembered at once (about 40 MiB at most): 3,500 raft requests a second sustained over
/// the window. Past it requests are refused, not let through unchecked.
const REPLAY_CAPACITY: usize = 1 << 20;
/// How often nonces older than the window are forgotten.
const SWEEP_EVERY_MS: i64 = 10_000;

/// Why a raft request was refused before it was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("the request has no {RAFT_AUTH_HEADER} header; raft requests must be signed with the region's secret (PIXELMILL_RAFT_SECRET or --raft-secret-file on the caller)")]
    Unsigned,
    #[error("the {RAFT_AUTH_HEADER} header is malformed: {0}")]
    Malformed(String),
    #[error(
        "the request is signed for node {to}, this is node {me}; send it to the node it names"
    )]
    WrongNode { to: Recipient, me: u64 },
    #[error("the request's timestamp is {off_s} s from this node's clock, more than the {} s allowed; synchronise the nodes' clocks (NTP)", WINDOW_MS / 1000)]
    Stale { off_s: i64 },
    #[error("the signature does not match: the caller's raft secret is not this node's, or the request was altered; give every node of the region the same secret")]
    BadSignature,
    #[error("this request's nonce was already accepted: a replay; sign every request afresh")]
    Replayed,
    #[error("more than {REPLAY_CAPACITY} signed requests arrived within the replay window, so no more can be checked for replays; retry shortly")]
    ReplayCacheFull,
    #[error("cannot read the request body: {0}")]
    Body(#[source] axum::Error),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::ReplayCacheFull => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Body(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNAUTHORIZED,
        };
        let body = serde_json::json!({ "error": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// What the gate checks against: the region's secret, this node's id, the nonces seen.
pub(crate) struct Guard {
    secret: RaftSecret,
    node_id: u64,
    max_body: usize,
    seen: Mutex<ReplayCache>,
}

impl Guard {
    pub(crate) fn new(secret: RaftSecret, node_id: u64, max_body: usize) -> Arc<Guard> {
        Arc::new(Guard {
            secret,
            node_id,
            max_body,
            seen: Mutex::new(ReplayCache::new(REPLAY_CAPACITY)),
        })
    }

    /// Checks what needs no body first, then the MAC over the body, and only then spends a slot
    /// of the replay cache (so unauthenticated requests cannot fill it).
    async fn admit(&self, request: Request) -> Result<Request, AuthError> {
        let header = request
            .headers()
            .get(RAFT_AUTH_HEADER)
            .ok_or(AuthError::Unsigned)?
            .to_str()
            .map_err(|_| AuthError::Malformed("it is not ASCII".to_owned()))?;
        let sig = Signature::parse(header).map_err(AuthError::Malformed)?;
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let any_allowed = method == Method::GET && path == STATUS_PATH;
        match sig.to {
            Recipient::Node(id) if id == self.node_id => {}
            Recipient::Any if any_allowed => {}
            to => {
                return Err(AuthError::WrongNode {
                    to,
                    me: self.node_id,
                })
            }
        }
        let now = now_ms();
        if now.abs_diff(sig.ts_ms) > WINDOW_MS.unsigned_abs() {
            let off_s = sig.ts_ms.saturating_sub(now) / 1000;
            return Err(AuthError::Stale { off_s });
        }
        let (parts, body) = request.into_parts();
        let bytes = to_bytes(body, self.max_body)
            .await
            .map_err(AuthError::Body)?;
        if !sig.verifies(&self.secret, method.as_str(), &path, &bytes) {
            return Err(AuthError::BadSignature);
        }
        self.seen.lock().unwrap().admit(sig.nonce, sig.ts_ms, now)?;
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// The middleware: passes an admitted request on, answers any other with its `AuthError`.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    match guard.admit(request).await {
        Ok(request) => next.run(request).await,
        Err(e) => {
            tracing::warn!(error = %e, "refused a raft request");
            e.into_response()
        }
    }
}

/// Nonces accepted within the window, each kept until its timestamp leaves the window (after
/// which the timestamp check alone refuses a replay).
struct ReplayCache {
    forget_at: HashMap<u128, i64>,
    capacity: usize,
    next_sweep_ms: i64,
}

impl ReplayCache {
    fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            forget_at: HashMap::new(),
            capacity,
            next_sweep_ms: 0,
        }
    }

    fn admit(&mut self, nonce: u128, ts_ms: i64, now_ms: i64) -> Result<(), AuthError> {
        if now_ms >= self.next_sweep_ms || self.forget_at.len() >= self.capacity {
            self.forget_at.retain(|_, forget_at| *forget_at >= now_ms);
            self.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        }
        if self.forget_at.contains_key(&nonce) {
            return Err(AuthError::Replayed);
        }
        if self.forget_at.len() >= self.capacity {
            return Err(AuthError::ReplayCacheFull);
        }
        self.forget_at
            .insert(nonce, ts_ms.saturating_add(WINDOW_MS));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_the_second_time_within_the_window() {
        let mut cache = ReplayCache::new(10);
        cache.admit(1, 1_000, 1_000).unwrap();
        assert!(matches!(
            cache.admit(1, 1_000, 2_000),
            Err(AuthError::Replayed)
        ));
        cache.admit(2, 1_000, 2_000).unwrap();
    }

    #[test]
    fn a_full_cache_refuses_new_nonces_until_old_ones_leave_the_window() {
        let mut cache = ReplayCache::new(2);
        cache.admit(1, 0, 0).unwrap();
        cache.admit(2, 0, 0).unwrap();
        assert!(matches!(
            cache.admit(3, 0, 1),
            Err(AuthError::ReplayCacheFull)
        ));
        // Once the first two are older than the window, their slots are free again.
        cache.admit(3, WINDOW_MS + 1, WINDOW_MS + 1).unwrap();
        assert_eq!(cache.forget_at.len(), 1);
    }
}
