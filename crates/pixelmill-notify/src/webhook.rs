//! Delivers due outbox events as signed webhooks: 2xx deletes the row, anything else reschedules it
//! with backoff until its retry window closes.

use crate::event::{readiness, Readiness};
use crate::metrics::{NotifyMetrics, Outcome};
use crate::signature::sign_all;
use crate::target::validate_webhook_url;
use futures::stream::{self, StreamExt};
use pixelmill_core::BackoffConfig;
use pixelmill_core::{JobRecord, OutboxEvent, UnixMillis, WebhookFailure};
use pixelmill_meta::{Fenced, MetaStore, Tenants};
use pixelmill_outbound::{client_builder, GuardedResolver, ResolveError};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::Client;
use std::error::Error as _;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
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
    /// Which addresses webhooks may reach (`pixelmill_outbound`).
    pub guard: pixelmill_outbound::Guard,
    /// The DNS server webhook hosts are resolved with; `None`: the system's.
    pub dns: Option<SocketAddr>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            concurrency: 16,
            backoff: BackoffConfig::default(),
            region: None,
            owner_first: Duration::from_secs(30),
            guard: pixelmill_outbound::Guard::default(),
            dns: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the webhook signing secret is empty; configure a random secret (32 bytes or more)")]
    EmptySecret,
    #[error("cannot build the webhook HTTP client: {0}; check this host's TLS setup")]
    Client(#[source] reqwest::Error),
    #[error("cannot set up webhook DNS lookups: {0}")]
    Resolver(#[from] ResolveError),
}

/// Why an attempt did not deliver.
struct Failure {
    reason: String,
    /// No later attempt can do better (a literal address the guard refuses).
    permanent: bool,
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

/// Sends outbox events to their webhook URLs, signed with their tenant's webhook secrets, or
/// with one secret for every event when no tenants are given (a deployment with one tenant).
pub struct WebhookDelivery {
    client: Client,
    secret: Vec<u8>,
    tenants: Option<Arc<Tenants>>,
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
        let resolver = GuardedResolver::new(Arc::new(config.guard.clone()), config.dns)?;
        let client = client_builder(Arc::new(resolver))
            .timeout(config.timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(NotifyError::Client)?;
        Ok(Self {
            client,
            secret,
            tenants: None,
            config,
            metrics,
        })
    }

    /// Signs each event with its tenant's webhook secrets (`GET /v1/tenant`) instead of the one.
    pub fn for_tenants(mut self, tenants: Arc<Tenants>) -> Self {
        self.tenants = Some(tenants);
        self
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
        let job = match meta.get_job(&event.tenant, &event.job_id).await {
            Ok(Some(job)) if self.left_to_owner(&event, &job, now) => return None,
            Ok(Some(job)) => match readiness(&event, &job) {
                Readiness::Ready => Some(job),
                Readiness::NotYet => return None,
                Readiness::Superseded => {
                    let reason = "its job ended with another outcome, announced by its own event";
                    return Some(self.give_up(meta, &event, reason).await);
                }
            },
            // A job record is never deleted while its events are pending; deliver what we have.
            Ok(None) => None,
            Err(e) => {
                warn!(job = %event.job_id, error = %e, "cannot read the job of a due webhook; trying again next pass");
                return None;
            }
        };
        Some(self.send_and_settle(meta, event, job, now).await)
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
        job: Option<JobRecord>,
        now: UnixMillis,
    ) -> Outcome {
        let failure = match self.send(&event, now).await {
            Ok(()) => {
                self.record(meta, job, None).await;
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
        let reason = &failure.reason;
        if failure.permanent || next >= event.give_up_at {
            let why = if failure.permanent {
                "no later attempt can be delivered"
            } else {
                "its retry window closes before the next"
            };
            let reason = format!("attempt {} failed ({reason}); {why}", event.attempts);
            let recorded = self.failure(&event, now, &reason, true);
            self.record(meta, job, Some(recorded)).await;
            return self.give_up(meta, &event, &reason).await;
        }
        self.record(meta, job, Some(self.failure(&event, now, reason, false)))
            .await;
        event.next_attempt_at = next;
        info!(job = %event.job_id, target = %event.target, attempts = event.attempts,
            retry_in_ms = next - now, "webhook not delivered: {reason}; retrying");
        if let Err(e) = meta.put_outbox(&event).await {
            // The old row is still due, so the next pass retries without waiting out the backoff.
            warn!(job = %event.job_id, event_id = %event.event_id, error = %e,
                "cannot reschedule webhook; it stays due for the next pass");
        }
        self.metrics.webhook(Outcome::Retry);
        Outcome::Retry
    }

    /// One POST of the stored body, signed for this attempt's time, unless the URL is refused.
    async fn send(&self, event: &OutboxEvent, now: UnixMillis) -> Result<(), Failure> {
        // Checked again at every attempt: the allowed nets may have changed since submission,
        // and a literal address never passes through the resolver that checks names.
        if let Err(e) = validate_webhook_url(&event.target, &self.config.guard) {
            return Err(Failure {
                reason: e.to_string(),
                permanent: true,
            });
        }
        let tenant = match &self.tenants {
            Some(tenants) => Some(tenants.get(&event.tenant).await.map_err(|e| Failure {
                reason: format!("cannot read the tenant's webhook secrets: {e}"),
                permanent: false,
            })?),
            None => None,
        };
        let secrets: Vec<&[u8]> = match &tenant {
            Some(tenant) => tenant
                .webhook_secrets
                .iter()
                .map(|s| s.secret.as_bytes())
                .collect(),
            None => vec![&self.secret],
        };
        let signature = sign_all(&secrets, now.div_euclid(1000), event.payload.as_bytes());
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
        let reason = match result {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status().is_redirection() => {
                let to = response.headers().get(LOCATION);
                let to = to.and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
                format!(
                    "receiver answered {} redirecting to {to:?}; redirects are not followed, \
                     so give the job the final URL",
                    response.status()
                )
            }
            Ok(response) => format!("receiver answered {}", response.status()),
            Err(e) => describe(&e.without_url()),
        };
        Err(Failure {
            reason,
            permanent: false,
        })
    }

    fn failure(
        &self,
        event: &OutboxEvent,
        now: UnixMillis,
        reason: &str,
        gave_up: bool,
    ) -> WebhookFailure {
        WebhookFailure {
            attempts: event.attempts,
            at: now,
            reason: reason.to_owned(),
            gave_up,
        }
    }

    /// Keeps the attempt's outcome on the job, so its client sees why a webhook did not arrive.
    /// Written under the lease that wrote the job's outcome: a later attempt's write wins.
    async fn record(
        &self,
        meta: &dyn MetaStore,
        job: Option<JobRecord>,
        failure: Option<WebhookFailure>,
    ) {
        let Some(mut job) = job.filter(|job| job.webhook_failure != failure) else {
            return;
        };
        job.webhook_failure = failure;
        match meta.put_job_fenced(&job).await {
            Ok(Fenced::Stored) => {}
            Ok(Fenced::Refused(_)) => {
                info!(job = %job.id, "the job changed since this webhook attempt; its outcome is not recorded on it")
            }
            Err(e) => {
                warn!(job = %job.id, error = %e, "cannot record the webhook attempt on its job")
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
