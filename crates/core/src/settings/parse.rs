//! Parsers for the raw text of a setting. Every layer (TOML, environment, flags) is reduced to text
//! first, so each parser here is the single place a kind of value is understood.
//!
//! A parser's error is the reason only ("\"5x\" is not a duration like …"); the caller adds which
//! key and which layer it came from.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

/// Why a raw setting value was refused. The text quotes the value, except where it may hold a
/// secret (the Redis URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

impl ValueError {
    /// A refusal with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Parses a duration: `200ms`, `5s`, `2m`, `1h`, `1h30m` (anything `humantime` reads); a bare
/// whole number is seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, ValueError> {
    let text = raw.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ValueError(format!("{raw:?} is too many seconds")));
    }
    humantime::parse_duration(text)
        .map_err(|_| ValueError(format!("{raw:?} is not a duration like 200ms, 5s, 2m, 1h")))
}

/// Parses a comma-separated list of durations (`120s,120s,1h`); empty means none.
pub fn parse_duration_list(raw: &str) -> Result<Vec<Duration>, ValueError> {
    raw.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let delay = parse_duration(part)?;
            if delay.is_zero() {
                return Err(ValueError(format!("{part:?} must be longer than zero")));
            }
            Ok(delay)
        })
        .collect()
}

/// Parses a switch: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, in any case).
pub fn parse_bool(raw: &str) -> Result<bool, ValueError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ValueError(format!("{raw:?} is not true or false"))),
    }
}

/// Parses a fraction as a percentage (`10%`) or a number (`0.1`), from 0 to 1.
pub fn parse_fraction(raw: &str) -> Result<f64, ValueError> {
    let text = raw.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| ValueError(format!("{raw:?} is not a fraction like 10% or 0.1")))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(ValueError(format!("{raw:?} must be between 0 and 100%")));
    }
    Ok(value)
}

/// Parses a size in bytes: a whole number (`65536`, `1_048_576`) or one with a binary unit
/// (`512KiB`, `1MiB`, `1 GiB`, `100B`). Decimal units (`MB`) are refused rather than guessed.
pub fn parse_byte_size(raw: &str) -> Result<usize, ValueError> {
    let refuse = || ValueError(format!("{raw:?} is not a size like 65536, 512KiB or 1MiB"));
    let text = raw.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(refuse()),
    };
    parse_whole_number::<usize>(number)
        .map_err(|_| refuse())?
        .checked_mul(multiplier)
        .ok_or_else(|| ValueError(format!("{raw:?} is too large")))
}

/// Parses a whole number, allowing `_` between digits as TOML does (`10_000`).
pub fn parse_whole_number<T: FromStr>(raw: &str) -> Result<T, ValueError> {
    let text = raw.trim();
    let well_formed = text.starts_with(|c: char| c.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    match well_formed.then(|| digits.parse::<T>()) {
        Some(Ok(value)) => Ok(value),
        Some(Err(_)) => Err(ValueError(format!("{raw:?} is out of range"))),
        None => Err(ValueError(format!("{raw:?} is not a whole number"))),
    }
}

/// Parses comma-separated networks: `10.0.0.0/8, fd00::/8`. A bare address is a network of one
/// (`/32` or `/128`). Empty text is an empty list.
pub fn parse_networks(raw: &str) -> Result<Vec<IpNet>, ValueError> {
    raw.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ValueError(format!(
                        "{part:?} is not a network like 10.0.0.0/8, 192.168.1.5 or fd00::/8"
                    ))
                })
        })
        .collect()
}

/// Parses a socket address to listen on: `127.0.0.1:8081`, `0.0.0.0:80`, `[::1]:8081`.
pub(crate) fn parse_listen(raw: &str) -> Result<SocketAddr, ValueError> {
    raw.trim().parse().map_err(|_| {
        ValueError(format!(
            "{raw:?} is not an address like 127.0.0.1:8081 or [::1]:8081 \
             (host names are not resolved)"
        ))
    })
}

/// The URL schemes the Redis client understands.
const REDIS_SCHEMES: [&str; 3] = ["redis", "rediss", "unix"];

/// Parses a Redis URL. Empty text means "not configured": find or start a local Redis. The value is
/// never quoted in an error because it may carry a password.
pub(crate) fn parse_redis_url(raw: &str) -> Result<Option<SecretString>, ValueError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(text).map_err(|e| {
        ValueError(format!(
            "not a URL ({e}); expected redis://host:port/db, rediss://… or unix:///path"
        ))
    })?;
    if !REDIS_SCHEMES.contains(&url.scheme()) {
        return Err(ValueError(format!(
            "the scheme {:?} is not redis://, rediss:// or unix://",
            url.scheme()
        )));
    }
    Ok(Some(SecretString::from(text)))
}

/// Parses the seeds of a Redis Cluster: comma-separated `redis://host:port` (or `rediss://`)
/// URLs, at least one, none empty. Empty text means "no cluster". An item is named by its place
/// and shown without its password, since the URLs may carry one.
pub(crate) fn parse_redis_cluster_nodes(raw: &str) -> Result<Vec<SecretString>, ValueError> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = raw.split(',').map(str::trim).collect();
    let count = items.len();
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let place = format!("seed {} of {count}", index + 1);
            parse_cluster_seed(item).map_err(|reason| ValueError(format!("{place} {reason}")))
        })
        .collect()
}

