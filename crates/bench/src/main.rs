//! `pubhook-bench`: a load driver for pubhook. It starts a private `redis-server`, recording
//! webhook receivers and pubhook itself (standalone, then serve + worker), drives the scenarios
//! through the public API, and writes `results.json`, `benchmarks.md` and SVG plots.
//!
//! Every child process is owned by a guard that kills it when dropped, so an error, a panic or
//! Ctrl-C leaves nothing running; every loop is bounded in count and time.

mod api;
mod cli;
mod http;
mod load;
mod machine;
mod plot;
mod progress;
mod pubhook;
mod receiver;
mod redis;
mod report;
mod scenarios;
mod stats;

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Parser as _, ValueEnum as _};

use crate::cli::{Cli, Mode, Plan, ScenarioKind};
use crate::machine::Machine;
use crate::progress::Progress;
use crate::receiver::Receivers;
use crate::redis::Storage;
use crate::report::{render_markdown, Results, ScenarioReport, PLOTS};
use crate::scenarios::{Env, Outcome, PlotData};

/// Figures printed on the progress line after each scenario.
const HEADLINES: &[&str] = &[
    "round_trips_per_s",
    "outbound_client_round_trips_per_s",
    "deliveries_per_s",
    "deliveries_per_s_of_ceiling",
    "in_flight_median",
    "connections_max",
    "timeouts_converged",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_p99_ms_1000",
    "latency_p99_ms_10000",
    "healthy_per_s",
    "get_per_s",
    "trigger_per_s",
    "legit_get_p99_ms",
    "legit_trigger_p99_ms",
    "cpu_s_per_1000_deliveries",
    "redis_commands_per_delivery",
    "redis_client_commands_per_delivery",
    "peak_rss_mb",
    "page_rss_growth_ratio",
    "post_rss_growth_ratio",
];

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = Progress::new();
    // Dropping `run` on Ctrl-C drops the guards, which stop every child.
    let outcome = tokio::select! {
        outcome = run(&cli, &progress) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pubhook-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("looking for a free loopback port")?;
    Ok(listener.local_addr().context("local address")?.port())
}

/// A run's outcome, or why it failed.
type RunResult = Result<Outcome, String>;

/// A scenario in a mode on one binary: the mode's name, followed by the `--baseline-label` on
/// the baseline binary.
type Column = (ScenarioKind, String);

/// The runs of every scenario, as they come in.
#[derive(Default)]
struct Collected {
    ceiling: Vec<RunResult>,
    scenarios: Vec<(Column, Vec<RunResult>)>,
    plots: HashMap<Column, PlotData>,
}

async fn run(cli: &Cli, progress: &Progress) -> anyhow::Result<()> {
    let plan = Plan::from_cli(cli);
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for binary in std::iter::once(&cli.pubhook).chain(&cli.baseline) {
        if !binary.is_file() {
            bail!(
                "no pubhook binary at {} (build it with `cargo build --release -p pubhook-cli`, or run `make bench`)",
                binary.display()
            );
        }
    }
    let log_dir = cli.out.join("logs");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)
            .with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;

    let redis = Storage::single(&cli.redis_server, &cli.out.join("redis")).await?;
    let cluster = if plan.modes.contains(&Mode::Cluster) {
        Some(Storage::cluster(&cli.redis_server, &cli.out.join("redis-cluster")).await?)
    } else {
        None
    };
    let receivers = Receivers::start(plan.receiver_ports).await?;
    let machine = Machine::probe(&cli.pubhook, redis.version().await?);
    progress.line(format!(
        "pubhook-bench: {} run(s) on {} cores ({}); redis {} at {}; {} receiver ports",
        plan.runs,
        machine.cores,
        machine.cpu_model,
        machine.redis_version,
        redis.describe(),
        receivers.addrs().len()
    ));

    let mut collected = Collected::default();
    for run in 1..=plan.runs {
        run_once(
            cli,
            &plan,
            run,
            Stores {
                single: &redis,
                cluster: cluster.as_ref(),
            },
            &receivers,
            &log_dir,
            progress,
            &mut collected,
        )
        .await;
    }

    let results = Results {
        tool: format!("pubhook-bench {}", env!("CARGO_PKG_VERSION")),
        started_unix,
        duration_s: progress.elapsed_s(),
        command: command_line(),
        machine,
        pubhook_env: pubhook::child_env(
            ("PUBHOOK_REDIS_URL", "redis://127.0.0.1:<port>".to_owned()),
            ([127, 0, 0, 1], 0).into(),
        )
        .into_iter()
        .filter(|(k, _)| *k != "PUBHOOK_LISTEN" && *k != "PUBHOOK_REDIS_URL")
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        plan: plan.clone(),
        ceiling: ScenarioReport::summarise("ceiling", None, &collected.ceiling),
        scenarios: collected
            .scenarios
            .iter()
            .map(|((scenario, column), runs)| {
                ScenarioReport::summarise(scenario.name(), Some(column), runs)
            })
            .collect(),
    };
    write_outputs(cli, &results, &collected.plots, progress)
}

