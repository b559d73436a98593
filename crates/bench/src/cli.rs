//! The command line and the plan it makes: which scenarios, how many runs, how long each lasts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// pubhook-bench: drives a real pubhook and a private redis-server on loopback and reports fan-out
/// throughput, trigger→receipt latency, retries, API throughput and their costs.
#[derive(Debug, Parser)]
#[command(name = "pubhook-bench", version, about)]
pub struct Cli {
    /// The pubhook binary to run (build it with `cargo build --release -p pubhook-cli`).
    #[arg(long, default_value = "target/release/pubhook", value_name = "PATH")]
    pub pubhook: PathBuf,
    /// A second pubhook binary (an older commit, say): each scenario then runs on both, back to
    /// back, the order alternating from run to run; its columns are labelled `--baseline-label`.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    /// How the report names the `--baseline` binary's columns: `<mode> <label>`.
    #[arg(long, default_value = "baseline", value_name = "TEXT")]
    pub baseline_label: String,
    /// The redis-server binary (a private one is started on a free loopback port).
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    pub redis_server: PathBuf,
    /// One run of each scenario with shorter phases: under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Where results.json, benchmarks.md, the SVG plots and the child logs go.
    #[arg(long, default_value = "target/bench", value_name = "DIR")]
    pub out: PathBuf,
    /// Also copy the report to docs/benchmarks.md and the plots to docs/bench/.
    #[arg(long)]
    pub docs: bool,
    /// The docs folder `--docs` writes to.
    #[arg(long, default_value = "docs", value_name = "DIR")]
    pub docs_dir: PathBuf,
    /// Runs of each scenario (default 3, or 1 with --quick); the report gives medians.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=20))]
    pub runs: Option<u16>,
    /// How to run pubhook: `standalone` (API and worker in one process), `split` (serve + worker),
    /// `cluster` (standalone on a private 3-master Redis Cluster; fan-out and many-small only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "standalone,split,cluster"
    )]
    pub modes: Vec<Mode>,
    /// Which scenarios to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fan-out,fan-out-filtered,one-origin,slow-receiver,many-small,retries,api,trigger-payload,memory,auth-flood,noisy-neighbour,metrics-cost"
    )]
    pub scenarios: Vec<ScenarioKind>,
}

/// How pubhook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `pubhook standalone`: API and worker in one process.
    Standalone,
    /// `pubhook serve` and `pubhook worker`: two processes.
    Split,
    /// `pubhook standalone` on a private Redis Cluster of 3 masters; only the scenarios that
    /// measure delivery (fan-out, many-small) run in it.
    Cluster,
}

impl Mode {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Split => "split",
            Self::Cluster => "cluster",
        }
    }

    /// Whether `scenario` runs in this mode.
    pub fn runs(self, scenario: ScenarioKind) -> bool {
        self != Self::Cluster
            || matches!(
                scenario,
                ScenarioKind::FanOut | ScenarioKind::FanOutFiltered | ScenarioKind::ManySmall
            )
    }
}

/// A scenario of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// 1 registration, many subscribers, repeated triggers.
    FanOut,
    /// Fan-out with a 3-condition filter, which matches, on every subscription.
    FanOutFiltered,
    /// Fan-out to subscribers that all share one origin (one host and port).
    OneOrigin,
    /// Fan-out to one origin that serves a fixed number of requests per second and queues the
    /// rest.
    SlowReceiver,
    /// Many registrations with 1 subscriber each, triggered at a fixed rate.
    ManySmall,
    /// Like fan-out, with a tenth of the receivers answering 500.
    Retries,
    /// Authenticated GETs and triggers at full speed.
    Api,
    /// Triggers without a body, then with a ~1 KiB `event_data` body, at full speed.
    TriggerPayload,
    /// Peak RSS growth of the API for the largest pages and for concurrent 1 MiB POSTs.
    Memory,
    /// Legitimate GETs and triggers while 200 connections send wrong keys for accounts with
    /// legacy PBKDF2 hashes.
    AuthFlood,
    /// One account's huge slow fan-out while another triggers to a fast endpoint.
    NoisyNeighbour,
    /// Fan-out and API GETs with metrics on, then off, back to back.
    MetricsCost,
}

impl ScenarioKind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::FanOut => "fan-out",
            Self::FanOutFiltered => "fan-out-filtered",
            Self::OneOrigin => "one-origin",
            Self::SlowReceiver => "slow-receiver",
            Self::ManySmall => "many-small",
            Self::Retries => "retries",
            Self::Api => "api",
            Self::TriggerPayload => "trigger-payload",
            Self::Memory => "memory",
            Self::AuthFlood => "auth-flood",
            Self::NoisyNeighbour => "noisy-neighbour",
            Self::MetricsCost => "metrics-cost",
        }
    }
}

