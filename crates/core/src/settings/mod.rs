//! Typed settings, loaded in layers and validated once at start-up.
//!
//! Layers, later ones winning: built-in defaults ([`Settings::default`]), an optional TOML file,
//! `PUBHOOK_*` environment variables, command-line overrides. Each layer is first reduced to raw
//! text per key (TOML numbers and arrays become text, arrays joined with commas), so every key has
//! exactly one parser, in the catalog, whichever layer its value came from. Errors name the key,
//! its environment variable and the layer ([`SettingsError`]).
//!
//! Unknown keys are errors rather than warnings: a misspelt `PUBHOOK_REQUEST_TIMOUT` silently
//! ignored is worse than a refusal to start.

mod catalog;
mod error;
mod limits;
mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};

pub use catalog::{documented_keys, KeyDoc};
pub use error::{Origin, SettingsError};
pub use limits::{limits_off_env, Limits};
pub(crate) use parse::redact_redis_url;
pub use parse::{
    parse_bool, parse_byte_size, parse_duration, parse_networks, parse_whole_number, ValueError,
};

/// The settings file read when none is named and `PUBHOOK_CONFIG` is unset, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "pubhook.toml";
/// The environment variable naming the settings file.
pub const CONFIG_FILE_ENV: &str = "PUBHOOK_CONFIG";

/// `PUBHOOK_*` variables that are read elsewhere, so they are not unknown settings.
const ENV_READ_ELSEWHERE: [&str; 5] = [
    "PUBHOOK_CONFIG",
    "PUBHOOK_LOG",
    "PUBHOOK_LOG_FORMAT",
    "PUBHOOK_TEST_REDIS_URL",
    "PUBHOOK_TEST_REDIS_CLUSTER_NODES",
];
/// The prefix of every settings environment variable.
const ENV_PREFIX: &str = "PUBHOOK_";

/// Everything pubhook can be configured with. Each field is documented to users in the catalog
/// ([`documented_keys`]) under the same name.
#[derive(Clone)]
pub struct Settings {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Address a `pubhook worker` serves its health checks on; `None`: no listener.
    pub worker_listen: Option<SocketAddr>,
    /// The Redis to use; `None` means find one on `127.0.0.1:6379` or start a `redis-server`.
    pub redis_url: Option<SecretString>,
    /// Seed nodes of a Redis Cluster; when not empty the store runs on that cluster and
    /// `redis_url` is not used.
    pub redis_cluster_nodes: Vec<SecretString>,
    /// Replicas that must acknowledge a trigger's write before it is answered.
    pub redis_wait_replicas: u32,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// Timeout of every outbound request (echo, key reset, delivery).
    pub request_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Minimum time between two API-key resets of one username.
    pub key_reset_interval: Duration,
    /// Networks outbound requests may reach although they are loopback, private or special.
    pub allowed_networks: Vec<IpNet>,
    /// Failed deliveries in a row after which a subscriber is skipped.
    pub max_failed_count: u32,
    /// How long a verified API key is remembered without hashing it again.
    pub api_key_cache_ttl: Duration,
    /// Most verified keys cached per API process.
    pub api_key_cache_capacity: usize,
    /// Unused: new API-key hashes are the fast HMAC-SHA256 form, and legacy PBKDF2 hashes carry
    /// their own iteration count. Kept, and validated, so existing configurations still load.
    pub pbkdf2_iterations: u32,
    /// Most of an endpoint's response pubhook reads.
    pub max_response_bytes: usize,
    /// Redis connections per process.
    pub redis_pool_size: usize,
    /// Delays between delivery attempts, after the first: one entry per retry.
    pub retry_schedule: Vec<Duration>,
    /// Random spread of each retry delay, as a fraction (0.1 = ±10%).
    pub retry_jitter: f64,
    /// How long a job may go without progress before another worker takes it over.
    pub visibility_timeout: Duration,
    /// Delivery requests in flight per worker process.
    pub worker_concurrency: usize,
    /// Threads of the process's async runtime; `None` for the default (see
    /// [`Settings::runtime_threads_for`]).
    pub runtime_threads: Option<usize>,
    /// How long delivery attempt records are kept.
    pub delivery_retention: Duration,
    /// How long triggered records (and their entries in the global triggered list) are kept.
    pub triggered_retention: Duration,
    /// Shards of the job queue; `None` for the default of the deployment (see
    /// [`Settings::queue_shards_for`]).
    pub queue_shards: Option<u16>,
    /// How long the old API key keeps working after a reset, unless the new one is used first.
    pub key_reset_grace: Duration,
    /// How long deliveries after a secret-key reset also carry a signature by the old secret.
    pub secret_grace: Duration,
    /// Whether subscribers at `max_failed_count` are probed, and re-enabled by a 2xx.
    pub probe_disabled: bool,
    /// Proxies whose `X-Forwarded-For` is believed; every other peer is the client itself.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether `/metrics` is served (and metrics are recorded at all).
    pub metrics: bool,
    /// Client networks `/metrics` answers; others get 403.
    pub metrics_allow: Vec<IpNet>,
    /// Quotas, rate limits and edge bounds (`limit_*`).
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            worker_listen: None,
            redis_url: None,
            redis_cluster_nodes: Vec::new(),
            redis_wait_replicas: 0,
            key_prefix: "pubhook:".to_owned(),
            request_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            key_reset_interval: Duration::from_secs(60),
            allowed_networks: Vec::new(),
            max_failed_count: 250,
            api_key_cache_ttl: Duration::from_secs(30),
            api_key_cache_capacity: 10_000,
            pbkdf2_iterations: 600_000,
            max_response_bytes: 64 * 1024,
            redis_pool_size: 4,
            retry_schedule: vec![
                Duration::from_secs(120),
                Duration::from_secs(120),
                Duration::from_secs(3600),
            ],
            retry_jitter: 0.1,
            visibility_timeout: Duration::from_secs(30),
            worker_concurrency: 128,
            runtime_threads: None,
            delivery_retention: Duration::from_secs(7 * 24 * 3600),
            triggered_retention: Duration::from_secs(30 * 24 * 3600),
            queue_shards: None,
            key_reset_grace: Duration::from_secs(3600),
            secret_grace: Duration::from_secs(24 * 3600),
            probe_disabled: true,
            trusted_proxies: Vec::new(),
            metrics: true,
            metrics_allow: default_metrics_allow(),
            limits: Limits::default(),
        }
    }
}

