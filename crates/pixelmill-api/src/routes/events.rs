use crate::auth::Tenant;
use crate::{views, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use pixelmill_core::{JobRecord, JobStatus};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How often a stream reads its job again for changes made on other nodes.
const RECHECK: Duration = Duration::from_secs(1);
use tokio_stream::wrappers::ReceiverStream;

/// `GET /v1/jobs/{id}/events`: one `status` event per status change, ending after a final one. The
/// first event is the job as it is now, so a client that connects late still sees the outcome.
/// The stream follows the job record, so any node of any region follows any job: a change made
/// on this node is sent at once, one made elsewhere (another node, the region that adopted the
/// job) within `RECHECK`.
pub async fn stream(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let permit = state
        .event_streams
        .open(&tenant, state.settings.max_event_streams_per_tenant)?;
    // Subscribe before reading the job so a change between the two is not missed.
    let changes = state.events.subscribe();
    let job = super::jobs::find(&state, &tenant, &id).await?;
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        follow(state, job, changes, tx).await;
        // The stream's place is free once it ends, whether by a final status or a client gone.
        drop(permit);
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

async fn follow(
    state: AppState,
    mut job: JobRecord,
    mut changes: broadcast::Receiver<pixelmill_notify::JobEvent>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    let mut sent: Option<JobStatus> = None;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if sent != Some(job.status) {
            let event = Event::default()
                .event("status")
                .id(format!("{}-{}", job.id, job.status.as_str()))
                .json_data(views::job(&job, &state.settings.public_url));
            let Ok(event) = event else { return };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
            sent = Some(job.status);
        }
        if job.status.is_final() {
            return;
        }
        let changed = tokio::select! {
            _ = tx.closed() => return,
            _ = recheck.tick() => true,
            change = changes.recv() => match change {
                Ok(ev) => ev.job_id == job.id,
                // Missed some events: re-read the job, it holds the latest status.
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if changed {
            match state.meta.get_job(&job.tenant, &job.id).await {
                Ok(Some(latest)) => job = latest,
                Ok(None) => return,
                // The store may be back by the next check; the client is still connected.
                Err(err) => {
                    tracing::warn!(job = %job.id, %err, "event stream could not re-read the job");
                }
            }
        }
    }
}
