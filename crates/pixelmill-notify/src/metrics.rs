//! Prometheus metrics of the notification channels.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Duration;

/// What became of one notification attempt, as the `outcome` label spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    Retry,
    GaveUp,
}

impl Outcome {
    const ALL: [Self; 3] = [Self::Delivered, Self::Retry, Self::GaveUp];

    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::GaveUp => "gave_up",
        }
    }
}

/// `pixelmill_notifications_total{channel, outcome}` and
/// `pixelmill_notification_delivery_seconds{channel}`. Cheap to clone: clones share the series.
#[derive(Clone)]
pub struct NotifyMetrics {
    notifications: IntCounterVec,
    latency: HistogramVec,
}

impl NotifyMetrics {
    /// Registers the metrics in `registry`; fails if they are already registered there.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let notifications = IntCounterVec::new(
            Opts::new(
                "pixelmill_notifications_total",
                "Notification attempts by channel and outcome (delivered, retry, gave_up).",
            ),
            &["channel", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "pixelmill_notification_delivery_seconds",
                "Time from sending a notification to the receiver's answer (or the failure).",
            ),
            &["channel"],
        )?;
        registry.register(Box::new(notifications.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        // Expose every series at zero from the start, so rate() and alerts work before the first event.
        for outcome in Outcome::ALL {
            notifications.with_label_values(&["webhook", outcome.label()]);
        }
        latency.with_label_values(&["webhook"]);
        Ok(Self {
            notifications,
            latency,
        })
    }

    pub(crate) fn webhook(&self, outcome: Outcome) {
        self.notifications
            .with_label_values(&["webhook", outcome.label()])
            .inc();
    }

    pub(crate) fn webhook_latency(&self, elapsed: Duration) {
        self.latency
            .with_label_values(&["webhook"])
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(registry: &Registry, outcome: &str) -> Option<u64> {
        let family = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "pixelmill_notifications_total")?;
        let metric = family.get_metric().iter().find(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "outcome" && l.value() == outcome)
        })?;
        Some(metric.get_counter().get_value() as u64)
    }

    #[test]
    fn series_start_at_zero_and_count_per_outcome() {
        let registry = Registry::new();
        let metrics = NotifyMetrics::register(&registry).unwrap();
        assert_eq!(counter(&registry, "gave_up"), Some(0));
        metrics.webhook(Outcome::Delivered);
        metrics.webhook(Outcome::Delivered);
        metrics.webhook(Outcome::Retry);
        assert_eq!(counter(&registry, "delivered"), Some(2));
        assert_eq!(counter(&registry, "retry"), Some(1));
    }

    #[test]
    fn registering_twice_in_one_registry_is_an_error() {
        let registry = Registry::new();
        NotifyMetrics::register(&registry).unwrap();
        assert!(NotifyMetrics::register(&registry).is_err());
    }
}
