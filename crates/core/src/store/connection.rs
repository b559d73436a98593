//! The store's Redis connections, on one Redis or on a Redis Cluster, behind one handle
//! ([`Connection`]) that every caller uses the same way (`query_async`, `invoke_async`,
//! pipelines), and the [`Connector`] that opens them.
//!
//! On one Redis a connection is a [`ConnectionManager`] (multiplexed, reconnecting) that sends a
//! command again, once, when it could not even be sent. On a cluster it is a
//! [`ClusterConnection`]: one multiplexed connection per node, each command routed by its key's
//! hash slot, `MOVED`/`ASK` followed and the slot map refreshed by the client, which also retries
//! within [`RESPONSE_TIMEOUT`] on its own, so there is nothing to add here. Either kind opens
//! lazily: building one never waits for Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long opening a connection may take before the store reports Redis as unavailable.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of a failed reconnection before commands fail with `Unavailable`; kept short so that
/// with Redis down the API answers 503 at once (the next command starts another round).
const RECONNECT_ATTEMPTS: usize = 1;
/// How long a command may take before the connection is given up as broken. It must exceed the
/// longest blocking read (the worker blocks for 500 ms) and the longest script (a cascade). On a
/// cluster it also bounds a command's retries and redirections together.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on a multiplexed connection, to one Redis or to a cluster. Cheap to clone; clones
/// share the sockets.
///
/// On one Redis: after Redis went away, the manager keeps the error of its last reconnection
/// attempt and hands it to the next command while it starts another attempt. That error is a
/// refused connection: the command never reached Redis, so sending it again, once, is safe even
/// for a write, and spares a caller a 503 once Redis is back. A command that failed any other way
/// is not repeated, since Redis may have run it.
///
/// On a cluster: the client follows `MOVED`/`ASK` and refreshes its slot map when a node answers
/// with one, but after a node has died it only reconnects to that same address, so a connection
/// that learned the slot map before a failover can keep sending the dead master's slots to it
/// for ever. So a cluster connection that keeps failing as unreachable for [`RENEW_AFTER`] is
/// replaced by a new one, which learns the slot map from the seeds again (see [`Renewing`]).
#[derive(Clone)]
pub struct Connection(Kind);

#[derive(Clone)]
enum Kind {
    Single(ConnectionManager),
    Cluster(Arc<Renewing>),
}

/// How long a cluster connection may keep failing as unreachable before it is replaced.
const RENEW_AFTER: Duration = Duration::from_secs(1);

/// A cluster connection that replaces itself when it keeps failing (see [`Connection`]).
pub(super) struct Renewing {
    client: ClusterClient,
    current: RwLock<ClusterConnection>,
    /// Since when commands have been failing as unreachable, if they are. Read without a lock
    /// on every command's success, which is the common case.
    failing_since: Mutex<Option<Instant>>,
    failing: AtomicBool,
}

impl Renewing {
    fn current(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Notes how a command ended, and after [`RENEW_AFTER`] of unreachable answers opens a new
    /// connection in place of the current one (commands already sent finish on the old one).
    fn note<T>(&self, result: &redis::RedisResult<T>) {
        let unreachable = result.as_ref().is_err_and(|e| {
            is_unreachable(e) || matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN"))
        });
        if !unreachable && !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut since = self
            .failing_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !unreachable {
            *since = None;
            self.failing.store(false, Ordering::Relaxed);
            return;
        }
        let now = Instant::now();
        match *since {
            None => {
                *since = Some(now);
                self.failing.store(true, Ordering::Relaxed);
            }
            Some(started) if now.duration_since(started) >= RENEW_AFTER => {
                *since = Some(now);
                tracing::warn!("a Redis Cluster connection keeps failing; opening a new one");
                let fresh = self
                    .client
                    .get_pending_async_connection_with_config(cluster_config());
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            }
            Some(_) => {}
        }
    }
}

/// Whether `err` says the command could not reach Redis or its answer never came (as opposed to
/// an answer from Redis): the connection-level part of [`super::StoreError::Unavailable`].
pub(super) fn is_unreachable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.kind() == redis::ErrorKind::ClusterConnectionNotFound
}

/// The client's timeouts again: a config replaces them, unset ones included.
fn cluster_config() -> redis::cluster::ClusterConfig {
    redis::cluster::ClusterConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT)
}

