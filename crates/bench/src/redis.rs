//! A private `redis-server` on a free loopback port, killed when dropped, and the few commands
//! the benchmark sends it: `FLUSHALL` between scenarios, `INFO` for the cost figures. Also a
//! private Redis Cluster of such servers ([`Storage::cluster`]), whose figures are the sums over
//! its masters, with the busiest master's share beside them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::free_port;

/// Commands the benchmark itself sends; left out of the per-delivery command counts.
const OWN_COMMANDS: &[&str] = &["info", "flushall", "ping", "hello", "client|setinfo"];

/// A `redis-server` child without persistence, killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    conn: MultiplexedConnection,
}

impl RedisServer {
    /// Starts `binary` on a free loopback port and waits until it answers.
    pub async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(binary, dir, &[]).await
    }

    /// [`RedisServer::start`] with more `redis-server` arguments.
    async fn start_with(binary: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("redis.log")).context("creating redis.log")?;
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (is it on PATH?)", binary.display()))?;
        // Owned by a guard from here on, so an error below still kills it.
        let mut guard = ChildGuard(Some(child));
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).context("redis URL")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let conn = loop {
            if let Some(child) = guard.0.as_mut() {
                if let Some(status) = child.try_wait().context("checking redis-server")? {
                    bail!(
                        "redis-server exited at start-up ({status}); see its log in {}",
                        dir.display()
                    );
                }
            }
            let attempt = tokio::time::timeout(
                Duration::from_secs(1),
                client.get_multiplexed_async_connection(),
            )
            .await;
            if let Ok(Ok(mut conn)) = attempt {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    break conn;
                }
            }
            if Instant::now() > deadline {
                bail!("redis-server on port {port} did not answer within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let child = guard.0.take().context("redis-server child")?;
        Ok(Self { child, port, conn })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Empties every database.
    pub async fn flush_all(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = with_timeout(redis::cmd("FLUSHALL").query_async(&mut conn))
            .await
            .context("FLUSHALL")?;
        Ok(())
    }

    /// Keys in the database.
    async fn key_count(&self) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        with_timeout(redis::cmd("DBSIZE").query_async(&mut conn))
            .await
            .context("DBSIZE")
    }

    /// `INFO <section>` as text.
    pub async fn info(&self, section: &str) -> anyhow::Result<String> {
        let mut conn = self.conn.clone();
        with_timeout(redis::cmd("INFO").arg(section).query_async(&mut conn))
            .await
            .with_context(|| format!("INFO {section}"))
    }

    /// Commands executed so far, leaving out the benchmark's own.
    pub async fn command_count(&self) -> anyhow::Result<CommandCount> {
        Ok(parse_command_calls(&self.info("commandstats").await?))
    }

    /// `used_memory` in bytes.
    pub async fn used_memory(&self) -> anyhow::Result<u64> {
        let info = self.info("memory").await?;
        info_field(&info, "used_memory")
            .and_then(|v| v.parse().ok())
            .context("no used_memory in INFO memory")
    }

    /// CPU seconds the server has used (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`).
    pub async fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let info = self.info("cpu").await?;
        let field = |name: &str| -> anyhow::Result<f64> {
            info_field(&info, name)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {name} in INFO cpu"))
        };
        Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
    }

    /// Starts a `MONITOR` that counts commands sent by clients apart from those run inside Lua
    /// scripts. MONITOR slows Redis down: use it only for short samples outside timed phases.
    async fn monitor(&self, counts: &Arc<MonitorCounts>) -> anyhow::Result<JoinHandle<()>> {
        let mut stream = tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        .context("connecting for MONITOR: timed out")?
        .context("connecting for MONITOR")?;
        stream
            .write_all(b"MONITOR\r\n")
            .await
            .context("sending MONITOR")?;
        let mut lines = BufReader::new(stream).lines();
        let first = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .context("MONITOR: no answer")?
            .context("MONITOR")?;
        if first.as_deref() != Some("+OK") {
            bail!("MONITOR answered {first:?}");
        }
        let shared = Arc::clone(counts);
        Ok(tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                match classify_monitor_line(&line) {
                    Some(MonitorLine::Client) => shared.client.fetch_add(1, Ordering::Relaxed),
                    Some(MonitorLine::Script) => shared.script.fetch_add(1, Ordering::Relaxed),
                    None => 0,
                };
            }
        }))
    }

    /// The server's version, e.g. `7.0.15`.
    pub async fn version(&self) -> anyhow::Result<String> {
        let info = self.info("server").await?;
        info_field(&info, "redis_version")
            .map(str::to_owned)
            .context("no redis_version in INFO server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `MONITOR` on every node; stopped when dropped.
pub struct Monitor {
    counts: Arc<MonitorCounts>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct MonitorCounts {
    client: AtomicU64,
    script: AtomicU64,
}

impl Monitor {
    /// Stops monitoring and returns (commands sent by clients, commands run inside scripts),
    /// the benchmark's own left out.
    pub async fn stop(self) -> (u64, u64) {
        // Let the lines already sent arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for task in &self.tasks {
            task.abort();
        }
        (
            self.counts.client.load(Ordering::Relaxed),
            self.counts.script.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Masters of the benchmark's cluster: the smallest Redis Cluster `redis-cli` creates.
pub const CLUSTER_MASTERS: usize = 3;

/// Where pubhook keeps its data in a run: one `redis-server`, or a Redis Cluster of
/// [`CLUSTER_MASTERS`] masters (no replicas) on loopback. Every figure is the sum over the
/// nodes; [`Storage::command_counts`] and [`Storage::key_counts`] give them node by node.
pub struct Storage {
    nodes: Vec<RedisServer>,
    cluster: bool,
}

impl Storage {
    /// One private `redis-server`.
    pub async fn single(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            nodes: vec![RedisServer::start(binary, dir).await?],
            cluster: false,
        })
    }

    /// A private Redis Cluster: [`CLUSTER_MASTERS`] servers with `--cluster-enabled yes`, joined
    /// by `redis-cli --cluster create` (the `redis-cli` beside `redis_server`, or on `PATH`),
    /// which gives each master an equal, contiguous range of slots.
    pub async fn cluster(redis_server: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut nodes = Vec::with_capacity(CLUSTER_MASTERS);
        for n in 0..CLUSTER_MASTERS {
            let node_dir = dir.join(format!("node{n}"));
            // A node keeps the cluster it was in (`nodes.conf`) in its folder: a folder left by
            // an earlier run would make it refuse to join a new cluster.
            if node_dir.exists() {
                std::fs::remove_dir_all(&node_dir)
                    .with_context(|| format!("clearing {}", node_dir.display()))?;
            }
            let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"];
            nodes.push(RedisServer::start_with(redis_server, &node_dir, &args).await?);
        }
        let cli = redis_server
            .parent()
            .map(|bin| bin.join("redis-cli"))
            .filter(|cli| cli.is_file())
            .unwrap_or_else(|| "redis-cli".into());
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = tokio::process::Command::new(&cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output();
        let created = tokio::time::timeout(Duration::from_secs(30), created)
            .await
            .context("redis-cli --cluster create did not finish within 30 s")?
            .with_context(|| format!("running {} (is it on PATH?)", cli.display()))?;
        if !created.status.success() {
            bail!(
                "redis-cli --cluster create failed ({}): {}",
                created.status,
                String::from_utf8_lossy(&created.stdout)
            );
        }
        let this = Self {
            nodes,
            cluster: true,
        };
        this.wait_until_ok().await?;
        Ok(this)
    }

    /// Waits until every node says `cluster_state:ok`.
    async fn wait_until_ok(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ok = 0;
            for node in &self.nodes {
                let mut conn = node.conn.clone();
                let info: String =
                    with_timeout(redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn))
                        .await
                        .context("CLUSTER INFO")?;
                ok += usize::from(info_field(&info, "cluster_state") == Some("ok"));
            }
            if ok == self.nodes.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the benchmark's Redis Cluster was not ok within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `PUBHOOK_*` variable that points pubhook here.
    pub fn pubhook_env(&self) -> (&'static str, String) {
        let urls: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        if self.cluster {
            ("PUBHOOK_REDIS_CLUSTER_NODES", urls.join(","))
        } else {
            ("PUBHOOK_REDIS_URL", urls.join(","))
        }
    }

    /// The URL of the one server; an error on a cluster.
    pub fn url(&self) -> anyhow::Result<String> {
        match self.nodes.as_slice() {
            [node] if !self.cluster => Ok(node.url()),
            _ => bail!("a scenario that needs one Redis ran on the cluster"),
        }
    }

    /// A description for the report's header, e.g. `127.0.0.1:6000` or `a cluster of 3 masters`.
    pub fn describe(&self) -> String {
        if self.cluster {
            format!("a cluster of {} masters", self.nodes.len())
        } else {
            self.nodes.iter().map(RedisServer::url).collect()
        }
    }

    /// Empties every node.
    pub async fn flush_all(&self) -> anyhow::Result<()> {
        for node in &self.nodes {
            node.flush_all().await?;
        }
        Ok(())
    }

    /// Commands executed so far on all nodes, the benchmark's own left out.
    pub async fn command_count(&self) -> anyhow::Result<CommandCount> {
        let mut sum = CommandCount::default();
        for count in self.command_counts().await? {
            sum.total += count.total;
            sum.scripts += count.scripts;
        }
        Ok(sum)
    }

    /// [`Storage::command_count`] node by node.
    pub async fn command_counts(&self) -> anyhow::Result<Vec<CommandCount>> {
        let mut counts = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            counts.push(node.command_count().await?);
        }
        Ok(counts)
    }

    /// Keys held, node by node.
    pub async fn key_counts(&self) -> anyhow::Result<Vec<u64>> {
        let mut counts = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            counts.push(node.key_count().await?);
        }
        Ok(counts)
    }

    /// `used_memory` of all nodes, in bytes.
    pub async fn used_memory(&self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for node in &self.nodes {
            sum += node.used_memory().await?;
        }
        Ok(sum)
    }

    /// CPU seconds used by all nodes.
    pub async fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for node in &self.nodes {
            sum += node.cpu_seconds().await?;
        }
        Ok(sum)
    }

    /// A `MONITOR` on every node (see [`Monitor::stop`]).
    pub async fn monitor(&self) -> anyhow::Result<Monitor> {
        let counts = Arc::new(MonitorCounts::default());
        let mut monitor = Monitor {
            counts: Arc::clone(&counts),
            tasks: Vec::with_capacity(self.nodes.len()),
        };
        for node in &self.nodes {
            monitor.tasks.push(node.monitor(&counts).await?);
        }
        Ok(monitor)
    }

    /// The servers' version.
    pub async fn version(&self) -> anyhow::Result<String> {
        match self.nodes.first() {
            Some(node) => node.version().await,
            None => bail!("no Redis node"),
        }
    }
}

/// The busiest of `values` over their mean: 1 when they are even, up to their count when one
/// has everything. `None` without values or when all are 0.
pub fn busiest_over_mean(values: &[u64]) -> Option<f64> {
    let sum: u64 = values.iter().sum();
    let busiest = values.iter().copied().max()?;
    (sum > 0).then(|| busiest as f64 * values.len() as f64 / sum as f64)
}

/// Who ran a command seen by MONITOR.
#[derive(Debug, PartialEq, Eq)]
enum MonitorLine {
    /// A client sent it.
    Client,
    /// A Lua script ran it.
    Script,
}

/// Reads `+1700000000.123456 [0 127.0.0.1:5555] "xadd" ...` (or `[0 lua]`); `None` for the
/// benchmark's own commands and anything else.
fn classify_monitor_line(line: &str) -> Option<MonitorLine> {
    let rest = line.strip_prefix('+')?;
    let open = rest.find(" [")?;
    let close = open + rest[open..].find("] \"")?;
    let source = &rest[open + 2..close];
    let command = rest[close + 3..].split('"').next()?.to_lowercase();
    if OWN_COMMANDS.contains(&command.as_str()) || command == "monitor" {
        return None;
    }
    if source.ends_with(" lua") {
        Some(MonitorLine::Script)
    } else {
        Some(MonitorLine::Client)
    }
}

/// Kills the child it holds when dropped.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn with_timeout<T>(
    query: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .context("Redis did not answer within 10 s")?
        .map_err(Into::into)
}

