//! Live per-job status events, fanned out to every subscriber (the API's SSE streams).
//!
//! Events are a hint, not a log: a subscriber that falls more than the channel capacity behind
//! gets `RecvError::Lagged` and has lost events for good. It must then re-read the job from the
//! `MetaStore`, which stays the source of truth (the API's SSE handler does exactly that).

use pixelmill_core::{JobId, JobStatus, UnixMillis};
use serde::Serialize;
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it lags.
pub const DEFAULT_CAPACITY: usize = 1024;

/// A job entered `status` at `at`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobEvent {
    pub job_id: JobId,
    pub status: JobStatus,
    pub at: UnixMillis,
}

/// A broadcast of `JobEvent`s. Clones share one channel.
#[derive(Clone)]
pub struct JobEvents {
    tx: broadcast::Sender<JobEvent>,
}

impl JobEvents {
    /// A channel of `DEFAULT_CAPACITY` events.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Sends `event` to every current subscriber; with none, the event is simply dropped.
    pub fn publish(&self, event: JobEvent) {
        // An error only means nobody is listening right now, which is normal.
        let _ = self.tx.send(event);
    }

    /// Receives every event published from now on. Filter on `job_id`; on `Lagged`, re-read the
    /// job from the store (see the module docs).
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.tx.subscribe()
    }
}

impl Default for JobEvents {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::error::RecvError;

    fn event(n: i64) -> JobEvent {
        JobEvent {
            job_id: JobId::from_string("job_1"),
            status: JobStatus::Running,
            at: n,
        }
    }

    #[tokio::test]
    async fn every_subscriber_sees_events_published_after_it_subscribed() {
        let events = JobEvents::new();
        events.publish(event(0)); // nobody listens: dropped, no error
        let mut a = events.subscribe();
        let mut b = events.clone().subscribe();
        events.publish(event(1));
        assert_eq!(a.recv().await.unwrap(), event(1));
        assert_eq!(b.recv().await.unwrap(), event(1));
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let events = JobEvents::with_capacity(2);
        let mut rx = events.subscribe();
        for n in 1..=3 {
            events.publish(event(n));
        }
        assert!(matches!(rx.recv().await, Err(RecvError::Lagged(1))));
        assert_eq!(rx.recv().await.unwrap(), event(2));
    }

    #[test]
    fn events_serialise_for_sse() {
        let json = serde_json::to_string(&event(7)).unwrap();
        assert_eq!(json, r#"{"job_id":"job_1","status":"running","at":7}"#);
    }
}
