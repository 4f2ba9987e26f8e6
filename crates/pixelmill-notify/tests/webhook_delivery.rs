//! Webhook delivery against a real axum receiver on loopback and a real redb store. Time is the
//! `now` handed to `deliver_due`, advanced by the test, so backoff needs no sleeping.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use pixelmill_core::{
    ImageId, JobId, JobRecord, JobSpec, JobStatus, NotifySpec, OutboxEvent, OutputSpec, TenantId,
    UnixMillis, WebhookFailure,
};
use pixelmill_meta::{MetaStore, RedbMetaStore};
use pixelmill_notify::{
    outbox_event, verify, BackoffConfig, DeliveryReport, NotifyMetrics, WebhookConfig,
    WebhookDelivery, DEFAULT_RETRY_WINDOW,
};
use pixelmill_outbound::{parse_allow_nets, Guard};
use prometheus::Registry;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

const SECRET: &[u8] = b"whsec_integration";
const NOW: UnixMillis = 1_700_000_000_000;
const BASE_MS: i64 = 100;
const OWNER_FIRST_MS: i64 = 30_000;

/// What the receiver saw of one request.
#[derive(Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

/// A loopback webhook receiver answering from a script of statuses, then 200.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<StatusCode>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Self, String) {
        let receiver = Self::default();
        receiver
            .script
            .lock()
            .unwrap()
            .extend(script.iter().map(|&s| StatusCode::from_u16(s).unwrap()));
        let app = Router::new()
            .route("/hook", post(Self::hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    async fn hook(State(me): State<Self>, headers: HeaderMap, body: Bytes) -> StatusCode {
        me.seen.lock().unwrap().push(Seen { headers, body });
        me.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(StatusCode::OK)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A URL on which nothing listens: the port was bound and released.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/hook", listener.local_addr().unwrap())
}

struct Harness {
    _dir: TempDir,
    meta: RedbMetaStore,
    registry: Registry,
    delivery: WebhookDelivery,
}

impl Harness {
    fn new() -> Self {
        Self::with_region(None)
    }

    /// A node of `region`, whose notifier leaves other regions' events to them first.
    fn with_region(region: Option<&str>) -> Self {
        Self::with(region, "127.0.0.0/8")
    }

    /// A node that allows webhooks to reach `allow` (the receivers here are on loopback).
    fn with(region: Option<&str>, allow: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
        let registry = Registry::new();
        let config = WebhookConfig {
            backoff: BackoffConfig {
                base: Duration::from_millis(BASE_MS as u64),
                max: Duration::from_secs(3600),
                jitter: 0.0,
            },
            region: region.map(str::to_owned),
            owner_first: Duration::from_millis(OWNER_FIRST_MS as u64),
            guard: Guard::new(parse_allow_nets(allow).unwrap()),
            ..WebhookConfig::default()
        };
        let metrics = NotifyMetrics::register(&registry).unwrap();
        let delivery = WebhookDelivery::new(SECRET, config, metrics).unwrap();
        Self {
            _dir: dir,
            meta,
            registry,
            delivery,
        }
    }

    /// Stores the outbox event of a finished job notifying `url` and returns it.
    async fn enqueue(&self, url: &str, window: Duration) -> OutboxEvent {
        let job = JobRecord {
            tenant: TenantId::default(),
            id: JobId::generate(),
            image_id: ImageId::generate(),
            spec: JobSpec {
                pipeline: Vec::new(),
                output: OutputSpec::default(),
                notify: NotifySpec {
                    webhook: Some(url.to_owned()),
                    email: None,
                },
            },
            status: JobStatus::Succeeded,
            created_at: NOW - 1_000,
            started_at: Some(NOW - 900),
            finished_at: Some(NOW),
            attempts: 1,
            output: None,
            link: None,
            expires_at: Some(NOW + 3_600_000),
            error: None,
            fencing: 1,
            home: None,
            owner: None,
            epoch: 0,
            webhook_failure: None,
        };
        let link = "https://px.example.com/v1/links/tok";
        let event = outbox_event(&job, Some(link), NOW, window).unwrap();
        self.meta.put_outbox(&event).await.unwrap();
        self.meta.put_job(&job).await.unwrap();
        event
    }

    async fn set_status(&self, event: &OutboxEvent, status: JobStatus) {
        self.change_job(event, |job| job.status = status).await;
    }

    async fn set_owner(&self, event: &OutboxEvent, region: &str) {
        self.change_job(event, |job| job.owner = Some(region.to_owned()))
            .await;
    }

    async fn change_job(&self, event: &OutboxEvent, change: impl FnOnce(&mut JobRecord)) {
        let mut job = self
            .meta
            .get_job(&event.tenant, &event.job_id)
            .await
            .unwrap()
            .unwrap();
        change(&mut job);
        self.meta.put_job(&job).await.unwrap();
    }

    /// The webhook failure recorded on the event's job.
    async fn failure(&self, event: &OutboxEvent) -> Option<WebhookFailure> {
        let job = self
            .meta
            .get_job(&event.tenant, &event.job_id)
            .await
            .unwrap();
        job.unwrap().webhook_failure
    }

    async fn deliver(&self, now: UnixMillis) -> DeliveryReport {
        self.delivery.deliver_due(&self.meta, now, 100).await
    }

    /// Every outbox row, due or not.
    async fn rows(&self) -> Vec<OutboxEvent> {
        self.meta.due_outbox(i64::MAX, 1_000).await.unwrap()
    }

    fn counter(&self, outcome: &str) -> u64 {
        let families = self.registry.gather();
        let family = families
            .iter()
            .find(|f| f.name() == "pixelmill_notifications_total")
            .unwrap();
        let metric = family
            .get_metric()
            .iter()
            .find(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "channel" && l.value() == "webhook")
                    && m.get_label()
                        .iter()
                        .any(|l| l.name() == "outcome" && l.value() == outcome)
            })
            .unwrap();
        metric.get_counter().get_value() as u64
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers.get(name).unwrap().to_str().unwrap()
}

fn report(delivered: usize, retried: usize, gave_up: usize) -> DeliveryReport {
    DeliveryReport {
        delivered,
        retried,
        gave_up,
        held: 0,
    }
}

#[tokio::test]
async fn a_delivered_event_is_signed_exact_and_removed() {
    let h = Harness::new();
    let (receiver, url) = Receiver::start(&[]).await;
    let event = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;

    assert_eq!(h.deliver(NOW).await, report(1, 0, 0));

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.body, event.payload.as_bytes());
    assert_eq!(header(req, "content-type"), "application/json");
    assert_eq!(header(req, "pixelmill-event-id"), event.event_id.as_str());
    assert!(header(req, "user-agent").starts_with("pixelmill/"));
    let signature = header(req, "pixelmill-signature");
    assert!(signature.starts_with("t=1700000000,v1="), "{signature}");
    assert!(verify(
        SECRET,
        signature,
        &req.body,
        NOW / 1000,
        Duration::from_secs(300)
    ));
    assert!(!verify(
        b"another secret",
        signature,
        &req.body,
        NOW / 1000,
        Duration::from_secs(300)
    ));

    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["event"], "job.succeeded");
    assert_eq!(body["event_id"], event.event_id.as_str());
    assert_eq!(body["job_id"], event.job_id.as_str());
    assert_eq!(body["download_url"], "https://px.example.com/v1/links/tok");
    assert_eq!(body["expires_at"], "2023-11-14T23:13:20.000Z");
    assert!(body["error"].is_null());

    assert!(h.rows().await.is_empty());
    assert_eq!(h.counter("delivered"), 1);
    // Nothing left: another pass sends nothing.
    assert_eq!(h.deliver(NOW + 60_000).await, report(0, 0, 0));
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_until_it_answers_2xx() {
    let h = Harness::new();
    let (receiver, url) = Receiver::start(&[500, 500]).await;
    let event = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;

    let mut now = NOW;
    let mut reports = Vec::new();
    let mut attempt_times = Vec::new();
    while let Some(row) = h.rows().await.first().cloned() {
        assert!(reports.len() < 5, "still not delivered after {reports:?}");
        // Not yet due: a pass just before the scheduled time sends nothing.
        if row.next_attempt_at > now {
            assert_eq!(h.deliver(row.next_attempt_at - 1).await, report(0, 0, 0));
        }
        now = row.next_attempt_at;
        attempt_times.push(now);
        reports.push(h.deliver(now).await);
    }

    assert_eq!(reports, [report(0, 1, 0), report(0, 1, 0), report(1, 0, 0)]);
    assert_eq!(attempt_times, [NOW, NOW + BASE_MS, NOW + 3 * BASE_MS]);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    for (req, at) in seen.iter().zip(&attempt_times) {
        assert_eq!(header(req, "pixelmill-event-id"), event.event_id.as_str());
        assert_eq!(req.body, event.payload.as_bytes());
        let signature = header(req, "pixelmill-signature");
        assert!(verify(
            SECRET,
            signature,
            &req.body,
            at / 1000,
            Duration::ZERO
        ));
    }
    assert_eq!((h.counter("retry"), h.counter("delivered")), (2, 1));
}

