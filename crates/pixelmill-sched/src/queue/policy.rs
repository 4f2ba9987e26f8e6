//! The lanes and the knobs that steer the queue's decisions.

use serde::{Deserialize, Serialize};

/// While slow work waits, at most this many fast leases in a row before one slow lease.
pub(crate) const FAST_BURST: u32 = 4;
/// Retry backoff never exceeds this, however many attempts have failed.
pub(crate) const MAX_BACKOFF_MS: u64 = 5 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LaneKind {
    Fast,
    Slow,
}

impl LaneKind {
    pub(crate) const ALL: [LaneKind; 2] = [LaneKind::Fast, LaneKind::Slow];

    pub(crate) fn idx(self) -> usize {
        self as usize
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            LaneKind::Fast => "fast",
            LaneKind::Slow => "slow",
        }
    }
}

/// The knobs that change decisions. They live in the replicated state (set by `Command::SetPolicy`) rather
/// than in each node's config, so replicas with different flags still apply the log identically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Policy {
    pub queue_bound: usize,
    pub max_attempts: u32,
    pub base_backoff_ms: u64,
    pub fast_lane_max_cost: u64,
}

impl Policy {
    pub(crate) fn lane_for(&self, cost: u64) -> LaneKind {
        if cost <= self.fast_lane_max_cost {
            LaneKind::Fast
        } else {
            LaneKind::Slow
        }
    }

    /// `base * 2^(attempt-1)`, capped: the wait before the attempt after `attempts` failed ones.
    pub(crate) fn backoff_ms(&self, attempts: u32) -> u64 {
        let factor = 1u64 << attempts.saturating_sub(1).min(63);
        self.base_backoff_ms
            .saturating_mul(factor)
            .min(MAX_BACKOFF_MS)
    }
}
