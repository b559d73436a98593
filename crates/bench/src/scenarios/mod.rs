//! The scenarios, what they share (a fresh pubhook on an empty Redis, account set-up, the cost
//! meter) and what each run of one yields: an [`Outcome`].

pub mod api;
pub mod auth_flood;
pub mod ceiling;
pub mod fan_out;
pub mod many_small;
pub mod memory;
pub mod metrics_cost;
pub mod noisy_neighbour;
pub mod one_origin;
pub mod retries;
pub mod slow_receiver;
pub mod trigger_payload;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::api::{concurrently, Account, Api};
use crate::cli::{Mode, Plan, ScenarioKind};
use crate::progress::Progress;
use crate::pubhook::Pubhook;
use crate::receiver::{Arrival, Receivers, Sample};
use crate::redis::{busiest_over_mean, CommandCount, Storage};
use crate::stats::Spread;

/// The payload of every registration, written as Python's `json.dumps` writes it, so that the
/// ceiling loop can send the very bytes pubhook's deliveries carry.
pub const EVENT_DATA: &str = r#"{"event": "order.paid", "order": {"id": "ord_7f3a9c2e", "amount": 4999, "currency": "EUR", "items": [{"sku": "A-100", "qty": 2}, {"sku": "B-220", "qty": 1}]}, "note": "pubhook-bench payload"}"#;

/// The registration payload as JSON.
pub fn event_data() -> anyhow::Result<Value> {
    serde_json::from_str(EVENT_DATA).context("EVENT_DATA is JSON")
}

/// What a scenario needs from the run.
pub struct Env<'a> {
    /// Counts and durations.
    pub plan: &'a Plan,
    /// The pubhook binary.
    pub pubhook_bin: &'a Path,
    /// The private Redis.
    pub redis: &'a Storage,
    /// The webhook endpoints.
    pub receivers: &'a Receivers,
    /// Where child logs go.
    pub log_dir: &'a Path,
    /// Progress lines.
    pub progress: &'a Progress,
    /// This run's ceiling, in round trips per second, if it was measured.
    pub ceiling: Option<f64>,
    /// The run number, from 1.
    pub run: usize,
    /// Which binary `pubhook_bin` is: empty for `--pubhook`, else the `--baseline-label`.
    pub label: &'a str,
}

/// One figure of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// A stable name, e.g. `deliveries_per_s`.
    pub key: String,
    /// What a reader sees.
    pub label: String,
    /// Its unit.
    pub unit: String,
    /// The value.
    pub value: f64,
}

/// A pass/fail check of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The counts behind it.
    pub detail: String,
}

/// Data for the plots.
#[derive(Debug, Clone)]
pub enum PlotData {
    /// Deliveries per second over time: `(seconds since the first trigger, rate)`.
    Throughput(Vec<(f64, f64)>),
    /// Trigger→receipt latencies in milliseconds.
    Latency(Vec<f64>),
    /// POSTs in flight at the receiver, and connections open to it, over time: each
    /// `(seconds since the first trigger, count)`.
    InFlight {
        /// POSTs arrived and not answered.
        in_flight: Vec<(f64, f64)>,
        /// Connections open.
        connections: Vec<(f64, f64)>,
    },
}

/// What one run of a scenario yields.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Its figures, in the order they are reported.
    pub metrics: Vec<Metric>,
    /// Its checks.
    pub checks: Vec<Check>,
    /// Remarks (time-outs, errors of single requests).
    pub notes: Vec<String>,
    /// Data for a plot.
    pub plot: Option<PlotData>,
}

impl Outcome {
    /// Adds a figure.
    pub fn metric(&mut self, key: &str, label: &str, unit: &str, value: f64) {
        self.metrics.push(Metric {
            key: key.to_owned(),
            label: label.to_owned(),
            unit: unit.to_owned(),
            value,
        });
    }

    /// Adds a figure if there is one.
    pub fn metric_opt(&mut self, key: &str, label: &str, unit: &str, value: Option<f64>) {
        if let Some(value) = value {
            self.metric(key, label, unit, value);
        }
    }

