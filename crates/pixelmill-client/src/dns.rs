//! Asking a DNS server for the service name's addresses, over UDP, with an optional EDNS client
//! subnet (RFC 7871) so a resolver, a test or `pixelmill resolve` can ask on behalf of a client
//! network. Geo-DNS answers with the nearest healthy region's nodes and a short TTL.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

/// What a lookup found: the addresses and how long they may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{name:?} is not a valid DNS name: {source}")]
    BadName {
        name: String,
        source: hickory_proto::ProtoError,
    },
    #[error("the DNS server {server} did not answer within {timeout:?} ({tries} tries); is it running (cluster/geo/geo dns)?")]
    NoAnswer {
        server: SocketAddr,
        timeout: Duration,
        tries: u32,
    },
    #[error("talking to the DNS server {server} failed: {source}")]
    Io {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("the DNS server {server} sent an answer that does not parse: {detail}")]
    Malformed { server: SocketAddr, detail: String },
    #[error("the DNS server {server} answered {code} for {name}: {hint}")]
    Refused {
        server: SocketAddr,
        name: String,
        code: ResponseCode,
        hint: &'static str,
    },
}

impl ResolveError {
    /// Whether asking again later may get an answer (the server was unreachable, or had no
    /// healthy region to answer with).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NoAnswer { .. } | Self::Io { .. } => true,
            Self::Refused { code, .. } => *code == ResponseCode::ServFail,
            Self::BadName { .. } | Self::Malformed { .. } => false,
        }
    }
}

/// How to ask.
#[derive(Clone, Debug)]
pub struct LookupOptions {
    /// Asks on behalf of this client network (EDNS client subnet).
    pub client_subnet: Option<IpNet>,
    /// The local address to send from (which client network this process is in).
    pub local: Option<IpAddr>,
    /// How long to wait for each try.
    pub timeout: Duration,
    /// Tries before giving up (UDP may lose a datagram).
    pub tries: u32,
}

impl Default for LookupOptions {
    fn default() -> Self {
        Self {
            client_subnet: None,
            local: None,
            timeout: Duration::from_millis(800),
            tries: 3,
        }
    }
}

/// The A records of `name` as `server` answers them.
pub async fn lookup(
    server: SocketAddr,
    name: &str,
    options: &LookupOptions,
) -> Result<Resolved, ResolveError> {
    let fqdn = Name::from_ascii(name)
        .map(|mut n| {
            n.set_fqdn(true);
            n
        })
        .map_err(|source| ResolveError::BadName {
            name: name.to_owned(),
            source,
        })?;
    let io = |source| ResolveError::Io { server, source };
    let local = options.local.unwrap_or(match server {
        SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
    });
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let query = query_message(fqdn, options.client_subnet);
    let bytes = query.to_vec().map_err(|e| ResolveError::Malformed {
        server,
        detail: e.to_string(),
    })?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..options.tries.max(1) {
        socket.send(&bytes).await.map_err(io)?;
        let Ok(received) = tokio::time::timeout(options.timeout, socket.recv(&mut buf)).await
        else {
            continue;
        };
        let len = received.map_err(io)?;
        let answer = Message::from_vec(&buf[..len]).map_err(|e| ResolveError::Malformed {
            server,
            detail: e.to_string(),
        })?;
        if answer.metadata.id != query.metadata.id {
            continue; // a late answer to an earlier try
        }
        return read_answer(server, name, &answer);
    }
    Err(ResolveError::NoAnswer {
        server,
        timeout: options.timeout,
        tries: options.tries.max(1),
    })
}

fn query_message(name: Name, client_subnet: Option<IpNet>) -> Message {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(subnet) = client_subnet {
        let ecs = ClientSubnet::new(subnet.network(), subnet.prefix_len(), 0);
        edns.options_mut().insert(EdnsOption::Subnet(ecs));
    }
    message.set_edns(edns);
    message
}

fn read_answer(server: SocketAddr, name: &str, answer: &Message) -> Result<Resolved, ResolveError> {
    let code = answer.metadata.response_code;
    if code != ResponseCode::NoError {
        let hint = match code {
            ResponseCode::ServFail => "no region is healthy right now; try again shortly",
            ResponseCode::NXDomain => "the server does not serve this name; check the service name",
            _ => "see the DNS server's log",
        };
        return Err(ResolveError::Refused {
            server,
            name: name.to_owned(),
            code,
            hint,
        });
    }
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for record in &answer.answers {
        if let RData::A(a) = &record.data {
            addrs.push(IpAddr::V4(a.0));
            ttl = ttl.min(record.ttl);
        }
    }
    let ttl = if addrs.is_empty() { 0 } else { ttl };
    Ok(Resolved {
        addrs,
        ttl: Duration::from_secs(ttl.into()),
    })
}
