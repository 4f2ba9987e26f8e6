//! The geo cluster under test, driven through `cluster/geo/geo` (the same commands people use):
//! where each region's nodes are, and the faults to inject.

use anyhow::{bail, Context, Result};
use pixelmill_regions::Regions;
use pixelmill_sched::{raft_auth_header, RaftSecret, Recipient, RAFT_AUTH_HEADER};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every node's raft listener port (cluster/net/layout: API :8080, raft :7100).
const RAFT_PORT: u16 = 7100;

pub struct Lab {
    geo: PathBuf,
    net: PathBuf,
    /// Region names in the layout's order (cluster/net/layout): region I is 10.77.I.0/24.
    pub regions: Vec<String>,
    regions_files: Regions,
    /// pixelmill nodes per region (`PIXELMILL_GEO_NODES`).
    pub nodes: u8,
    pub dns: SocketAddr,
    pub service: String,
    /// Every node's bootstrap admin API key (`geo key`).
    pub key: String,
    /// The raft secret `geo start` makes afresh; read at each use.
    raft_secret: PathBuf,
}

impl Lab {
    pub fn new(root: &Path, nodes: u8) -> Result<Self> {
        let geo = root.join("cluster/geo/geo");
        let layout = std::fs::read_to_string(root.join("cluster/net/layout"))
            .context("reading cluster/net/layout")?;
        let regions: Vec<String> = layout
            .lines()
            .find_map(|l| l.strip_prefix("PM_REGIONS=("))
            .and_then(|l| l.strip_suffix(')'))
            .context("PM_REGIONS=(…) in cluster/net/layout")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let regions_files = Regions::load(&root.join("regions"))?;
        let out = run(&geo, &["dns"])?;
        let (dns, service) = out
            .trim()
            .split_once(' ')
            .context("`geo dns` prints ADDRESS:PORT NAME")?;
        let key = run(&geo, &["key"])?.trim().to_owned();
        let raft_secret = PathBuf::from(run(&geo, &["raft-secret-file"])?.trim());
        Ok(Self {
            key,
            geo,
            net: root.join("cluster/net/net"),
            regions,
            regions_files,
            nodes,
            dns: dns.parse().context("the DNS server's address")?,
            service: service.to_owned(),
            raft_secret,
        })
    }

    /// Runs `cluster/geo/geo args…`, failing when it does.
    pub fn geo(&self, args: &[&str]) -> Result<String> {
        let started = Instant::now();
        let out = run(&self.geo, args)?;
        tracing::info!(?args, took_ms = started.elapsed().as_millis() as u64, "geo");
        Ok(out)
    }

    /// The API addresses of region `region`'s running nodes (as many as the cluster has).
    pub fn nodes_of(&self, region: &str) -> Vec<SocketAddr> {
        let region = self
            .regions_files
            .get(region)
            .expect("a region of the layout");
        let listed = region.api.iter().flat_map(|api| api.nodes.iter().copied());
        listed.take(self.nodes.into()).collect()
    }

    /// A client of `region`: it finds the service through geo-DNS, from `region`'s client address.
    pub fn client_config(&self, region: &str) -> pixelmill_client::ClientConfig {
        let service = pixelmill_client::Service::Geo {
            dns: self.dns,
            name: self.service.clone(),
            port: 8080,
            scheme: "http".into(),
        };
        let mut config = pixelmill_client::ClientConfig::new(service);
        config.local = Some(self.client_ip(region));
        config.api_key = Some(self.key.clone());
        config
    }

    /// A client of one node, straight to it (no DNS, no failover elsewhere).
    pub fn node_config(&self, node: SocketAddr) -> pixelmill_client::ClientConfig {
        let mut config = pixelmill_client::ClientConfig::new(pixelmill_client::Service::Url(
            format!("http://{node}"),
        ));
        config.api_key = Some(self.key.clone());
        config
    }

    /// Plain HTTP to the nodes as their admin (`/metrics`, `/v1/jobs`).
    pub fn http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.key));
        headers.extend(auth.ok().map(|auth| (reqwest::header::AUTHORIZATION, auth)));
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("a reqwest client")
    }

    /// The address a client of `region` sends from (cluster/net/layout: 10.77.10I.1).
    pub fn client_ip(&self, region: &str) -> IpAddr {
        let i = self.index(region);
        IpAddr::from([10, 77, 100 + i, 1])
    }

    fn index(&self, region: &str) -> u8 {
        let i = self
            .regions
            .iter()
            .position(|r| r == region)
            .expect("a region of the layout");
        i as u8 + 1
    }

    /// Milliseconds of one HTTP request from region `from` to region `to` (`net rtt`), through
    /// whatever the network between them adds.
    pub fn rtt(&self, from: &str, to: &str) -> Result<u64> {
        let out = run(&self.net, &["rtt", from, to])?;
        out.trim().parse().context("`net rtt` prints milliseconds")
    }

    /// Waits until geo-DNS answers every region's clients with that region's own nodes (every
    /// region is back and ready), at most `limit`.
    pub async fn await_whole(&self, limit: std::time::Duration) -> Result<()> {
        let started = Instant::now();
        for region in &self.regions {
            let options = pixelmill_client::LookupOptions {
                client_subnet: Some(ipnet::IpNet::from(self.client_ip(region))),
                ..Default::default()
            };
            let own: Vec<IpAddr> = self.nodes_of(region).iter().map(|n| n.ip()).collect();
            loop {
                let answer = pixelmill_client::lookup(self.dns, &self.service, &options).await;
                let addrs = answer.map(|a| a.addrs).unwrap_or_default();
                if !addrs.is_empty()
                    && addrs.iter().all(|a| own.contains(a))
                    && addrs.len() == own.len()
                {
                    break;
                }
                if started.elapsed() >= limit {
                    bail!("region {region} is not whole after {limit:?}: geo-DNS answers its clients with {addrs:?}");
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// The scheduler leader each node of `region` names, node 1 first: `None` where a node does
    /// not answer within a second or knows no leader. Asked over HTTP, as `geo leader` does, but
    /// concurrently and without a shell, so an election is timed to a fraction of a second.
    async fn raft_leaders(&self, http: &reqwest::Client, region: &str) -> Vec<Option<u8>> {
        let secret = match RaftSecret::from_file(&self.raft_secret) {
            Ok(secret) => secret,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the nodes for their raft status");
                return vec![None; self.nodes_of(region).len()];
            }
        };
        let secret = &secret;
        let asks = self.nodes_of(region).into_iter().map(|api| async move {
            let path = "/raft/status";
            let now = pixelmill_core::now_ms();
            let status: serde_json::Value = http
                .get(format!("http://{}:{RAFT_PORT}{path}", api.ip()))
                .header(
                    RAFT_AUTH_HEADER,
                    raft_auth_header(secret, "GET", path, Recipient::Any, &[], now),
                )
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            u8::try_from(status.get("leader")?.as_u64()?).ok()
        });
        futures::future::join_all(asks).await
    }

    /// The scheduler leader every node of `region` but `except` names, once they all name the
    /// same one; `None` while they disagree, an election runs or one of them does not answer.
    pub async fn agreed_leader(
        &self,
        http: &reqwest::Client,
        region: &str,
        except: Option<u8>,
    ) -> Option<u8> {
        let named: Vec<Option<u8>> = (1..)
            .zip(self.raft_leaders(http, region).await)
            .filter(|(k, _)| Some(*k) != except)
            .map(|(_, leader)| leader)
            .collect();
        let first = (*named.first()?)?;
        named.iter().all(|l| *l == Some(first)).then_some(first)
    }
}

fn run(script: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            script.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
