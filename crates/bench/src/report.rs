//! The results: per scenario and mode, the median and spread of every figure over the runs; the
//! JSON file and the markdown report made from them.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::Plan;
use crate::machine::Machine;
use crate::scenarios::Outcome;
use crate::stats::Spread;

/// Everything one benchmark run found.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// `pubhook-bench <version>`.
    pub tool: String,
    /// Start, in Unix seconds.
    pub started_unix: u64,
    /// Wall-clock seconds of the whole benchmark.
    pub duration_s: f64,
    /// The command line.
    pub command: String,
    /// The machine and versions.
    pub machine: Machine,
    /// The environment given to pubhook (besides its address and Redis URL).
    pub pubhook_env: Vec<(String, String)>,
    /// Counts and durations.
    pub plan: Plan,
    /// The ceiling loop.
    pub ceiling: ScenarioReport,
    /// Every scenario in every mode.
    pub scenarios: Vec<ScenarioReport>,
}

/// One scenario in one mode, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub scenario: String,
    /// `standalone` or `split`; none for the ceiling.
    pub mode: Option<String>,
    /// Runs attempted.
    pub runs: usize,
    /// Every figure: median, min, max and each run's value.
    pub metrics: Vec<MetricSpread>,
    /// Every check, with how many runs passed it.
    pub checks: Vec<CheckSummary>,
    /// Remarks of the runs.
    pub notes: Vec<String>,
    /// Runs that failed, with why.
    pub errors: Vec<String>,
}

/// One figure over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSpread {
    /// Stable name.
    pub key: String,
    /// What a reader sees.
    pub label: String,
    /// Unit.
    pub unit: String,
    /// Median and spread.
    #[serde(flatten)]
    pub spread: Spread,
}

/// One check over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    /// What is checked.
    pub name: String,
    /// Runs in which it held.
    pub passed: usize,
    /// Runs in which it was checked.
    pub runs: usize,
    /// The detail of each run.
    pub details: Vec<String>,
}

impl ScenarioReport {
    /// Summarises the runs of a scenario: `results` holds an outcome or an error per run.
    pub fn summarise(
        scenario: &str,
        mode: Option<&str>,
        results: &[Result<Outcome, String>],
    ) -> Self {
        let outcomes: Vec<&Outcome> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut metrics: Vec<MetricSpread> = Vec::new();
        for outcome in &outcomes {
            for metric in &outcome.metrics {
                if metrics.iter().any(|m| m.key == metric.key) {
                    continue;
                }
                let values: Vec<f64> = outcomes
                    .iter()
                    .filter_map(|o| o.metrics.iter().find(|m| m.key == metric.key))
                    .map(|m| m.value)
                    .collect();
                if let Some(spread) = Spread::of(&values) {
                    metrics.push(MetricSpread {
                        key: metric.key.clone(),
                        label: metric.label.clone(),
                        unit: metric.unit.clone(),
                        spread,
                    });
                }
            }
        }
        let mut checks: Vec<CheckSummary> = Vec::new();
        for check in outcomes.iter().flat_map(|o| &o.checks) {
            let index = match checks.iter().position(|c| c.name == check.name) {
                Some(i) => i,
                None => {
                    checks.push(CheckSummary {
                        name: check.name.clone(),
                        passed: 0,
                        runs: 0,
                        details: Vec::new(),
                    });
                    checks.len() - 1
                }
            };
            let summary = &mut checks[index];
            summary.runs += 1;
            summary.passed += usize::from(check.passed);
            summary.details.push(check.detail.clone());
        }
        Self {
            scenario: scenario.to_owned(),
            mode: mode.map(str::to_owned),
            runs: results.len(),
            metrics,
            checks,
            notes: outcomes
                .iter()
                .flat_map(|o| o.notes.iter().cloned())
                .collect(),
            errors: results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("run {}: {e}", i + 1)))
                .collect(),
        }
    }

    /// The figure named `key`, if measured.
    pub fn metric(&self, key: &str) -> Option<&MetricSpread> {
        self.metrics.iter().find(|m| m.key == key)
    }
}

/// A target of issue 4, checked against the medians.
struct Target {
    scenario: &'static str,
    key: &'static str,
    text: &'static str,
    at_least: bool,
    bound: f64,
}

