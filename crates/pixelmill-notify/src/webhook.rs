//! Delivers due outbox events as signed webhooks: 2xx deletes the row, anything else reschedules it
//! with backoff until its retry window closes.

use crate::event::{readiness, Readiness};
use crate::metrics::{NotifyMetrics, Outcome};
use crate::signature::sign;
use futures::stream::{self, StreamExt};
use pixelmill_core::BackoffConfig;
use pixelmill_core::{JobRecord, OutboxEvent, UnixMillis};
use pixelmill_meta::MetaStore;
use reqwest::header::CONTENT_TYPE;
use reqwest::{redirect, Client, Url};
use std::error::Error as _;
use std::fmt;
use std::time::{Duration, Instant};
use tracing::{info, warn};

const USER_AGENT: &str = concat!("pixelmill/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Limit on one attempt: connecting, sending and waiting for the answer.
    pub timeout: Duration,
    /// How many webhooks are in flight at once.
    pub concurrency: usize,
    pub backoff: BackoffConfig,
    /// This node's region, when it has one. Every region reads the whole outbox; an event of a
    /// job another region owns is left to that region's notifiers for `owner_first` past each
    /// due time, so one region sends it and the others stand in only when it does not.
    pub region: Option<String>,
    pub owner_first: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            concurrency: 16,
            backoff: BackoffConfig::default(),
            region: None,
            owner_first: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the webhook signing secret is empty; configure a random secret (32 bytes or more)")]
    EmptySecret,
    #[error("cannot build the webhook HTTP client: {0}; check this host's TLS setup")]
    Client(reqwest::Error),
}

/// What one `deliver_due` pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retried: usize,
    pub gave_up: usize,
    /// Due but held back until the job's record shows the outcome the event announces.
    pub held: usize,
}

/// Sends outbox events to their webhook URLs, signed with one secret.
pub struct WebhookDelivery {
    client: Client,
    secret: Vec<u8>,
    config: WebhookConfig,
    metrics: NotifyMetrics,
}

