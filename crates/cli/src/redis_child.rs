//! Finds the Redis to use when none is configured, starting a private `redis-server` if need be.
//!
//! Order: a configured URL is used as given; else a Redis answering PING on `127.0.0.1:6379`;
//! else the private Redis another pubhook started in this folder (its socket
//! `./var/redis/redis.sock` answers PING); else `redis-server` from `PATH`, started as a child
//! with its data in `./var/redis`.
//!
//! A started Redis has no password, so it listens on no TCP port at all: only on a unix socket
//! inside its data folder, which is made `0700`, so only the user running pubhook can reach it
//! (a TCP port on loopback would be open to every local user and to any web page that makes the
//! browser send to it). The child is pubhook's to stop: [`RedisChild::shutdown`] asks it to `SHUTDOWN` so the append-only file is
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
/// The unix socket of a started `redis-server`, inside its data folder.
const SOCKET_FILE: &str = "redis.sock";
/// Longest unix socket path the operating system takes (108 bytes on Linux, 104 on macOS).
const MAX_SOCKET_PATH_BYTES: usize = 100;
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
    let data_dir = std::env::current_dir()
        .context("could not find the working directory for Redis's data")?
        .join(DATA_DIR);
    resolve_local_redis(LOCAL_REDIS, &data_dir).await
}

