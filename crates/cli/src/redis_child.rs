//! Finds the Redis to use when none is configured, starting a private `redis-server` if need be.
//!
//! Order: a configured URL is used as given; else a Redis answering PING on `127.0.0.1:6379`;
//! else `redis-server` from `PATH`, started as a child with its data in `./var/redis`. The child
//! is pubhook's to stop: [`RedisChild::shutdown`] asks it to `SHUTDOWN` so the append-only file is
//! flushed, and dropping a [`RedisChild`] kills it.
//!
//! The child runs in its own process group so that Ctrl-C in a terminal reaches pubhook only:
//! Redis must outlive the API's graceful drain, not die alongside it.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout, Instant};

/// Where a local Redis is looked for, and where a started one listens.
const LOCAL_REDIS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 6379);
/// The data folder of a started `redis-server`, relative to the working directory.
const DATA_DIR: &str = "var/redis";
/// The log of a started `redis-server`, inside its data folder.
const LOG_FILE: &str = "redis.log";
/// How long a PING (connect, ask, answer) may take before nothing counts as listening.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a started `redis-server` may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping `redis-server` may take to flush and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the Redis log shown when it fails to start.
const LOG_TAIL_LINES: usize = 15;

/// Returns the Redis URL to use and, if pubhook started it, the `redis-server` child that must
/// stay alive as long as the URL is used.
pub async fn resolve_redis(
    configured: Option<&str>,
) -> anyhow::Result<(String, Option<RedisChild>)> {
    if let Some(url) = configured {
        return Ok((url.to_owned(), None));
    }
    let url = format!("redis://{LOCAL_REDIS}");
    if let Ok(reply) = ping(LOCAL_REDIS, PING_TIMEOUT).await {
        return match classify(&reply) {
            Reply::Ready | Reply::Loading => {
                tracing::info!(redis = %LOCAL_REDIS, "using the Redis answering on {LOCAL_REDIS}");
                Ok((url, None))
            }
            Reply::NeedsPassword => bail!(
                "the Redis on {LOCAL_REDIS} needs a password: set PUBHOOK_REDIS_URL, e.g. \
                 redis://:PASSWORD@127.0.0.1:6379"
            ),
            Reply::Other => bail!(
                "something on {LOCAL_REDIS} answered PING with {reply:?}, so it is not a Redis \
                 pubhook can use: stop it or set PUBHOOK_REDIS_URL"
            ),
        };
    }
    let program = find_on_path("redis-server").ok_or_else(|| {
        anyhow!(
            "no Redis answered on {LOCAL_REDIS} and redis-server is not on PATH: install it \
             (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set \
             PUBHOOK_REDIS_URL"
        )
    })?;
    let data_dir = std::env::current_dir()
        .context("could not find the working directory for Redis's data")?
        .join(DATA_DIR);
    let child = RedisChild::start(&program, LOCAL_REDIS.port(), &data_dir).await?;
    tracing::info!(
        pid = child.child.id(),
        data_dir = %data_dir.display(),
        "no Redis answered on {LOCAL_REDIS}, so pubhook started its own redis-server; its data \
         lives in {} and its log in {}",
        data_dir.display(),
        data_dir.join(LOG_FILE).display(),
    );
    Ok((url, Some(child)))
}

/// A `redis-server` pubhook started. Dropping it kills Redis (losing at most the last second of
/// writes); [`RedisChild::shutdown`] stops it cleanly.
#[derive(Debug)]
pub struct RedisChild {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
}