const TARGETS: &[Target] = &[
    Target {
        scenario: "fan-out",
        key: "deliveries_per_s_of_ceiling",
        text: "fan-out: at least 60% of the ceiling",
        at_least: true,
        bound: 60.0,
    },
    Target {
        scenario: "one-origin",
        key: "deliveries_per_s_of_ceiling",
        text: "one origin (issue 11): at least 50% of the ceiling",
        at_least: true,
        bound: 50.0,
    },
    Target {
        scenario: "slow-receiver",
        key: "timeouts_converged",
        text: "slow receiver (issue 11): no delivery timeouts once converged",
        at_least: false,
        bound: 0.0,
    },
    Target {
        scenario: "slow-receiver",
        key: "in_flight_over_sustained",
        text: "slow receiver (issue 11): in flight once converged at most 2x what it sustains",
        at_least: false,
        bound: 2.0,
    },
    Target {
        scenario: "many-small",
        key: "latency_p50_ms",
        text: "many-small at 1,000 triggers/s: p50 under 5 ms",
        at_least: false,
        bound: 5.0,
    },
    Target {
        scenario: "many-small",
        key: "latency_p99_ms",
        text: "many-small at 1,000 triggers/s: p99 under 25 ms",
        at_least: false,
        bound: 25.0,
    },
    Target {
        scenario: "api",
        key: "get_per_s",
        text: "API: at least 20,000 authenticated GETs per second",
        at_least: true,
        bound: 20_000.0,
    },
    Target {
        scenario: "api",
        key: "trigger_per_s",
        text: "API: at least 10,000 triggers per second",
        at_least: true,
        bound: 10_000.0,
    },
    Target {
        scenario: "fan-out",
        key: "redis_client_commands_per_delivery",
        text: "fan-out: at most 3 Redis commands per delivery (sent by pubhook)",
        at_least: false,
        bound: 3.0,
    },
    Target {
        scenario: "many-small",
        key: "redis_client_commands_per_delivery",
        text:
            "many-small: at most 3 Redis commands per delivery (sent by pubhook, trigger included)",
        at_least: false,
        bound: 3.0,
    },
    Target {
        scenario: "memory",
        key: "page_rss_growth_ratio",
        text: "memory: peak RSS growth for the largest pages under 3x the bytes in flight",
        at_least: false,
        bound: 3.0,
    },
    Target {
        scenario: "memory",
        key: "post_rss_growth_ratio",
        text: "memory: peak RSS growth for 20 concurrent 1 MiB POSTs under 3x the bytes in flight",
        at_least: false,
        bound: 3.0,
    },
    Target {
        scenario: "noisy-neighbour",
        key: "latency_p99_ms_1000",
        text: "noisy neighbour, 1,000 slow rows: the other account's p99 under 100 ms",
        at_least: false,
        bound: 100.0,
    },
    Target {
        scenario: "noisy-neighbour",
        key: "latency_p99_ms_10000",
        text: "noisy neighbour, 10,000 slow rows: the other account's p99 under 100 ms",
        at_least: false,
        bound: 100.0,
    },
    Target {
        scenario: "*",
        key: "peak_rss_mb",
        text: "pubhook's RSS under 100 MB throughout (largest of all scenarios)",
        at_least: false,
        bound: 100.0,
    },
];

