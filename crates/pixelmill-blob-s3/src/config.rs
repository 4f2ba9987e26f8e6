//! The `s3://` URL and the credentials that go with it.

use std::fmt;
use std::time::Duration;

/// S3 multipart parts may not be smaller than this, except the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// An access key pair. `Debug` never shows the secret, so a config can be logged.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// `PIXELMILL_S3_ACCESS_KEY_ID` and `PIXELMILL_S3_SECRET_ACCESS_KEY`, else the AWS names
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`). Keys never go in URLs or region files, which
    /// are logged and committed.
    pub fn from_env() -> Result<Self, String> {
        Self::from_env_for(None)
    }

    /// The keys for `region`'s bucket: `PIXELMILL_S3_<REGION>_ACCESS_KEY_ID` and
    /// `…_SECRET_ACCESS_KEY` (the name upper-cased, '-' as '_') when both are set, else those of
    /// `from_env`.
    pub fn from_env_for(region: Option<&str>) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let pair = |id: &str, secret: &str| {
            Some(Self {
                access_key_id: var(id)?,
                secret_access_key: var(secret)?,
            })
        };
        let regional = region.and_then(|region| {
            let prefix = format!("PIXELMILL_S3_{}", region.to_uppercase().replace('-', "_"));
            pair(
                &format!("{prefix}_ACCESS_KEY_ID"),
                &format!("{prefix}_SECRET_ACCESS_KEY"),
            )
        });
        regional
            .or_else(|| pair("PIXELMILL_S3_ACCESS_KEY_ID", "PIXELMILL_S3_SECRET_ACCESS_KEY"))
            .or_else(|| pair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
            .ok_or_else(|| {
                let regional = region.map_or(String::new(), |r| {
                    format!(
                        " (or, for region {r} alone, PIXELMILL_S3_{}_ACCESS_KEY_ID and …_SECRET_ACCESS_KEY)",
                        r.to_uppercase().replace('-', "_")
                    )
                });
                format!(
                    "the S3 blob store needs credentials: set PIXELMILL_S3_ACCESS_KEY_ID and \
                     PIXELMILL_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY){regional}"
                )
            })
    }
}

/// Where and how the S3 store keeps blobs.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// `http(s)://host:port` of an S3-compatible server; `None` is AWS itself.
    pub endpoint: Option<String>,
    /// The signing region.
    pub region: String,
    /// `bucket` in the path rather than the host name: what MinIO and most S3-compatible servers
    /// on a bare address need. On by default when an endpoint is given.
    pub path_style: bool,
    pub credentials: Credentials,
    /// Writes larger than this go up as a multipart upload in parts of this size; smaller ones
    /// are one PUT. It bounds the memory a write holds.
    pub part_size: usize,
    /// Each attempt of a request; a streamed read's body is not bounded by it.
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per request, the first included, with exponential backoff and jitter between.
    pub max_attempts: u32,
    /// Create the bucket at start-up when it does not exist.
    pub create_bucket: bool,
}

impl S3Config {
    /// Defaults for everything but the bucket and credentials.
    pub fn new(bucket: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            credentials,
            part_size: 8 * 1024 * 1024,
            attempt_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            max_attempts: 3,
            create_bucket: true,
        }
    }

    /// `s3://BUCKET[?endpoint=http://host:port&region=…&path_style=true|false&part_size_mib=N
    /// &timeout_ms=N&attempts=N&create_bucket=true|false]`.
    pub fn from_url(url: &str, credentials: Credentials) -> Result<Self, String> {
        let usage = "use s3://BUCKET[?endpoint=http://host:port&region=…&part_size_mib=8\
                     &timeout_ms=30000&attempts=3&path_style=true&create_bucket=true]";
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3:// URL; {usage}"))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        check_bucket_name(bucket)?;
        let mut config = Self::new(bucket, credentials);
        let mut path_style = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("option {pair:?} in {url:?} has no value; {usage}"))?;
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name}={value:?}: {what} must be a whole number"))
            };
            let flag = || {
                value
                    .parse::<bool>()
                    .map_err(|_| format!("{name}={value:?}: must be true or false"))
            };
            match name {
                "endpoint" => {
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(format!(
                            "endpoint={value:?} must start with http:// or https://"
                        ));
                    }
                    config.endpoint = Some(value.trim_end_matches('/').to_owned());
                }
                "region" => config.region = value.to_owned(),
                "path_style" => path_style = Some(flag()?),
                "create_bucket" => config.create_bucket = flag()?,
                "part_size_mib" => {
                    config.part_size = (number("the part size in MiB")? as usize) << 20;
                    if config.part_size < MIN_PART_SIZE {
                        return Err(format!(
                            "part_size_mib={value} is below S3's 5 MiB minimum part size"
                        ));
                    }
                }
                "timeout_ms" => {
                    config.attempt_timeout = Duration::from_millis(number("the timeout")?)
                }
                "attempts" => {
                    config.max_attempts = number("the attempt count")?.clamp(1, 10) as u32
                }
                _ => return Err(format!("unknown option {name:?} in {url:?}; {usage}")),
            }
        }
        config.path_style = path_style.unwrap_or(config.endpoint.is_some());
        Ok(config)
    }
}

/// S3's bucket naming rules, so a typo fails at start-up with a reason rather than as a 400.
fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'));
    let ok_ends = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(format!(
            "{bucket:?} is not a valid S3 bucket name: 3 to 63 characters of a-z, 0-9, '-' and \
             '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Credentials {
        Credentials {
            access_key_id: "AK".into(),
            secret_access_key: "very-secret".into(),
        }
    }

    #[test]
    fn urls_give_every_option() {
        let config = S3Config::from_url(
            "s3://pixelmill-eu?endpoint=http://127.0.0.1:9101/&part_size_mib=16&timeout_ms=500&attempts=5",
            keys(),
        )
        .unwrap();
        assert_eq!(config.bucket, "pixelmill-eu");
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9101"));
        assert!(config.path_style, "an endpoint means path-style by default");
        assert_eq!(config.part_size, 16 << 20);
        assert_eq!(config.attempt_timeout, Duration::from_millis(500));
        assert_eq!(config.max_attempts, 5);

        let aws = S3Config::from_url("s3://images", keys()).unwrap();
        assert!(aws.endpoint.is_none() && !aws.path_style);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("file:///x", "not an s3:// URL"),
            ("s3://UPPER", "not a valid S3 bucket name"),
            ("s3://ok-bucket?part_size_mib=1", "5 MiB minimum"),
            ("s3://ok-bucket?endpoint=127.0.0.1:9000", "http://"),
            ("s3://ok-bucket?colour=blue", "unknown option"),
            ("s3://ok-bucket?attempts=many", "whole number"),
        ] {
            let err = S3Config::from_url(url, keys()).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", S3Config::from_url("s3://b-1", keys()).unwrap());
        assert!(
            shown.contains("AK") && !shown.contains("very-secret"),
            "{shown}"
        );
    }
}