/// The Redis of each mode: one server, and the cluster of the `cluster` mode if it runs.
#[derive(Clone, Copy)]
struct Stores<'a> {
    single: &'a Storage,
    cluster: Option<&'a Storage>,
}

/// One run: the ceiling, then every scenario in every mode.
#[allow(clippy::too_many_arguments)]
async fn run_once(
    cli: &Cli,
    plan: &Plan,
    run: usize,
    stores: Stores<'_>,
    receivers: &Receivers,
    log_dir: &Path,
    progress: &Progress,
    collected: &mut Collected,
) {
    let mut env = Env {
        plan,
        pubhook_bin: &cli.pubhook,
        redis: stores.single,
        receivers,
        log_dir,
        progress,
        ceiling: None,
        run,
        label: "",
    };
    progress.line(format!("run {run}/{} · ceiling", plan.runs));
    let ceiling = bounded(
        plan.ceiling_duration + Duration::from_secs(30),
        scenarios::ceiling::run(&env),
    )
    .await;
    headline(progress, "ceiling", &ceiling);
    if let Ok(outcome) = &ceiling {
        env.ceiling = outcome
            .metrics
            .iter()
            .find(|m| m.key == "round_trips_per_s")
            .map(|m| m.value);
    }
    collected.ceiling.push(ceiling);

    for &scenario in &plan.scenarios {
        for &mode in &plan.modes {
            if !mode.runs(scenario) {
                continue;
            }
            let storage = match (mode, stores.cluster) {
                (Mode::Cluster, Some(cluster)) => cluster,
                _ => stores.single,
            };
            for (binary, label) in binaries(cli, run) {
                let env = Env {
                    redis: storage,
                    pubhook_bin: binary,
                    label,
                    ..env
                };
                let column = match label {
                    "" => mode.name().to_owned(),
                    label => format!("{} {label}", mode.name()),
                };
                progress.line(format!(
                    "run {run}/{} · {} · {column} · load {}",
                    plan.runs,
                    scenario.name(),
                    machine::load_average()
                ));
                let load = machine::load_1m();
                let mut result =
                    bounded(budget(plan, scenario), scenarios::run(&env, scenario, mode)).await;
                if let Ok(outcome) = &mut result {
                    outcome.metric_opt(
                        "load_1m",
                        "machine load, 1-minute average, at the start",
                        "",
                        load,
                    );
                }
                headline(progress, scenario.name(), &result);
                let key = (scenario, column);
                if let Ok(outcome) = &mut result {
                    if let Some(plot) = outcome.plot.take() {
                        collected.plots.insert(key.clone(), plot);
                    }
                }
                match collected.scenarios.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, runs)) => runs.push(result),
                    None => collected.scenarios.push((key, vec![result])),
                }
            }
        }
    }
}

/// The binaries of run `run` with their labels: `--pubhook` (label empty) alone, or with
/// `--baseline`, first on odd runs and second on even ones, so that a machine that speeds up or
/// slows down over the benchmark favours neither.
fn binaries(cli: &Cli, run: usize) -> Vec<(&Path, &str)> {
    let main = (cli.pubhook.as_path(), "");
    match &cli.baseline {
        None => vec![main],
        Some(baseline) => {
            let other = (baseline.as_path(), cli.baseline_label.as_str());
            if run % 2 == 1 {
                vec![main, other]
            } else {
                vec![other, main]
            }
        }
    }
}

/// The longest a scenario may take, set-up included; past it the run is recorded as failed.
fn budget(plan: &Plan, scenario: ScenarioKind) -> Duration {
    let setup = Duration::from_secs(40);
    setup
        + match scenario {
            ScenarioKind::FanOut | ScenarioKind::FanOutFiltered | ScenarioKind::OneOrigin => {
                plan.fan_out_timeout
            }
            ScenarioKind::SlowReceiver => {
                Duration::from_secs_f64(
                    2.5 * (plan.slow_triggers * plan.subscribers) as f64
                        * plan.slow_service.as_secs_f64()
                        / plan.slow_servers.max(1) as f64,
                ) + plan.slow_warmup
                    + Duration::from_secs(10)
            }
            ScenarioKind::ManySmall => plan.many_small_duration * 2 + plan.drain_timeout,
            ScenarioKind::Retries => plan.retry_timeout + Duration::from_secs(2),
            ScenarioKind::Api | ScenarioKind::TriggerPayload | ScenarioKind::AuthFlood => {
                plan.api_duration * 2 + Duration::from_secs(20)
            }
            ScenarioKind::Memory => Duration::from_secs(120),
            ScenarioKind::NoisyNeighbour => {
                (plan.noisy_duration + Duration::from_secs(25)) * plan.noisy_rows.len() as u32
            }
            ScenarioKind::MetricsCost => {
                (plan.fan_out_timeout + plan.api_duration * 2 + Duration::from_secs(60)) * 2
            }
        }
}

