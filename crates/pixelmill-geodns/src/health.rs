//! Health checks of every region's API nodes: `GET /readyz` once per interval. A node enters the
//! answers after `rise` passing checks in a row and leaves them after `fall` failing ones, so a
//! region that dies, is cut off, or reports itself unready (draining) leaves within about
//! `fall × interval + timeout`, and one check that flaps moves nothing.

use futures::future::join_all;
use pixelmill_regions::Regions;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How nodes are checked.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub interval: Duration,
    /// The longest one check may take before it counts as failed.
    pub timeout: Duration,
    /// Passing checks in a row before a node is answered with.
    pub rise: u32,
    /// Failing checks in a row before it is not.
    pub fall: u32,
    /// The address checks are sent from (the DNS server's own), if not the system's choice.
    pub source: Option<IpAddr>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(800),
            rise: 2,
            fall: 2,
            source: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct NodeState {
    healthy: bool,
    /// Checks in a row that disagree with `healthy`.
    streak: u32,
}

/// The nodes that are healthy now; shared between the checker and the DNS handler.
#[derive(Clone, Default)]
pub struct HealthBoard {
    healthy: Arc<RwLock<HashSet<SocketAddr>>>,
}

impl HealthBoard {
    pub fn healthy(&self) -> HashSet<SocketAddr> {
        self.healthy.read().unwrap().clone()
    }

    fn set(&self, node: SocketAddr, healthy: bool) {
        let mut set = self.healthy.write().unwrap();
        if healthy {
            set.insert(node);
        } else {
            set.remove(&node);
        }
    }
}

/// Checks every node of every region forever, updating `board`.
pub async fn run_checks(
    regions: Regions,
    config: CheckConfig,
    board: HealthBoard,
) -> Result<(), reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(source) = config.source {
        builder = builder.local_address(source);
    }
    let http = builder.build()?;
    let nodes: Vec<(String, SocketAddr)> = regions
        .iter()
        .flat_map(|r| {
            let nodes = r.api.iter().flat_map(|api| api.nodes.iter().copied());
            nodes.map(|n| (r.name.clone(), n))
        })
        .collect();
    let mut states: HashMap<SocketAddr, NodeState> = HashMap::new();
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let checks = nodes.iter().map(|(_, node)| ready(&http, *node));
        let results = join_all(checks).await;
        for ((region, node), passed) in nodes.iter().zip(results) {
            let state = states.entry(*node).or_default();
            if passed == state.healthy {
                state.streak = 0;
                continue;
            }
            state.streak += 1;
            let needed = if passed { config.rise } else { config.fall };
            if state.streak >= needed {
                state.healthy = passed;
                state.streak = 0;
                board.set(*node, passed);
                tracing::info!(%region, %node, healthy = passed, "node {}", if passed { "joins the answers" } else { "leaves the answers" });
            }
        }
    }
}

async fn ready(http: &reqwest::Client, node: SocketAddr) -> bool {
    http.get(format!("http://{node}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}
