//! Real traffic: clients in every region (each sending from its region's client address, so
//! geo-DNS answers it as one of that region's) upload an image and submit a job on it, over and
//! over, through `pixelmill-client` and its failover. Everything acknowledged, and every attempt
//! with the node that answered it, goes into the ledger the checker later reads.

use crate::lab::Lab;
use bytes::Bytes;
use pixelmill_client::{Attempt, Client, ClientError, JobRequest};
use pixelmill_core::{NotifySpec, OutputFormat, OutputSpec, PipelineStep};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One attempt on one node, as a client saw it.
#[derive(Clone, Debug)]
pub struct AttemptSeen {
    /// Since the run started.
    pub at: Duration,
    /// Which client (numbered across the run) made it.
    pub client: usize,
    pub client_region: String,
    /// The region of the node asked; `None` when the DNS had no answer.
    pub served_by: Option<String>,
    pub ok: bool,
    /// A job refused with 404 by another region than the one that acknowledged its input with
    /// local durability: that region, which alone may hold it yet. Not the answering region's
    /// failure, but what local durability allows (docs/CONSISTENCY.md).
    pub input_only_in: Option<String>,
}

#[derive(Clone, Debug)]
pub struct UploadSeen {
    pub id: String,
    pub sha256: String,
    /// Since the run started.
    pub at: Duration,
    /// Sent with `Pixelmill-Durability: regions=2`: a second region held it before the 201.
    pub durable: bool,
    /// The region whose node answered 201.
    pub accepted_by: String,
}

#[derive(Clone, Debug)]
pub struct JobSeen {
    pub id: String,
    pub image: String,
    /// Since the run started.
    pub at: Duration,
    /// The region whose node answered 202.
    pub accepted_by: String,
}

/// A call that failed for good (after every retry its client made).
#[derive(Clone, Debug)]
pub struct FailureSeen {
    pub client_region: String,
    pub what: &'static str,
    pub error: String,
}

/// What the service acknowledged and how it answered, as this run saw it.
#[derive(Clone, Default)]
pub struct Ledger {
    pub attempts: Vec<AttemptSeen>,
    pub uploads: Vec<UploadSeen>,
    pub jobs: Vec<JobSeen>,
    pub failures: Vec<FailureSeen>,
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// How much traffic, and from whom.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Upload-then-job pairs each client sends.
    pub pairs_per_client: usize,
    pub clients_per_region: usize,
    /// How often a client starts its next pair (a slow call delays the next one), so every
    /// client is still sending when a fault strikes half-way.
    pub interval: Duration,
    /// Where jobs announce themselves (the checker's webhook receiver).
    pub webhook: String,
}

/// Pairs sent so far by every client together: what a scenario waits on to inject its fault.
pub type Progress = Arc<AtomicUsize>;

