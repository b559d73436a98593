//! Starting a throw-away `redis-server`: no persistence, loopback only, its own scratch folder,
//! and a watchdog that kills it once the test process is gone. A server is either a plain one or
//! a cluster node ([`Mode`]), which the `cluster` module then joins into a cluster.
//!
//! Test binaries keep the shared server in a `static`, which is never dropped, and a test process
//! can also die by a signal. So the clean-up cannot rely on `Drop`: each server gets a small
//! `sh` loop that checks every second that both the test process and the server are alive, and
//! once either is gone kills the server; if the test process is the one gone, it also removes the
//! scratch folder (otherwise the [`RedisProcess`] handle does, on stop or drop).

use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::{sleep, Instant};

use super::resp::{self, Reply};

/// How long a started server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one PING or INFO may take while waiting for a server.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How many free ports are tried before giving up (another process may take a port first).
const PORT_ATTEMPTS: usize = 5;
/// Lines of the server's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 20;
/// A cluster node also listens on its data port + this, for the cluster bus.
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// What kind of `redis-server` to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A plain server.
    Standalone,
    /// A node of a Redis Cluster (`cluster-enabled yes`), not yet joined to any other. Its
    /// `node_timeout` is how long it takes the others to declare it failed.
    ClusterNode { node_timeout: Duration },
}

impl Mode {
    /// The server's arguments beyond those every server gets.
    fn args(self, port: u16) -> Vec<String> {
        match self {
            Self::Standalone => Vec::new(),
            Self::ClusterNode { node_timeout } => vec![
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                // Relative to `--dir`, the server's own scratch folder.
                "--cluster-config-file".to_owned(),
                format!("nodes-{port}.conf"),
                "--cluster-node-timeout".to_owned(),
                node_timeout.as_millis().to_string(),
                // A replica's first sync starts at once, not after the default 5 s wait for
                // other replicas to share it.
                "--repl-diskless-sync-delay".to_owned(),
                "0".to_owned(),
            ],
        }
    }
}

/// Kills the server (`$2`) once the test process (`$1`) or the server has gone, checked every
/// second; removes the scratch folder (`$3`) if the test process has gone.
const WATCHDOG_SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
kill -9 "$2" 2>/dev/null
kill -0 "$1" 2>/dev/null || rm -rf "$3"
"#;

/// A `redis-server` child that this process started, killed and reaped on drop, and its scratch
/// folder (`--dir`, the log), removed once it is gone.
#[derive(Debug)]
pub(crate) struct RedisProcess {
    child: Child,
    dir: PathBuf,
}

