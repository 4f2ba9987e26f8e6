//! Geo-DNS for pixelmill (`pixelmill geodns`): an authoritative DNS server for the service name
//! (e.g. `api.pixelmill.test`) that answers each client with the healthy API nodes of its
//! nearest healthy region. Regions, their nodes, their client prefixes and the order of their
//! fallbacks come from regions/; health comes from checking each node's `/readyz`; answers carry
//! a short TTL so clients follow a failover within seconds. In production the same records are a
//! managed geo-DNS's latency or geolocation records with health checks (docs/GAMEDAY.md).

mod choose;
mod handler;
mod health;

pub use choose::{choose, preference, Choice};
pub use health::{CheckConfig, HealthBoard};

use hickory_proto::rr::{LowerName, Name};
use hickory_server::Server;
use pixelmill_regions::Regions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// What the server answers, and how it checks.
#[derive(Clone, Debug)]
pub struct GeoDnsConfig {
    /// The service name clients resolve, e.g. `api.pixelmill.test`.
    pub name: String,
    /// The TTL of every answer, in seconds: how long a client may keep using a region that
    /// has since failed.
    pub ttl: u32,
    pub checks: CheckConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum GeoDnsError {
    #[error("{name:?} is not a valid DNS name: {source}")]
    BadName {
        name: String,
        source: hickory_proto::ProtoError,
    },
    #[error("no region in regions/ lists its API nodes ([api] nodes = […]); geo-DNS has nothing to answer with")]
    NoNodes,
    #[error(
        "cannot listen on {addr}: {source}; pick another --listen address (port 53 needs root)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the health checker's HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the DNS server stopped: {0}")]
    Stopped(String),
}

/// A running server.
pub struct GeoDns {
    pub addr: SocketAddr,
    server: Server<handler::GeoHandler>,
    checks: tokio::task::JoinHandle<Result<(), reqwest::Error>>,
    pub board: HealthBoard,
}

impl GeoDns {
    /// Binds UDP and TCP on `listen` and starts checking every node.
    pub async fn start(
        listen: SocketAddr,
        regions: Regions,
        config: GeoDnsConfig,
    ) -> Result<GeoDns, GeoDnsError> {
        let mut name = Name::from_ascii(&config.name).map_err(|source| GeoDnsError::BadName {
            name: config.name.clone(),
            source,
        })?;
        name.set_fqdn(true);
        if !regions.iter().any(|r| r.api.is_some()) {
            return Err(GeoDnsError::NoNodes);
        }
        let listen_err = |source| GeoDnsError::Listen {
            addr: listen,
            source,
        };
        let udp = UdpSocket::bind(listen).await.map_err(listen_err)?;
        let addr = udp.local_addr().map_err(listen_err)?;
        let tcp = TcpListener::bind(addr).await.map_err(listen_err)?;
        let board = HealthBoard::default();
        let regions = Arc::new(regions);
        let mut server = Server::new(handler::GeoHandler {
            name: LowerName::new(&name),
            ttl: config.ttl,
            regions: regions.clone(),
            board: board.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        let checks = tokio::spawn(health::run_checks(
            (*regions).clone(),
            config.checks,
            board.clone(),
        ));
        tracing::info!(%addr, name = %config.name, ttl = config.ttl, "geo-DNS answering");
        Ok(GeoDns {
            addr,
            server,
            checks,
            board,
        })
    }

    /// Runs until the server or its checker stops (neither does by itself).
    pub async fn wait(mut self) -> Result<(), GeoDnsError> {
        tokio::select! {
            served = self.server.block_until_done() => {
                Err(GeoDnsError::Stopped(format!("{served:?}")))
            }
            checked = &mut self.checks => match checked {
                Ok(Ok(())) => Err(GeoDnsError::Stopped("the health checker ended".into())),
                Ok(Err(err)) => Err(err.into()),
                Err(err) => Err(GeoDnsError::Stopped(err.to_string())),
            },
        }
    }

    pub async fn shutdown(mut self) {
        self.checks.abort();
        let _ = self.server.shutdown_gracefully().await;
    }
}