impl RedisChild {
    /// Starts `program` on loopback `port`, keeping its data and log in `data_dir` (created if
    /// missing), and waits until it answers PING.
    async fn start(program: &Path, port: u16, data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "could not create Redis's data folder {}",
                data_dir.display()
            )
        })?;
        let log_path = data_dir.join(LOG_FILE);
        // Redis writes to its log file once it has read its options; anything it prints before
        // (an option it refuses) goes to the same file through stdout and stderr.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("could not open {}", log_path.display()))?;
        let mut command = Command::new(program);
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(data_dir)
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
            .arg("--logfile")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().context("could not share the Redis log")?,
            ))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("could not start {}", program.display()))?;
        let mut redis = RedisChild {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            data_dir: data_dir.to_owned(),
        };
        // On failure `redis` is dropped here, which kills the child.
        redis.wait_until_ready(&log_path).await?;
        Ok(redis)
    }

    /// Waits until the child answers PING, failing with its log if it exits or takes too long.
    async fn wait_until_ready(&mut self, log_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("could not watch redis-server")?
            {
                bail!(
                    "redis-server exited as it started ({status}); the end of {}:\n{}",
                    log_path.display(),
                    log_tail(log_path)
                );
            }
            if let Ok(Reply::Ready) = ping(self.addr, PING_TIMEOUT).await.map(|r| classify(&r)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "redis-server did not answer PING on {} within {START_TIMEOUT:?}; \
                     the end of {}:\n{}",
                    self.addr,
                    log_path.display(),
                    log_tail(log_path)
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops Redis cleanly: asks it to `SHUTDOWN` (flushing the append-only file), falls back to
    /// SIGTERM, and kills it if it has not exited after a while. Problems are logged, not
    /// returned: there is nothing more the caller could do.
    pub async fn shutdown(mut self) {
        if let Err(error) = request_shutdown(self.addr).await {
            tracing::warn!(%error, "redis-server refused SHUTDOWN; sending it SIGTERM");
            self.terminate().await;
        }
        match timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(
                %status,
                data_dir = %self.data_dir.display(),
                "pubhook's redis-server stopped"
            ),
            Ok(Err(error)) => tracing::warn!(%error, "could not wait for redis-server to stop"),
            Err(_) => {
                tracing::warn!("redis-server did not stop within {STOP_TIMEOUT:?}; killing it");
                if let Err(error) = self.child.kill().await {
                    tracing::warn!(%error, "could not kill redis-server");
                }
            }
        }
    }

    /// Sends SIGTERM (on which Redis also shuts down cleanly) through `kill`, as the standard
    /// library offers only SIGKILL.
    async fn terminate(&mut self) {
        let Some(pid) = self.child.id() else {
            return; // Already exited.
        };
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if !matches!(sent, Ok(status) if status.success()) {
            tracing::warn!("could not send SIGTERM to redis-server; killing it");
            let _ = self.child.start_kill();
        }
    }
}

/// What a PING answer says about the server.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `+PONG`: a Redis ready for commands.
    Ready,
    /// A Redis still reading its data; it answers commands soon.
    Loading,
    /// A Redis that wants a password first.
    NeedsPassword,
    /// Not Redis, or a Redis refusing us for another reason.
    Other,
}

fn classify(reply: &str) -> Reply {
    match reply.split_whitespace().next().unwrap_or_default() {
        "+PONG" => Reply::Ready,
        "-LOADING" => Reply::Loading,
        "-NOAUTH" => Reply::NeedsPassword,
        _ => Reply::Other,
    }
}

/// Sends PING in RESP on a plain TCP connection and returns the first line of the answer
/// (`+PONG` from a ready Redis). Fails if nothing connects and answers within `limit`.
async fn ping(addr: SocketAddr, limit: Duration) -> io::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let mut line = String::new();
        // Bounded: whatever answers might not be Redis and might not end its line.
        BufReader::new(stream)
            .take(512)
            .read_line(&mut line)
            .await?;
        Ok(line.trim_end().to_owned())
    };
    timeout(limit, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to PING"))?
}

