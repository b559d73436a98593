//! Redis for tests: one shared server per test process, random key prefixes so tests sharing it
//! never see each other's keys, and private servers that failure tests may stop and restart.
//!
//! The shared server is `PUBHOOK_TEST_REDIS_URL` when that is set: the tests then only add keys
//! under their own prefixes and never flush it. Otherwise the first caller starts a `redis-server`
//! from `PATH` on a free loopback port, without persistence, and a watchdog stops it when the
//! test process exits (a `static` is never dropped, see the `server` module).
//!
//! The same goes for a Redis Cluster (the `cluster` module): [`shared_cluster`] is
//! `PUBHOOK_TEST_REDIS_CLUSTER_NODES` or a private cluster of 3 masters, and [`PrivateCluster`]
//! is one test's own, whose masters it may kill.

mod cluster;
mod resp;
mod server;

use std::path::PathBuf;

use tokio::sync::OnceCell;

use self::server::{Mode, RedisProcess};

pub use self::cluster::{
    shared_cluster, ClusterShape, PrivateCluster, TestCluster, TEST_REDIS_CLUSTER_NODES_ENV,
};

/// The environment variable naming a Redis for tests to use instead of starting one.
pub const TEST_REDIS_URL_ENV: &str = "PUBHOOK_TEST_REDIS_URL";

/// The Redis that all tests of one process share; see [`shared_redis`].
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    /// The pid of the `redis-server` started for this process, if one was.
    pid: Option<u32>,
}

impl TestRedis {
    /// The URL to connect to, e.g. `redis://127.0.0.1:40123/0`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the test kit started this server (rather than reading `PUBHOOK_TEST_REDIS_URL`).
    pub fn is_private(&self) -> bool {
        self.pid.is_some()
    }
}

static SHARED: OnceCell<TestRedis> = OnceCell::const_new();

/// The Redis shared by every test of this process, started on first use.
///
/// Uses `PUBHOOK_TEST_REDIS_URL` when it is set; otherwise starts a private `redis-server` that
/// stops when the test process exits. Tests must keep to their own [`random_prefix`].
///
/// # Panics
///
/// If no URL is set and `redis-server` is not on `PATH` or does not start.
pub async fn shared_redis() -> &'static TestRedis {
    SHARED
        .get_or_init(|| async {
            if let Some(url) = std::env::var(TEST_REDIS_URL_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty())
            {
                return TestRedis { url, pid: None };
            }
            let program = server::redis_server_program(
                "install redis-server or set PUBHOOK_TEST_REDIS_URL to a Redis the tests may use",
            );
            let (process, port) = server::start_on_free_port(&program, Mode::Standalone).await;
            let pid = process.pid();
            // Lives as long as the process; the watchdog stops it at exit.
            process.detach();
            TestRedis {
                url: url_for_port(port),
                pid: Some(pid),
            }
        })
        .await
}

/// The environment variable that runs the suites on a Redis Cluster: when it is `1`,
/// [`shared_storage`] is the shared cluster instead of the shared Redis.
pub const TEST_ON_CLUSTER_ENV: &str = "PUBHOOK_TEST_ON_CLUSTER";

/// What the API, worker and end-to-end suites keep their data in: the shared Redis, or the shared
/// cluster when `PUBHOOK_TEST_ON_CLUSTER=1` (`make test-cluster` runs the suites that way).
#[derive(Debug, Clone, Copy)]
pub enum SharedStorage {
    /// [`shared_redis`].
    Redis(&'static TestRedis),
    /// [`shared_cluster`].
    Cluster(&'static TestCluster),
}

impl SharedStorage {
    /// The Redis URL, on a single Redis.
    pub fn redis_url(self) -> Option<&'static str> {
        match self {
            Self::Redis(redis) => Some(redis.url()),
            Self::Cluster(_) => None,
        }
    }

    /// The seed nodes, on a cluster; empty on a single Redis.
    pub fn cluster_seeds(self) -> &'static [String] {
        match self {
            Self::Redis(_) => &[],
            Self::Cluster(cluster) => cluster.seed_urls(),
        }
    }

    /// The `PUBHOOK_*` variable and value that point pubhook at it.
    pub fn pubhook_env(self) -> (&'static str, String) {
        match self {
            Self::Redis(redis) => ("PUBHOOK_REDIS_URL", redis.url().to_owned()),
            Self::Cluster(cluster) => {
                ("PUBHOOK_REDIS_CLUSTER_NODES", cluster.seed_urls().join(","))
            }
        }
    }
}

