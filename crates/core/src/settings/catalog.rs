//! The catalog of settings: one entry per key with its documentation and its parser.
//!
//! To add a setting: add a field to [`Settings`] with its default in `Settings::default()`, then
//! one [`KeyDoc`] here, then a row in the README's settings table. The tests below check that the
//! documented default is the real one and that the README lists exactly these keys.

use std::time::Duration;

use super::parse::{
    at_least, parse_bool, parse_byte_size, parse_duration, parse_duration_list, parse_fraction,
    parse_key_prefix, parse_listen, parse_networks, parse_redis_cluster_nodes, parse_redis_url,
    parse_whole_number, positive_at_most, ValueError,
};
use super::Settings;

/// Longest allowed `request_timeout`: a request handler waits for outbound calls, so a longer
/// timeout would hold API workers (and clients) too long.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Smallest allowed `max_body_bytes`; below this even an account registration does not fit.
const MIN_BODY_BYTES: usize = 1024;
/// Fewest allowed `pbkdf2_iterations`; fewer would make stored key hashes cheap to brute-force.
const MIN_PBKDF2_ITERATIONS: u32 = 1000;
/// Longest allowed `visibility_timeout`: a dead worker's jobs wait this long to be taken over.
const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(3600);

/// One setting as users see it: how it is named in each layer, its default and what it means.
#[derive(Debug)]
pub struct KeyDoc {
    /// Name in the TOML file and in command-line overrides, e.g. `request_timeout`.
    pub name: &'static str,
    /// Environment variable, always `PUBHOOK_` + the name in upper case.
    pub env: &'static str,
    /// The default as the README shows it, without backticks: a value (`5s`) or, for settings
    /// that are empty by default, a description (`empty`).
    pub default: &'static str,
    /// What the setting means, as the README's settings table says it.
    pub description: &'static str,
    /// Parses and validates the raw text into its field of `Settings`.
    pub(super) apply: fn(&mut Settings, &str) -> Result<(), ValueError>,
}

/// Every setting pubhook reads, in the order the README lists them.
pub fn documented_keys() -> &'static [KeyDoc] {
    KEYS
}

/// Looks a setting up by its TOML name.
pub(super) fn key_named(name: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|key| key.name == name)
}

/// Looks a setting up by its environment variable.
pub(super) fn key_for_env(env: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|key| key.env == env)
}

