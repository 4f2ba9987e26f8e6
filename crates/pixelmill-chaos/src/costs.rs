//! What regions cost a client, measured on the geo cluster (`bench/geo`): upload latency with
//! `local` and `regions=2` durability, and a job's time from submission to `succeeded` (its
//! writes are `SERIAL` compare-and-sets), each with no added latency between regions and with
//! 120 ms of round trip. Both durabilities alternate within one run, so their ratio compares like
//! with like.

use crate::lab::Lab;
use anyhow::{Context, Result};
use pixelmill_client::{Client, JobRequest};
use pixelmill_core::{NotifySpec, OutputFormat, OutputSpec, PipelineStep};
use serde::Serialize;
use std::fmt::Write;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub wan_rtt_ms: u64,
    pub what: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(wan_rtt_ms: u64, what: &str, mut took: Vec<Duration>) -> Row {
    took.sort();
    Row {
        wan_rtt_ms,
        what: what.to_owned(),
        samples: took.len(),
        p50_ms: percentile(&took, 0.5),
        p95_ms: percentile(&took, 0.95),
    }
}

/// Measures from a client of `region`, `samples` of each, at each added round trip.
pub async fn measure(lab: &Lab, region: &str, samples: usize) -> Result<Vec<Row>> {
    let client = Client::new(lab.client_config(region));
    let mut rows = Vec::new();
    for wan in [0u64, 120] {
        lab.geo(&["latency", &wan.to_string()])?;
        let (mut local, mut durable, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..samples {
            for (durability, into) in [(None, &mut local), (Some("regions=2"), &mut durable)] {
                let png = crate::load::unique_png(rand::random(), i);
                let started = Instant::now();
                client.upload(png, durability).await.context("an upload")?;
                into.push(started.elapsed());
            }
            let image = client
                .upload(crate::load::unique_png(rand::random(), i), None)
                .await?;
            let request = JobRequest {
                image_id: image.id,
                pipeline: PipelineStep::parse_compact("resize:width=32|grayscale")?,
                output: OutputSpec {
                    format: OutputFormat::Png,
                    ..OutputSpec::default()
                },
                notify: NotifySpec::default(),
            };
            let started = Instant::now();
            let accepted = client.create_job(&request, None).await?;
            let done = client.wait(&accepted.id, Duration::from_secs(60)).await?;
            anyhow::ensure!(
                done.status == "succeeded",
                "job {} {}",
                done.id,
                done.status
            );
            jobs.push(started.elapsed());
        }
        rows.push(row(wan, "upload, durability local", local));
        rows.push(row(wan, "upload, durability regions=2", durable));
        rows.push(row(wan, "job, submitted to succeeded", jobs));
    }
    lab.geo(&["latency", "0"])?;
    Ok(rows)
}

pub fn markdown(rows: &[Row]) -> String {
    let mut md = String::from(
        "| added round trip between regions | measured | samples | p50 ms | p95 ms |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} ms | {} | {} | {:.1} | {:.1} |",
            r.wan_rtt_ms, r.what, r.samples, r.p50_ms, r.p95_ms
        );
    }
    md
}