#[tokio::test]
async fn an_unreachable_receiver_is_rescheduled_with_doubling_delays() {
    let h = Harness::new();
    let event = h.enqueue(&closed_port_url(), DEFAULT_RETRY_WINDOW).await;

    let mut now = NOW;
    let mut delays = Vec::new();
    for attempt in 1..=4 {
        assert_eq!(h.deliver(now).await, report(0, 1, 0));
        let rows = h.rows().await;
        let row = &rows[0];
        assert_eq!(row.attempts, attempt);
        assert_eq!(
            (&row.event_id, &row.payload),
            (&event.event_id, &event.payload)
        );
        assert_eq!(row.give_up_at, event.give_up_at);
        delays.push(row.next_attempt_at - now);
        now = row.next_attempt_at;
    }
    assert_eq!(delays, [BASE_MS, 2 * BASE_MS, 4 * BASE_MS, 8 * BASE_MS]);
    assert_eq!(h.counter("retry"), 4);
}

#[tokio::test]
async fn an_event_past_its_retry_window_is_dropped_unsent() {
    let h = Harness::new();
    let (receiver, url) = Receiver::start(&[]).await;
    let event = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;

    // The node was down for longer than the window: the event is dropped, not sent late.
    assert_eq!(h.deliver(event.give_up_at).await, report(0, 0, 1));
    assert!(receiver.seen().is_empty());
    assert!(h.rows().await.is_empty());
    assert_eq!(h.counter("gave_up"), 1);
}