impl Connection {
    /// Whether this connection is to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Kind::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Kind::Single(manager) => Box::pin(async move {
                match manager.req_packed_command(cmd).await {
                    Err(e) if e.is_connection_refusal() => manager.req_packed_command(cmd).await,
                    result => result,
                }
            }),
            Kind::Cluster(renewing) => Box::pin(async move {
                let result = renewing.current().req_packed_command(cmd).await;
                renewing.note(&result);
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Kind::Single(manager) => Box::pin(async move {
                match manager.req_packed_commands(pipeline, offset, count).await {
                    Err(e) if e.is_connection_refusal() => {
                        manager.req_packed_commands(pipeline, offset, count).await
                    }
                    result => result,
                }
            }),
            Kind::Cluster(renewing) => Box::pin(async move {
                let result = renewing
                    .current()
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                renewing.note(&result);
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Kind::Single(manager) => manager.get_db(),
            Kind::Cluster(renewing) => renewing.current().get_db(),
        }
    }
}

/// Opens the store's connections: to one Redis, or to a cluster through its seed nodes.
#[derive(Clone)]
pub(super) enum Connector {
    Single(redis::Client),
    Cluster {
        /// Boxed: it is several times the size of a single Redis's client.
        client: Box<ClusterClient>,
        /// As configured (passwords included): the start-up check asks each of them.
        seeds: Vec<String>,
    },
}

impl Connector {
    /// A connector to the Redis at `url`.
    pub(super) fn single(url: &str) -> anyhow::Result<Self> {
        // RESP3, so a connection learns at once that Redis went away and reconnects in the
        // background, instead of failing the next command to find out.
        let info =
            redis::IntoConnectionInfo::into_connection_info(url).context("invalid Redis URL")?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client =
            redis::Client::open(info.set_redis_settings(settings)).context("invalid Redis URL")?;
        Ok(Self::Single(client))
    }

    /// A connector to the Redis Cluster that `seeds` belong to.
    pub(super) fn cluster(seeds: &[impl AsRef<str>]) -> anyhow::Result<Self> {
        let seeds: Vec<String> = seeds.iter().map(|s| s.as_ref().to_owned()).collect();
        // RESP3 for the same reason as on one Redis: each node's connection hears at once that
        // its node went away.
        let client = ClusterClient::builder(seeds.iter().map(String::as_str))
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .context("invalid Redis Cluster seed nodes")?;
        Ok(Self::Cluster {
            client: Box::new(client),
            seeds,
        })
    }

    /// The seed nodes, on a cluster.
    pub(super) fn seeds(&self) -> Option<&[String]> {
        match self {
            Self::Cluster { seeds, .. } => Some(seeds),
            Self::Single(_) => None,
        }
    }

    /// A new connection of its own, which connects on first use and reconnects after a failure.
    ///
    /// A cluster connection's driver is a task on the current Tokio runtime, started here, so on
    /// a cluster this must run inside one: outside, it is an error rather than a panic.
    pub(super) fn open(&self) -> anyhow::Result<Connection> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(RECONNECT_ATTEMPTS)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(200));
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .context("could not set up a Redis connection")?;
                Ok(Connection(Kind::Single(manager)))
            }
            Self::Cluster { client, .. } => {
                tokio::runtime::Handle::try_current().context(
                    "a Redis Cluster connection must be opened inside a Tokio runtime, which runs \
                     its driver",
                )?;
                let cluster = client.get_pending_async_connection_with_config(cluster_config());
                Ok(Connection(Kind::Cluster(Arc::new(Renewing {
                    client: client.as_ref().clone(),
                    current: RwLock::new(cluster),
                    failing_since: Mutex::new(None),
                    failing: AtomicBool::new(false),
                }))))
            }
        }
    }
}

impl Connection {
    /// Waits until `replicas` replicas have acknowledged every write this connection sent to the
    /// master of `key`'s hash slot, for at most `timeout`, and gives how many did (`WAIT`).
    ///
    /// `WAIT` counts the writes of the connection it is sent on, so it must follow the write on
    /// the same socket: on a cluster it is routed to the slot's master (the client's default for
    /// `WAIT` is every master, which would also wait on writes unrelated to this one). It blocks
    /// its socket meanwhile, so other commands multiplexed on it wait too; on loopback an
    /// acknowledgement takes well under a millisecond.
    pub async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> redis::RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        let millis = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        wait.arg(replicas).arg(millis);
        match &mut self.0 {
            Kind::Single(manager) => wait.query_async(manager).await,
            Kind::Cluster(renewing) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                // The same connection as the write unless it was renewed in between, which takes
                // a second of failures (the write itself succeeded on it).
                let mut cluster = renewing.current();
                let slot = crate::keys::key_slot(key.as_bytes());
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                let reply = cluster.route_command(wait, routing).await;
                renewing.note(&reply);
                redis::from_redis_value(reply?).map_err(Into::into)
            }
        }
    }
}

/// Commands, each on the keys of one hash slot, built once for [`Connection::send_batch`],
/// which may send them again (after Redis was unavailable) without building them again.
#[derive(Clone, Default)]
pub struct Batch(Pipeline);

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `command`; its reply comes in this place.
    pub fn add(&mut self, command: Cmd) -> &mut Self {
        self.0.add_command(command);
        self
    }

    /// Whether it holds no command.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Cmd> for Batch {
    fn from_iter<I: IntoIterator<Item = Cmd>>(commands: I) -> Self {
        let mut batch = Self::new();
        for command in commands {
            batch.add(command);
        }
        batch
    }
}

impl Connection {
    /// Runs `commands`, each on keys of one hash slot, all at once, and gives their replies in
    /// order (see [`Connection::send_batch`]).
    pub async fn each<T: redis::FromRedisValue>(
        &self,
        commands: impl IntoIterator<Item = Cmd>,
    ) -> Result<Vec<T>, super::StoreError> {
        self.send_batch(&commands.into_iter().collect()).await
    }

    /// Runs the commands of `batch` all at once, and gives their replies in order.
    ///
    /// On one Redis they are one pipeline: one message to the connection's driver and one write,
    /// run by Redis in this order. Commands on keys of different slots cannot share a pipeline
    /// on a cluster; there they are sent concurrently, each routed on its own, and go out
    /// together on each node's multiplexed connection, in no promised order.
    ///
    /// An error reply to any command fails the whole call, as on the cluster: the commands
    /// before it (and, on one Redis, after it) have run.
    pub async fn send_batch<T: redis::FromRedisValue>(
        &self,
        batch: &Batch,
    ) -> Result<Vec<T>, super::StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if let Kind::Single(_) = &self.0 {
            let mut conn = self.clone();
            return Ok(batch.0.query_async::<Vec<T>>(&mut conn).await?);
        }
        let replies = batch.0.cmd_iter().map(|command| {
            let mut conn = self.clone();
            async move { command.query_async::<T>(&mut conn).await }
        });
        Ok(futures_util::future::try_join_all(replies).await?)
    }
}