/// [`shared_redis`], or [`shared_cluster`] when `PUBHOOK_TEST_ON_CLUSTER=1`.
///
/// # Panics
///
/// As those do, or if `PUBHOOK_TEST_ON_CLUSTER` is set to anything but `0`, `1` or nothing.
pub async fn shared_storage() -> SharedStorage {
    let on_cluster = std::env::var(TEST_ON_CLUSTER_ENV).unwrap_or_default();
    match on_cluster.trim() {
        "" | "0" => SharedStorage::Redis(shared_redis().await),
        "1" => SharedStorage::Cluster(shared_cluster().await),
        other => panic!("pubhook-testkit: {TEST_ON_CLUSTER_ENV} must be 0 or 1, not {other:?}"),
    }
}

/// A fresh key prefix, `pubhook-test:<32 hex>:`, so that tests sharing a Redis never meet.
pub fn random_prefix() -> String {
    format!("pubhook-test:{}:", uuid::Uuid::new_v4().simple())
}

fn url_for_port(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/0")
}

/// A `redis-server` owned by one test, for tests of Redis failures: it can be stopped and
/// started again, empty, on the same port. Killed when dropped.
///
/// Always a server of its own, whatever `PUBHOOK_TEST_REDIS_URL` says, so `redis-server` must be
/// on `PATH`.
#[derive(Debug)]
pub struct PrivateRedis {
    program: PathBuf,
    port: u16,
    url: String,
    process: Option<RedisProcess>,
}

impl PrivateRedis {
    /// Starts a server on a free loopback port and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH` or does not start.
    pub async fn start() -> Self {
        let program = server::redis_server_program(
            "install redis-server: tests of Redis failures run their own server even when \
             PUBHOOK_TEST_REDIS_URL is set",
        );
        let (process, port) = server::start_on_free_port(&program, Mode::Standalone).await;
        Self {
            program,
            port,
            url: url_for_port(port),
            process: Some(process),
        }
    }

    /// The URL to connect to, e.g. `redis://127.0.0.1:40123/0`; the same across restarts.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback port the server listens on; the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the server (as a crash would: no clean shutdown) and waits until it has exited.
    /// Does nothing if it is already stopped.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill().await;
        }
    }

    /// Stops the server if it runs, then starts a new, empty one on the same port and waits until
    /// it answers PING.
    ///
    /// # Panics
    ///
    /// If the new server does not start, e.g. because another process took the port meanwhile.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.process = Some(server::start_on_port(&self.program, self.port).await);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use super::resp::{ask, Reply};
    use super::*;

    const PROBE: Duration = Duration::from_secs(2);

    fn address(url: &str) -> SocketAddr {
        let url = url::Url::parse(url).expect("a Redis URL");
        let port = url.port().expect("a port");
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    async fn pings(addr: SocketAddr) -> bool {
        matches!(ask(addr, &["PING"], PROBE).await, Ok(Reply::Simple(pong)) if pong == "PONG")
    }

    #[test]
    fn random_prefixes_are_distinct_and_well_formed() {
        let first = random_prefix();
        let second = random_prefix();
        assert_ne!(first, second);
        let hex = first
            .strip_prefix("pubhook-test:")
            .and_then(|rest| rest.strip_suffix(':'))
            .expect("pubhook-test:<hex>:");
        assert_eq!(hex.len(), 32);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{hex}"
        );
    }

    #[tokio::test]
    async fn the_shared_redis_answers_ping_and_is_the_same_for_every_caller() {
        let redis = shared_redis().await;
        let again = shared_redis().await;
        assert!(std::ptr::eq(redis, again));
        if redis.is_private() {
            assert!(pings(address(redis.url())).await, "{}", redis.url());
        }
    }

    #[tokio::test]
    async fn a_private_redis_stops_and_restarts_empty_on_the_same_port() {
        let mut redis = PrivateRedis::start().await;
        let addr = address(redis.url());
        assert_eq!(addr.port(), redis.port());
        assert!(pings(addr).await);
        let set = ask(addr, &["SET", "pubhook-test:k", "v"], PROBE)
            .await
            .unwrap();
        assert_eq!(set, Reply::Simple("OK".to_owned()));

        redis.stop().await;
        assert!(!redis.is_running());
        assert!(!pings(addr).await, "a stopped server does not answer");
        redis.stop().await;

        redis.restart().await;
        assert!(redis.is_running());
        assert!(
            pings(addr).await,
            "the restarted server answers on the same port"
        );
        let get = ask(addr, &["GET", "pubhook-test:k"], PROBE).await.unwrap();
        assert_eq!(get, Reply::Bulk(None), "it came back empty");
    }

    #[tokio::test]
    async fn a_dropped_private_redis_is_gone() {
        let redis = PrivateRedis::start().await;
        let addr = address(redis.url());
        drop(redis);
        assert!(!pings(addr).await);
    }
}
