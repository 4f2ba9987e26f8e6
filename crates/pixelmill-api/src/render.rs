//! Real-time renditions behind `GET /v1/images/{id}/render`: a byte-bounded memory cache, the
//! blob store as a second tier, single-flight (identical concurrent requests compute once) and a
//! concurrency limit with a bounded wait and a deadline, so overload is shed as 503 instead of
//! queueing without end.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pixelmill_core::ImageFormat;
use pixelmill_engine::Limits;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use tokio::sync::{OnceCell, Semaphore};

use crate::ApiError;

/// How the node configured real-time rendering.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// Whether a render URL sent without an API key may leave out `sig` (it still names its
    /// tenant): for public images behind a CDN, where the operator accepts that anyone can ask
    /// for any rendition. Off by default.
    pub unsigned: bool,
    /// Bytes of renditions kept in memory; 0 turns the memory tier off.
    pub cache_bytes: u64,
    /// Whether renditions are also written to the blob store (the second tier).
    pub store_results: bool,
    /// Renditions computed at once; more wait.
    pub max_concurrent: usize,
    /// Requests allowed to wait for a slot; beyond this they get 503 `overloaded` at once.
    pub max_waiting: usize,
    /// The longest a request may wait for a slot plus compute before it is answered 503.
    pub deadline: Duration,
    /// Estimated cost (`Pipeline::estimate_cost` units) above which a render becomes an async job.
    pub max_cost: u64,
    /// Whether `format=auto` may pick AVIF for clients that accept it.
    pub auto_avif: bool,
    /// The node's decode limits, as for jobs.
    pub limits: Limits,
}

/// A finished rendition, shared between the caches and every request that asked for it.
#[derive(Debug)]
pub struct Rendition {
    pub bytes: Bytes,
    pub format: ImageFormat,
}

/// What the second-tier lookup found: the stored rendition, or the computation to run.
pub enum Lookup<C> {
    Stored(Rendition),
    Compute(C),
}

/// Where a response came from, for the `X-Pixelmill-Cache` header and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Memory,
    Store,
    Computed,
    /// Computed for another request that asked for the same rendition at the same time.
    Coalesced,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Store => "store",
            Source::Computed => "miss",
            Source::Coalesced => "coalesced",
        }
    }
}

#[derive(Clone)]
struct ByteWeighter;

impl Weighter<String, Arc<Rendition>> for ByteWeighter {
    fn weight(&self, key: &String, value: &Arc<Rendition>) -> u64 {
        (key.len() + value.bytes.len()) as u64
    }
}

type Flight = Arc<OnceCell<Result<(Arc<Rendition>, Source), ApiError>>>;

pub struct Renderer {
    settings: RenderSettings,
    memory: Option<Cache<String, Arc<Rendition>, ByteWeighter>>,
    in_flight: Mutex<HashMap<String, Flight>>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    metrics: RenderMetrics,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new(settings: RenderSettings, registry: &Registry) -> Result<Self, prometheus::Error> {
        let memory = (settings.cache_bytes > 0).then(|| {
            // quick_cache sizes its index by item count; renditions average tens of kilobytes.
            let items = (settings.cache_bytes / 16_384).clamp(16, 1 << 20) as usize;
            Cache::with_weighter(items, settings.cache_bytes, ByteWeighter)
        });
        Ok(Self {
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            settings,
            memory,
            in_flight: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            metrics: RenderMetrics::register(registry)?,
        })
    }

    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    /// The memory tier only: a hit costs no I/O and no slot.
    pub fn cached(&self, key: &str) -> Option<Arc<Rendition>> {
        let hit = self.memory.as_ref()?.get(key);
        if hit.is_some() {
            self.metrics.observe(Source::Memory);
        }
        hit
    }