/// Shows every setting, with the passwords of the Redis URLs replaced.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Settings {
            listen,
            worker_listen,
            redis_url,
            redis_cluster_nodes,
            redis_wait_replicas,
            key_prefix,
            request_timeout,
            max_body_bytes,
            key_reset_interval,
            allowed_networks,
            max_failed_count,
            api_key_cache_ttl,
            api_key_cache_capacity,
            pbkdf2_iterations,
            max_response_bytes,
            redis_pool_size,
            retry_schedule,
            retry_jitter,
            visibility_timeout,
            worker_concurrency,
            runtime_threads,
            delivery_retention,
            triggered_retention,
            queue_shards,
            key_reset_grace,
            secret_grace,
            probe_disabled,
            trusted_proxies,
            metrics,
            metrics_allow,
            limits,
        } = self;
        let redis_url = redis_url
            .as_ref()
            .map(|url| parse::redact_redis_url(url.expose_secret()));
        let redis_cluster_nodes: Vec<String> = redis_cluster_nodes
            .iter()
            .map(|url| parse::redact_redis_url(url.expose_secret()))
            .collect();
        f.debug_struct("Settings")
            .field("listen", listen)
            .field("worker_listen", worker_listen)
            .field("redis_url", &redis_url)
            .field("redis_cluster_nodes", &redis_cluster_nodes)
            .field("redis_wait_replicas", redis_wait_replicas)
            .field("key_prefix", key_prefix)
            .field("request_timeout", request_timeout)
            .field("max_body_bytes", max_body_bytes)
            .field("key_reset_interval", key_reset_interval)
            .field("allowed_networks", allowed_networks)
            .field("max_failed_count", max_failed_count)
            .field("api_key_cache_ttl", api_key_cache_ttl)
            .field("api_key_cache_capacity", api_key_cache_capacity)
            .field("pbkdf2_iterations", pbkdf2_iterations)
            .field("max_response_bytes", max_response_bytes)
            .field("redis_pool_size", redis_pool_size)
            .field("retry_schedule", retry_schedule)
            .field("retry_jitter", retry_jitter)
            .field("visibility_timeout", visibility_timeout)
            .field("worker_concurrency", worker_concurrency)
            .field("runtime_threads", runtime_threads)
            .field("delivery_retention", delivery_retention)
            .field("triggered_retention", triggered_retention)
            .field("queue_shards", queue_shards)
            .field("key_reset_grace", key_reset_grace)
            .field("secret_grace", secret_grace)
            .field("probe_disabled", probe_disabled)
            .field("trusted_proxies", trusted_proxies)
            .field("metrics", metrics)
            .field("metrics_allow", metrics_allow)
            .field("limits", limits)
            .finish()
    }
}

