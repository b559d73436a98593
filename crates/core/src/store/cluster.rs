//! Cluster mode: where the store's Redis is ([`RedisTarget`]), and the start-up check that a Redis
//! Cluster is there and whole ([`Store::check_cluster`]).
//!
//! The store opens its connections lazily in both modes, so that it recovers by itself from a
//! Redis that comes and goes. A cluster given by its seed nodes has more ways to be wrong at start
//! than one Redis has (a seed of another kind, a cluster still forming or down, a node the client
//! cannot reach), and those are configuration mistakes to name at once, not outages to ride out:
//! so `pubhook serve|worker|standalone` run the check before they start.
//!
//! Both planes run on a cluster, every script on the keys of one hash slot: the control plane
//! (accounts, registrations, subscriptions: their creates, deletes and cascades) as ordered steps
//! under an intent (`super::steps`, `super::intents`), the data plane (trigger, fan-out,
//! deliveries, the sharded queue) as steps on the registration's and the queue shard's slots.

use std::fmt;

use futures_util::future::join_all;

use super::connection::CONNECT_TIMEOUT;
use super::Store;
use crate::settings::redact_redis_url;

/// Where the store's data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis, at this URL (`redis://`, `rediss://`, `unix://`).
    Single(String),
    /// A Redis Cluster, reached through these seed nodes (`redis://host:port`).
    Cluster(Vec<String>),
}

/// Shows the URLs without their passwords.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(url) => f
                .debug_tuple("Single")
                .field(&redact_redis_url(url))
                .finish(),
            Self::Cluster(seeds) => f
                .debug_tuple("Cluster")
                .field(
                    &seeds
                        .iter()
                        .map(|s| redact_redis_url(s))
                        .collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// Why the store cannot run on the configured Redis Cluster. Seeds are shown without passwords.
#[derive(Debug, thiserror::Error)]
pub enum ClusterCheckError {
    /// No seed node could be reached.
    #[error("no Redis Cluster seed node answered; tried {}", list(.tried))]
    Unreachable {
        /// Each seed with the reason it did not answer.
        tried: Vec<SeedFailure>,
    },
    /// A seed is a Redis without cluster mode.
    #[error(
        "the seed node {seed} is a Redis that is not in cluster mode (cluster-enabled no): give \
         a single Redis as redis_url (PUBHOOK_REDIS_URL), and only the nodes of a Redis Cluster \
         as redis_cluster_nodes (PUBHOOK_REDIS_CLUSTER_NODES)"
    )]
    NotInClusterMode {
        /// The seed.
        seed: String,
    },
    /// A seed answered `CLUSTER INFO` or `CLUSTER SLOTS` with an error (authentication, ACL, …).
    #[error("the seed node {seed} refused {command}: {reason}")]
    Refused {
        /// The seed.
        seed: String,
        /// The command it refused.
        command: &'static str,
        /// Its answer.
        reason: String,
    },
    /// The cluster is not serving every slot (still forming, or a master down without a
    /// replica to take over).
    #[error(
        "the Redis Cluster is not ready: the seed node {seed} says cluster_state:{state} \
         ({slots_ok} of 16384 slots served)"
    )]
    NotOk {
        /// The seed.
        seed: String,
        /// Its `cluster_state`.
        state: String,
        /// Its `cluster_slots_ok`.
        slots_ok: String,
    },
    /// A master that the seeds name does not answer: down before the others noticed, or at an
    /// address that this host cannot reach (one the nodes announce inside a container, say).
    #[error("the Redis Cluster master {master} (slots {slots}) did not answer: {error}")]
    MasterUnreachable {
        /// The master's `host:port`, as the cluster announces it.
        master: String,
        /// The slots it serves, e.g. `0-5460`.
        slots: String,
        /// What went wrong.
        error: String,
    },
}

/// A seed node that did not answer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFailure {
    /// The seed, without its password.
    pub seed: String,
    /// What went wrong.
    pub error: String,
}

impl fmt::Display for SeedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.seed, self.error)
    }
}

fn list(failures: &[SeedFailure]) -> String {
    let shown: Vec<String> = failures.iter().map(SeedFailure::to_string).collect();
    shown.join(", ")
}

/// What one seed said to `CLUSTER INFO` and, when it is in cluster mode, `CLUSTER SLOTS`.
enum SeedAnswer {
    Unreachable(String),
    NotInClusterMode,
    Refused(&'static str, String),
    Cluster { info: String, masters: Vec<Master> },
}

/// A master as `CLUSTER SLOTS` names it, with one range of the slots it serves.
struct Master {
    host: String,
    port: u16,
    slots: String,
}

impl Store {
    /// Whether this store runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.connector.seeds().is_some()
    }

