//! The client commands (`upload`, `job`, `wait`, `get`, `resolve`): pixelmill-client against a
//! node's URL, or against the service name through geo-DNS with failover between regions.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pixelmill_client::{lookup, Client, ClientConfig, JobRequest, LookupOptions, Service};
use pixelmill_core::{NotifySpec, OutputSpec, PipelineStep};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Where the service is. `--dns` (geo-DNS) wins over `--url`.
#[derive(Args)]
pub struct Connect {
    /// A node's base URL [default: http://127.0.0.1:8080, the embedded default]
    #[arg(long, global = true, env = "PIXELMILL_URL")]
    url: Option<String>,
    /// A geo-DNS server, ADDRESS:PORT (`cluster/geo/geo dns` prints it); the service name is then
    /// resolved there, and calls fail over between the nodes and regions it answers with
    #[arg(long, global = true, env = "PIXELMILL_DNS")]
    dns: Option<SocketAddr>,
    /// The service name resolved through --dns
    #[arg(
        long,
        global = true,
        env = "PIXELMILL_SERVICE",
        default_value = "api.pixelmill.test"
    )]
    service: String,
    /// The service's port, with --dns
    #[arg(
        long,
        global = true,
        env = "PIXELMILL_SERVICE_PORT",
        default_value_t = 8080
    )]
    port: u16,
    /// The local address to send from (with the geo cluster, 10.77.10I.1 is region I's client)
    #[arg(long, global = true, env = "PIXELMILL_BIND")]
    bind: Option<IpAddr>,
    /// API key, sent as a bearer token
    #[arg(long, global = true, env = "PIXELMILL_KEY", hide_env_values = true)]
    key: Option<String>,
    /// How long a call keeps trying other nodes and regions before it gives up, e.g. 60s
    #[arg(long, global = true, env = "PIXELMILL_DEADLINE", value_parser = crate::duration, default_value = "60s")]
    deadline: Duration,
}

impl Connect {
    pub fn client(&self) -> Client {
        let service = match self.dns {
            Some(dns) => Service::Geo {
                dns,
                name: self.service.clone(),
                port: self.port,
                scheme: "http".into(),
            },
            None => Service::Url(
                self.url
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            ),
        };
        let mut config = ClientConfig::new(service);
        config.api_key = self.key.clone();
        config.local = self.bind;
        config.deadline = self.deadline;
        Client::new(config)
    }
}

#[derive(Subcommand)]
pub enum JobAction {
    /// Submit a job on an uploaded image; prints the accepted job (its id, status URL).
    Create {
        /// The image's id (from `pixelmill upload`)
        image: String,
        /// The pipeline in compact form, e.g. 'resize:width=300,height=200,fit=cover|grayscale'
        #[arg(long)]
        ops: String,
        /// Output format: jpeg, png, webp, gif, avif, tiff, bmp, auto or original [default: original]
        #[arg(long)]
        format: Option<String>,
        /// Quality 1-100 for lossy formats
        #[arg(long)]
        quality: Option<u8>,
        /// A webhook to notify when it finishes
        #[arg(long)]
        webhook: Option<String>,
        /// The submission's idempotency key [default: a new one, reused by every retry]
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Print a job as it is now.
    Get { job: String },
}

pub async fn upload(connect: &Connect, file: PathBuf, durability: Option<String>) -> Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let image = connect
        .client()
        .upload(bytes.into(), durability.as_deref())
        .await?;
    println!("{}", serde_json::to_string_pretty(&image)?);
    Ok(())
}

pub async fn job(connect: &Connect, action: JobAction) -> Result<()> {
    let client = connect.client();
    let printed = match action {
        JobAction::Create {
            image,
            ops,
            format,
            quality,
            webhook,
            idempotency_key,
        } => {
            let format = match format {
                Some(name) => crate::output_format(&name)?,
                None => OutputSpec::default().format,
            };
            let request = JobRequest {
                image_id: image,
                pipeline: PipelineStep::parse_compact(&ops)?,
                output: OutputSpec {
                    format,
                    quality,
                    ..OutputSpec::default()
                },
                notify: NotifySpec {
                    webhook,
                    email: None,
                },
            };
            let accepted = client
                .create_job(&request, idempotency_key.as_deref())
                .await?;
            serde_json::to_string_pretty(&accepted)?
        }
        JobAction::Get { job } => serde_json::to_string_pretty(&client.job(&job).await?)?,
    };
    println!("{printed}");
    Ok(())
}

/// Waits for a job to finish; fails (exit 1) when it failed.
pub async fn wait(connect: &Connect, job: &str, timeout: Duration) -> Result<()> {
    let done = connect.client().wait(job, timeout).await?;
    println!("{}", serde_json::to_string_pretty(&done)?);
    if done.status != "succeeded" {
        bail!(
            "job {job} {}: {}",
            done.status,
            done.error.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// Saves what a download link (or a finished job's link) points at.
pub async fn get(connect: &Connect, what: &str, out: PathBuf) -> Result<()> {
    let client = connect.client();
    let link = if what.contains("/d/") {
        what.to_owned()
    } else {
        let job = client.job(what).await?;
        job.download_url.with_context(|| {
            format!(
                "job {what} is {} and has no download link yet; `pixelmill wait {what}` first",
                job.status
            )
        })?
    };
    let bytes = client.download(&link).await?;
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("{} bytes → {}", bytes.len(), out.display());
    Ok(())
}

/// Prints what a DNS server answers for `name`, as `dig` would, one address a line.
pub async fn resolve(
    dns: SocketAddr,
    name: &str,
    client_subnet: Option<ipnet::IpNet>,
    bind: Option<IpAddr>,
) -> Result<()> {
    let options = LookupOptions {
        client_subnet,
        local: bind,
        ..LookupOptions::default()
    };
    let answer = lookup(dns, name, &options).await?;
    for addr in &answer.addrs {
        println!("{addr} ttl={}", answer.ttl.as_secs());
    }
    Ok(())
}