/// What each scenario does, for the report.
fn description(scenario: &str, results: &Results) -> String {
    let plan = &results.plan;
    match scenario {
        "ceiling" => format!(
            "A bare keep-alive POST loop ({} connections, a delivery's body and headers) against the same receivers, for {:.1} s: the HTTP round trips per second this machine can do at all. Throughputs below are also given as a share of it, measured in the same run.",
            plan.ceiling_connections,
            plan.ceiling_duration.as_secs_f64()
        ),
        "fan-out" => format!(
            "1 registration, {} subscribers (each its own account and receiver path, on {} receiver ports), triggered {} times at once. Sustained deliveries per second are measured at the receivers from the first arrival to the last.",
            plan.subscribers, plan.receiver_ports, plan.fan_out_triggers
        ),
        "fan-out-filtered" => format!(
            "Like fan-out ({} subscribers, {} triggers), with a 3-condition filter (`equals`, `in`, `exists`) on every subscription that matches the payload: the same deliveries, plus the cost of reading and evaluating the filters in the fan-out. The target is a throughput within 10% of fan-out's.",
            plan.subscribers, plan.fan_out_triggers
        ),
        "one-origin" => format!(
            "Like fan-out ({} subscribers, {} triggers), but every subscriber's endpoint is on one receiver port (`http://127.0.0.1:<port>/s/<n>`: one origin, many paths), so only the per-origin limit decides how many deliveries are in flight. The receiver's POSTs in flight and its open connections are sampled every {:.0} ms: this receiver answers at once, so few POSTs are in flight at it at any instant, but pubhook's client sends one request at a time per connection, so the connections it keeps open show how many it had in flight at most (the receiver closes the connection after each GET of the set-up). The goal (issue 11): at least 50% of the ceiling.",
            plan.subscribers,
            plan.fan_out_triggers,
            plan.in_flight_every.as_secs_f64() * 1000.0
        ),
        "slow-receiver" => format!(
            "{} subscribers on one origin that serves {} requests at once, each for {:.0} ms ({:.0} per second at most; the others wait in its queue, first come first served), triggered {} times; pubhook with `PUBHOOK_WORKER_CONCURRENCY={}` and `PUBHOOK_REQUEST_TIMEOUT={:.1}s`. What the receiver sustains is its rate × service time = {} in flight. In-flight POSTs are sampled every {:.0} ms; *once converged* is from {:.0} s after the first arrival to 1 s before the last. A delivery timed out when pubhook closed the connection before the answer (as it does when its request timeout passes) or the receiver held it for at least the request timeout. The goals (issue 11): in flight near what the receiver sustains, no timeouts once converged.",
            plan.subscribers,
            plan.slow_servers,
            plan.slow_service.as_secs_f64() * 1000.0,
            plan.slow_servers as f64 / plan.slow_service.as_secs_f64(),
            plan.slow_triggers,
            plan.slow_worker_concurrency,
            plan.slow_request_timeout.as_secs_f64(),
            plan.slow_servers,
            plan.in_flight_every.as_secs_f64() * 1000.0,
            plan.slow_warmup.as_secs_f64()
        ),
        "many-small" => format!(
            "{} registrations with 1 subscriber each, triggered open-loop at {} per second for {:.0} s (paced by a timer; a trigger's time is the instant its request was sent). Latency runs from there to the arrival of the delivery whose `webhook-id` is the triggered id.",
            plan.subscribers,
            plan.many_small_rate,
            plan.many_small_duration.as_secs_f64()
        ),
        "retries" => format!(
            "Like fan-out with {} subscribers and {} triggers, but every {}th receiver answers 500. Retry schedule `{}` without jitter, so a failing receiver must get exactly {} attempts per trigger.",
            plan.subscribers,
            plan.retry_triggers,
            plan.retry_fail_every,
            crate::cli::RETRY_SCHEDULE,
            plan.retry_attempts
        ),
        "api" => format!(
            "Authenticated `GET /v1/account/{{id}}`, then `POST /v1/webhook/triggered/{{id}}`, each for {:.1} s at full speed over {} keep-alive connections (one account and one registration without subscribers per connection).",
            plan.api_duration.as_secs_f64(),
            plan.api_connections
        ),
        "trigger-payload" => format!(
            "`POST /v1/webhook/triggered/{{id}}` for {:.1} s at full speed over {} keep-alive connections without a body, then as long with a body whose `event_data` is about 1 KiB (stored on the triggered record in the same step), on one pubhook: the rate, latency and Redis commands per trigger of both, side by side.",
            plan.api_duration.as_secs_f64(),
            plan.api_connections
        ),
        "memory" => "Peak RSS growth of the API process (`VmHWM` reset through `clear_refs`, and `VmRSS` sampled every 2 ms) against the bytes in flight, in two phases on fresh processes: registrations with `event_data` at the payload limit (256 KiB) read with `limit=100` by several readers at once, each following `next_start` (page budget 1 MiB: 100 records in the full run, 8 readers; 20 and 4 with `--quick`); then 20 concurrent 1 MiB `POST /v1/webhook/registration` (body and payload limits raised to 2 MiB).".to_owned(),
        "noisy-neighbour" => format!(
            "Account A subscribes its own endpoint, which answers after {:.0} s, to its registration {} times (one phase per count) and triggers once; {:.1} s later account B starts triggering its own registration, with one subscriber on a fast endpoint on another port, every 50 ms for {:.0} s. Latency runs from the instant B's trigger request was sent to the arrival of its delivery.",
            plan.noisy_delay.as_secs_f64(),
            plan.noisy_rows
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            0.3,
            plan.noisy_duration.as_secs_f64()
        ),
        "metrics-cost" => format!(
            "The fan-out of *fan-out* ({} subscribers, {} triggers) and the GETs of *api* ({:.1} s over {} connections), on a pubhook with `PUBHOOK_METRICS=true` and on one with `false`, back to back in each run (the order alternating between runs). The goal (issue 12): with metrics on, both within 3% of off.",
            plan.subscribers,
            plan.fan_out_triggers,
            plan.api_duration.as_secs_f64(),
            plan.api_connections
        ),
        _ => String::new(),
    }
}