/// Runs the plan to its end: every client sends all its pairs (failed calls included).
pub async fn run(
    lab: &Lab,
    plan: &LoadPlan,
    ledger: SharedLedger,
    progress: Progress,
    started: Instant,
) {
    let mut tasks = Vec::new();
    for region in &lab.regions {
        for n in 0..plan.clients_per_region {
            let number = tasks.len();
            let client = client_for(lab, region, number, ledger.clone(), started);
            let (ledger, progress, plan) = (ledger.clone(), progress.clone(), plan.clone());
            let (region, seed) = (region.clone(), rand::random::<u64>() ^ n as u64);
            // Every other client asks for two-region durability.
            let durable = number % 2 == 1;
            tasks.push(tokio::spawn(async move {
                let mut pace = tokio::time::interval(plan.interval);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for pair in 0..plan.pairs_per_client {
                    pace.tick().await;
                    let sender = Sender {
                        number,
                        client: &client.0,
                        served: &client.1,
                        region: &region,
                        durable,
                    };
                    sender.pair(&plan, &ledger, started, seed, pair).await;
                    progress.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// The region whose node answered a client's last successful attempt: each client sends one
/// call at a time, so after a call succeeds it names the region that took it.
type Served = Arc<Mutex<Option<String>>>;

/// A geo client of `region`, and where its observer keeps the region that answered last.
fn client_for(
    lab: &Lab,
    region: &str,
    number: usize,
    ledger: SharedLedger,
    started: Instant,
) -> (Client, Served) {
    let mut config = lab.client_config(region);
    config.deadline = Duration::from_secs(30);
    config.attempt_timeout = Duration::from_secs(8);
    let served = Arc::new(Mutex::new(None));
    let regions: Vec<(String, Vec<std::net::SocketAddr>)> = lab
        .regions
        .iter()
        .map(|r| (r.clone(), lab.nodes_of(r)))
        .collect();
    let (slot, client_region) = (served.clone(), region.to_owned());
    let client = Client::with_observer(config, move |attempt: &Attempt| {
        let served_by = attempt.addr.and_then(|addr| {
            regions
                .iter()
                .find(|(_, nodes)| nodes.iter().any(|n| n.ip() == addr.ip()))
                .map(|(r, _)| r.clone())
        });
        let ok = attempt.status.is_some_and(|s| s < 400);
        if ok {
            *slot.lock().unwrap() = served_by.clone();
        }
        ledger.lock().unwrap().attempts.push(AttemptSeen {
            at: started.elapsed(),
            client: number,
            client_region: client_region.clone(),
            served_by,
            ok,
            input_only_in: None,
        });
    });
    (client, served)
}

/// One client sending its pairs.
struct Sender<'a> {
    /// The client's number in the ledger's attempts.
    number: usize,
    client: &'a Client,
    served: &'a Mutex<Option<String>>,
    region: &'a str,
    durable: bool,
}

impl Sender<'_> {
    async fn pair(
        &self,
        plan: &LoadPlan,
        ledger: &SharedLedger,
        started: Instant,
        seed: u64,
        pair: usize,
    ) {
        let (client, served, region) = (self.client, self.served, self.region);
        let failed = |what: &'static str, error: String| FailureSeen {
            client_region: region.to_owned(),
            what,
            error,
        };
        let served_region = || {
            let region = served.lock().unwrap().take();
            region.unwrap_or_else(|| "unknown".into())
        };
        let png = unique_png(seed, pair);
        let sha256 = hex::encode(Sha256::digest(&png));
        let durability = self.durable.then_some("regions=2");
        let image = match client.upload(png, durability).await {
            Ok(image) => image,
            Err(err) => {
                ledger
                    .lock()
                    .unwrap()
                    .failures
                    .push(failed("upload", err.to_string()));
                return;
            }
        };
        let image_region = served_region();
        ledger.lock().unwrap().uploads.push(UploadSeen {
            id: image.id.clone(),
            sha256,
            at: started.elapsed(),
            durable: self.durable,
            accepted_by: image_region.clone(),
        });
        let request = JobRequest {
            image_id: image.id.clone(),
            pipeline: PipelineStep::parse_compact("resize:width=32,height=32,fit=cover|grayscale")
                .expect("a valid pipeline"),
            output: OutputSpec {
                format: OutputFormat::Png,
                ..OutputSpec::default()
            },
            notify: NotifySpec {
                webhook: Some(plan.webhook.clone()),
                email: None,
            },
        };
        match client.create_job(&request, None).await {
            Ok(accepted) => ledger.lock().unwrap().jobs.push(JobSeen {
                id: accepted.id,
                image: image.id,
                at: started.elapsed(),
                accepted_by: served_region(),
            }),
            Err(err) => {
                let mut ledger = ledger.lock().unwrap();
                let not_found = matches!(err, ClientError::Api { status: 404, .. });
                // Each client makes one call at a time: its last attempt is the one refused.
                let last = ledger
                    .attempts
                    .iter_mut()
                    .rev()
                    .find(|a| a.client == self.number);
                if let Some(attempt) = last.filter(|_| not_found && !self.durable) {
                    if attempt.served_by.as_deref() != Some(image_region.as_str()) {
                        attempt.input_only_in = Some(image_region);
                    }
                }
                ledger.failures.push(failed("job", err.to_string()));
            }
        }
    }
}

/// A small PNG no other pair sends: its pixels come from the seed and the pair number.
pub fn unique_png(seed: u64, pair: usize) -> Bytes {
    let mut state = seed ^ ((pair as u64) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    let img = image::RgbImage::from_fn(48, 36, |_, _| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (state >> 33).to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG in memory");
    Bytes::from(out.into_inner())
}
