//! Checks a client-supplied webhook URL, at submission and again before each attempt: absolute,
//! `http` or `https`, with a host the outbound guard does not refuse on sight (a literal
//! address in a refused range, a `localhost` name). Names are judged again when they resolve.

use pixelmill_outbound::{check_target, Guard, TargetError};
use reqwest::Url;

const EXAMPLE: &str = "write it like https://example.com/hooks/pixelmill";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    /// Not a URL pixelmill can deliver to at all.
    #[error("webhook URL {url:?} {problem}; {EXAMPLE}")]
    Invalid { url: String, problem: String },
    /// A URL whose host the outbound guard refuses.
    #[error("webhook URL {url:?} is refused: {source}")]
    Refused {
        url: String,
        #[source]
        source: TargetError,
    },
}

/// Parses and checks a webhook URL (see the module doc).
pub fn validate_webhook_url(s: &str, guard: &Guard) -> Result<Url, WebhookUrlError> {
    let invalid = |problem: String| WebhookUrlError::Invalid {
        url: s.to_owned(),
        problem,
    };
    let url = Url::parse(s).map_err(|e| invalid(format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "uses scheme {:?}; only http and https are delivered",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host".to_owned()));
    }
    check_target(guard, &url).map_err(|source| WebhookUrlError::Refused {
        url: s.to_owned(),
        source,
    })?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelmill_outbound::parse_allow_nets;

    fn loopback_allowed() -> Guard {
        Guard::new(parse_allow_nets("127.0.0.0/8,::1").unwrap())
    }

    #[test]
    fn accepts_http_and_https_urls_with_a_public_or_allowed_host() {
        assert!(validate_webhook_url("https://example.com/hook", &Guard::default()).is_ok());
        let url = "http://127.0.0.1:8080/h?x=1";
        assert!(validate_webhook_url(url, &loopback_allowed()).is_ok());
    }

    #[test]
    fn rejects_other_schemes_relative_urls_and_missing_hosts_with_a_fix() {
        for url in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "/hook",
            "example.com",
            "http://",
            "mailto:a@b.c",
        ] {
            let err = validate_webhook_url(url, &Guard::default()).unwrap_err();
            assert!(
                matches!(err, WebhookUrlError::Invalid { .. }),
                "{url}: {err}"
            );
            assert!(
                err.to_string()
                    .contains("https://example.com/hooks/pixelmill"),
                "{url}: {err}"
            );
        }
    }

    /// The `url` crate reads every IPv4 spelling browsers accept as the address it means, so a
    /// decimal, octal or hex host is judged as the dotted quad it is.
    #[test]
    fn every_spelling_of_a_refused_ipv4_address_is_refused_as_that_address() {
        let spellings: &[(&str, &str)] = &[
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("http://2852039166/", "169.254.169.254"),
            ("http://012.0.0.5/", "10.0.0.5"),
            ("http://0/", "0.0.0.0"),
        ];
        for &(url, addr) in spellings {
            let err = validate_webhook_url(url, &Guard::default()).unwrap_err();
            let WebhookUrlError::Refused {
                source: TargetError::Refused(refused),
                ..
            } = &err
            else {
                panic!("{url}: {err}");
            };
            assert_eq!(refused.addr.to_string(), addr, "{url}");
        }
    }

    #[test]
    fn localhost_names_are_refused_unless_loopback_is_allowed() {
        for url in [
            "http://localhost/hook",
            "http://LOCALHOST./hook",
            "http://api.localhost:8080/hook",
        ] {
            let err = validate_webhook_url(url, &Guard::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    WebhookUrlError::Refused {
                        source: TargetError::Localhost { .. },
                        ..
                    }
                ),
                "{url}: {err}"
            );
            assert!(err.to_string().contains("RFC 6761"), "{err}");
            assert!(
                validate_webhook_url(url, &loopback_allowed()).is_ok(),
                "{url}"
            );
        }
        assert!(validate_webhook_url("http://notlocalhost.example/", &Guard::default()).is_ok());
    }
}