    /// The start-up check of cluster mode: every seed that answers is a cluster node whose
    /// `CLUSTER INFO` says `cluster_state:ok`, at least one answers, and every master that serves
    /// slots answers `PING`. Seeds that do not answer while others do are logged as a warning.
    /// On a single Redis there is nothing to check (its connections open lazily).
    pub async fn check_cluster(&self) -> Result<(), ClusterCheckError> {
        let Some(seeds) = self.connector.seeds() else {
            return Ok(());
        };
        let answers = join_all(seeds.iter().map(|seed| ask_seed(seed))).await;
        let mut unreachable = Vec::new();
        let mut masters = None;
        for (seed, answer) in seeds.iter().zip(answers) {
            let shown = redact_redis_url(seed);
            match answer {
                SeedAnswer::Unreachable(error) => {
                    unreachable.push(SeedFailure { seed: shown, error })
                }
                SeedAnswer::NotInClusterMode => {
                    return Err(ClusterCheckError::NotInClusterMode { seed: shown })
                }
                SeedAnswer::Refused(command, reason) => {
                    return Err(ClusterCheckError::Refused {
                        seed: shown,
                        command,
                        reason,
                    })
                }
                SeedAnswer::Cluster {
                    info,
                    masters: seen,
                } => {
                    let state = info_field(&info, "cluster_state").unwrap_or("(missing)");
                    if state != "ok" {
                        return Err(ClusterCheckError::NotOk {
                            seed: shown,
                            state: state.to_owned(),
                            slots_ok: info_field(&info, "cluster_slots_ok")
                                .unwrap_or("?")
                                .to_owned(),
                        });
                    }
                    masters.get_or_insert((seed, seen));
                }
            }
        }
        let Some((seed, masters)) = masters else {
            return Err(ClusterCheckError::Unreachable { tried: unreachable });
        };
        if !unreachable.is_empty() {
            tracing::warn!(
                unreachable = %list(&unreachable),
                "some Redis Cluster seed nodes did not answer; using the others"
            );
        }
        ping_masters(seed, &masters).await?;
        Ok(())
    }
}

/// Asks `seed` for `CLUSTER INFO` and `CLUSTER SLOTS` on a connection of its own.
async fn ask_seed(seed: &str) -> SeedAnswer {
    let mut conn = match open_probe(seed).await {
        Ok(conn) => conn,
        Err(error) => return SeedAnswer::Unreachable(error.to_string()),
    };
    let info = match redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async::<String>(&mut conn)
        .await
    {
        Ok(info) => info,
        // Redis and Valkey: "ERR This instance has cluster support disabled".
        Err(e) if e.to_string().contains("cluster support disabled") => {
            return SeedAnswer::NotInClusterMode
        }
        Err(e) => return unanswered("CLUSTER INFO", &e),
    };
    match redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async::<Vec<Vec<redis::Value>>>(&mut conn)
        .await
    {
        Ok(ranges) => SeedAnswer::Cluster {
            info,
            masters: ranges.into_iter().filter_map(master_of_range).collect(),
        },
        Err(e) => unanswered("CLUSTER SLOTS", &e),
    }
}

/// A command that failed: the seed went away, or it refused.
fn unanswered(command: &'static str, error: &redis::RedisError) -> SeedAnswer {
    if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
        SeedAnswer::Unreachable(error.to_string())
    } else {
        SeedAnswer::Refused(command, error.to_string())
    }
}

/// The master of one `CLUSTER SLOTS` entry: `[first, last, [host, port, id, …], replicas…]`.
fn master_of_range(range: Vec<redis::Value>) -> Option<Master> {
    let mut fields = range.into_iter();
    let first: u16 = redis::from_redis_value(fields.next()?).ok()?;
    let last: u16 = redis::from_redis_value(fields.next()?).ok()?;
    let node: Vec<redis::Value> = redis::from_redis_value(fields.next()?).ok()?;
    let mut node = node.into_iter();
    let host: String = redis::from_redis_value(node.next()?).ok()?;
    let port: u16 = redis::from_redis_value(node.next()?).ok()?;
    Some(Master {
        host,
        port,
        slots: format!("{first}-{last}"),
    })
}

/// `PING` to every master, each on a connection of its own made from `seed`'s URL (so with its
/// credentials and TLS), all at once.
async fn ping_masters(seed: &str, masters: &[Master]) -> Result<(), ClusterCheckError> {
    let pings = masters.iter().map(|master| async move {
        let result = async {
            let url = master_url(seed, master)?;
            let mut conn = open_probe(&url).await.map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        result
            .err()
            .map(|error| ClusterCheckError::MasterUnreachable {
                master: format!("{}:{}", master.host, master.port),
                slots: master.slots.clone(),
                error,
            })
    });
    match join_all(pings).await.into_iter().flatten().next() {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// `seed`'s URL with the host and port of `master`.
fn master_url(seed: &str, master: &Master) -> Result<String, String> {
    let mut url = url::Url::parse(seed).map_err(|e| e.to_string())?;
    url.set_host(Some(&master.host))
        .map_err(|e| format!("the cluster announces a host that is not one: {e}"))?;
    url.set_port(Some(master.port))
        .map_err(|()| "a URL without a port".to_owned())?;
    Ok(url.into())
}

/// A connection of its own to `url` for the check, its connect and each reply bounded by
/// [`CONNECT_TIMEOUT`].
async fn open_probe(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The value of `field` in an `INFO`-style reply (`field:value` lines).
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests;