    /// Returns the rendition for `key`, computing it at most once however many requests ask for
    /// it at the same time. `lookup` runs once per computation: it finds the rendition in the
    /// second tier or prepares the computation (fetching the original), which then runs in a slot
    /// under the deadline; a computed rendition is handed to `save` for the second tier.
    pub async fn get_or_render<L, LF, C, S, SF>(
        &self,
        key: &str,
        lookup: L,
        save: S,
    ) -> Result<(Arc<Rendition>, Source), ApiError>
    where
        L: FnOnce() -> LF,
        LF: Future<Output = Result<Lookup<C>, ApiError>>,
        C: FnOnce() -> Result<Rendition, ApiError> + Send + 'static,
        S: FnOnce(Arc<Rendition>) -> SF,
        SF: Future<Output = ()> + Send + 'static,
    {
        let flight = {
            let mut in_flight = self.in_flight.lock().expect("in-flight map poisoned");
            in_flight.entry(key.to_owned()).or_default().clone()
        };
        let mut led = false;
        let result = flight
            .get_or_init(|| async {
                led = true;
                let compute = match lookup().await? {
                    Lookup::Stored(stored) => {
                        let stored = Arc::new(stored);
                        self.remember(key, &stored);
                        self.metrics.observe(Source::Store);
                        return Ok((stored, Source::Store));
                    }
                    Lookup::Compute(compute) => compute,
                };
                let computed = Arc::new(self.compute_in_slot(compute).await?);
                self.remember(key, &computed);
                if self.settings.store_results {
                    tokio::spawn(save(computed.clone()));
                }
                self.metrics.observe(Source::Computed);
                Ok((computed, Source::Computed))
            })
            .await
            .clone();
        let result = match result {
            Ok((rendition, Source::Computed)) if !led => {
                self.metrics.observe(Source::Coalesced);
                Ok((rendition, Source::Coalesced))
            }
            other => other,
        };
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight map poisoned");
            if in_flight.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                in_flight.remove(key);
            }
        }
        result
    }

    fn remember(&self, key: &str, rendition: &Arc<Rendition>) {
        if let Some(memory) = &self.memory {
            memory.insert(key.to_owned(), rendition.clone());
        }
    }

    /// Waits for a slot (if few enough are waiting already) and computes on the blocking pool,
    /// all within the deadline. The slot stays taken until the computation really ends, even
    /// when the request has given up, so the CPU is never oversubscribed.
    async fn compute_in_slot<C>(&self, compute: C) -> Result<Rendition, ApiError>
    where
        C: FnOnce() -> Result<Rendition, ApiError> + Send + 'static,
    {
        let deadline = self.settings.deadline;
        let waiting = WaitingGuard::enter(&self.waiting);
        if waiting.count > self.settings.max_waiting {
            self.metrics.shed.inc();
            return Err(ApiError::overloaded(
                format!(
                    "{} renders are already waiting for a free slot; retry after the Retry-After \
                     delay, or submit the work as a job with POST /v1/jobs",
                    waiting.count - 1
                ),
                1,
            ));
        }
        let work = async {
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ApiError::internal("the render slots were closed"))?;
            drop(waiting);
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || {
                let result = compute();
                drop(slot);
                result
            })
            .await
            .map_err(|e| ApiError::internal(format!("the render task failed: {e}")))?;
            self.metrics
                .duration
                .observe(started.elapsed().as_secs_f64());
            result
        };
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| {
                self.metrics.shed.inc();
                Err(ApiError::overloaded(
                    format!(
                    "the render did not finish within its {} ms deadline; retry later, or submit \
                     heavy pipelines as a job with POST /v1/jobs",
                    deadline.as_millis()
                ),
                    1,
                ))
            })
    }
}

/// Counts a request as waiting for a slot from `enter` until dropped.
struct WaitingGuard<'a> {
    counter: &'a AtomicUsize,
    count: usize,
}

impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Self { counter, count }
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

struct RenderMetrics {
    served: IntCounterVec,
    shed: prometheus::IntCounter,
    duration: Histogram,
}

