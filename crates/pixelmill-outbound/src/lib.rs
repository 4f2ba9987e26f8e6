//! The outbound guard: every request pixelmill sends on a client's behalf (webhooks today, any
//! later fetch of a client-supplied URL) goes through it, so a client cannot aim the service at
//! loopback, the private network or the cloud metadata service (SSRF).
//!
//! - `ranges`: the refused ranges and the pure classifier.
//! - `Guard`: the classifier plus the networks an operator allows (`PIXELMILL_WEBHOOK_ALLOW_NETS`).
//! - `target`: the check of a URL as it is submitted (literal addresses, `localhost` names).
//! - `resolve`: the reqwest client whose DNS answers are checked before it connects, and which
//!   follows no redirects; the address checked is the address connected to.

mod ranges;
mod resolve;
mod target;

pub use ranges::{classify, embedded_v4, ranges, Embedded, Range, Refusal};
pub use resolve::{client_builder, GuardedResolver, ResolveError, Unresolved};
pub use target::{check_target, TargetError};

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// The setting that allows networks, named in every refusal so an operator knows the fix.
pub const ALLOW_SETTING: &str = "PIXELMILL_WEBHOOK_ALLOW_NETS";

/// An address outbound requests may not reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub addr: IpAddr,
    pub refusal: Refusal,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Range { net, name } = self.refusal.range;
        match self.refusal.embedded {
            Some(e) => write!(
                f,
                "{} is the {} form of {}, which is",
                self.addr, e.form, e.v4
            )?,
            None => write!(f, "{} is", self.addr)?,
        }
        write!(
            f,
            " in {net}, {name}, which pixelmill does not send requests to; use a public \
             address, or, if this network is meant to be reached, allow it (or a narrower net) \
             with {ALLOW_SETTING}={net}"
        )
    }
}

impl std::error::Error for Refused {}

/// Decides which addresses outbound requests may reach: everything public, and the refused
/// ranges' addresses only inside a network the operator allowed (an allowed net wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether `addr` may be reached. An IPv6 form that embeds an allowed IPv4 address is
    /// allowed with it (`::ffff:127.0.0.1` when 127.0.0.0/8 is).
    pub fn check(&self, addr: IpAddr) -> Result<(), Refused> {
        let allowed = |a: &IpAddr| self.allow.iter().any(|net| net.contains(a));
        let Some(refusal) = ranges::classify(addr) else {
            return Ok(());
        };
        let inner = refusal.embedded.map(|e| IpAddr::V4(e.v4));
        if allowed(&addr) || inner.as_ref().is_some_and(allowed) {
            return Ok(());
        }
        Err(Refused { addr, refusal })
    }

    /// Whether loopback may be reached: `localhost` names (RFC 6761) are refused otherwise.
    pub fn allows_loopback(&self) -> bool {
        [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .any(|a| self.check(a).is_ok())
    }
}

/// Parses the allowed networks as written in `PIXELMILL_WEBHOOK_ALLOW_NETS`: CIDRs separated by
/// commas (`127.0.0.0/8,::1/128`); a bare address is its own /32 or /128.
pub fn parse_allow_nets(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_allow_net)
        .collect()
}

/// One allowed network: a CIDR, or a bare address (its own /32 or /128).
pub fn parse_allow_net(text: &str) -> Result<IpNet, String> {
    let s = text.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "{ALLOW_SETTING}: {s:?} is not a network; write CIDRs separated by commas, \
                 e.g. 127.0.0.0/8,fd00::/8"
            )
        })
}

#[cfg(test)]
mod tests;