/// The value of `name:` in INFO text.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Commands Redis executed, from `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandCount {
    /// Every command, those a Lua script ran included.
    pub total: u64,
    /// Script invocations (`EVAL`, `EVALSHA`, `FCALL` and their read-only forms).
    pub scripts: u64,
}

impl CommandCount {
    /// What ran between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            total: self.total.saturating_sub(earlier.total),
            scripts: self.scripts.saturating_sub(earlier.scripts),
        }
    }
}

/// Script invocation commands.
const SCRIPT_COMMANDS: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
];

/// The sums of `calls=` over `INFO commandstats`, without [`OWN_COMMANDS`].
fn parse_command_calls(info: &str) -> CommandCount {
    let mut count = CommandCount::default();
    let calls = info
        .lines()
        .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| !OWN_COMMANDS.contains(name))
        .filter_map(|(name, stats)| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|calls| calls.parse::<u64>().ok())
                .map(|calls| (name, calls))
        });
    for (name, calls) in calls {
        count.total += calls;
        if SCRIPT_COMMANDS.contains(&name) {
            count.scripts += calls;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_summed_without_the_benchmarks_own() {
        let info = "# Commandstats\r\n\
            cmdstat_info:calls=7,usec=10,usec_per_call=1.4\r\n\
            cmdstat_xadd:calls=10,usec=50,usec_per_call=5.0,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_evalsha:calls=5,usec=99,usec_per_call=19.8\r\n\
            cmdstat_flushall:calls=1,usec=3,usec_per_call=3.0\r\n";
        assert_eq!(
            parse_command_calls(info),
            CommandCount {
                total: 15,
                scripts: 5
            }
        );
        assert_eq!(
            info_field("a:1\r\nused_memory:1234\r\n", "used_memory"),
            Some("1234")
        );
        assert_eq!(info_field("used_memory_rss:9\r\n", "used_memory"), None);
    }

    #[test]
    fn the_spread_is_the_busiest_over_the_mean() {
        assert_eq!(busiest_over_mean(&[10, 10, 10]), Some(1.0));
        assert_eq!(busiest_over_mean(&[30, 0, 0]), Some(3.0));
        assert_eq!(busiest_over_mean(&[2, 1, 1]), Some(1.5));
        assert_eq!(busiest_over_mean(&[0, 0]), None);
        assert_eq!(busiest_over_mean(&[]), None);
    }

    #[test]
    fn monitor_lines_tell_clients_from_scripts() {
        let client = r#"+1700000000.123456 [0 127.0.0.1:5555] "XADD" "bench:jobs" "*" "a" "b""#;
        let script = r#"+1700000000.123457 [0 lua] "hset" "bench:k" "f" "v""#;
        let own = r#"+1700000000.123458 [0 127.0.0.1:5556] "info" "commandstats""#;
        assert_eq!(classify_monitor_line(client), Some(MonitorLine::Client));
        assert_eq!(classify_monitor_line(script), Some(MonitorLine::Script));
        assert_eq!(classify_monitor_line(own), None);
        assert_eq!(classify_monitor_line("+OK"), None);
    }
}