impl RenderMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let served = IntCounterVec::new(
            Opts::new(
                "pixelmill_render_served_total",
                "Renditions served, by where they came from (memory, store, miss = computed, coalesced = \
                 computed once for several identical concurrent requests)",
            ),
            &["source"],
        )?;
        let shed = prometheus::IntCounter::new(
            "pixelmill_render_shed_total",
            "Render requests refused with 503 because too many waited or the deadline passed",
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "pixelmill_render_compute_seconds",
                "Time to compute one rendition (decode, pipeline, encode) in its slot",
            )
            .buckets(vec![
                0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        registry.register(Box::new(served.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self {
            served,
            shed,
            duration,
        })
    }

    fn observe(&self, source: Source) {
        self.served.with_label_values(&[source.as_str()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn settings() -> RenderSettings {
        RenderSettings {
            unsigned: false,
            cache_bytes: 1 << 20,
            store_results: false,
            max_concurrent: 1,
            max_waiting: 2,
            deadline: Duration::from_secs(5),
            max_cost: u64::MAX,
            auto_avif: true,
            limits: Limits::default(),
        }
    }

    fn rendition(tag: &str) -> Rendition {
        Rendition {
            bytes: Bytes::from(tag.to_owned()),
            format: ImageFormat::Png,
        }
    }

    /// A lookup that misses the second tier and computes with `compute`.
    fn computes<C>(compute: C) -> impl FnOnce() -> std::future::Ready<Result<Lookup<C>, ApiError>> {
        move || std::future::ready(Ok(Lookup::Compute(compute)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_concurrent_requests_compute_once() {
        let renderer = Arc::new(Renderer::new(settings(), &Registry::new()).unwrap());
        let computed = Arc::new(AtomicU32::new(0));
        let requests = (0..100).map(|_| {
            let (renderer, computed) = (renderer.clone(), computed.clone());
            tokio::spawn(async move {
                renderer
                    .get_or_render(
                        "k",
                        computes(move || {
                            computed.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            Ok(rendition("out"))
                        }),
                        |_| async {},
                    )
                    .await
                    .unwrap()
            })
        });
        let results = futures::future::join_all(requests).await;
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| r.as_ref().unwrap().0.bytes == "out"));
        let led = results
            .iter()
            .filter(|r| r.as_ref().unwrap().1 == Source::Computed)
            .count();
        assert_eq!(
            led, 1,
            "one request computed, the others were served its result"
        );
        // Later requests are memory hits; the in-flight entry is gone.
        assert_eq!(renderer.cached("k").unwrap().bytes, "out");
        assert!(renderer.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_beyond_the_bound_is_shed_with_retry_after() {
        let renderer = Arc::new(Renderer::new(settings(), &Registry::new()).unwrap());
        // One computing, two waiting, the fourth and fifth refused at once.
        let requests = (0..5).map(|i| {
            let renderer = renderer.clone();
            tokio::spawn(async move {
                renderer
                    .get_or_render(
                        &format!("k{i}"),
                        computes(|| {
                            std::thread::sleep(Duration::from_millis(200));
                            Ok(rendition("x"))
                        }),
                        |_| async {},
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.code())
            })
        });
        let results: Vec<_> = futures::future::join_all(requests)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let shed = results.iter().filter(|r| **r == Err("overloaded")).count();
        assert_eq!(shed, 2, "{results:?}");
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    }

    #[tokio::test]
    async fn the_deadline_bounds_waiting_and_computing() {
        let renderer = Renderer::new(
            RenderSettings {
                deadline: Duration::from_millis(50),
                ..settings()
            },
            &Registry::new(),
        )
        .unwrap();
        let err = renderer
            .get_or_render(
                "slow",
                computes(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(rendition("late"))
                }),
                |_| async {},
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "overloaded");
        // A failure is not cached: the next request computes again.
        assert!(renderer.cached("slow").is_none());
    }

    #[tokio::test]
    async fn the_second_tier_is_read_before_computing_and_written_after() {
        let renderer = Renderer::new(
            RenderSettings {
                store_results: true,
                cache_bytes: 0,
                ..settings()
            },
            &Registry::new(),
        )
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (_, source) = renderer
            .get_or_render(
                "k",
                computes(|| Ok(rendition("fresh"))),
                |r: Arc<Rendition>| async move {
                    tx.send(r.bytes.clone()).unwrap();
                },
            )
            .await
            .unwrap();
        assert_eq!(source, Source::Computed);
        assert_eq!(rx.await.unwrap(), "fresh");
        let (stored, source) = renderer
            .get_or_render(
                "k",
                || async {
                    Ok(Lookup::<fn() -> Result<Rendition, ApiError>>::Stored(
                        rendition("stored"),
                    ))
                },
                |_| async {},
            )
            .await
            .unwrap();
        assert_eq!(
            (stored.bytes.as_ref(), source),
            (b"stored".as_ref(), Source::Store)
        );
        // The memory tier is off at 0 bytes.
        assert!(renderer.cached("k").is_none());
    }
}