#[tokio::test]
async fn a_failure_whose_next_retry_falls_past_the_window_gives_up() {
    let h = Harness::new();
    let (receiver, url) = Receiver::start(&[500, 503, 500]).await;
    // Room for the retry after 100 ms, not for the one after a further 200 ms.
    h.enqueue(&url, Duration::from_millis(250)).await;

    assert_eq!(h.deliver(NOW).await, report(0, 1, 0));
    assert_eq!(h.deliver(NOW + BASE_MS).await, report(0, 0, 1));
    assert_eq!(receiver.seen().len(), 2);
    assert!(h.rows().await.is_empty());
    assert_eq!((h.counter("retry"), h.counter("gave_up")), (1, 1));
}

#[tokio::test]
async fn a_target_that_is_not_http_is_given_up_at_once() {
    let h = Harness::new();
    h.enqueue("ftp://example.com/hook", DEFAULT_RETRY_WINDOW)
        .await;

    assert_eq!(h.deliver(NOW).await, report(0, 0, 1));
    assert!(h.rows().await.is_empty());
    assert_eq!(h.counter("gave_up"), 1);
}

/// A redirect is answered as it is, never followed: the attempt fails, saying so on the job, and
/// the receiver it points to (outside the allowed net) hears nothing.
#[tokio::test]
async fn a_redirect_is_a_failed_attempt_recorded_on_the_job_and_not_followed() {
    let h = Harness::with(None, "127.0.0.2/32");
    let (target, target_url) = Receiver::start(&[]).await;
    let redirector = Redirector::start(&target_url).await;
    let event = h.enqueue(&redirector, DEFAULT_RETRY_WINDOW).await;

    assert_eq!(h.deliver(NOW).await, report(0, 1, 0));
    assert!(target.seen().is_empty(), "the redirect was followed");
    let failure = h.failure(&event).await.expect("the attempt is recorded");
    assert!(
        failure.reason.contains("redirects are not followed"),
        "{failure:?}"
    );
    assert_eq!((failure.attempts, failure.gave_up), (1, false));
}

