//! *fan-out*: one registration with many subscribers, triggered several times at once; the
//! sustained delivery rate is measured at the receivers from the first arrival to the last.
//! *fan-out-filtered* is the same with a 3-condition filter on every subscription, one that
//! matches the payload, so that both deliver the same and differ only by the filters' cost.
//! *one-origin* (`one_origin.rs`) is the same with every subscriber on one receiver port.

use std::time::{Duration, Instant};

use crate::cli::{Mode, ScenarioKind};
use crate::receiver::InFlightSampler;
use crate::scenarios::{
    create_owners, create_subscribers_at, event_data, fresh_pubhook_with_env, in_flight_plot,
    pair_counts, report_delivery_memory, report_in_flight, sample_client_commands, settle,
    subscribe_all_filtered, CostMeter, Env, Outcome, PlotData,
};
use crate::stats::{rate_between, time_series};
use serde_json::{json, Value};

/// Bins of the throughput-over-time plot.
const BIN_SECS: f64 = 0.05;

/// The filter of *fan-out-filtered*: three conditions, all true of [`crate::scenarios::EVENT_DATA`].
pub fn matching_filter() -> Value {
    json!({"all": [
        {"path": "event", "equals": "order.paid"},
        {"path": "order.currency", "in": ["EUR", "USD"]},
        {"path": "order.items.0.sku", "exists": true},
    ]})
}

/// What a fan-out looks like.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// A filter on every subscription.
    pub filter: Option<Value>,
    /// Every subscriber on the first receiver port (one origin), instead of spread over all;
    /// then the receiver's in-flight count is sampled and plotted.
    pub one_origin: bool,
}

/// Runs the scenario once, every subscription with `filter` if there is one.
pub async fn run(env: &Env<'_>, mode: Mode, filter: Option<Value>) -> anyhow::Result<Outcome> {
    let kind = if filter.is_some() {
        ScenarioKind::FanOutFiltered
    } else {
        ScenarioKind::FanOut
    };
    let shape = Shape {
        filter,
        one_origin: false,
    };
    run_with(env, mode, shape, kind.name(), &[]).await
}

/// [`run`] on a pubhook with `extra` settings, its logs named after `phase`.
pub async fn run_with(
    env: &Env<'_>,
    mode: Mode,
    shape: Shape,
    phase: &str,
    extra: &[(&'static str, String)],
) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let (mut pubhook, api) = fresh_pubhook_with_env(env, mode, phase, extra).await?;
    let owners = create_owners(env, &api, 1).await?;
    let owner = owners.first().ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let registration = api.register(owner, "bench.fan-out", &event_data()?).await?;
    let subscribers = if shape.one_origin {
        create_subscribers_at(env, &api, plan.subscribers, |n| {
            env.receivers.endpoint_on_first_port(n)
        })
        .await?
    } else {
        create_subscribers_at(env, &api, plan.subscribers, |n| env.receivers.endpoint(n)).await?
    };
    let bytes_per_subscription = subscribe_all_filtered(
        env,
        &api,
        &subscribers,
        |_| registration.as_str(),
        shape.filter.as_ref(),
    )
    .await?;

    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let sampler = shape.one_origin.then(|| {
        env.receivers
            .sample_in_flight(plan.in_flight_every, 100_000)
    });
    let started = Instant::now();
    let mut triggered = Vec::with_capacity(plan.fan_out_triggers);
    for _ in 0..plan.fan_out_triggers {
        triggered.push(api.trigger(owner, &registration).await?);
    }
    let expected = (plan.fan_out_triggers * subscribers.len()) as u64;
    env.progress.line(format!(
        "  {} triggers sent in {:.0} ms; waiting for {expected} deliveries",
        triggered.len(),
        started.elapsed().as_secs_f64() * 1000.0
    ));
    let complete = env
        .receivers
        .wait_for_posts(expected, plan.fan_out_timeout, env.progress, "  fan-out")
        .await;
    // Let the worker write the records of the last deliveries before the counters are read.
    settle(Duration::from_millis(250)).await;
    let samples = match sampler {
        Some(sampler) => Some(InFlightSampler::stop(sampler).await),
        None => None,
    };
    let cost = meter.stop(&pubhook, env.redis).await?;
    pubhook.check_running()?;
    let arrivals = env.receivers.take();

    let mut out = Outcome::default();
    let delivered = arrivals.len();
    let rate = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => rate_between(first.at, last.at, delivered),
        _ => None,
    };
    out.metric("deliveries", "deliveries received", "", delivered as f64);
    out.throughput(
        env,
        "deliveries_per_s",
        "sustained deliveries per second",
        rate,
    );
    out.metric_opt(
        "first_delivery_ms",
        "first trigger → first delivery",
        "ms",
        arrivals
            .first()
            .map(|a| a.at.saturating_duration_since(started).as_secs_f64() * 1000.0),
    );
    out.metric_opt(
        "all_delivered_s",
        "first trigger → last delivery",
        "s",
        arrivals
            .last()
            .map(|a| a.at.saturating_duration_since(started).as_secs_f64()),
    );
    cost.report(&mut out, "delivery", "deliveries", delivered);
    report_delivery_memory(
        &mut out,
        &pubhook,
        bytes_per_subscription,
        cost.memory_growth,
        delivered,
    )?;

    // One more trigger, outside the timed phase, to split Redis's command count.
    let sampled = sample_client_commands(env, &mut out, "delivery", async {
        let before = env.receivers.posts();
        api.trigger(owner, &registration).await?;
        let want = before + subscribers.len() as u64;
        env.receivers
            .wait_for_posts(want, Duration::from_secs(10), env.progress, "  sample")
            .await;
        settle(Duration::from_millis(250)).await;
        Ok(())
    })
    .await;
    if let Err(err) = sampled {
        out.notes.push(format!("MONITOR sample failed: {err:#}"));
    }

    let pairs = pair_counts(&arrivals, |_| true);
    let duplicates = delivered - pairs.len();
    out.check(
        "every subscriber got every trigger exactly once",
        complete && duplicates == 0 && pairs.len() as u64 == expected,
        format!(
            "{} of {expected} (subscriber, trigger) pairs arrived, {duplicates} duplicates",
            pairs.len()
        ),
    );
    if !complete {
        out.notes.push(format!(
            "timed out after {:.0} s: {delivered} of {expected} deliveries arrived",
            plan.fan_out_timeout.as_secs_f64()
        ));
    }
    if let Some(samples) = samples {
        if let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) {
            report_in_flight(&mut out, &samples, first.at, last.at, "while delivering");
        }
        out.plot = Some(in_flight_plot(started, &samples));
        return Ok(out);
    }
    let instants: Vec<Instant> = arrivals.iter().map(|a| a.at).collect();
    out.plot = Some(PlotData::Throughput(time_series(
        started, &instants, BIN_SECS,
    )));
    Ok(out)
}
