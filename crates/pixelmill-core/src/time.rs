use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. Records store plain integers so every backend (redb, CQL
/// `bigint`) holds them the same way; the API formats them as RFC 3339 at the edge.
pub type UnixMillis = i64;

pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}; write a number with a unit, e.g. \"3s\", \"15m\" or \"90d\"")]
pub struct DurationParseError {
    input: String,
    reason: String,
}

/// Parses human durations such as `3s`, `15m`, `36h` or `90d` (config flags and env variables).
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    humantime::parse_duration(input.trim()).map_err(|e| DurationParseError {
        input: input.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_days() {
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
    }

    #[test]
    fn rejects_a_bare_word_with_a_hint() {
        let err = parse_duration("soon").unwrap_err().to_string();
        assert!(err.contains("90d"), "{err}");
    }
}