/// A target the guard refuses is never sent to: a literal address fails for good at once, and
/// the job says why and how to allow it.
#[tokio::test]
async fn a_refused_literal_target_is_given_up_unsent_and_recorded_on_the_job() {
    let h = Harness::with(None, "127.0.0.2/32");
    let (receiver, url) = Receiver::start(&[]).await;
    let event = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;

    assert_eq!(h.deliver(NOW).await, report(0, 0, 1));
    assert!(receiver.seen().is_empty());
    assert!(h.rows().await.is_empty());
    let failure = h.failure(&event).await.expect("the refusal is recorded");
    assert!(failure.gave_up, "{failure:?}");
    for part in ["127.0.0.1", "127.0.0.0/8", "PIXELMILL_WEBHOOK_ALLOW_NETS"] {
        assert!(failure.reason.contains(part), "{part}: {failure:?}");
    }
}

/// A receiver that answers every request with a 307 to another URL; listens on 127.0.0.2.
struct Redirector;

impl Redirector {
    async fn start(location: &str) -> String {
        let location = location.to_owned();
        let app = Router::new().route(
            "/hook",
            post(move || async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, location)],
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }
}

#[tokio::test]
async fn one_pass_sends_up_to_its_limit_concurrently() {
    let h = Harness::new();
    let (receiver, url) = Receiver::start(&[]).await;
    for _ in 0..40 {
        h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;
    }

    assert_eq!(
        h.delivery.deliver_due(&h.meta, NOW, 30).await,
        report(30, 0, 0)
    );
    assert_eq!(h.rows().await.len(), 10);
    assert_eq!(h.deliver(NOW).await, report(10, 0, 0));

    let mut ids: Vec<String> = receiver
        .seen()
        .iter()
        .map(|req| header(req, "pixelmill-event-id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
}

#[tokio::test]
async fn delivery_runs_on_a_spawned_task() {
    // The node runs delivery in a background task, which needs a Send future.
    let h = Arc::new(Harness::new());
    let (_receiver, url) = Receiver::start(&[]).await;
    h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;
    let task = tokio::spawn({
        let h = h.clone();
        async move { h.deliver(NOW).await }
    });
    assert_eq!(task.await.unwrap(), report(1, 0, 0));
}

/// The outbox row is written before the job's final status (so a crash cannot lose it); until the
/// job shows the outcome, the event is held, and an event whose job ended otherwise is dropped.
#[tokio::test]
async fn an_event_waits_for_its_job_to_show_the_outcome_it_announces() {
    let h = Harness::new();
    let (receiver, url) = Receiver::start(&[]).await;
    let event = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;
    h.set_status(&event, JobStatus::Running).await;
    let held = h.deliver(NOW).await;
    assert_eq!(
        held,
        DeliveryReport {
            held: 1,
            ..DeliveryReport::default()
        }
    );
    assert!(receiver.seen().is_empty());
    assert_eq!(
        h.rows().await[0].attempts,
        0,
        "holding back is not an attempt"
    );

    h.set_status(&event, JobStatus::Succeeded).await;
    assert_eq!(h.deliver(NOW).await, report(1, 0, 0));

    let superseded = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;
    h.set_status(&superseded, JobStatus::Failed).await;
    assert_eq!(h.deliver(NOW).await, report(0, 0, 1));
    assert!(h.rows().await.is_empty());
    assert_eq!(receiver.seen().len(), 1, "only the first event was sent");
}

/// Every region reads the whole outbox: an event of a job another region owns is that region's
/// to send for `owner_first` past its due time, and only then sent here, standing in for a
/// region that could not.
#[tokio::test]
async fn another_regions_event_is_sent_here_only_once_its_owner_had_its_turn() {
    let h = Harness::with_region(Some("us"));
    let (receiver, url) = Receiver::start(&[]).await;
    let theirs = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;
    h.set_owner(&theirs, "eu").await;
    for now in [NOW, NOW + OWNER_FIRST_MS - 1] {
        assert_eq!(h.deliver(now).await.held, 1);
    }
    assert!(receiver.seen().is_empty());
    assert_eq!(h.deliver(NOW + OWNER_FIRST_MS).await, report(1, 0, 0));

    let ours = h.enqueue(&url, DEFAULT_RETRY_WINDOW).await;
    h.set_owner(&ours, "us").await;
    assert_eq!(h.deliver(NOW).await, report(1, 0, 0));
    assert_eq!(receiver.seen().len(), 2);
}