/// Sends `SHUTDOWN`. Redis closes the connection without answering when it complies, and answers
/// an error when it refuses.
async fn request_shutdown(addr: SocketAddr) -> io::Result<()> {
    let mut stream = timeout(PING_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "could not connect"))??;
    stream.write_all(b"*1\r\n$8\r\nSHUTDOWN\r\n").await?;
    let mut line = String::new();
    // Flushing may take a while; the caller's wait for the process bounds it.
    match timeout(
        STOP_TIMEOUT,
        BufReader::new(stream).take(512).read_line(&mut line),
    )
    .await
    {
        Ok(Ok(_)) if line.starts_with('-') => Err(io::Error::other(line.trim_end().to_owned())),
        Ok(Ok(_)) | Err(_) => Ok(()),
        // A reset rather than a clean close also means Redis went away.
        Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Ok(Err(error)) => Err(error),
    }
}

/// The executable `program` in the first `PATH` folder that has it.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let file_name = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(&file_name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// The last lines of the file at `path`, for an error message; reads at most its last 8 KiB.
fn log_tail(path: &Path) -> String {
    let read_end = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(8 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read_end() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(could not read it: {error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on (just freed by the OS).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port()
    }

    /// A fresh folder under the temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let name = format!("pubhook-redis-child-{}-{nanos}", std::process::id());
            TempDir(std::env::temp_dir().join(name))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn a_configured_url_is_used_unchanged_without_starting_redis() {
        let url = "redis://:secret@redis.example:6380/3";
        let (resolved, child) = resolve_redis(Some(url)).await.expect("configured");
        assert_eq!(resolved, url);
        assert!(child.is_none());
    }

    #[test]
    fn ping_answers_are_classified() {
        let cases = [
            ("ready", "+PONG", Reply::Ready),
            (
                "loading",
                "-LOADING Redis is loading the dataset in memory",
                Reply::Loading,
            ),
            (
                "password",
                "-NOAUTH Authentication required.",
                Reply::NeedsPassword,
            ),
            ("http server", "HTTP/1.1 400 Bad Request", Reply::Other),
            ("closed at once", "", Reply::Other),
        ];
        for (description, reply, expected) in cases {
            assert_eq!(classify(reply), expected, "{description}");
        }
    }

    #[tokio::test]
    async fn ping_fails_when_nothing_listens() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        assert!(ping(addr, PING_TIMEOUT).await.is_err());
    }

    #[test]
    fn a_missing_program_is_not_found_on_path() {
        assert_eq!(find_on_path("pubhook-no-such-program"), None);
    }

    #[tokio::test]
    async fn a_started_redis_answers_ping_and_shuts_down_with_its_data_flushed() {
        let Some(program) = find_on_path("redis-server") else {
            eprintln!("skipped: redis-server is not on PATH");
            return;
        };
        let dir = TempDir::new();
        let port = free_port();
        let redis = RedisChild::start(&program, port, &dir.0)
            .await
            .expect("redis starts");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

        assert_eq!(ping(addr, PING_TIMEOUT).await.expect("answer"), "+PONG");

        redis.shutdown().await;
        assert!(ping(addr, PING_TIMEOUT).await.is_err(), "stopped");
        assert!(
            dir.0.join(LOG_FILE).is_file(),
            "the log is in the data folder"
        );
        let aof_written = std::fs::read_dir(&dir.0)
            .expect("data folder")
            .filter_map(Result::ok)
            .any(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("appendonly")
            });
        assert!(aof_written, "append-only data in {}", dir.0.display());
    }

    #[tokio::test]
    async fn a_redis_that_cannot_start_is_reported_with_its_log() {
        let Some(program) = find_on_path("redis-server") else {
            eprintln!("skipped: redis-server is not on PATH");
            return;
        };
        // Occupy the port so redis-server cannot bind it.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = taken.local_addr().expect("address").port();
        let dir = TempDir::new();
        let message = RedisChild::start(&program, port, &dir.0)
            .await
            .map(|_| ())
            .expect_err("port taken")
            .to_string();
        assert!(
            message.contains("redis-server exited as it started"),
            "{message}"
        );
        assert!(message.contains(LOG_FILE), "{message}");
    }
}
