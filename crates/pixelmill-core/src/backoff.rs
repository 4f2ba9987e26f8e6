//! Exponential backoff with jitter: between webhook attempts, and between a client's retries.

use rand::Rng;
use std::time::Duration;

/// The delay before retry `n` is `base * 2^(n-1)`, capped at `max`, then scaled by a random factor
/// in `1 ± jitter` so receivers that come back after an outage are not hit by every event at once.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    pub base: Duration,
    /// The cap before jitter: a capped delay may come out up to `jitter` longer.
    pub max: Duration,
    /// A fraction in `[0, 0.9]`; values outside are clamped, NaN means none.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl BackoffConfig {
    /// The delay after `failed_attempts` failures in a row (the first failure waits about `base`).
    pub fn delay(&self, failed_attempts: u32) -> Duration {
        let factor = 2u32
            .checked_pow(failed_attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let delay = self
            .base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 0.9)
        };
        delay.mul_f64(1.0 + rand::rng().random_range(-jitter..=jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(base_ms: u64, max_ms: u64) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
            jitter: 0.0,
        }
    }

    #[test]
    fn doubles_from_base_up_to_max() {
        let b = exact(1_000, 3_600_000);
        let delays: Vec<u64> = (1..=4).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000]);
        assert_eq!(b.delay(12), Duration::from_secs(2048));
        assert_eq!(b.delay(13), Duration::from_secs(3600));
        // Far past the cap the exponent would overflow; the delay stays at max.
        assert_eq!(b.delay(200), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let b = BackoffConfig::default();
        for _ in 0..200 {
            let d = b.delay(3).as_secs_f64();
            assert!((3.2..=4.8).contains(&d), "{d}");
        }
    }

    #[test]
    fn nonsense_jitter_is_tamed() {
        let mut b = exact(1_000, 60_000);
        b.jitter = f64::NAN;
        assert_eq!(b.delay(1), Duration::from_secs(1));
        b.jitter = 5.0;
        assert!(b.delay(1) <= Duration::from_millis(1_900));
    }
}
