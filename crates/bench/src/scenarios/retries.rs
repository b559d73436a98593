//! *retries*: a fan-out where every tenth receiver answers 500. Measures the healthy receivers'
//! throughput while the failing ones are retried, and checks that each failing receiver got
//! exactly the scheduled attempts per trigger (1 + one per delay of the retry schedule).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cli::{Mode, ScenarioKind};
use crate::scenarios::{
    create_owners, create_subscribers, event_data, fresh_pubhook, pair_counts, report_rss, settle,
    subscribe_all, CostMeter, Env, Outcome,
};
use crate::stats::{percentile, rate_between, sorted};

/// How long to keep listening after the expected attempts arrived, to catch extra ones: longer
/// than the longest delay of the schedule.
const EXTRA_WINDOW: Duration = Duration::from_millis(1200);

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let (mut pubhook, api) = fresh_pubhook(env, mode, ScenarioKind::Retries).await?;
    let owners = create_owners(env, &api, 1).await?;
    let owner = owners.first().ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let registration = api.register(owner, "bench.retries", &event_data()?).await?;
    let subscribers = create_subscribers(env, &api, plan.subscribers).await?;
    subscribe_all(env, &api, &subscribers, |_| registration.as_str()).await?;
    let every = plan.retry_fail_every.max(1);
    let is_failing = |n: usize| n % every == 0;
    let failing = (0..subscribers.len()).filter(|n| is_failing(*n)).count();
    let healthy = subscribers.len() - failing;
    for n in (0..subscribers.len()).filter(|n| is_failing(*n)) {
        env.receivers.set_failing(n, true);
    }

    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let started = Instant::now();
    for _ in 0..plan.retry_triggers {
        api.trigger(owner, &registration).await?;
    }
    let triggers = plan.retry_triggers;
    let expected_healthy = healthy * triggers;
    let expected_failing = failing * triggers * plan.retry_attempts;
    let expected = (expected_healthy + expected_failing) as u64;
    env.progress.line(format!(
        "  {triggers} triggers: waiting for {expected_healthy} deliveries and {expected_failing} attempts at failing receivers"
    ));
    let complete = env
        .receivers
        .wait_for_posts(expected, plan.retry_timeout, env.progress, "  retries")
        .await;
    settle(EXTRA_WINDOW).await;
    let cost = meter.stop(&pubhook, env.redis).await?;
    pubhook.check_running()?;
    let arrivals = env.receivers.take();

    let healthy_arrivals: Vec<Instant> = arrivals
        .iter()
        .filter(|a| !a.failed)
        .map(|a| a.at)
        .collect();
    let mut out = Outcome::default();
    out.metric(
        "attempts",
        "POSTs received (all attempts)",
        "",
        arrivals.len() as f64,
    );
    out.metric(
        "healthy_deliveries",
        "deliveries to healthy receivers",
        "",
        healthy_arrivals.len() as f64,
    );
    let rate = match (healthy_arrivals.first(), healthy_arrivals.last()) {
        (Some(first), Some(last)) => rate_between(*first, *last, healthy_arrivals.len()),
        _ => None,
    };
    out.throughput(env, "healthy_per_s", "healthy deliveries per second", rate);
    out.metric_opt(
        "all_attempts_s",
        "first trigger → last attempt",
        "s",
        arrivals
            .iter()
            .map(|a| a.at)
            .max()
            .map(|at| at.saturating_duration_since(started).as_secs_f64()),
    );

    // Failing pairs: their attempts and the gaps between them.
    let mut attempts: HashMap<(u32, &str), Vec<Instant>> = HashMap::new();
    for arrival in arrivals.iter().filter(|a| a.failed) {
        attempts
            .entry((
                arrival.subscriber,
                arrival.webhook_id.as_deref().unwrap_or(""),
            ))
            .or_default()
            .push(arrival.at);
    }
    let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); plan.retry_attempts.saturating_sub(1)];
    for times in attempts.values_mut() {
        times.sort();
        for (i, pair) in times.windows(2).enumerate() {
            if let Some(gap) = gaps.get_mut(i) {
                gap.push(pair[1].duration_since(pair[0]).as_secs_f64() * 1000.0);
            }
        }
    }
    for (i, gap) in gaps.into_iter().enumerate() {
        out.metric_opt(
            &format!("retry_gap_{}_ms", i + 1),
            &format!("attempt {} → {}, median gap", i + 1, i + 2),
            "ms",
            percentile(&sorted(gap), 50.0),
        );
    }
    cost.report(&mut out, "attempt", "attempts", arrivals.len());
    report_rss(&mut out, &pubhook)?;

    let want = plan.retry_attempts;
    let exact = attempts.values().filter(|t| t.len() == want).count();
    let fewer = attempts.values().filter(|t| t.len() < want).count();
    let more = attempts.values().filter(|t| t.len() > want).count();
    let pairs = failing * triggers;
    out.check(
        &format!("each failing receiver got exactly {want} attempts per trigger"),
        exact == pairs && attempts.len() == pairs,
        format!(
            "{exact} of {pairs} (receiver, trigger) pairs got {want}; {fewer} got fewer, {more} got more, {} missing",
            pairs.saturating_sub(attempts.len())
        ),
    );
    let healthy_pairs = pair_counts(&arrivals, |a| !a.failed);
    let duplicates = healthy_arrivals.len() - healthy_pairs.len();
    out.check(
        "each healthy receiver got each trigger exactly once",
        healthy_pairs.len() == expected_healthy && duplicates == 0,
        format!(
            "{} of {expected_healthy} pairs arrived, {duplicates} duplicates",
            healthy_pairs.len()
        ),
    );
    if !complete {
        out.notes.push(format!(
            "timed out after {:.0} s: {} of {expected} POSTs arrived",
            plan.retry_timeout.as_secs_f64(),
            arrivals.len()
        ));
    }
    Ok(out)
}