/// The plot files the report embeds, by scenario.
pub const PLOTS: &[(&str, &str, &str)] = &[
    (
        "fan-out",
        "fan-out-throughput.svg",
        "Fan-out: deliveries per second over time (last run)",
    ),
    (
        "one-origin",
        "one-origin-in-flight.svg",
        "One origin: connections open to the receiver, and POSTs in flight at it (last run)",
    ),
    (
        "slow-receiver",
        "slow-receiver-in-flight.svg",
        "Slow receiver (fixed rate): POSTs in flight at it, and connections open (last run)",
    ),
    (
        "many-small",
        "many-small-latency.svg",
        "Many small: distribution of trigger→receipt latency (last run)",
    ),
];

/// Renders the markdown report; plots are linked as `<image_prefix><file>`.
pub fn render_markdown(results: &Results, image_prefix: &str, plots_present: &[&str]) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let _ = writeln!(md, "# pubhook benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `{}` in {:.0} s (started at Unix time {}). Figures are medians of {} run{} per scenario and mode, with the spread (min–max) in brackets. Regenerate with `make bench` (`make bench-quick` for a one-run smoke test).\n",
        results.tool,
        results.duration_s,
        results.started_unix,
        results.plan.runs,
        if results.plan.runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(md, "Command: `{}`\n", results.command);
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| cores | {} |", m.cores);
    let _ = writeln!(md, "| CPU | {} |", escape(&m.cpu_model));
    let _ = writeln!(md, "| memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(md, "| kernel | {} |", escape(&m.kernel));
    let _ = writeln!(md, "| Redis | {} |", escape(&m.redis_version));
    let _ = writeln!(md, "| pubhook | {} |", escape(&m.pubhook_version));
    if let Some(commit) = &m.git_commit {
        let _ = writeln!(md, "| commit | {commit} |");
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "pubhook, a private `redis-server` (no persistence) and the receivers (hyper HTTP/1.1 servers recording arrival times) all run on this machine, on loopback. Each scenario starts from an empty Redis and a fresh pubhook, set up through the public API. pubhook's environment: {}.\n",
        results
            .pubhook_env
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "Modes: *standalone* is `pubhook standalone` (API and worker in one process); *split* is `pubhook serve` plus `pubhook worker`; *cluster* is `pubhook standalone` on a private Redis Cluster of 3 masters without replicas on the same machine (fan-out and many-small only), where Redis figures are sums over the masters, and the spreads are the busiest master's commands (or keys) over the mean, 1 being even. CPU is the user+system time of the pubhook processes (100% = one core); Redis commands come from `INFO commandstats`, where the commands a Lua script runs count too; the figure *sent by pubhook* leaves those out, using the share of script-internal commands seen in a short `MONITOR` sample taken after the timed phase; RSS is the largest `VmHWM` of the pubhook processes; Redis memory is the growth of `used_memory`.\n"
    );

    render_targets(&mut md, results);

    let _ = writeln!(md, "## Ceiling\n");
    let _ = writeln!(md, "{}\n", description("ceiling", results));
    render_table(&mut md, std::slice::from_ref(&results.ceiling));

    let mut seen: Vec<&str> = Vec::new();
    for report in &results.scenarios {
        if seen.contains(&report.scenario.as_str()) {
            continue;
        }
        seen.push(&report.scenario);
        let group: Vec<ScenarioReport> = results
            .scenarios
            .iter()
            .filter(|r| r.scenario == report.scenario)
            .cloned()
            .collect();
        let _ = writeln!(md, "## {}\n", report.scenario);
        let _ = writeln!(md, "{}\n", description(&report.scenario, results));
        render_table(&mut md, &group);
        for (scenario, file, title) in PLOTS {
            if *scenario == report.scenario && plots_present.contains(file) {
                let _ = writeln!(md, "![{title}]({image_prefix}{file})\n");
            }
        }
    }
    md
}

fn render_targets(md: &mut String, results: &Results) {
    let modes = modes_of(&results.scenarios);
    let _ = writeln!(md, "## Targets (issue 4)\n");
    let _ = write!(md, "| target |");
    for mode in &modes {
        let _ = write!(md, " {mode} |");
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "|---|{}", "---|".repeat(modes.len()));
    for target in TARGETS {
        let _ = write!(md, "| {} |", target.text);
        for mode in &modes {
            let medians: Vec<f64> = results
                .scenarios
                .iter()
                .filter(|r| r.mode.as_deref() == Some(mode.as_str()))
                .filter(|r| target.scenario == "*" || r.scenario == target.scenario)
                .filter_map(|r| r.metric(target.key))
                .map(|m| {
                    if target.scenario == "*" {
                        m.spread.max
                    } else {
                        m.spread.median
                    }
                })
                .collect();
            let value = if target.at_least {
                medians.iter().copied().reduce(f64::min)
            } else {
                medians.iter().copied().reduce(f64::max)
            };
            let cell = match value {
                Some(v) => {
                    let met = if target.at_least {
                        v >= target.bound
                    } else {
                        v <= target.bound
                    };
                    let unit = results
                        .scenarios
                        .iter()
                        .find_map(|r| r.metric(target.key))
                        .map_or("", |m| m.unit.as_str());
                    let mark = if met { "✅ met" } else { "❌ not met" };
                    format!("{}{} {mark}", number(v), unit_suffix(unit))
                }
                None => "not measured".to_owned(),
            };
            let _ = write!(md, " {cell} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
}

/// The modes present, in order of first appearance.
fn modes_of(reports: &[ScenarioReport]) -> Vec<String> {
    let mut modes: Vec<String> = Vec::new();
    for mode in reports.iter().filter_map(|r| r.mode.clone()) {
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    modes
}

/// One table: a row per figure, a column per mode.
fn render_table(md: &mut String, group: &[ScenarioReport]) {
    let columns: Vec<String> = group
        .iter()
        .map(|r| r.mode.clone().unwrap_or_else(|| "value".to_owned()))
        .collect();
    let _ = write!(md, "| figure |");
    for column in &columns {
        let _ = write!(md, " {column} |");
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "|---|{}", "---:|".repeat(columns.len()));
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for metric in group.iter().flat_map(|r| &r.metrics) {
        if !keys.iter().any(|(k, _, _)| *k == metric.key) {
            keys.push((&metric.key, &metric.label, &metric.unit));
        }
    }
    for (key, label, unit) in keys {
        let unit_text = match unit {
            "" => String::new(),
            u => format!(" ({u})"),
        };
        let _ = write!(md, "| {}{unit_text} |", escape(label));
        for report in group {
            let cell = report
                .metric(key)
                .map_or_else(|| "–".to_owned(), |m| spread_cell(&m.spread));
            let _ = write!(md, " {cell} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
    for report in group {
        let who = report
            .mode
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        for check in &report.checks {
            let mark = if check.passed == check.runs {
                "✅"
            } else {
                "❌"
            };
            let _ = write!(
                md,
                "- {mark} {}{who}: {} of {} runs",
                escape(&check.name),
                check.passed,
                check.runs
            );
            match check.details.last() {
                Some(detail) => {
                    let _ = writeln!(md, " (last: {})", escape(detail));
                }
                None => {
                    let _ = writeln!(md);
                }
            }
        }
        for note in &report.notes {
            let _ = writeln!(md, "- note{who}: {}", escape(note));
        }
        for error in &report.errors {
            let _ = writeln!(md, "- ❌ failed{who}: {}", escape(error));
        }
    }
    if group
        .iter()
        .any(|r| !r.checks.is_empty() || !r.notes.is_empty() || !r.errors.is_empty())
    {
        let _ = writeln!(md);
    }
}

/// `median (min–max)`, or just the value for one run.
fn spread_cell(spread: &Spread) -> String {
    if spread.values.len() <= 1 || number(spread.min) == number(spread.max) {
        number(spread.median)
    } else {
        format!(
            "{} ({}–{})",
            number(spread.median),
            number(spread.min),
            number(spread.max)
        )
    }
}

/// A unit after a number: none for counts and rates, `%` attached, others after a space.
fn unit_suffix(unit: &str) -> String {
    match unit {
        "" | "1/s" => String::new(),
        "%" => "%".to_owned(),
        u => format!(" {u}"),
    }
}

/// A figure for people: thousands separated, about three significant digits.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let abs = value.abs();
    if abs >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if rounded < 0 {
            out.insert(0, '-');
        }
        out
    } else if abs >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else if abs >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Keeps table cells intact.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests;