impl RedisProcess {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server and waits until it has exited, so its port is free again.
    pub(crate) async fn kill(mut self) {
        self.kill_now();
        // SIGKILL takes effect at once; poll instead of blocking the runtime on `wait`.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            sleep(Duration::from_millis(5)).await;
        }
        // Drop reaps it for good (at once now) and removes the scratch folder.
    }

    /// Lets the server run on after this handle is gone: only the watchdog stops it, once the
    /// test process exits. For the shared server, which lives in a `static`.
    pub(crate) fn detach(self) {
        std::mem::forget(self);
    }

    fn kill_now(&mut self) {
        // An error means it has already exited; `wait` below reaps it either way.
        let _ = self.child.kill();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill_now();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why one start attempt failed.
enum StartError {
    /// The port answered for another process: try another port.
    PortTaken,
    /// The server exited at once (a port taken first, say): worth another try.
    Exited(String),
    /// Anything else: the message says what, with the log's tail.
    Failed(String),
}

/// Finds `redis-server` on `PATH`, or panics saying how to get one.
pub(crate) fn redis_server_program(hint: &str) -> PathBuf {
    required_program("redis-server", "redis-server", hint)
}

/// Finds `redis-cli` on `PATH` (it joins cluster nodes), or panics saying how to get one.
pub(crate) fn redis_cli_program(hint: &str) -> PathBuf {
    required_program("redis-cli", "redis-tools", hint)
}

fn required_program(name: &str, debian_package: &str, hint: &str) -> PathBuf {
    find_on_path(name).unwrap_or_else(|| {
        panic!(
            "pubhook-testkit: {name} was not found on PATH; {hint} (Debian/Ubuntu: \
             apt-get install {debian_package}; macOS: brew install redis)"
        )
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Starts a server on a free loopback port and waits until it answers; panics if it cannot.
pub(crate) async fn start_on_free_port(program: &Path, mode: Mode) -> (RedisProcess, u16) {
    let mut last_error = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port(mode);
        match start(program, port, mode).await {
            Ok(process) => return (process, port),
            Err(StartError::PortTaken) => last_error = format!("port {port} was taken"),
            Err(StartError::Exited(message)) => last_error = message,
            Err(StartError::Failed(message)) => panic!("pubhook-testkit: {message}"),
        }
    }
    panic!(
        "pubhook-testkit: could not start redis-server after {PORT_ATTEMPTS} tries: {last_error}"
    )
}

/// Starts a plain server on `port` and waits until it answers; panics if it cannot.
pub(crate) async fn start_on_port(program: &Path, port: u16) -> RedisProcess {
    match start(program, port, Mode::Standalone).await {
        Ok(process) => process,
        Err(StartError::PortTaken) => {
            panic!("pubhook-testkit: port {port} was taken by another process before redis-server")
        }
        Err(StartError::Exited(message) | StartError::Failed(message)) => {
            panic!("pubhook-testkit: {message}")
        }
    }
}

/// A port the kernel just handed out; free unless another process takes it in the meantime. A
/// cluster node's port also leaves its bus port (+10000) free and within range.
fn free_port(mode: Mode) -> u16 {
    const TRIES: usize = 100;
    for _ in 0..TRIES {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("pubhook-testkit: no free loopback port for redis-server");
        if mode == Mode::Standalone {
            return port;
        }
        let bus_is_free = port
            .checked_add(CLUSTER_BUS_OFFSET)
            .is_some_and(|bus| TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok());
        if bus_is_free {
            return port;
        }
    }
    panic!(
        "pubhook-testkit: no free loopback port P with P+{CLUSTER_BUS_OFFSET} free too for a \
         cluster node in {TRIES} tries"
    )
}

async fn start(program: &Path, port: u16, mode: Mode) -> Result<RedisProcess, StartError> {
    let dir = std::env::temp_dir().join(format!("pubhook-testkit-redis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|error| {
        StartError::Failed(format!("could not create {}: {error}", dir.display()))
    })?;
    let log = dir.join("redis.log");
    let child = Command::new(program)
        .arg("--port")
        .arg(port.to_string())
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ])
        .args(["--loglevel", "notice"])
        .args(mode.args(port))
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| {
            let _ = std::fs::remove_dir_all(&dir);
            StartError::Failed(format!("could not run {}: {error}", program.display()))
        })?;
    let mut process = RedisProcess {
        child,
        dir: dir.clone(),
    };
    if let Err(error) = spawn_watchdog(process.pid(), &dir) {
        return Err(StartError::Failed(format!(
            "could not start the watchdog (sh): {error}"
        )));
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match wait_until_ready(&mut process, addr).await {
        Ok(()) => Ok(process),
        Err(StartError::PortTaken) => Err(StartError::PortTaken),
        Err(StartError::Exited(message)) => Err(StartError::Exited(format!(
            "redis-server on port {port} {message}; the end of its log:\n{}",
            log_tail(&log)
        ))),
        Err(StartError::Failed(message)) => Err(StartError::Failed(format!(
            "redis-server on port {port} {message}; the end of its log:\n{}",
            log_tail(&log)
        ))),
    }
}

fn spawn_watchdog(redis_pid: u32, dir: &Path) -> io::Result<()> {
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("pubhook-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(redis_pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Not waited for: it ends by itself, after the server.
    drop(watchdog);
    Ok(())
}

/// Polls until the server answers PING and its `INFO` names our child's pid: a PONG alone could
/// come from another server that got the port first.
async fn wait_until_ready(process: &mut RedisProcess, addr: SocketAddr) -> Result<(), StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(StartError::Exited(format!("exited at start ({status})")));
        }
        if let Ok(Reply::Simple(pong)) = resp::ask(addr, &["PING"], PROBE_TIMEOUT).await {
            if pong == "PONG" {
                return match resp::ask(addr, &["INFO", "server"], PROBE_TIMEOUT).await {
                    Ok(Reply::Bulk(Some(info))) => {
                        if resp::process_id_in_info(&info) == Some(process.pid()) {
                            Ok(())
                        } else {
                            Err(StartError::PortTaken)
                        }
                    }
                    other => Err(StartError::Failed(format!("answered INFO with {other:?}"))),
                };
            }
        }
        if Instant::now() >= deadline {
            return Err(StartError::Failed(format!(
                "did not answer PING within {START_TIMEOUT:?}"
            )));
        }
        sleep(PROBE_INTERVAL).await;
    }
}

/// The last lines of the server's log, for a failure message.
fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "(empty)".to_owned();
    }
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