/// One seed of [`parse_redis_cluster_nodes`]; the error is the end of a sentence about it.
fn parse_cluster_seed(item: &str) -> Result<SecretString, String> {
    const EXPECTED: &str = "expected comma-separated redis://host:port";
    if item.is_empty() {
        return Err(format!("is empty; {EXPECTED}"));
    }
    let url = url::Url::parse(item).map_err(|e| format!("is not a URL ({e}); {EXPECTED}"))?;
    let shown = redact_redis_url(item);
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!(
            "({shown}) is not redis:// or rediss://: cluster nodes are reached over TCP"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("({shown}) has no host; {EXPECTED}"));
    }
    if !matches!(url.path(), "" | "/" | "/0") {
        return Err(format!(
            "({shown}) names a database: a Redis Cluster has only database 0"
        ));
    }
    Ok(SecretString::from(item))
}

/// Shows a Redis URL without its password; text that is not a URL is not shown at all.
pub(crate) fn redact_redis_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Only fails for URLs that cannot have a password, and this one has one.
                let _ = url.set_password(Some("REDACTED"));
            }
            url.to_string()
        }
        Err(_) => "[REDACTED]".to_owned(),
    }
}

/// Parses a key prefix: not empty, no white space (it is pasted into every Redis key), no `{` or
/// `}` (the first braces of a key are its cluster hash tag, see `keys`).
pub(crate) fn parse_key_prefix(raw: &str) -> Result<String, ValueError> {
    if raw.is_empty() {
        return Err(ValueError::new("must not be empty"));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(ValueError(format!("{raw:?} must not contain white space")));
    }
    if raw.contains(['{', '}']) {
        return Err(ValueError(format!(
            "{raw:?} must not contain {{ or }}: they would make the prefix a key's hash tag"
        )));
    }
    Ok(raw.to_owned())
}

/// Refuses `value` below `low`.
pub(crate) fn at_least<T: PartialOrd + fmt::Display>(value: T, low: T) -> Result<T, ValueError> {
    if value < low {
        return Err(ValueError(format!("must be at least {low}, not {value}")));
    }
    Ok(value)
}