    /// Adds a throughput figure and, with a ceiling, the fraction of it.
    pub fn throughput(&mut self, env: &Env<'_>, key: &str, label: &str, value: Option<f64>) {
        self.metric_opt(key, label, "1/s", value);
        if let (Some(value), Some(ceiling)) = (value, env.ceiling) {
            if ceiling > 0.0 {
                self.metric(
                    &format!("{key}_of_ceiling"),
                    &format!("{label}, share of the ceiling"),
                    "%",
                    100.0 * value / ceiling,
                );
            }
        }
    }

    /// Adds a check.
    pub fn check(&mut self, name: &str, passed: bool, detail: String) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail,
        });
    }
}

/// Runs `scenario` in `mode` once.
pub async fn run(env: &Env<'_>, scenario: ScenarioKind, mode: Mode) -> anyhow::Result<Outcome> {
    match scenario {
        ScenarioKind::FanOut => fan_out::run(env, mode, None).await,
        ScenarioKind::FanOutFiltered => {
            fan_out::run(env, mode, Some(fan_out::matching_filter())).await
        }
        ScenarioKind::OneOrigin => one_origin::run(env, mode).await,
        ScenarioKind::SlowReceiver => slow_receiver::run(env, mode).await,
        ScenarioKind::ManySmall => many_small::run(env, mode).await,
        ScenarioKind::Retries => retries::run(env, mode).await,
        ScenarioKind::Api => api::run(env, mode).await,
        ScenarioKind::TriggerPayload => trigger_payload::run(env, mode).await,
        ScenarioKind::Memory => memory::run(env, mode).await,
        ScenarioKind::AuthFlood => auth_flood::run(env, mode).await,
        ScenarioKind::NoisyNeighbour => noisy_neighbour::run(env, mode).await,
        ScenarioKind::MetricsCost => metrics_cost::run(env, mode).await,
    }
}

/// Empties Redis and the receivers and starts a new pubhook.
pub async fn fresh_pubhook(
    env: &Env<'_>,
    mode: Mode,
    scenario: ScenarioKind,
) -> anyhow::Result<(Pubhook, Api)> {
    fresh_pubhook_with_env(env, mode, scenario.name(), &[]).await
}