/// [`resolve_redis`] without a configured URL: a Redis on `local`, else the private one whose
/// socket is in `data_dir`, else a new private one there.
async fn resolve_local_redis(
    local: SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<(String, Option<RedisChild>)> {
    let url = format!("redis://{local}");
    if let Ok(reply) = ping(&Target::Tcp(local), PING_TIMEOUT).await {
        return match classify(&reply) {
            Reply::Ready | Reply::Loading => {
                tracing::info!(redis = %local, "using the Redis answering on {local}");
                Ok((url, None))
            }
            Reply::NeedsPassword => bail!(
                "the Redis on {local} needs a password: set PUBHOOK_REDIS_URL, e.g. \
                 redis://:PASSWORD@127.0.0.1:6379"
            ),
            Reply::Other => bail!(
                "something on {local} answered PING with {reply:?}, so it is not a Redis \
                 pubhook can use: stop it or set PUBHOOK_REDIS_URL"
            ),
        };
    }
    let socket = Target::Unix(data_dir.join(SOCKET_FILE));
    if let Ok(Reply::Ready) = ping(&socket, PING_TIMEOUT).await.map(|r| classify(&r)) {
        tracing::info!(
            socket = %socket,
            "using the private redis-server another pubhook started in this folder"
        );
        return Ok((socket.url(), None));
    }
    let program = find_on_path("redis-server").ok_or_else(|| {
        anyhow!(
            "no Redis answered on {local} and redis-server is not on PATH: install it \
             (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set \
             PUBHOOK_REDIS_URL"
        )
    })?;
    let child = RedisChild::start(&program, data_dir).await?;
    tracing::info!(
        pid = child.child.id(),
        data_dir = %data_dir.display(),
        "no Redis answered on {local}, so pubhook started its own redis-server; its data \
         lives in {} and its log in {}",
        data_dir.display(),
        data_dir.join(LOG_FILE).display(),
    );
    Ok((child.target.url(), Some(child)))
}

/// Where a Redis listens.
#[derive(Debug, Clone)]
enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Self::Tcp(addr) => format!("redis://{addr}"),
            Self::Unix(path) => format!("unix://{}", path.display()),
        }
    }

    async fn connect(&self) -> io::Result<Box<dyn Duplex>> {
        Ok(match self {
            Self::Tcp(addr) => Box::new(TcpStream::connect(addr).await?),
            #[cfg(unix)]
            Self::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            #[cfg(not(unix))]
            Self::Unix(_) => return Err(io::Error::other("unix sockets need a unix system")),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A connection to Redis, over TCP or a unix socket.
trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// A `redis-server` pubhook started. Dropping it kills Redis (losing at most the last second of
/// writes); [`RedisChild::shutdown`] stops it cleanly.
#[derive(Debug)]
pub struct RedisChild {
    child: Child,
    target: Target,
    data_dir: PathBuf,
}

impl RedisChild {
    /// Starts `program` listening only on a unix socket in `data_dir`, keeping its data and log
    /// there too (the folder is created if missing and made private to this user), and waits
    /// until it answers PING.
    async fn start(program: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "could not create Redis's data folder {}",
                data_dir.display()
            )
        })?;
        make_private(data_dir)?;
        let socket = data_dir.join(SOCKET_FILE);
        if socket.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
            bail!(
                "the path of Redis's socket {} is longer than unix sockets allow: run pubhook \
                 from a folder with a shorter path, or set PUBHOOK_REDIS_URL",
                socket.display()
            );
        }
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
            .args(["--port", "0", "--unixsocketperm", "700"])
            .arg("--unixsocket")
            .arg(&socket)
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
            target: Target::Unix(socket),
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
            if let Ok(Reply::Ready) = ping(&self.target, PING_TIMEOUT).await.map(|r| classify(&r)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "redis-server did not answer PING on {} within {START_TIMEOUT:?}; \
                     the end of {}:\n{}",
                    self.target,
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
        if let Err(error) = request_shutdown(&self.target).await {
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

/// Sends PING in RESP on a plain connection and returns the first line of the answer (`+PONG`
/// from a ready Redis). Fails if nothing connects and answers within `limit`.
async fn ping(target: &Target, limit: Duration) -> io::Result<String> {
    let exchange = async {
        let mut stream = target.connect().await?;
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
async fn request_shutdown(target: &Target) -> io::Result<()> {
    let mut stream = timeout(PING_TIMEOUT, target.connect())
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

/// Makes `dir` reachable by its owner only (`0700`), since the socket in it has no password.
#[cfg(unix)]
fn make_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("could not make {} private (0700)", dir.display()))
}

#[cfg(not(unix))]
fn make_private(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
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
        assert!(ping(&Target::Tcp(addr), PING_TIMEOUT).await.is_err());
    }

    #[test]
    fn a_missing_program_is_not_found_on_path() {
        assert_eq!(find_on_path("pubhook-no-such-program"), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_started_redis_listens_only_on_a_private_socket_and_flushes_on_shutdown() {
        use std::os::unix::fs::PermissionsExt as _;
        let Some(program) = find_on_path("redis-server") else {
            eprintln!("skipped: redis-server is not on PATH");
            return;
        };
        let dir = TempDir::new();
        let redis = RedisChild::start(&program, &dir.0)
            .await
            .expect("redis starts");
        let target = Target::Unix(dir.0.join(SOCKET_FILE));
        assert_eq!(redis.target.url(), target.url());

        assert_eq!(ping(&target, PING_TIMEOUT).await.expect("answer"), "+PONG");
        let mode = |path: &Path| path.metadata().expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.0), 0o700, "the data folder is private");
        assert_eq!(
            mode(&dir.0.join(SOCKET_FILE)),
            0o700,
            "the socket is private"
        );
        let pid = redis.child.id().expect("running");
        // Redis opened no TCP listener: every socket it holds is the unix one or a client.
        let tcp_ports = tcp_listeners_of(pid);
        assert!(tcp_ports.is_empty(), "redis listens on TCP {tcp_ports:?}");

        redis.shutdown().await;
        assert!(ping(&target, PING_TIMEOUT).await.is_err(), "stopped");
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

    /// Local ports of TCP sockets in LISTEN state held by process `pid` (Linux `/proc`).
    #[cfg(unix)]
    fn tcp_listeners_of(pid: u32) -> Vec<String> {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                    .filter_map(|link| {
                        let link = link.to_string_lossy().into_owned();
                        link.strip_prefix("socket:[")
                            .and_then(|rest| rest.strip_suffix(']'))
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut ports = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // fields: sl local rem st ... inode (10th)
                if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                    ports.push(fields[1].to_owned());
                }
            }
        }
        ports
    }

    #[tokio::test]
    async fn without_a_local_redis_one_is_started_and_a_second_pubhook_finds_its_socket() {
        if find_on_path("redis-server").is_none() {
            eprintln!("skipped: redis-server is not on PATH");
            return;
        }
        let dir = TempDir::new();
        let nothing = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let (url, child) = resolve_local_redis(nothing, &dir.0).await.expect("started");
        let child = child.expect("a redis-server was started");
        assert_eq!(url, format!("unix://{}", dir.0.join(SOCKET_FILE).display()));
        let store = pubhook_core::store::Store::connect(&url, "t:", 1).expect("a usable URL");
        store
            .ping()
            .await
            .expect("the store reaches Redis over the socket");
        let (again, second) = resolve_local_redis(nothing, &dir.0).await.expect("found");
        assert_eq!(again, url, "the second process uses the same Redis");
        assert!(second.is_none(), "and starts none of its own");
        child.shutdown().await;
    }

    #[tokio::test]
    async fn a_redis_that_cannot_start_is_reported_with_its_log() {
        let Some(program) = find_on_path("redis-server") else {
            eprintln!("skipped: redis-server is not on PATH");
            return;
        };
        // A folder where the socket should be: redis-server cannot bind it.
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.0.join(SOCKET_FILE).join("occupied")).expect("folder");
        let message = RedisChild::start(&program, &dir.0)
            .await
            .map(|_| ())
            .expect_err("socket path taken")
            .to_string();
        assert!(
            message.contains("redis-server exited as it started"),
            "{message}"
        );
        assert!(message.contains(LOG_FILE), "{message}");
    }
}