impl fmt::Debug for WebhookDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret lets anyone forge our webhooks: never let it reach a log.
        f.debug_struct("WebhookDelivery")
            .field("secret", &"<redacted>")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebhookDelivery {
    pub fn new(
        secret: impl Into<Vec<u8>>,
        config: WebhookConfig,
        metrics: NotifyMetrics,
    ) -> Result<Self, NotifyError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(NotifyError::EmptySecret);
        }
        let client = Client::builder()
            .timeout(config.timeout)
            .redirect(redirect::Policy::limited(3))
            .user_agent(USER_AGENT)
            .build()
            .map_err(NotifyError::Client)?;
        Ok(Self {
            client,
            secret,
            config,
            metrics,
        })
    }

    /// Attempts every event due at `now` (at most `limit`), a bounded number at a time. Store
    /// errors are logged and leave the row for the next pass; this never fails.
    pub async fn deliver_due(
        &self,
        meta: &dyn MetaStore,
        now: UnixMillis,
        limit: usize,
    ) -> DeliveryReport {
        let due = match meta.due_outbox(now, limit).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "cannot load due webhooks; trying again next pass");
                return DeliveryReport::default();
            }
        };
        stream::iter(due)
            .map(|event| self.attempt(meta, event, now))
            .buffer_unordered(self.config.concurrency.max(1))
            .fold(
                DeliveryReport::default(),
                |mut report, outcome| async move {
                    match outcome {
                        Some(Outcome::Delivered) => report.delivered += 1,
                        Some(Outcome::Retry) => report.retried += 1,
                        Some(Outcome::GaveUp) => report.gave_up += 1,
                        None => report.held += 1,
                    }
                    report
                },
            )
            .await
    }

    /// One delivery attempt; `None` when the event is held back for a later pass (not an attempt).
    async fn attempt(
        &self,
        meta: &dyn MetaStore,
        event: OutboxEvent,
        now: UnixMillis,
    ) -> Option<Outcome> {
        if now >= event.give_up_at {
            return Some(
                self.give_up(meta, &event, "its retry window closed before this attempt")
                    .await,
            );
        }
        match meta.get_job(&event.tenant, &event.job_id).await {
            Ok(Some(job)) if self.left_to_owner(&event, &job, now) => return None,
            Ok(Some(job)) => match readiness(&event, &job) {
                Readiness::Ready => {}
                Readiness::NotYet => return None,
                Readiness::Superseded => {
                    let reason = "its job ended with another outcome, announced by its own event";
                    return Some(self.give_up(meta, &event, reason).await);
                }
            },
            // A job record is never deleted while its events are pending; deliver what we have.
            Ok(None) => {}
            Err(e) => {
                warn!(job = %event.job_id, error = %e, "cannot read the job of a due webhook; trying again next pass");
                return None;
            }
        }
        Some(self.send_and_settle(meta, event, now).await)
    }

    /// Whether `event` is another region's to send now: its job's owner's, within
    /// `owner_first` of its due time.
    fn left_to_owner(&self, event: &OutboxEvent, job: &JobRecord, now: UnixMillis) -> bool {
        let owner_first = self.config.owner_first.as_millis() as i64;
        match (&self.config.region, &job.owner) {
            (Some(region), Some(owner)) => {
                owner != region && now < event.next_attempt_at.saturating_add(owner_first)
            }
            _ => false,
        }
    }

    async fn send_and_settle(
        &self,
        meta: &dyn MetaStore,
        mut event: OutboxEvent,
        now: UnixMillis,
    ) -> Outcome {
        if let Err(reason) = validate_webhook_url(&event.target) {
            return self.give_up(meta, &event, &reason).await;
        }
        let failure = match self.send(&event, now).await {
            Ok(()) => {
                if let Err(e) = meta.delete_outbox(&event.event_id).await {
                    // The row stays due, so the receiver gets this event id again: a duplicate,
                    // which the contract allows, rather than a loss.
                    warn!(job = %event.job_id, event_id = %event.event_id, error = %e,
                        "webhook delivered but its outbox row could not be deleted; it will be resent");
                }
                self.metrics.webhook(Outcome::Delivered);
                return Outcome::Delivered;
            }
            Err(failure) => failure,
        };
        event.attempts += 1;
        let delay = self.config.backoff.delay(event.attempts);
        let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        if next >= event.give_up_at {
            let reason = format!(
                "attempt {} failed ({failure}) and its retry window closes before the next",
                event.attempts
            );
            return self.give_up(meta, &event, &reason).await;
        }
        event.next_attempt_at = next;
        info!(job = %event.job_id, target = %event.target, attempts = event.attempts,
            retry_in_ms = next - now, "webhook not delivered: {failure}; retrying");
        if let Err(e) = meta.put_outbox(&event).await {
            // The old row is still due, so the next pass retries without waiting out the backoff.
            warn!(job = %event.job_id, event_id = %event.event_id, error = %e,
                "cannot reschedule webhook; it stays due for the next pass");
        }
        self.metrics.webhook(Outcome::Retry);
        Outcome::Retry
    }

    /// One POST of the stored body, signed for this attempt's time.
    async fn send(&self, event: &OutboxEvent, now: UnixMillis) -> Result<(), String> {
        let signature = sign(&self.secret, now.div_euclid(1000), event.payload.as_bytes());
        let started = Instant::now();
        let result = self
            .client
            .post(&event.target)
            .header(CONTENT_TYPE, "application/json")
            .header("Pixelmill-Event-Id", event.event_id.as_str())
            .header("Pixelmill-Signature", signature)
            .body(event.payload.clone())
            .send()
            .await;
        self.metrics.webhook_latency(started.elapsed());
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("receiver answered {}", response.status())),
            Err(e) => Err(describe(&e.without_url())),
        }
    }

    async fn give_up(&self, meta: &dyn MetaStore, event: &OutboxEvent, reason: &str) -> Outcome {
        warn!(job = %event.job_id, target = %event.target, event_id = %event.event_id,
            attempts = event.attempts, "giving up on webhook: {reason}");
        if let Err(e) = meta.delete_outbox(&event.event_id).await {
            warn!(job = %event.job_id, event_id = %event.event_id, error = %e,
                "cannot delete the given-up webhook; the next pass drops it again");
        }
        self.metrics.webhook(Outcome::GaveUp);
        Outcome::GaveUp
    }
}

/// reqwest's top-level message is generic ("error sending request"); the cause (refused, timed
/// out, TLS) is further down the chain and is what an operator needs.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks a client-supplied webhook URL: absolute, `http` or `https`, with a host.
pub fn validate_webhook_url(s: &str) -> Result<(), String> {
    const EXAMPLE: &str = "write it like https://example.com/hooks/pixelmill";
    let url = Url::parse(s)
        .map_err(|e| format!("webhook URL {s:?} is not an absolute URL ({e}); {EXAMPLE}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "webhook URL {s:?} uses scheme {:?}; only http and https are delivered, {EXAMPLE}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("webhook URL {s:?} has no host; {EXAMPLE}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_urls_with_a_host() {
        for url in ["https://example.com/hook", "http://127.0.0.1:8080/h?x=1"] {
            assert_eq!(validate_webhook_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn rejects_other_schemes_relative_urls_and_missing_hosts_with_a_fix() {
        for url in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "/hook",
            "example.com",
            "http://",
            "mailto:a@b.c",
        ] {
            let err = validate_webhook_url(url).unwrap_err();
            assert!(
                err.contains("https://example.com/hooks/pixelmill"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let metrics = NotifyMetrics::register(&prometheus::Registry::new()).unwrap();
        let delivery =
            WebhookDelivery::new("s3cr3t-value", WebhookConfig::default(), metrics).unwrap();
        let debug = format!("{delivery:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let metrics = NotifyMetrics::register(&prometheus::Registry::new()).unwrap();
        let err = WebhookDelivery::new("", WebhookConfig::default(), metrics).unwrap_err();
        assert!(err.to_string().contains("configure"), "{err}");
    }
}