/// Every count and duration of a benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Runs of each scenario.
    pub runs: usize,
    /// Shorter phases and smaller sizes (`--quick`).
    pub quick: bool,
    /// The ways pubhook is run, each scenario once per mode.
    pub modes: Vec<Mode>,
    /// The scenarios.
    pub scenarios: Vec<ScenarioKind>,
    /// Receiver ports; subscriber `n` is reached on port `n % receiver_ports` at `/s/<n>`.
    pub receiver_ports: usize,
    /// Accounts created at once during setup.
    pub setup_concurrency: usize,
    /// Subscribers of the fan-out and retries registrations; registrations of many-small.
    pub subscribers: usize,
    /// Triggers of the fan-out registration.
    pub fan_out_triggers: usize,
    /// Longest wait for the fan-out deliveries.
    #[serde(with = "secs")]
    pub fan_out_timeout: Duration,
    /// Offered trigger rate of many-small, per second.
    pub many_small_rate: u32,
    /// How long many-small triggers.
    #[serde(with = "secs")]
    pub many_small_duration: Duration,
    /// Longest wait for the last many-small deliveries after the last trigger.
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// Triggers of the retries registration.
    pub retry_triggers: usize,
    /// Every n-th receiver of the retries scenario answers 500.
    pub retry_fail_every: usize,
    /// Attempts a failing receiver must get per trigger (1 + the retries of the schedule).
    pub retry_attempts: usize,
    /// Longest wait for the retries scenario's attempts.
    #[serde(with = "secs")]
    pub retry_timeout: Duration,
    /// Keep-alive connections of the API scenario.
    pub api_connections: usize,
    /// How long each API phase (GETs, then triggers) lasts.
    #[serde(with = "secs")]
    pub api_duration: Duration,
    /// Connections sending wrong keys in the auth-flood scenario.
    pub flood_connections: usize,
    /// Connections of legitimate clients in the auth-flood scenario.
    pub flood_legit_connections: usize,
    /// Connections of the ceiling loop: the worker's default concurrency.
    pub ceiling_connections: usize,
    /// How long the ceiling loop runs.
    #[serde(with = "secs")]
    pub ceiling_duration: Duration,
    /// Subscription rows of the noisy account's registration, one phase each.
    pub noisy_rows: Vec<usize>,
    /// How long the noisy account's endpoint takes to answer.
    #[serde(with = "secs")]
    pub noisy_delay: Duration,
    /// How long the quiet account triggers in each phase.
    #[serde(with = "secs")]
    pub noisy_duration: Duration,
    /// How often the receivers' in-flight count is sampled.
    #[serde(with = "secs")]
    pub in_flight_every: Duration,
    /// Triggers of the slow-receiver registration (each to every subscriber).
    pub slow_triggers: usize,
    /// Servers of the slow receiver.
    pub slow_servers: usize,
    /// Service time of one request at the slow receiver.
    #[serde(with = "secs")]
    pub slow_service: Duration,
    /// `PUBHOOK_WORKER_CONCURRENCY` of the slow-receiver scenario.
    pub slow_worker_concurrency: usize,
    /// `PUBHOOK_REQUEST_TIMEOUT` of the slow-receiver scenario.
    #[serde(with = "secs")]
    pub slow_request_timeout: Duration,
    /// From the first arrival, how long the limit has to converge before the slow-receiver
    /// figures count.
    #[serde(with = "secs")]
    pub slow_warmup: Duration,
}

/// The retry schedule given to pubhook, as `PUBHOOK_RETRY_SCHEDULE`.
pub const RETRY_SCHEDULE: &str = "200ms,200ms,500ms";

impl Plan {
    /// The plan for `cli`.
    pub fn from_cli(cli: &Cli) -> Self {
        let quick = cli.quick;
        let pick =
            |normal: u64, fast: u64| Duration::from_millis(if quick { fast } else { normal });
        let mut modes = cli.modes.clone();
        modes.dedup();
        let mut scenarios = cli.scenarios.clone();
        scenarios.dedup();
        Self {
            runs: cli.runs.map_or(if quick { 1 } else { 3 }, usize::from),
            quick,
            modes,
            scenarios,
            receiver_ports: 8,
            setup_concurrency: 32,
            subscribers: 1000,
            fan_out_triggers: if quick { 20 } else { 50 },
            fan_out_timeout: pick(40_000, 15_000),
            many_small_rate: 1000,
            many_small_duration: pick(10_000, 3_000),
            drain_timeout: pick(10_000, 5_000),
            retry_triggers: if quick { 2 } else { 4 },
            retry_fail_every: 10,
            retry_attempts: 1 + RETRY_SCHEDULE.split(',').count(),
            retry_timeout: pick(20_000, 10_000),
            api_connections: 64,
            api_duration: pick(4_000, 2_000),
            flood_connections: 200,
            flood_legit_connections: 16,
            ceiling_connections: 128,
            ceiling_duration: pick(3_000, 1_500),
            noisy_rows: vec![1000, 10_000],
            noisy_delay: Duration::from_secs(2),
            noisy_duration: pick(10_000, 3_000),
            in_flight_every: Duration::from_millis(50),
            slow_triggers: if quick { 2 } else { 4 },
            slow_servers: 10,
            slow_service: Duration::from_millis(50),
            slow_worker_concurrency: 1024,
            slow_request_timeout: Duration::from_secs(1),
            slow_warmup: pick(5_000, 3_000),
        }
    }
}

/// Serialises a `Duration` as seconds.
mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
