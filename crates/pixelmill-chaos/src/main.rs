//! `pixelmill-chaos`: the chaos suite's driver, run by `chaos/run` against the cluster of
//! `cluster/geo/geo`. Each scenario sends real traffic through geo-DNS with pixelmill-client,
//! breaks the cluster as it says, undoes it, and checks that nothing acknowledged was lost and
//! no job has two results. Writes report.json and report.md; exits 1 when a check failed.

mod check;
mod costs;
mod hooks;
mod lab;
mod load;
mod report;
mod scenarios;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "pixelmill-chaos",
    about = "Break a three-region pixelmill on purpose and check that nothing acknowledged is lost"
)]
struct Args {
    /// Scenarios to run, in order [default: all]: region-kill, partition, drain, wan, leaders,
    /// freeze-worker, cassandra-kill, minio-stop, clock-skew
    scenarios: Vec<String>,
    /// The short version (less traffic, shorter faults), as the test command runs it
    #[arg(long)]
    short: bool,
    /// The nodes' --region-grace
    #[arg(long, value_parser = duration, default_value = "30s")]
    grace: Duration,
    /// The nodes' --lease-ttl
    #[arg(long, value_parser = duration, default_value = "30s")]
    lease: Duration,
    /// The region the faults hit
    #[arg(long, default_value = "eu")]
    victim: String,
    /// pixelmill nodes per region (as the cluster was started with)
    #[arg(long, env = "PIXELMILL_GEO_NODES", default_value_t = 3)]
    nodes: u8,
    /// Where report.json and report.md go
    #[arg(long)]
    out: PathBuf,
    /// The repository (cluster/, regions/)
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Instead of scenarios, measure what regions cost a client (upload durability, job
    /// latency) with and without latency between regions: bench/geo
    #[arg(long)]
    costs: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    pixelmill_core::parse_duration(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pixelmill_client=warn".into()),
        )
        .init();
    let args = Args::parse();
    let names: Vec<String> = if args.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    if let Some(unknown) = names.iter().find(|n| !scenarios::ALL.contains(&n.as_str())) {
        anyhow::bail!(
            "no scenario {unknown:?}; the scenarios are {}",
            scenarios::ALL.join(", ")
        );
    }
    let lab = lab::Lab::new(&args.root, args.nodes)?;
    if args.costs {
        std::fs::create_dir_all(&args.out)?;
        lab.await_whole(Duration::from_secs(180)).await?;
        let rows = costs::measure(&lab, "us", if args.short { 5 } else { 20 }).await?;
        std::fs::write(
            args.out.join("costs.json"),
            serde_json::to_string_pretty(&rows)?,
        )?;
        println!("{}", costs::markdown(&rows));
        return Ok(());
    }
    let settings = scenarios::Settings {
        short: args.short,
        grace: args.grace,
        lease: args.lease,
        victim: args.victim.clone(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut reports = Vec::new();
    for name in &names {
        lab.await_whole(Duration::from_secs(180)).await?;
        tracing::info!(scenario = %name, "scenario starts");
        let report = scenarios::run(&lab, &settings, name).await?;
        tracing::info!(scenario = %name, passed = report.passed, "scenario ends");
        reports.push(report);
        // Written after every scenario, so a run cut short still leaves what it measured.
        std::fs::write(
            args.out.join("report.json"),
            serde_json::to_string_pretty(&reports)?,
        )?;
        std::fs::write(args.out.join("report.md"), report::markdown(&reports))?;
    }
    lab.await_whole(Duration::from_secs(180)).await?;
    println!("{}", report::markdown(&reports));
    println!("report: {}", args.out.join("report.json").display());
    if reports.iter().any(|r| !r.passed) {
        anyhow::bail!("a chaos check failed (see the report above)");
    }
    Ok(())
}