/// Runs `scenario` within `limit`; an error or time-out becomes the run's error text.
async fn bounded(
    limit: Duration,
    scenario: impl std::future::Future<Output = anyhow::Result<Outcome>>,
) -> Result<Outcome, String> {
    match tokio::time::timeout(limit, scenario).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(_) => Err(format!("did not finish within {} s", limit.as_secs())),
    }
}

/// Prints the main figures of a run, or its error.
fn headline(progress: &Progress, name: &str, result: &Result<Outcome, String>) {
    match result {
        Ok(outcome) => {
            let figures: Vec<String> = outcome
                .metrics
                .iter()
                .filter(|m| HEADLINES.contains(&m.key.as_str()))
                .map(|m| format!("{} {}", m.key, report::number(m.value)))
                .collect();
            progress.line(format!("  {name}: {}", figures.join(", ")));
            for check in outcome.checks.iter().filter(|c| !c.passed) {
                progress.line(format!(
                    "  {name}: CHECK FAILED: {} ({})",
                    check.name, check.detail
                ));
            }
            for note in &outcome.notes {
                progress.line(format!("  {name}: note: {note}"));
            }
        }
        Err(err) => progress.line(format!("  {name}: FAILED: {err}")),
    }
}

/// Writes results.json, the plots and benchmarks.md to `--out`, and with `--docs` copies the
/// report and plots to the docs folder; prints the report on stdout.
fn write_outputs(
    cli: &Cli,
    results: &Results,
    plots: &HashMap<Column, PlotData>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let out = &cli.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("results.json");
    let json = serde_json::to_string_pretty(results).context("serialising the results")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;

    let mut written: Vec<&str> = Vec::new();
    for (scenario, file, title) in PLOTS {
        let path = out.join(file);
        let mut throughput = Vec::new();
        let mut latency = Vec::new();
        let mut in_flight = Vec::new();
        // Columns in the order they ran in.
        let columns = results
            .scenarios
            .iter()
            .filter(|r| r.scenario == *scenario)
            .filter_map(|r| r.mode.clone());
        for column in columns {
            let Some(kind) = ScenarioKind::value_variants()
                .iter()
                .find(|k| k.name() == *scenario)
            else {
                continue;
            };
            match plots.get(&(*kind, column.clone())) {
                Some(PlotData::Throughput(points)) => throughput.push((column, points.clone())),
                Some(PlotData::Latency(samples)) => latency.push((column, samples.clone())),
                Some(PlotData::InFlight {
                    in_flight: requests,
                    connections,
                }) => {
                    in_flight.push((format!("{column}: POSTs in flight"), requests.clone()));
                    in_flight.push((format!("{column}: connections"), connections.clone()));
                }
                None => {}
            }
        }
        let drawn = if !throughput.is_empty() {
            plot::throughput(&path, title, &throughput).map(|()| true)
        } else if !latency.is_empty() {
            plot::latency_cdf(&path, title, &latency).map(|()| true)
        } else if !in_flight.is_empty() {
            plot::in_flight(&path, title, &in_flight).map(|()| true)
        } else {
            Ok(false)
        };
        match drawn {
            Ok(true) => written.push(file),
            Ok(false) => {}
            Err(err) => progress.line(format!("plot {file} failed: {err:#}")),
        }
    }

    let markdown = render_markdown(results, "", &written);
    let md_path = out.join("benchmarks.md");
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    progress.line(format!(
        "wrote {}, {} and {} plot(s) in {}",
        json_path.display(),
        md_path.display(),
        written.len(),
        out.display()
    ));
    if cli.docs {
        copy_to_docs(&cli.docs_dir, out, results, &written)?;
        progress.line(format!(
            "copied the report to {} and the plots to {}",
            cli.docs_dir.join("benchmarks.md").display(),
            cli.docs_dir.join("bench").display()
        ));
    }
    println!("{markdown}");
    Ok(())
}

fn copy_to_docs(docs: &Path, out: &Path, results: &Results, plots: &[&str]) -> anyhow::Result<()> {
    let bench_dir: PathBuf = docs.join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("creating {}", bench_dir.display()))?;
    for file in plots {
        std::fs::copy(out.join(file), bench_dir.join(file))
            .with_context(|| format!("copying {file} to {}", bench_dir.display()))?;
    }
    let markdown = render_markdown(results, "bench/", plots);
    let path = docs.join("benchmarks.md");
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))
}

/// The command line as typed (arguments with spaces quoted).
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                format!("'{arg}'")
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