/// The networks `/metrics` answers by default: loopback only, so that a process listening on a
/// public address does not show its figures to the world.
fn default_metrics_allow() -> Vec<IpNet> {
    vec![
        IpNet::new_assert(Ipv4Addr::new(127, 0, 0, 0).into(), 8),
        IpNet::new_assert(std::net::Ipv6Addr::LOCALHOST.into(), 128),
    ]
}

/// The number of queue shards when `queue_shards` is `auto`, on one Redis.
pub const DEFAULT_QUEUE_SHARDS_SINGLE: u16 = 1;
/// The number of queue shards when `queue_shards` is `auto`, on a Redis Cluster: enough to
/// spread the queue's load over a few masters.
pub const DEFAULT_QUEUE_SHARDS_CLUSTER: u16 = 16;
/// Most queue shards.
pub const MAX_QUEUE_SHARDS: u16 = 1024;
/// Most threads `runtime_threads` may ask for.
pub const MAX_RUNTIME_THREADS: usize = 1024;

impl Settings {
    /// The threads of the async runtime: `runtime_threads`, or by default one per core of the
    /// machine (`cores`), at least one. Fewer leave cores to what shares the machine (Redis, the
    /// API's own threads in `standalone`); on the 2-core benchmark machine one thread instead of
    /// two delivered 10–20% less (docs/performance.md).
    pub fn runtime_threads_for(&self, cores: usize) -> usize {
        self.runtime_threads.unwrap_or(cores).max(1)
    }

    /// The number of queue shards to run with: `queue_shards`, or by default 1 on one Redis and
    /// 16 on a Redis Cluster.
    pub fn queue_shards_for(&self, cluster: bool) -> u16 {
        self.queue_shards.unwrap_or(if cluster {
            DEFAULT_QUEUE_SHARDS_CLUSTER
        } else {
            DEFAULT_QUEUE_SHARDS_SINGLE
        })
    }
}

/// The layers to load settings from, above the built-in defaults.
#[derive(Debug, Default)]
pub struct SettingsSource<'a> {
    /// A TOML file of `key = value` lines; it must exist when given.
    pub config_file: Option<&'a Path>,
    /// Environment variables; only those starting with `PUBHOOK_` are read.
    pub env: Vec<(String, String)>,
    /// Command-line overrides as (key, value), key as in the TOML file.
    pub overrides: Vec<(&'a str, String)>,
}

impl Settings {
    /// Loads settings from `src` over the defaults and validates every value.
    pub fn load(src: SettingsSource<'_>) -> Result<Settings, SettingsError> {
        let mut raw = RawSettings::default();
        if let Some(path) = src.config_file {
            raw.read_file(path)?;
        }
        raw.read_env(&src.env)?;
        raw.read_overrides(&src.overrides)?;
        raw.parse()
    }