static KEYS: &[KeyDoc] = &[
    KeyDoc {
        name: "listen",
        env: "PUBHOOK_LISTEN",
        default: "127.0.0.1:8081",
        description: "address the API listens on",
        apply: |s, raw| {
            s.listen = parse_listen(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "worker_listen",
        env: "PUBHOOK_WORKER_LISTEN",
        default: "off",
        description: "address `pubhook worker` serves `/health/live`, `/health/ready` and \
                      `/metrics` on (`off`: none; `standalone` has them on the API's port)",
        apply: |s, raw| {
            s.worker_listen = match raw.trim() {
                "" | "off" => None,
                raw => Some(parse_listen(raw)?),
            };
            Ok(())
        },
    },
    KeyDoc {
        name: "redis_url",
        env: "PUBHOOK_REDIS_URL",
        default: "unset: use `127.0.0.1:6379`, or start a `redis-server`",
        description: "Redis to use (`redis://`, `rediss://`, `unix://`)",
        apply: |s, raw| {
            s.redis_url = parse_redis_url(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "redis_cluster_nodes",
        env: "PUBHOOK_REDIS_CLUSTER_NODES",
        default: "empty",
        description: "comma-separated seed nodes (`redis://host:port`) of a Redis Cluster to use \
                      instead of `redis_url`",
        apply: |s, raw| {
            s.redis_cluster_nodes = parse_redis_cluster_nodes(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "redis_wait_replicas",
        env: "PUBHOOK_REDIS_WAIT_REPLICAS",
        default: "0",
        description: "replicas that must acknowledge a trigger's write (Redis `WAIT`, up to 1 s) \
                      before its 201; with 0 a failover right after a 201 can lose that trigger",
        apply: |s, raw| {
            s.redis_wait_replicas = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "key_prefix",
        env: "PUBHOOK_KEY_PREFIX",
        default: "pubhook:",
        description: "prefix of every Redis key",
        apply: |s, raw| {
            s.key_prefix = parse_key_prefix(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "request_timeout",
        env: "PUBHOOK_REQUEST_TIMEOUT",
        default: "5s",
        description: "timeout of every outbound request (echo, key reset, delivery)",
        apply: |s, raw| {
            s.request_timeout = positive_at_most(parse_duration(raw)?, MAX_REQUEST_TIMEOUT)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "max_body_bytes",
        env: "PUBHOOK_MAX_BODY_BYTES",
        default: "1048576",
        description: "largest request body; larger gets 413",
        apply: |s, raw| {
            s.max_body_bytes = at_least(parse_byte_size(raw)?, MIN_BODY_BYTES)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "max_response_bytes",
        env: "PUBHOOK_MAX_RESPONSE_BYTES",
        default: "65536",
        description: "most of an endpoint's response pubhook reads",
        apply: |s, raw| {
            s.max_response_bytes = parse_byte_size(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "key_reset_interval",
        env: "PUBHOOK_KEY_RESET_INTERVAL",
        default: "60s",
        description: "minimum time between two API-key resets of one username (429 before); 0 turns it off",
        apply: |s, raw| {
            s.key_reset_interval = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "allowed_networks",
        env: "PUBHOOK_ALLOWED_NETWORKS",
        default: "empty",
        description: "comma-separated CIDRs that outbound requests may reach although they are \
                      loopback, private, link-local or otherwise special",
        apply: |s, raw| {
            s.allowed_networks = parse_networks(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "max_failed_count",
        env: "PUBHOOK_MAX_FAILED_COUNT",
        default: "250",
        description: "a subscriber with this many failed deliveries in a row is skipped",
        apply: |s, raw| {
            // Zero would skip every subscriber before its first delivery.
            s.max_failed_count = at_least(parse_whole_number(raw)?, 1)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "api_key_cache_ttl",
        env: "PUBHOOK_API_KEY_CACHE_TTL",
        default: "30s",
        description: "how long a verified API key is remembered without hashing it again",
        apply: |s, raw| {
            s.api_key_cache_ttl = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "api_key_cache_capacity",
        env: "PUBHOOK_API_KEY_CACHE_CAPACITY",
        default: "10000",
        description: "most verified keys cached per API process",
        apply: |s, raw| {
            s.api_key_cache_capacity = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "pbkdf2_iterations",
        env: "PUBHOOK_PBKDF2_ITERATIONS",
        default: "600000",
        description: "unused since new API-key hashes are HMAC-SHA256 (legacy PBKDF2 hashes carry their own count); still validated so old configurations load",
        apply: |s, raw| {
            s.pbkdf2_iterations = at_least(parse_whole_number(raw)?, MIN_PBKDF2_ITERATIONS)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "redis_pool_size",
        env: "PUBHOOK_REDIS_POOL_SIZE",
        default: "4",
        description: "Redis connections per process; concurrent commands are pipelined over them",
        apply: |s, raw| {
            s.redis_pool_size = at_least(parse_whole_number(raw)?, 1)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "retry_schedule",
        env: "PUBHOOK_RETRY_SCHEDULE",
        default: "120s,120s,1h",
        description: "delays before each retry of a failed delivery (so 4 attempts by default)",
        apply: |s, raw| {
            s.retry_schedule = parse_duration_list(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "retry_jitter",
        env: "PUBHOOK_RETRY_JITTER",
        default: "10%",
        description: "random spread of each retry delay, `0` for none",
        apply: |s, raw| {
            s.retry_jitter = parse_fraction(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "visibility_timeout",
        env: "PUBHOOK_VISIBILITY_TIMEOUT",
        default: "30s",
        description: "a job without progress this long is taken over by another worker; must exceed `request_timeout`",
        apply: |s, raw| {
            s.visibility_timeout = positive_at_most(parse_duration(raw)?, MAX_VISIBILITY_TIMEOUT)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "worker_concurrency",
        env: "PUBHOOK_WORKER_CONCURRENCY",
        default: "128",
        description: "delivery requests in flight per worker process (to one origin, as many as it answers well: the limit adapts)",
        apply: |s, raw| {
            s.worker_concurrency = at_least(parse_whole_number(raw)?, 1)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "runtime_threads",
        env: "PUBHOOK_RUNTIME_THREADS",
        default: "auto",
        description: "threads of the process's async runtime (the worker's deliveries, the store's connections), `auto` for one per CPU core",
        apply: |s, raw| {
            s.runtime_threads = auto_or_count(raw, super::MAX_RUNTIME_THREADS)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "delivery_retention",
        env: "PUBHOOK_DELIVERY_RETENTION",
        default: "7d",
        description: "how long delivery attempt records are kept",
        apply: |s, raw| {
            s.delivery_retention = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "triggered_retention",
        env: "PUBHOOK_TRIGGERED_RETENTION",
        default: "30d",
        description: "how long triggered records are kept (and listed in `/v1/webhook/triggered`); `0` keeps them for ever",
        apply: |s, raw| {
            s.triggered_retention = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "queue_shards",
        env: "PUBHOOK_QUEUE_SHARDS",
        default: "auto",
        description: "shards of the job queue, `auto` for 1 on one Redis and 16 on a Redis Cluster; fixed for a key prefix once used (a start with another number is refused)",
        apply: |s, raw| {
            s.queue_shards = auto_or_count(raw, super::MAX_QUEUE_SHARDS)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "key_reset_grace",
        env: "PUBHOOK_KEY_RESET_GRACE",
        default: "1h",
        description: "after an API-key reset the old key keeps working this long, or until the new key is first used",
        apply: |s, raw| {
            s.key_reset_grace = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "probe_disabled",
        env: "PUBHOOK_PROBE_DISABLED",
        default: "true",
        description: "probe subscribers disabled at `max_failed_count` with a signed ping, from 1 min up to 6 h apart, and re-enable them on a 2xx; `false` turns it off",
        apply: |s, raw| {
            s.probe_disabled = parse_bool(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "secret_grace",
        env: "PUBHOOK_SECRET_GRACE",
        default: "24h",
        description: "after a secret-key reset, deliveries this long also carry a `webhook-signature` by the old secret; 0 turns it off",
        apply: |s, raw| {
            s.secret_grace = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "trusted_proxies",
        env: "PUBHOOK_TRUSTED_PROXIES",
        default: "empty",
        description: "comma-separated CIDRs of front proxies whose `X-Forwarded-For` names the client; other peers are the client",
        apply: |s, raw| {
            s.trusted_proxies = parse_networks(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "metrics",
        env: "PUBHOOK_METRICS",
        default: "true",
        description: "Prometheus metrics at `/metrics` on the API (and on `worker_listen`); `false` records none and answers 404",
        apply: |s, raw| {
            s.metrics = parse_bool(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "metrics_allow",
        env: "PUBHOOK_METRICS_ALLOW",
        default: "127.0.0.0/8,::1/128",
        description: "comma-separated CIDRs of the clients `/metrics` answers (the client as `trusted_proxies` decide it); others get 403",
        apply: |s, raw| {
            s.metrics_allow = parse_networks(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_account_creations",
        env: "PUBHOOK_LIMIT_ACCOUNT_CREATIONS",
        default: "20",
        description: "accounts one client address may create per hour (429 after)",
        apply: |s, raw| {
            s.limits.account_creations = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_auth_failures",
        env: "PUBHOOK_LIMIT_AUTH_FAILURES",
        default: "10",
        description: "failed logins per minute, per username and per client address, before 429",
        apply: |s, raw| {
            s.limits.auth_failures = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_resets",
        env: "PUBHOOK_LIMIT_RESETS",
        default: "5",
        description: "key resets one client address may request per minute (429 after)",
        apply: |s, raw| {
            s.limits.resets = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_triggers",
        env: "PUBHOOK_LIMIT_TRIGGERS",
        default: "50",
        description: "triggers one account may make per second (429 after)",
        apply: |s, raw| {
            s.limits.triggers = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_redeliveries",
        env: "PUBHOOK_LIMIT_REDELIVERIES",
        default: "30",
        description: "redelivery requests one account may make per minute (429 after)",
        apply: |s, raw| {
            s.limits.redeliveries = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_registrations",
        env: "PUBHOOK_LIMIT_REGISTRATIONS",
        default: "1000",
        description: "registrations one account may own",
        apply: |s, raw| {
            s.limits.registrations = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_subscriptions",
        env: "PUBHOOK_LIMIT_SUBSCRIPTIONS",
        default: "10000",
        description: "subscriptions one account may hold",
        apply: |s, raw| {
            s.limits.subscriptions = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_registration_subscriptions",
        env: "PUBHOOK_LIMIT_REGISTRATION_SUBSCRIPTIONS",
        default: "100000",
        description: "subscriptions one registration may have",
        apply: |s, raw| {
            s.limits.registration_subscriptions = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_payload_bytes",
        env: "PUBHOOK_LIMIT_PAYLOAD_BYTES",
        default: "262144",
        description: "largest `event_data` (its JSON text); larger gets 413",
        apply: |s, raw| {
            s.limits.payload_bytes = parse_byte_size(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_key_checks",
        env: "PUBHOOK_LIMIT_KEY_CHECKS",
        default: "2",
        description: "slow (legacy PBKDF2) API-key checks at once per API process, with a queue of 4 per check; past it 429 at once",
        apply: |s, raw| {
            s.limits.key_checks = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_connections_per_client",
        env: "PUBHOOK_LIMIT_CONNECTIONS_PER_CLIENT",
        default: "256",
        description: "open connections per client address per API process; more are closed at once",
        apply: |s, raw| {
            s.limits.connections_per_client = parse_whole_number(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_body_read_time",
        env: "PUBHOOK_LIMIT_BODY_READ_TIME",
        default: "10s",
        description: "time a request body may take to arrive (408 and the connection closes after)",
        apply: |s, raw| {
            s.limits.body_read_time = parse_duration(raw)?;
            Ok(())
        },
    },
    KeyDoc {
        name: "limit_page_bytes",
        env: "PUBHOOK_LIMIT_PAGE_BYTES",
        default: "1048576",
        description: "bytes of records in one page; a fuller page stops early with `next_start`",
        apply: |s, raw| {
            s.limits.page_bytes = parse_byte_size(raw)?;
            Ok(())
        },
    },
];

/// `auto` (`None`), or a whole number from 1 to `most`.
fn auto_or_count<T>(raw: &str, most: T) -> Result<Option<T>, ValueError>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display,
{
    if raw.trim().eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let count: T = at_least(parse_whole_number(raw)?, T::from(1))?;
    if count > most {
        return Err(ValueError::new(format!(
            "must be auto or at most {most}, not {count}"
        )));
    }
    Ok(Some(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Environment variables in the README's table that are not settings of this module.
    const README_ROWS_READ_ELSEWHERE: [&str; 2] = ["PUBHOOK_LOG", "PUBHOOK_LOG_FORMAT"];

    #[test]
    fn every_key_is_lower_case_and_its_env_name_follows_from_it() {
        for key in documented_keys() {
            assert_eq!(key.name, key.name.to_ascii_lowercase(), "{}", key.name);
            assert_eq!(
                key.env,
                format!("PUBHOOK_{}", key.name.to_ascii_uppercase())
            );
        }
        let mut names: Vec<_> = documented_keys().iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            documented_keys().len(),
            "no key is listed twice"
        );
    }

    #[test]
    fn every_documented_default_is_the_built_in_default() {
        let expected = format!("{:?}", Settings::default());
        for key in documented_keys() {
            let mut settings = Settings::default();
            // A default that is not a value ("empty", "unset: …") stands for the empty value.
            (key.apply)(&mut settings, key.default)
                .or_else(|_| (key.apply)(&mut settings, ""))
                .unwrap_or_else(|e| panic!("{}: neither default nor empty parses: {e}", key.name));
            assert_eq!(format!("{settings:?}"), expected, "default of {}", key.name);
        }
    }

    #[test]
    fn the_readme_settings_table_matches_the_catalog() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the repository root");
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .filter(|line| line.starts_with("| `PUBHOOK_"))
            .map(|line| {
                line.trim()
                    .trim_matches('|')
                    .split(" | ")
                    .map(str::trim)
                    .collect()
            })
            .collect();
        let mut listed = Vec::new();
        for row in &rows {
            let [env, default, description] = row[..] else {
                panic!("README row with other than 3 cells: {row:?}");
            };
            let env = env.trim_matches('`');
            listed.push(env);
            if README_ROWS_READ_ELSEWHERE.contains(&env) {
                continue;
            }
            let key = key_for_env(env).unwrap_or_else(|| panic!("README lists unknown {env}"));
            let shown = default.strip_prefix('`').and_then(|d| d.strip_suffix('`'));
            assert_eq!(
                shown.unwrap_or(default),
                key.default,
                "README default of {env}"
            );
            assert_eq!(description, key.description, "README meaning of {env}");
        }
        for key in documented_keys() {
            assert!(
                listed.contains(&key.env),
                "README does not list {}",
                key.env
            );
        }
    }
}