/// [`fresh_pubhook`] with extra `PUBHOOK_*` settings, its logs named after `phase`.
pub async fn fresh_pubhook_with_env(
    env: &Env<'_>,
    mode: Mode,
    phase: &str,
    extra: &[(&'static str, String)],
) -> anyhow::Result<(Pubhook, Api)> {
    env.redis.flush_all().await?;
    env.receivers.reset();
    let mut log_name = format!("run{}-{}-{}", env.run, phase, mode.name());
    if !env.label.is_empty() {
        log_name = format!(
            "{log_name}-{}",
            env.label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
    }
    let pubhook = Pubhook::start_with_env(
        env.pubhook_bin,
        mode,
        &env.redis.pubhook_env(),
        env.log_dir,
        &log_name,
        extra,
    )
    .await?;
    let api = Api::new(pubhook.addr());
    Ok((pubhook, api))
}

/// Creates `count` subscriber accounts whose endpoints are receivers `/s/0` … `/s/<count-1>`.
pub async fn create_subscribers(
    env: &Env<'_>,
    api: &Api,
    count: usize,
) -> anyhow::Result<Vec<Account>> {
    create_subscribers_at(env, api, count, |n| env.receivers.endpoint(n)).await
}

/// [`create_subscribers`] with subscriber `n`'s endpoint at `endpoint(n)`.
pub async fn create_subscribers_at(
    env: &Env<'_>,
    api: &Api,
    count: usize,
    endpoint: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<Account>> {
    let started = Instant::now();
    let accounts = (0..count)
        .map(|n| (format!("sub-{n}"), endpoint(n)))
        .collect();
    let created = api
        .create_accounts(accounts, env.plan.setup_concurrency)
        .await?;
    env.progress.line(format!(
        "  {count} subscriber accounts in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(created)
}

/// Creates `count` owner accounts, which never receive deliveries.
pub async fn create_owners(env: &Env<'_>, api: &Api, count: usize) -> anyhow::Result<Vec<Account>> {
    let accounts = (0..count)
        .map(|n| (format!("owner-{n}"), env.receivers.owner_endpoint(n)))
        .collect();
    api.create_accounts(accounts, env.plan.setup_concurrency)
        .await
}

/// Creates `count` owners with one registration of `event` each (no subscribers): the set-up
/// of the scenarios that measure the API's triggers.
pub async fn owners_with_registrations(
    env: &Env<'_>,
    api: &Api,
    count: usize,
    event: &str,
) -> anyhow::Result<(Vec<Account>, Vec<String>)> {
    let accounts = create_owners(env, api, count).await?;
    let data = event_data()?;
    let registrations = concurrently(
        accounts
            .iter()
            .map(|owner| api.register(owner, event, &data)),
        env.plan.setup_concurrency,
    )
    .await?;
    Ok((accounts, registrations))
}

/// Subscribes subscriber `i` to `registrations(i)`, concurrently; returns Redis's growth in
/// bytes per subscription.
pub async fn subscribe_all<'r>(
    env: &Env<'_>,
    api: &Api,
    subscribers: &[Account],
    registration_of: impl Fn(usize) -> &'r str,
) -> anyhow::Result<Option<f64>> {
    subscribe_all_filtered(env, api, subscribers, registration_of, None).await
}

/// [`subscribe_all`], each subscription with `filter` when there is one.
pub async fn subscribe_all_filtered<'r>(
    env: &Env<'_>,
    api: &Api,
    subscribers: &[Account],
    registration_of: impl Fn(usize) -> &'r str,
    filter: Option<&Value>,
) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    let before = env.redis.used_memory().await?;
    concurrently(
        subscribers
            .iter()
            .enumerate()
            .map(|(i, subscriber)| api.subscribe_filtered(subscriber, registration_of(i), filter)),
        env.plan.setup_concurrency,
    )
    .await?;
    let after = env.redis.used_memory().await?;
    env.progress.line(format!(
        "  {} subscriptions in {:.2} s",
        subscribers.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(per_item(before, after, subscribers.len()))
}

/// Bytes of growth per item, if there are items.
pub fn per_item(before: u64, after: u64, items: usize) -> Option<f64> {
    (items > 0).then(|| (after as f64 - before as f64) / items as f64)
}

/// What pubhook and Redis spent between [`CostMeter::start`] and [`CostMeter::stop`].
pub struct CostMeter {
    cpu_s: f64,
    redis_cpu_s: f64,
    commands: CommandCount,
    per_node: Vec<CommandCount>,
    memory: u64,
    started: Instant,
}

/// The cost of one measured phase.
pub struct Cost {
    /// CPU seconds of every pubhook process.
    pub cpu_s: f64,
    /// CPU seconds of every Redis node.
    pub redis_cpu_s: f64,
    /// Redis commands executed.
    pub commands: CommandCount,
    /// Redis commands executed, node by node (one entry on a single Redis).
    pub commands_per_node: Vec<u64>,
    /// Keys held at the end, node by node.
    pub keys_per_node: Vec<u64>,
    /// Growth of Redis's `used_memory`, in bytes (may be negative).
    pub memory_growth: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

impl CostMeter {
    /// Reads the counters now.
    pub async fn start(pubhook: &Pubhook, redis: &Storage) -> anyhow::Result<Self> {
        Ok(Self {
            cpu_s: pubhook.cpu_seconds()?,
            redis_cpu_s: redis.cpu_seconds().await?,
            commands: redis.command_count().await?,
            per_node: redis.command_counts().await?,
            memory: redis.used_memory().await?,
            started: Instant::now(),
        })
    }

    /// Reads the counters again and returns the differences.
    pub async fn stop(self, pubhook: &Pubhook, redis: &Storage) -> anyhow::Result<Cost> {
        let wall_s = self.started.elapsed().as_secs_f64();
        let cpu_s = pubhook.cpu_seconds()? - self.cpu_s;
        let redis_cpu_s = redis.cpu_seconds().await? - self.redis_cpu_s;
        let commands = redis.command_count().await?.since(self.commands);
        let commands_per_node = redis
            .command_counts()
            .await?
            .into_iter()
            .zip(self.per_node)
            .map(|(now, then)| now.since(then).total)
            .collect();
        let keys_per_node = redis.key_counts().await?;
        let memory = redis.used_memory().await?;
        Ok(Cost {
            cpu_s,
            redis_cpu_s,
            commands,
            commands_per_node,
            keys_per_node,
            memory_growth: memory as f64 - self.memory as f64,
            wall_s,
        })
    }
}

impl Cost {
    /// Adds the cost per unit of work, e.g. `("delivery", "deliveries")`: CPU per 1,000 units
    /// (`cpu_s_per_1000_deliveries`), Redis commands per unit (`redis_commands_per_delivery`).
    pub fn report(&self, out: &mut Outcome, singular: &str, plural: &str, count: usize) {
        if count == 0 {
            return;
        }
        let (one, many) = (singular.to_lowercase(), plural.to_lowercase());
        let n = count as f64;
        out.metric(
            &format!("cpu_s_per_1000_{many}"),
            &format!("pubhook CPU per 1,000 {plural}"),
            "s",
            self.cpu_s / n * 1000.0,
        );
        out.metric(
            &format!("cpu_use_{many}"),
            &format!("pubhook CPU use while measuring {plural} (100% = one core)"),
            "%",
            if self.wall_s > 0.0 {
                100.0 * self.cpu_s / self.wall_s
            } else {
                0.0
            },
        );
        out.metric(
            &format!("redis_cpu_s_per_1000_{many}"),
            &format!("Redis CPU per 1,000 {plural} (all nodes)"),
            "s",
            self.redis_cpu_s / n * 1000.0,
        );
        out.metric(
            &format!("redis_commands_per_{one}"),
            &format!("Redis commands per {singular} (incl. those run inside scripts)"),
            "",
            self.commands.total as f64 / n,
        );
        out.metric(
            &format!("redis_scripts_per_{one}"),
            &format!("Redis script calls per {singular}"),
            "",
            self.commands.scripts as f64 / n,
        );
        // On a cluster: what the busiest master does, and how evenly the work and the data are
        // spread (the busiest master's share over the mean; 1 is even).
        if self.commands_per_node.len() > 1 {
            let busiest = self.commands_per_node.iter().copied().max().unwrap_or(0);
            out.metric(
                &format!("redis_commands_per_{one}_busiest_master"),
                &format!("Redis commands per {singular} on the busiest master"),
                "",
                busiest as f64 / n,
            );
            out.metric_opt(
                "master_command_spread",
                "commands on the busiest master ÷ the mean over masters",
                "",
                busiest_over_mean(&self.commands_per_node),
            );
            out.metric_opt(
                "master_key_spread",
                "keys on the busiest master ÷ the mean over masters",
                "",
                busiest_over_mean(&self.keys_per_node),
            );
        }
    }
}

/// Runs `work` (an extra trigger and its deliveries, after the timed phase) under a Redis
/// `MONITOR`, and adds the commands pubhook itself sends per `singular`: the measured
/// `redis_commands_per_<singular>` times the share of commands that came from clients rather
/// than from inside Lua scripts in the sample.
pub async fn sample_client_commands(
    env: &Env<'_>,
    out: &mut Outcome,
    singular: &str,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let monitor = env.redis.monitor().await?;
    work.await?;
    let (client, script) = monitor.stop().await;
    let key = format!("redis_commands_per_{}", singular.to_lowercase());
    let total = out.metrics.iter().find(|m| m.key == key).map(|m| m.value);
    if let (Some(total), true) = (total, client + script > 0) {
        let share = client as f64 / (client + script) as f64;
        out.metric(
            &format!("redis_client_commands_per_{}", singular.to_lowercase()),
            &format!("Redis commands sent by pubhook per {singular} (script internals left out; share from a MONITOR sample)"),
            "",
            total * share,
        );
    }
    Ok(())
}

/// Adds pubhook's peak RSS.
pub fn report_rss(out: &mut Outcome, pubhook: &Pubhook) -> anyhow::Result<()> {
    let bytes = pubhook.peak_rss_bytes()?;
    out.metric(
        "peak_rss_mb",
        "pubhook peak RSS (largest process)",
        "MB",
        bytes as f64 / 1_048_576.0,
    );
    Ok(())
}

/// Peak RSS, then Redis memory per subscription and per delivery attempt: the memory figures
/// of the delivery scenarios.
pub fn report_delivery_memory(
    out: &mut Outcome,
    pubhook: &Pubhook,
    bytes_per_subscription: Option<f64>,
    memory_growth: f64,
    deliveries: usize,
) -> anyhow::Result<()> {
    report_rss(out, pubhook)?;
    out.metric_opt(
        "redis_bytes_per_subscription",
        "Redis memory per subscription",
        "B",
        bytes_per_subscription,
    );
    out.metric_opt(
        "redis_bytes_per_attempt",
        "Redis memory per delivery attempt (records, triggers, queue)",
        "B",
        per_item(0, memory_growth.max(0.0) as u64, deliveries),
    );
    Ok(())
}

/// How often each (subscriber, webhook-id) pair arrived, among the arrivals `filter` keeps.
pub fn pair_counts(
    arrivals: &[Arrival],
    filter: impl Fn(&Arrival) -> bool,
) -> HashMap<(u32, &str), usize> {
    let mut counts = HashMap::with_capacity(arrivals.len());
    for arrival in arrivals.iter().filter(|a| filter(a)) {
        let id = arrival.webhook_id.as_deref().unwrap_or("");
        *counts.entry((arrival.subscriber, id)).or_insert(0) += 1;
    }
    counts
}

/// The samples as a [`PlotData::InFlight`], in seconds since `started`.
pub fn in_flight_plot(started: Instant, samples: &[Sample]) -> PlotData {
    let series = |count: fn(&Sample) -> u64| {
        samples
            .iter()
            .map(|s| {
                let t = s.at.saturating_duration_since(started).as_secs_f64();
                (t, count(s) as f64)
            })
            .collect()
    };
    PlotData::InFlight {
        in_flight: series(|s| s.in_flight),
        connections: series(|s| s.connections),
    }
}

/// `count` of the samples taken from `from` to `to`: their median and largest, if any.
pub fn sampled_between(
    samples: &[Sample],
    from: Instant,
    to: Instant,
    count: fn(&Sample) -> u64,
) -> Option<Spread> {
    let values: Vec<f64> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .map(|s| count(s) as f64)
        .collect();
    Spread::of(&values)
}

/// Adds the median and largest in-flight and connection counts sampled from `from` to `to`
/// (`when` says which span that is); returns the in-flight median.
pub fn report_in_flight(
    out: &mut Outcome,
    samples: &[Sample],
    from: Instant,
    to: Instant,
    when: &str,
) -> Option<f64> {
    let in_flight = sampled_between(samples, from, to, |s| s.in_flight);
    let connections = sampled_between(samples, from, to, |s| s.connections);
    for (key, what, spread) in [
        ("in_flight", "POSTs in flight at the receiver", &in_flight),
        (
            "connections",
            "connections open to the receiver",
            &connections,
        ),
    ] {
        if let Some(spread) = spread {
            out.metric(
                &format!("{key}_median"),
                &format!("{what} {when}, median of samples"),
                "",
                spread.median,
            );
            out.metric(
                &format!("{key}_max"),
                &format!("{what} {when}, largest sample"),
                "",
                spread.max,
            );
        }
    }
    in_flight.map(|s| s.median)
}

/// Sleeps `duration`, for a short settle after a phase; bounded by construction.
pub async fn settle(duration: Duration) {
    tokio::time::sleep(duration).await;
}
