//! The HTTP client of outbound requests: names are resolved here, with hickory, and only the
//! answers the guard allows are handed to the connector, so the address checked is the address
//! connected to (no second lookup an attacker's DNS could answer differently). Redirects are not
//! followed, and no proxy stands between the check and the connection.

use crate::{Guard, Refused};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, ClientBuilder};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "cannot read this host's DNS configuration ({0}); point outbound lookups at a DNS \
         server with PIXELMILL_OUTBOUND_DNS, e.g. 1.1.1.1:53"
    )]
    SystemConfig(#[source] NetError),
}

/// Why a name did not give an address requests may reach.
#[derive(Debug, thiserror::Error)]
pub enum Unresolved {
    #[error("cannot resolve {host} ({source}); check the name and that its DNS answers")]
    Lookup {
        host: String,
        #[source]
        source: NetError,
    },
    #[error("{host} resolves only to addresses pixelmill does not send requests to: {}", first(.refused))]
    Refused { host: String, refused: Vec<Refused> },
}

fn first(refused: &[Refused]) -> String {
    match refused {
        [one] => one.to_string(),
        [one, rest @ ..] => format!("{one} (and {} more)", rest.len()),
        [] => "no address at all".to_owned(),
    }
}

/// Resolves names for reqwest and drops every answer the guard refuses.
pub struct GuardedResolver {
    guard: Arc<Guard>,
    dns: TokioResolver,
}

impl GuardedResolver {
    /// Asks the DNS server at `server` (UDP, then TCP), or the servers of the system
    /// configuration (`/etc/resolv.conf`) when `None`.
    pub fn new(guard: Arc<Guard>, server: Option<SocketAddr>) -> Result<Self, ResolveError> {
        let provider = TokioRuntimeProvider::default();
        let builder = match server {
            Some(server) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = server.port();
                        c
                    })
                    .collect();
                let name_server = NameServerConfig::new(server.ip(), true, connections);
                let config = ResolverConfig::from_name_servers(vec![name_server]);
                TokioResolver::builder_with_config(config, provider)
            }
            None => TokioResolver::builder(provider).map_err(ResolveError::SystemConfig)?,
        };
        let dns = builder.build().map_err(ResolveError::SystemConfig)?;
        Ok(Self { guard, dns })
    }

    /// The addresses of `host` the guard allows, in the order DNS gave them.
    pub async fn resolve_allowed(&self, host: &str) -> Result<Vec<SocketAddr>, Unresolved> {
        let answers = self
            .dns
            .lookup_ip(host)
            .await
            .map_err(|source| Unresolved::Lookup {
                host: host.to_owned(),
                source,
            })?;
        let (mut allowed, mut refused) = (Vec::new(), Vec::new());
        for addr in answers.iter() {
            match self.guard.check(addr) {
                // reqwest puts the URL's port (or the scheme's) in place of port 0.
                Ok(()) => allowed.push(SocketAddr::new(addr, 0)),
                Err(refusal) => refused.push(refusal),
            }
        }
        if allowed.is_empty() {
            return Err(Unresolved::Refused {
                host: host.to_owned(),
                refused,
            });
        }
        if !refused.is_empty() {
            tracing::info!(
                host,
                refused = refused.len(),
                "dropped refused addresses of an outbound host"
            );
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let dns = self.dns.clone();
        Box::pin(async move {
            let me = GuardedResolver { guard, dns };
            let addrs: Addrs = Box::new(me.resolve_allowed(name.as_str()).await?.into_iter());
            Ok(addrs)
        })
    }
}

/// A client builder for outbound requests: names resolved through `resolver`, no redirects
/// followed (a redirect could lead anywhere, and is answered as it is), no proxy. Literal
/// addresses in URLs bypass the resolver: check them with `check_target` before sending.
pub fn client_builder(resolver: Arc<GuardedResolver>) -> ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(resolver)
        .redirect(redirect::Policy::none())
        .no_proxy()
}
