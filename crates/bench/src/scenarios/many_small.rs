//! *many small*: many registrations with one subscriber each, triggered open-loop at a fixed
//! offered rate; the trigger→receipt latency runs from the instant a trigger request was sent to
//! the instant the delivery carrying its id (`webhook-id`) arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::cli::{Mode, ScenarioKind};
use crate::http::REQUEST_TIMEOUT;
use crate::scenarios::{
    create_owners, create_subscribers, event_data, fresh_pubhook, report_delivery_memory,
    sample_client_commands, settle, subscribe_all, CostMeter, Env, Outcome, PlotData,
};
use crate::stats::{rate_between, Latencies};

/// Trigger requests in flight at most; a tick that finds none free is skipped and counted.
const MAX_IN_FLIGHT: usize = 256;

/// One trigger that was answered 201.
struct Sent {
    id: String,
    at: Instant,
    api_ms: f64,
    lag_ms: f64,
}

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let (mut pubhook, api) = fresh_pubhook(env, mode, ScenarioKind::ManySmall).await?;
    let owners = create_owners(env, &api, 1).await?;
    let owner = owners
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let data = event_data()?;
    let registrations = crate::api::concurrently(
        (0..plan.subscribers).map(|n| {
            let event = format!("bench.small.{n}");
            let (api, owner, data) = (&api, &owner, &data);
            async move { api.register(owner, &event, data).await }
        }),
        plan.setup_concurrency,
    )
    .await?;
    let subscribers = create_subscribers(env, &api, plan.subscribers).await?;
    let bytes_per_subscription =
        subscribe_all(env, &api, &subscribers, |i| registrations[i].as_str()).await?;

    let total = (f64::from(plan.many_small_rate) * plan.many_small_duration.as_secs_f64()) as usize;
    env.progress.line(format!(
        "  triggering {total} times at {}/s, open loop",
        plan.many_small_rate
    ));
    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let (api, owner, registrations) = (Arc::new(api), Arc::new(owner), Arc::new(registrations));
    let (sent, skipped, errors, send_span) = trigger_paced(
        env,
        Arc::clone(&api),
        Arc::clone(&owner),
        Arc::clone(&registrations),
        total,
    )
    .await;
    let expected = sent.len() as u64;
    let complete = env
        .receivers
        .wait_for_posts(expected, plan.drain_timeout, env.progress, "  many-small")
        .await;
    settle(Duration::from_millis(250)).await;
    let cost = meter.stop(&pubhook, env.redis).await?;
    pubhook.check_running()?;
    let arrivals = env.receivers.take();

    let sent_at: HashMap<&str, Instant> = sent.iter().map(|s| (s.id.as_str(), s.at)).collect();
    let latencies: Vec<f64> = arrivals
        .iter()
        .filter_map(|a| {
            let at = sent_at.get(a.webhook_id.as_deref()?)?;
            Some(a.at.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    let mut out = Outcome::default();
    out.metric(
        "offered_rate",
        "offered trigger rate",
        "1/s",
        f64::from(plan.many_small_rate),
    );
    out.metric_opt(
        "trigger_rate",
        "triggers answered 201 per second",
        "1/s",
        send_span
            .filter(|s| *s > 0.0)
            .map(|s| sent.len() as f64 / s),
    );
    out.metric("triggers", "triggers answered 201", "", sent.len() as f64);
    out.metric("trigger_errors", "triggers failed", "", errors as f64);
    out.metric(
        "triggers_skipped",
        "ticks skipped (all connections busy)",
        "",
        skipped as f64,
    );
    out.metric(
        "deliveries",
        "deliveries received",
        "",
        arrivals.len() as f64,
    );
    if let Some(l) = Latencies::of(latencies.clone()) {
        out.metric("latency_p50_ms", "trigger → receipt p50", "ms", l.p50);
        out.metric("latency_p95_ms", "trigger → receipt p95", "ms", l.p95);
        out.metric("latency_p99_ms", "trigger → receipt p99", "ms", l.p99);
        out.metric("latency_max_ms", "trigger → receipt max", "ms", l.max);
    }
    if let Some(l) = Latencies::of(sent.iter().map(|s| s.api_ms).collect()) {
        out.metric(
            "trigger_api_p50_ms",
            "trigger request → 201, p50",
            "ms",
            l.p50,
        );
        out.metric(
            "trigger_api_p99_ms",
            "trigger request → 201, p99",
            "ms",
            l.p99,
        );
    }
    if let Some(l) = Latencies::of(sent.iter().map(|s| s.lag_ms).collect()) {
        out.metric(
            "pacing_lag_p99_ms",
            "sent behind schedule, p99",
            "ms",
            l.p99,
        );
    }
    let rate = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => rate_between(first.at, last.at, arrivals.len()),
        _ => None,
    };
    out.throughput(env, "deliveries_per_s", "deliveries per second", rate);
    cost.report(&mut out, "delivery", "deliveries", arrivals.len());
    report_delivery_memory(
        &mut out,
        &pubhook,
        bytes_per_subscription,
        cost.memory_growth,
        arrivals.len(),
    )?;
    // A few more triggers, outside the timed phase, to split Redis's command count.
    let sampled = sample_client_commands(env, &mut out, "delivery", async {
        let before = env.receivers.posts();
        let count = registrations.len().min(100);
        for registration in registrations.iter().take(count) {
            api.trigger(&owner, registration).await?;
        }
        env.receivers
            .wait_for_posts(
                before + count as u64,
                Duration::from_secs(10),
                env.progress,
                "  sample",
            )
            .await;
        settle(Duration::from_millis(250)).await;
        Ok(())
    })
    .await;
    if let Err(err) = sampled {
        out.notes.push(format!("MONITOR sample failed: {err:#}"));
    }
    let matched = latencies.len();
    out.check(
        "every trigger answered 201 was delivered once",
        complete && matched == sent.len() && arrivals.len() == sent.len(),
        format!(
            "{matched} of {} triggers matched a delivery; {} deliveries in all; {errors} trigger errors, {skipped} skipped ticks",
            sent.len(),
            arrivals.len()
        ),
    );
    if !complete {
        out.notes.push(format!(
            "the last deliveries did not all arrive within {:.0} s of the last trigger",
            plan.drain_timeout.as_secs_f64()
        ));
    }
    out.plot = Some(PlotData::Latency(latencies));
    Ok(out)
}

/// Sends `total` triggers, one per tick of the offered rate, each in its own task so a slow
/// answer does not hold back the next one. Returns the triggers answered 201, the ticks skipped,
/// the failures, and the seconds from the first send to the last.
async fn trigger_paced(
    env: &Env<'_>,
    api: Arc<crate::api::Api>,
    owner: Arc<crate::api::Account>,
    registrations: Arc<Vec<String>>,
    total: usize,
) -> (Vec<Sent>, usize, usize, Option<f64>) {
    let plan = env.plan;
    let period = Duration::from_secs_f64(1.0 / f64::from(plan.many_small_rate.max(1)));
    let mut interval = tokio::time::interval(period);
    // Open loop: ticks that come late fire at once, keeping the offered rate.
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let deadline = Instant::now() + plan.many_small_duration + Duration::from_secs(5);
    let mut tasks = JoinSet::new();
    let mut skipped = 0;
    let mut last_report = Instant::now();
    for k in 0..total {
        let scheduled = interval.tick().await.into_std();
        if Instant::now() > deadline {
            skipped += total - k;
            break;
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let (api, owner, registrations) = (
            Arc::clone(&api),
            Arc::clone(&owner),
            Arc::clone(&registrations),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let registration = &registrations[k % registrations.len()];
            let at = Instant::now();
            let lag_ms = at.saturating_duration_since(scheduled).as_secs_f64() * 1000.0;
            let id = api.trigger(&owner, registration).await?;
            let api_ms = at.elapsed().as_secs_f64() * 1000.0;
            anyhow::Ok(Sent {
                id,
                at,
                api_ms,
                lag_ms,
            })
        });
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            env.progress.line(format!(
                "  many-small: {k} of {total} triggers sent, {} POSTs arrived",
                env.receivers.posts()
            ));
        }
    }
    let mut sent = Vec::with_capacity(total);
    let mut errors = 0;
    let mut first_error = None;
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(s)) => sent.push(s),
                Ok(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert(format!("{e:#}"));
                }
                Err(_) => errors += 1,
            }
        }
    };
    if tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(1), collect)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    if let Some(error) = first_error {
        env.progress
            .line(format!("  many-small: first trigger error: {error}"));
    }
    let span = match (
        sent.iter().map(|s| s.at).min(),
        sent.iter().map(|s| s.at).max(),
    ) {
        (Some(first), Some(last)) => Some(last.duration_since(first).as_secs_f64()),
        _ => None,
    };
    (sent, skipped, errors, span)
}