    /// Loads settings from this process's environment, the settings file (`config_file`, else
    /// `$PUBHOOK_CONFIG`, else `./pubhook.toml` if it exists) and `overrides` from the command
    /// line.
    pub fn from_process_env(
        config_file: Option<&Path>,
        overrides: Vec<(&str, String)>,
    ) -> Result<Settings, SettingsError> {
        // Variables that are not Unicode cannot be pubhook's; their values are read lossily so a
        // garbled value is reported rather than ignored.
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| {
                Some((
                    name.into_string().ok()?,
                    value.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let file = config_file_to_read(config_file, &env, Path::new(DEFAULT_CONFIG_FILE));
        if let Some(path) = &file {
            tracing::debug!(path = %path.display(), "reading settings file");
        }
        Settings::load(SettingsSource {
            config_file: file.as_deref(),
            env,
            overrides,
        })
    }
}

/// The settings file to read: the one named, else `$PUBHOOK_CONFIG`, else `fallback` if it exists.
fn config_file_to_read(
    named: Option<&Path>,
    env: &[(String, String)],
    fallback: &Path,
) -> Option<PathBuf> {
    if let Some(path) = named {
        return Some(path.to_owned());
    }
    let from_env = env
        .iter()
        .find(|(name, value)| name == CONFIG_FILE_ENV && !value.is_empty());
    match from_env {
        Some((_, value)) => Some(PathBuf::from(value)),
        None => fallback.is_file().then(|| fallback.to_owned()),
    }
}

/// The raw text of each key with the layer it came from; later layers overwrite earlier ones.
#[derive(Default)]
struct RawSettings(BTreeMap<&'static str, (String, Origin)>);

impl RawSettings {
    fn read_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|error| SettingsError::parse_file(path, &text, &error))?;
        let origin = Origin::File(path.to_owned());
        for (name, value) in &table {
            let Some(key) = catalog::key_named(name) else {
                let known = documented_keys().iter().map(|key| key.name);
                return Err(SettingsError::unknown_key(name, origin, known));
            };
            let raw = toml_to_raw(value).map_err(|reason| SettingsError::InvalidValue {
                key: key.name,
                env: key.env,
                origin: origin.clone(),
                reason,
            })?;
            self.0.insert(key.name, (raw, origin.clone()));
        }
        Ok(())
    }

    fn read_env(&mut self, env: &[(String, String)]) -> Result<(), SettingsError> {
        let settings_vars = env.iter().filter(|(name, _)| {
            name.starts_with(ENV_PREFIX) && !ENV_READ_ELSEWHERE.contains(&name.as_str())
        });
        for (name, value) in settings_vars {
            let Some(key) = catalog::key_for_env(name) else {
                let known = documented_keys().iter().map(|key| key.env);
                return Err(SettingsError::unknown_key(name, Origin::Environment, known));
            };
            self.0
                .insert(key.name, (value.clone(), Origin::Environment));
        }
        Ok(())
    }

    fn read_overrides(&mut self, overrides: &[(&str, String)]) -> Result<(), SettingsError> {
        for (name, value) in overrides {
            let Some(key) = catalog::key_named(name) else {
                let known = documented_keys().iter().map(|key| key.name);
                return Err(SettingsError::unknown_key(name, Origin::CommandLine, known));
            };
            self.0
                .insert(key.name, (value.clone(), Origin::CommandLine));
        }
        Ok(())
    }

    /// Parses every key given over the defaults, in catalog order so the first error reported
    /// does not depend on the order of the layers' entries.
    fn parse(mut self) -> Result<Settings, SettingsError> {
        let mut settings = Settings::default();
        for key in documented_keys() {
            let Some((raw, origin)) = self.0.remove(key.name) else {
                continue;
            };
            (key.apply)(&mut settings, &raw).map_err(|reason| SettingsError::InvalidValue {
                key: key.name,
                env: key.env,
                origin,
                reason,
            })?;
        }
        if settings.visibility_timeout <= settings.request_timeout {
            let key = "visibility_timeout";
            return Err(SettingsError::Inconsistent {
                key,
                env: "PUBHOOK_VISIBILITY_TIMEOUT",
                reason: format!(
                    "must be longer than request_timeout ({:?}), or jobs still in flight would be \
                     taken over by another worker",
                    settings.request_timeout
                ),
            });
        }
        Ok(settings)
    }
}

/// The raw text of a TOML value: scalars as written, arrays of scalars joined with commas.
fn toml_to_raw(value: &toml::Value) -> Result<String, ValueError> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        toml::Value::Datetime(when) => Ok(when.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::Array(_) | toml::Value::Table(_) => Err(ValueError::new(
                    "must be a string, a number or an array of them, not nested arrays or tables",
                )),
                scalar => toml_to_raw(scalar),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| items.join(",")),
        toml::Value::Table(_) => Err(ValueError::new(
            "must be a string, a number or an array of them, not a table",
        )),
    }
}

#[cfg(test)]
mod tests;
