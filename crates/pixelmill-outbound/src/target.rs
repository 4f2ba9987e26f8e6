//! The check of a URL's host before anything is sent: a literal address is judged as it is (the
//! `url` crate has already turned decimal, octal and hex IPv4 spellings into dotted quads), and
//! `localhost` names, which resolvers answer from the machine itself (RFC 6761), are loopback.
//! Other names are judged when they are resolved, on the addresses actually connected to.

use crate::{Guard, Refused, ALLOW_SETTING};
use reqwest::Url;
use std::net::IpAddr;
use url::Host;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Refused(#[from] Refused),
    #[error(
        "{host} is a localhost name, which always means this machine (RFC 6761) and pixelmill \
         does not send requests to loopback; use a public host name, or allow loopback with \
         {ALLOW_SETTING}=127.0.0.0/8,::1/128"
    )]
    Localhost { host: String },
}

/// Whether a request to `url` may be sent as far as its host alone tells: `Ok` for literal
/// addresses the guard allows and for names other than `localhost` ones.
pub fn check_target(guard: &Guard, url: &Url) -> Result<(), TargetError> {
    match url.host() {
        Some(Host::Ipv4(v4)) => Ok(guard.check(IpAddr::V4(v4))?),
        Some(Host::Ipv6(v6)) => Ok(guard.check(IpAddr::V6(v6))?),
        Some(Host::Domain(name)) if is_localhost(name) && !guard.allows_loopback() => {
            Err(TargetError::Localhost {
                host: name.to_owned(),
            })
        }
        Some(Host::Domain(_)) | None => Ok(()),
    }
}

/// `localhost` and every name under it, with or without the root's trailing dot.
fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}
