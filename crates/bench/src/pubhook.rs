//! pubhook as child processes (`standalone`, or `serve` + `worker`), killed when dropped, and
//! their own accounting from `/proc`: CPU time and peak RSS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hyper::{Method, Request, StatusCode};

use crate::cli::{Mode, RETRY_SCHEDULE};
use crate::free_port;
use crate::http::{Body, Conn};

/// How long pubhook may take to answer `/health/live` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The running pubhook processes.
pub struct Pubhook {
    children: Vec<Named>,
    addr: SocketAddr,
}

/// A child, its role (`standalone`, `serve`, `worker`) and its log file.
struct Named {
    role: &'static str,
    child: Child,
    log: PathBuf,
}

impl Pubhook {
    /// Starts pubhook in `mode` against the Redis that `storage` names (see [`child_env`]), logging to `<log_dir>/<log_name>-<role>.log`,
    /// with `extra` set in the children's environment after [`child_env`] (so a scenario can
    /// turn a limit back on), and waits until the API answers.
    pub async fn start_with_env(
        binary: &Path,
        mode: Mode,
        storage: &(&'static str, String),
        log_dir: &Path,
        log_name: &str,
        extra: &[(&'static str, String)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let roles: &[&'static str] = match mode {
            Mode::Standalone | Mode::Cluster => &["standalone"],
            Mode::Split => &["serve", "worker"],
        };
        let mut this = Self {
            children: Vec::with_capacity(roles.len()),
            addr,
        };
        for role in roles {
            let log_path = log_dir.join(format!("{log_name}-{role}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let log_err = log.try_clone().context("log file handle")?;
            let mut command = Command::new(binary);
            command.arg(role);
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("PUBHOOK_") {
                    command.env_remove(key);
                }
            }
            let child = command
                .envs(child_env(storage.clone(), addr))
                .envs(extra.iter().cloned())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .with_context(|| format!("starting {} {role}", binary.display()))?;
            // From here on `this` kills it, whatever happens.
            this.children.push(Named {
                role,
                child,
                log: log_path,
            });
        }
        this.wait_until_live().await?;
        Ok(this)
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Fails if a child has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for named in &mut self.children {
            if let Some(status) = named.child.try_wait().context("checking pubhook")? {
                bail!(
                    "pubhook {} exited ({status}); its log {} ends: {}",
                    named.role,
                    named.log.display(),
                    log_tail(&named.log)
                );
            }
        }
        Ok(())
    }

    async fn wait_until_live(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_running()?;
            if let Ok(mut conn) = Conn::connect(self.addr).await {
                let request = Request::builder()
                    .method(Method::GET)
                    .uri("/health/live")
                    .header("host", self.addr.to_string())
                    .body(Body::default())
                    .context("health request")?;
                if let Ok((StatusCode::OK, _)) = conn.send(request).await {
                    // The worker has no HTTP side: give it a moment to join its consumer group.
                    if self.children.iter().any(|c| c.role == "worker") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        self.check_running()?;
                    }
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "pubhook did not answer GET /health/live on {} within {} s",
                    self.addr,
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// CPU seconds (user + system) used so far by all the children.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let ticks_per_second = clock_ticks();
        let mut total = 0.0;
        for named in &self.children {
            let path = format!("/proc/{}/stat", named.child.id());
            let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            let ticks = parse_cpu_ticks(&stat).with_context(|| format!("parsing {path}"))?;
            total += ticks as f64 / ticks_per_second;
        }
        Ok(total)
    }

    /// The largest peak resident set (`VmHWM`) of the children, in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let mut peak = 0;
        for named in &self.children {
            let path = format!("/proc/{}/status", named.child.id());
            let status =
                std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            peak = peak.max(parse_vm_hwm(&status).with_context(|| format!("parsing {path}"))?);
        }
        Ok(peak)
    }
}

impl Pubhook {
    /// The process that serves the API (`standalone` or `serve`): its pid.
    pub fn api_pid(&self) -> Option<u32> {
        self.children
            .iter()
            .find(|c| c.role != "worker")
            .map(|c| c.child.id())
    }
}

/// `VmRSS` (resident now) and `VmHWM` (its peak) of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let rss = parse_status_kib(&status, "VmRSS:").with_context(|| format!("parsing {path}"))?;
    let hwm = parse_vm_hwm(&status).with_context(|| format!("parsing {path}"))?;
    Ok((rss, hwm))
}

/// Sets `VmHWM` of process `pid` back to its current RSS (Linux's `clear_refs` value 5), so a
/// phase's own peak can be read afterwards. False where the kernel or permissions refuse.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

impl Drop for Pubhook {
    fn drop(&mut self) {
        for named in &mut self.children {
            let _ = named.child.kill();
            let _ = named.child.wait();
        }
    }
}

/// The environment of every pubhook child (after every inherited `PUBHOOK_*` is removed);
/// `storage` is `PUBHOOK_REDIS_URL` or `PUBHOOK_REDIS_CLUSTER_NODES` with its value.
pub fn child_env(
    storage: (&'static str, String),
    listen: SocketAddr,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        storage,
        ("PUBHOOK_KEY_PREFIX", "bench:".to_owned()),
        ("PUBHOOK_LISTEN", listen.to_string()),
        ("PUBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8".to_owned()),
        ("PUBHOOK_PBKDF2_ITERATIONS", "1000".to_owned()),
        ("PUBHOOK_LOG", "warn".to_owned()),
        ("PUBHOOK_RETRY_SCHEDULE", RETRY_SCHEDULE.to_owned()),
        ("PUBHOOK_RETRY_JITTER", "0".to_owned()),
    ];
    // The load comes from one address: every tenant limit off, except in the abuse scenarios,
    // which set their own.
    env.extend(
        pubhook_core::settings::limits_off_env()
            .into_iter()
            .map(|(name, value)| (name, value.to_owned())),
    );
    env
}

/// The last lines of a log, or a word that it is empty.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() {
        "(empty: nothing at warn level or above)".to_owned()
    } else {
        lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }
}

/// Clock ticks per second for `/proc/<pid>/stat`: `getconf CLK_TCK`, else Linux's usual 100.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Fields 3.. follow; utime and stime are fields 14 and 15, so the 12th and 13th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmHWM` in bytes, from the text of `/proc/<pid>/status`.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmHWM:")
}

/// The field `name` (e.g. `VmRSS:`) in bytes, from the text of `/proc/<pid>/status`.
fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line
        .trim_start_matches(name)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_and_status_are_parsed() {
        let stat = "1234 (pub hook) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 31 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(281));
        let status = "Name:\tpubhook\nVmPeak:\t  10000 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
    }

    #[test]
    fn own_process_accounting_is_readable() {
        let me = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).expect("own stat");
        assert!(parse_cpu_ticks(&stat).is_some());
        let status = std::fs::read_to_string(format!("/proc/{me}/status")).expect("own status");
        assert!(parse_vm_hwm(&status).is_some_and(|bytes| bytes > 0));
    }
}
