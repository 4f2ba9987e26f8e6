//! Turns a finished job into the outbox event that carries its webhook.
//!
//! The body is rendered once, here, and stored in the outbox: every retry sends (and signs) exactly
//! these bytes, so a receiver that deduplicates on `event_id` sees identical duplicates.

use pixelmill_core::{EventId, JobRecord, JobStatus, OutboxEvent, UnixMillis};
use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};

/// The event name of a job that produced its output.
pub const JOB_SUCCEEDED: &str = "job.succeeded";
/// The event name of a job that failed for good.
pub const JOB_FAILED: &str = "job.failed";
/// How long an undeliverable webhook is retried: the contract promises at least 24 h.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(25 * 3600);

/// The webhook body. Field order is the wire order.
#[derive(Serialize)]
struct WebhookPayload<'a> {
    event: &'static str,
    event_id: &'a EventId,
    job_id: &'a str,
    image_id: &'a str,
    download_url: Option<&'a str>,
    expires_at: Option<String>,
    error: Option<&'a str>,
}

fn event_name(status: JobStatus) -> Option<&'static str> {
    match status {
        JobStatus::Succeeded => Some(JOB_SUCCEEDED),
        JobStatus::Failed => Some(JOB_FAILED),
        JobStatus::Queued | JobStatus::Running => None,
    }
}

/// Whether an outbox event may be sent, judged against its job's record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The job shows the outcome the event announces.
    Ready,
    /// The event was written before the job's final status (that order keeps it durable); sending
    /// now would announce an outcome a client cannot see yet.
    NotYet,
    /// The job ended with another outcome (a crash led to a re-run that ended differently).
    Superseded,
}

pub(crate) fn readiness(event: &OutboxEvent, job: &JobRecord) -> Readiness {
    match event_name(job.status) {
        None => Readiness::NotYet,
        Some(name) if EventId::for_job_outcome(&job.id, name) == event.event_id => Readiness::Ready,
        Some(_) => Readiness::Superseded,
    }
}

/// The outbox event announcing that `job` reached a final status, or `None` when the job is not
/// final or asked for no webhook. `download_url` is the absolute URL of the output, if any; the
/// event id depends only on the job and the outcome, so building it again after a crash
/// overwrites the same outbox row instead of notifying twice.
pub fn outbox_event(
    job: &JobRecord,
    download_url: Option<&str>,
    now: UnixMillis,
    retry_window: Duration,
) -> Option<OutboxEvent> {
    let target = job.spec.notify.webhook.as_ref()?;
    let event = event_name(job.status)?;
    let event_id = EventId::for_job_outcome(&job.id, event);
    let payload = WebhookPayload {
        event,
        event_id: &event_id,
        job_id: job.id.as_str(),
        image_id: job.image_id.as_str(),
        download_url,
        expires_at: job.expires_at.and_then(rfc3339),
        error: job.error.as_deref(),
    };
    // Serialising borrowed strings and options into a String cannot fail.
    let payload = serde_json::to_string(&payload).expect("webhook payload serialises");
    let window = i64::try_from(retry_window.as_millis()).unwrap_or(i64::MAX);
    Some(OutboxEvent {
        event_id,
        tenant: job.tenant.clone(),
        job_id: job.id.clone(),
        target: target.clone(),
        payload,
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        give_up_at: now.saturating_add(window),
    })
}

/// `2024-01-02T03:04:05.678Z`; `None` for instants before the epoch, which no record holds.
fn rfc3339(ms: UnixMillis) -> Option<String> {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).ok()?);
    Some(humantime::format_rfc3339_millis(at).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelmill_core::{ImageId, JobId, JobSpec, NotifySpec, OutputSpec, TenantId};

    const NOW: UnixMillis = 1_700_000_000_000;

    fn job(status: JobStatus, webhook: Option<&str>) -> JobRecord {
        JobRecord {
            tenant: TenantId::default(),
            id: JobId::from_string("job_1"),
            image_id: ImageId::from_string("img_1"),
            spec: JobSpec {
                pipeline: Vec::new(),
                output: OutputSpec::default(),
                notify: NotifySpec {
                    webhook: webhook.map(str::to_owned),
                    email: None,
                },
            },
            status,
            created_at: NOW - 5_000,
            started_at: None,
            finished_at: None,
            attempts: 1,
            output: None,
            link: None,
            expires_at: None,
            error: None,
            fencing: 1,
            home: None,
            owner: None,
            epoch: 0,
            webhook_failure: None,
        }
    }

    #[test]
    fn a_succeeded_job_renders_the_exact_contract_body() {
        let mut job = job(JobStatus::Succeeded, Some("https://example.com/hook"));
        job.expires_at = Some(NOW + 86_400_000 + 678);
        let url = "https://px.example.com/v1/links/abc";
        let ev = outbox_event(&job, Some(url), NOW, DEFAULT_RETRY_WINDOW).unwrap();
        let id = EventId::for_job_outcome(&job.id, JOB_SUCCEEDED);
        assert_eq!(
            ev.payload,
            format!(
                r#"{{"event":"job.succeeded","event_id":"{id}","job_id":"job_1","image_id":"img_1","download_url":"{url}","expires_at":"2023-11-15T22:13:20.678Z","error":null}}"#
            )
        );
        assert_eq!(ev.event_id, id);
        assert_eq!(ev.target, "https://example.com/hook");
        assert_eq!(
            (ev.attempts, ev.next_attempt_at, ev.created_at),
            (0, NOW, NOW)
        );
        assert_eq!(ev.give_up_at, NOW + 25 * 3_600_000);
    }

    #[test]
    fn a_failed_job_carries_its_error_and_nulls() {
        let mut job = job(JobStatus::Failed, Some("https://example.com/hook"));
        job.error = Some("decode failed: truncated PNG".into());
        let ev = outbox_event(&job, None, NOW, DEFAULT_RETRY_WINDOW).unwrap();
        let body: serde_json::Value = serde_json::from_str(&ev.payload).unwrap();
        assert_eq!(body["event"], JOB_FAILED);
        assert_eq!(body["error"], "decode failed: truncated PNG");
        assert!(body["download_url"].is_null() && body["expires_at"].is_null());
        assert_eq!(ev.event_id, EventId::for_job_outcome(&job.id, JOB_FAILED));
    }

    #[test]
    fn rebuilding_after_a_crash_yields_the_same_event() {
        let job = job(JobStatus::Succeeded, Some("https://example.com/hook"));
        let first = outbox_event(&job, None, NOW, DEFAULT_RETRY_WINDOW).unwrap();
        let again = outbox_event(&job, None, NOW + 60_000, DEFAULT_RETRY_WINDOW).unwrap();
        assert_eq!(
            (first.event_id, first.payload),
            (again.event_id, again.payload)
        );
    }

    #[test]
    fn unfinished_jobs_and_jobs_without_a_webhook_have_no_event() {
        for status in [JobStatus::Queued, JobStatus::Running] {
            assert!(outbox_event(
                &job(status, Some("https://e.com")),
                None,
                NOW,
                DEFAULT_RETRY_WINDOW
            )
            .is_none());
        }
        assert!(outbox_event(
            &job(JobStatus::Succeeded, None),
            None,
            NOW,
            DEFAULT_RETRY_WINDOW
        )
        .is_none());
    }

    #[test]
    fn formats_millisecond_rfc3339_in_utc() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), None);
    }
}
