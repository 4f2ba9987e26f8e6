//! The `failover` role of a node with a region: it beats (a heartbeat row in the replicated
//! metadata, once per interval), follows its region's drain switch, and watches the other
//! regions' beats. On the region's scheduler leader it also adopts the unfinished jobs of a
//! region whose nodes have all been silent past the grace period (its queued ones only, while it
//! drains), and queues again any job of its own region its scheduler lost.
//!
//! Silence is judged by this node's own clock: a region is silent while none of its nodes'
//! sequence numbers moves, however wrong its clocks are.

use crate::looping::{LoopTask, Pace};
use async_trait::async_trait;
use pixelmill_core::{now_ms, Heartbeat};
use pixelmill_jobs::Jobs;
use pixelmill_meta::MetaStore;
use prometheus::{GaugeVec, IntGauge, Opts, Registry};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Jobs adopted (or queued again) per region and pass.
const BATCH: usize = 200;
/// How often the leader looks for its own region's jobs its scheduler does not have.
const REQUEUE_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct FailoverMetrics {
    silent: GaugeVec,
    draining: IntGauge,
}

impl FailoverMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let silent = GaugeVec::new(
            Opts::new(
                "pixelmill_region_silent_seconds",
                "How long no node of another region has beaten, as this node sees it (adopted past the grace period)",
            ),
            &["region"],
        )?;
        let draining = IntGauge::new(
            "pixelmill_region_draining",
            "1 while this node's region is drained (out of geo-DNS, its queued jobs moving)",
        )?;
        registry.register(Box::new(silent.clone()))?;
        registry.register(Box::new(draining.clone()))?;
        Ok(Self { silent, draining })
    }
}

/// What this node has seen of another region's beats.
struct Seen {
    /// Each node's latest sequence number.
    seqs: HashMap<u64, u64>,
    /// When a sequence number last moved (or this node started watching).
    advanced: Instant,
    draining: bool,
}

pub struct Failover {
    pub jobs: Arc<Jobs>,
    pub meta: Arc<dyn MetaStore>,
    pub region: String,
    pub node: u64,
    /// Every other region.
    pub others: Vec<String>,
    pub grace: Duration,
    pub interval: Duration,
    /// Shared with the API (`/readyz`) and the workers.
    pub draining: Arc<AtomicBool>,
    pub metrics: FailoverMetrics,
    state: Mutex<State>,
}

struct State {
    seq: u64,
    seen: HashMap<String, Seen>,
    requeued: Option<Instant>,
}

impl Failover {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        jobs: Arc<Jobs>,
        meta: Arc<dyn MetaStore>,
        region: String,
        node: u64,
        others: Vec<String>,
        grace: Duration,
        interval: Duration,
        draining: Arc<AtomicBool>,
        metrics: FailoverMetrics,
    ) -> Self {
        let started = Instant::now();
        let seen = others
            .iter()
            .map(|r| {
                let fresh = Seen {
                    seqs: HashMap::new(),
                    advanced: started,
                    draining: false,
                };
                (r.clone(), fresh)
            })
            .collect();
        Self {
            jobs,
            meta,
            region,
            node,
            others,
            grace,
            interval,
            draining,
            metrics,
            state: Mutex::new(State {
                seq: 0,
                seen,
                requeued: None,
            }),
        }
    }

    /// Reads the drain switch and beats.
    async fn beat(&self) -> Result<(), String> {
        let state = self.meta.region_state(&self.region).await;
        let draining = state
            .map_err(|e| e.to_string())?
            .is_some_and(|s| s.draining);
        if self.draining.swap(draining, Ordering::SeqCst) != draining {
            tracing::info!(region = %self.region, draining, "the region's drain switch changed");
        }
        self.metrics.draining.set(i64::from(draining));
        let seq = {
            let mut state = self.state.lock().unwrap();
            state.seq += 1;
            state.seq
        };
        let beat = Heartbeat {
            region: self.region.clone(),
            node: self.node,
            seq,
            draining,
            at: now_ms(),
        };
        self.meta
            .put_heartbeat(&beat)
            .await
            .map_err(|e| e.to_string())
    }

    /// Reads another region's beats: how long it has been silent, and whether it drains.
    async fn watch(&self, region: &str) -> Result<(Duration, bool), String> {
        let beats = self
            .meta
            .heartbeats(region)
            .await
            .map_err(|e| e.to_string())?;
        let mut state = self.state.lock().unwrap();
        let seen = state
            .seen
            .get_mut(region)
            .expect("every other region is watched");
        let mut moved = false;
        for beat in &beats {
            let before = seen.seqs.insert(beat.node, beat.seq);
            moved |= before != Some(beat.seq);
        }
        if moved {
            seen.advanced = Instant::now();
            seen.draining = beats.iter().any(|b| b.draining);
        }
        let silent = seen.advanced.elapsed();
        self.metrics
            .silent
            .with_label_values(&[region])
            .set(silent.as_secs_f64());
        Ok((silent, seen.draining))
    }

    /// On the leader: takes over what a silent or draining region cannot run.
    async fn adopt(&self, region: &str, silent: Duration, draining: bool) -> Result<bool, String> {
        let queued_only = silent < self.grace;
        if queued_only && !draining {
            return Ok(false);
        }
        let adopted = self.jobs.adopt_from(region, queued_only, BATCH).await;
        let adopted = adopted.map_err(|e| e.to_string())?;
        if adopted.adopted > 0 || adopted.waiting > 0 {
            tracing::info!(
                from = region,
                adopted = adopted.adopted,
                waiting = adopted.waiting,
                silent_s = silent.as_secs(),
                draining,
                "adopting another region's jobs"
            );
        }
        Ok(adopted.adopted == BATCH)
    }

    async fn requeue_own(&self) -> Result<(), String> {
        let due = {
            let state = self.state.lock().unwrap();
            state
                .requeued
                .is_none_or(|at| at.elapsed() >= REQUEUE_EVERY)
        };
        if due {
            self.jobs
                .requeue_own(BATCH)
                .await
                .map_err(|e| e.to_string())?;
            self.state.lock().unwrap().requeued = Some(Instant::now());
        }
        Ok(())
    }
}

#[async_trait]
impl LoopTask for Failover {
    async fn turn(&self) -> Result<Pace, String> {
        self.beat().await?;
        let leader = self.jobs.scheduler().is_leader();
        let mut busy = false;
        for region in &self.others {
            let (silent, draining) = match self.watch(region).await {
                Ok(seen) => seen,
                Err(err) => {
                    tracing::warn!(%region, %err, "cannot read another region's heartbeats");
                    continue;
                }
            };
            if leader {
                match self.adopt(region, silent, draining).await {
                    Ok(more) => busy |= more,
                    Err(err) => {
                        tracing::warn!(from = %region, %err, "adopting jobs failed; trying again next turn")
                    }
                }
            }
        }
        if leader {
            self.requeue_own().await?;
        }
        Ok(if busy { Pace::Busy } else { Pace::Idle })
    }

    fn idle_wait(&self) -> Duration {
        self.interval
    }
}
