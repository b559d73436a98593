//! What the benchmark ran on.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// The machine and the software under test.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical cores available to this process.
    pub cores: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// The kernel release.
    pub kernel: String,
    /// `redis-server`'s version.
    pub redis_version: String,
    /// `pubhook --version`.
    pub pubhook_version: String,
    /// The checked-out commit, if this is a git work tree.
    pub git_commit: Option<String>,
}

impl Machine {
    /// Reads what `/proc` and the binaries say.
    pub fn probe(pubhook: &Path, redis_version: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".to_owned()),
            memory_gib: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1_048_576.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            redis_version,
            pubhook_version: output(Command::new(pubhook).arg("--version"))
                .unwrap_or_else(|| "unknown".to_owned()),
            git_commit: output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"])),
        }
    }
}

/// The value of `name: value` in `/proc`-style text.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_owned())
    })
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The 1-, 5- and 15-minute load averages of `/proc/loadavg`, as `uptime` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The 1-minute load average, if `/proc/loadavg` says.
pub fn load_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
