//! Where requests go: one base URL, or a service name that geo-DNS answers with the nearest
//! healthy region's nodes. Answers are cached for their TTL; a node that failed is skipped until
//! the next answer, and when every answer failed the name is resolved again at once.

use crate::dns::{lookup, LookupOptions, ResolveError};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How to reach the API.
#[derive(Clone, Debug)]
pub enum Service {
    /// A base URL such as `http://127.0.0.1:8080`; its host is resolved the usual way.
    Url(String),
    /// `scheme://name:port`, where `name` is resolved through the DNS server `dns`.
    Geo {
        dns: SocketAddr,
        name: String,
        port: u16,
        scheme: String,
    },
}

impl Service {
    /// The base URL requests are written against (the service name, for `Geo`).
    pub fn base_url(&self) -> String {
        match self {
            Self::Url(url) => url.trim_end_matches('/').to_owned(),
            Self::Geo {
                name, port, scheme, ..
            } => format!("{scheme}://{name}:{port}"),
        }
    }

    /// Whether `url` names this service (a download link does), so it is reached through it.
    pub fn serves(&self, url: &str) -> bool {
        url.starts_with(&format!("{}/", self.base_url()))
    }
}

/// The addresses to try, in order, for one round.
#[derive(Debug)]
pub(crate) struct Targets {
    service: Service,
    local: Option<IpAddr>,
    state: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    addrs: Vec<IpAddr>,
    expires: Option<Instant>,
    failed: HashSet<IpAddr>,
}

/// Answers are reused at most this long whatever their TTL, so a failover is never waited out.
const MAX_CACHE: Duration = Duration::from_secs(30);

impl Targets {
    pub(crate) fn new(service: Service, local: Option<IpAddr>) -> Self {
        Self {
            service,
            local,
            state: Mutex::new(Cache::default()),
        }
    }

    pub(crate) fn service(&self) -> &Service {
        &self.service
    }

    /// The addresses for the next round: those of the current answer not yet failed, or a new
    /// answer when none is left or it expired. `None` for a plain URL (its host is the target).
    pub(crate) async fn next_round(&self) -> Result<Option<Vec<IpAddr>>, ResolveError> {
        let Service::Geo { dns, name, .. } = &self.service else {
            return Ok(None);
        };
        let mut cache = self.state.lock().await;
        let fresh = cache.expires.is_some_and(|at| Instant::now() < at);
        let left: Vec<IpAddr> = cache
            .addrs
            .iter()
            .filter(|a| !cache.failed.contains(a))
            .copied()
            .collect();
        if fresh && !left.is_empty() {
            return Ok(Some(left));
        }
        let options = LookupOptions {
            local: self.local,
            ..LookupOptions::default()
        };
        let answer = lookup(*dns, name, &options).await?;
        cache.addrs = answer.addrs;
        cache.expires = Some(Instant::now() + answer.ttl.min(MAX_CACHE));
        cache.failed.clear();
        Ok(Some(cache.addrs.clone()))
    }

    /// Skips `addr` until the next answer.
    pub(crate) async fn failed(&self, addr: IpAddr) {
        self.state.lock().await.failed.insert(addr);
    }
}
