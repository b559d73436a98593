//! A private `redis-server` on a free loopback port, killed when dropped, and the few commands
//! the benchmark sends it: `FLUSHALL` between scenarios, `INFO` for the cost figures.

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
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("redis.log")).context("creating redis.log")?;
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
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

    /// Starts a `MONITOR` that counts commands sent by clients apart from those run inside Lua
    /// scripts. MONITOR slows Redis down: use it only for short samples outside timed phases.
    pub async fn monitor(&self) -> anyhow::Result<Monitor> {
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
        let counts = Arc::new(MonitorCounts::default());
        let shared = Arc::clone(&counts);
        let task = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                match classify_monitor_line(&line) {
                    Some(MonitorLine::Client) => shared.client.fetch_add(1, Ordering::Relaxed),
                    Some(MonitorLine::Script) => shared.script.fetch_add(1, Ordering::Relaxed),
                    None => 0,
                };
            }
        });
        Ok(Monitor { counts, task })
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

/// A running `MONITOR`; stopped when dropped.
pub struct Monitor {
    counts: Arc<MonitorCounts>,
    task: JoinHandle<()>,
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
        self.task.abort();
        (
            self.counts.client.load(Ordering::Relaxed),
            self.counts.script.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
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