/// Refuses a duration outside `(0, max]`.
pub(crate) fn positive_at_most(value: Duration, max: Duration) -> Result<Duration, ValueError> {
    if value.is_zero() || value > max {
        return Err(ValueError(format!(
            "must be more than 0s and at most {}, not {}",
            humantime::format_duration(max),
            humantime::format_duration(value)
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn durations_parse_like_the_documentation_says() {
        let cases = [
            ("milliseconds", "200ms", Duration::from_millis(200)),
            ("seconds", "5s", Duration::from_secs(5)),
            ("minutes", "2m", Duration::from_secs(120)),
            ("hours", "1h", Duration::from_secs(3600)),
            ("hours and minutes", "1h30m", Duration::from_secs(5400)),
            ("spaced parts", "1m 30s", Duration::from_secs(90)),
            ("bare integer is seconds", "30", Duration::from_secs(30)),
            ("zero", "0", Duration::ZERO),
            ("surrounding space", " 5s ", Duration::from_secs(5)),
            ("fraction", "1.5s", Duration::from_millis(1500)),
        ];
        for (description, raw, expected) in cases {
            assert_eq!(parse_duration(raw), Ok(expected), "{description}: {raw:?}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_quoting_the_value() {
        let cases = [
            ("unknown unit", "5x"),
            ("empty", ""),
            ("negative", "-5s"),
            ("unit only", "ms"),
            ("words", "five seconds"),
        ];
        for (description, raw) in cases {
            let err = parse_duration(raw).expect_err(description);
            assert!(
                err.to_string()
                    .contains(&format!("{raw:?} is not a duration")),
                "{description}: {err}"
            );
        }
    }

    #[test]
    fn byte_sizes_accept_plain_numbers_and_binary_units() {
        let cases = [
            ("plain", "65536", Ok(65536)),
            ("underscores", "1_048_576", Ok(1_048_576)),
            ("bytes unit", "100B", Ok(100)),
            ("kibibytes", "512KiB", Ok(512 * 1024)),
            ("mebibytes", "1MiB", Ok(1 << 20)),
            ("gibibytes with a space", "1 GiB", Ok(1 << 30)),
            ("lower case unit", "64kib", Ok(64 * 1024)),
        ];
        for (description, raw, expected) in cases {
            assert_eq!(parse_byte_size(raw), expected, "{description}: {raw:?}");
        }
    }

    #[test]
    fn malformed_byte_sizes_are_refused() {
        let cases = [
            ("decimal unit", "1MB"),
            ("empty", ""),
            ("negative", "-1"),
            ("unit only", "KiB"),
            ("fraction", "1.5MiB"),
            ("overflow", "99999999999999999999999GiB"),
        ];
        for (description, raw) in cases {
            assert!(parse_byte_size(raw).is_err(), "{description}: {raw:?}");
        }
    }

    #[test]
    fn whole_numbers_refuse_signs_and_out_of_range() {
        assert_eq!(parse_whole_number::<u32>("10_000"), Ok(10_000));
        let cases = [
            ("negative", "-1", "is not a whole number"),
            ("plus sign", "+1", "is not a whole number"),
            ("leading underscore", "_1", "is not a whole number"),
            ("empty", "", "is not a whole number"),
            ("too big for u32", "4294967296", "is out of range"),
        ];
        for (description, raw, reason) in cases {
            let err = parse_whole_number::<u32>(raw).expect_err(description);
            assert!(err.to_string().contains(reason), "{description}: {err}");
        }
    }

    #[test]
    fn networks_are_comma_separated_and_bare_addresses_are_single_hosts() {
        let cases = [
            ("empty", "", vec![]),
            ("one network", "10.0.0.0/8", vec!["10.0.0.0/8"]),
            ("bare v4 address", "192.168.1.5", vec!["192.168.1.5/32"]),
            ("bare v6 address", "::1", vec!["::1/128"]),
            (
                "several with spaces and a trailing comma",
                " 127.0.0.0/8 , fd00::/8,",
                vec!["127.0.0.0/8", "fd00::/8"],
            ),
        ];
        for (description, raw, expected) in cases {
            let expected: Vec<IpNet> = expected.iter().map(|n| n.parse().expect(n)).collect();
            assert_eq!(parse_networks(raw), Ok(expected), "{description}");
        }
        let err = parse_networks("10.0.0.0/8, 10.0.0.300/8").expect_err("bad octet");
        assert!(err.to_string().contains("\"10.0.0.300/8\""), "{err}");
    }

    #[test]
    fn redis_urls_need_a_redis_scheme_and_errors_never_show_them() {
        assert!(parse_redis_url("").expect("empty is unset").is_none());
        for ok in [
            "redis://127.0.0.1:6379/0",
            "rediss://u:p@host",
            "unix:///tmp/r.sock",
        ] {
            let parsed = parse_redis_url(ok).expect(ok).expect("set");
            assert_eq!(parsed.expose_secret(), ok);
        }
        let cases = [
            ("http scheme", "http://:hunter2@host"),
            ("no scheme", "hunter2@localhost:6379"),
        ];
        for (description, raw) in cases {
            let err = parse_redis_url(raw).expect_err(description);
            assert!(!err.to_string().contains("hunter2"), "{description}: {err}");
        }
    }

    #[test]
    fn cluster_seeds_are_redis_urls_of_database_0_and_errors_never_show_passwords() {
        assert!(parse_redis_cluster_nodes(" ")
            .expect("blank is unset")
            .is_empty());
        let parsed = parse_redis_cluster_nodes(" redis://10.0.0.1:7000 ,rediss://:pw@h:7001/0")
            .expect("two seeds");
        let seeds: Vec<&str> = parsed.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(seeds, ["redis://10.0.0.1:7000", "rediss://:pw@h:7001/0"]);
        let cases = [
            (
                "empty item",
                "redis://a:1,,redis://b:2",
                "seed 2 of 3 is empty",
            ),
            ("trailing comma", "redis://a:1,", "seed 2 of 2 is empty"),
            ("no scheme", "a:1", "seed 1 of 1 (a:1) is not redis://"),
            ("bare host", "localhost", "seed 1 of 1 is not a URL"),
            (
                "http with a password",
                "redis://a:1,http://:hunter2@b:2",
                "seed 2 of 2 (http://:REDACTED@b:2/) is not redis://",
            ),
            ("unix socket", "unix:///tmp/r.sock", "reached over TCP"),
            ("no host", "redis://:hunter2@:7000", "seed 1 of 1"),
            ("a database", "redis://a:1/2", "has only database 0"),
        ];
        for (description, raw, expected) in cases {
            let err = parse_redis_cluster_nodes(raw).expect_err(description);
            let message = err.to_string();
            assert!(message.contains(expected), "{description}: {message}");
            assert!(!message.contains("hunter2"), "{description}: {message}");
        }
    }

    #[test]
    fn redaction_hides_the_password_only() {
        let cases = [
            (
                "password",
                "redis://user:hunter2@host:6379/1",
                "redis://user:REDACTED@host:6379/1",
            ),
            ("no password", "redis://host:6379", "redis://host:6379"),
            ("not a url", "hunter2", "[REDACTED]"),
        ];
        for (description, raw, shown) in cases {
            assert_eq!(redact_redis_url(raw), shown, "{description}");
        }
    }

    #[test]
    fn key_prefixes_are_non_empty_without_spaces() {
        assert_eq!(parse_key_prefix("app:"), Ok("app:".to_owned()));
        for (description, raw) in [
            ("empty", ""),
            ("space", "my app:"),
            ("tab", "a\t"),
            ("brace", "app{1}:"),
            ("closing brace", "app}:"),
        ] {
            assert!(parse_key_prefix(raw).is_err(), "{description}");
        }
    }
}
