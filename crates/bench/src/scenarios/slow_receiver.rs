//! *slow-receiver*: a fan-out to one origin that serves a fixed number of requests per second
//! and queues the rest ([`crate::receiver::Pace`]: `slow_servers` requests at once, each taking
//! `slow_service`). Its latency grows with the requests pubhook keeps in flight, so a limit that
//! follows latency settles near `slow_servers` (its rate × its service time), while a fixed
//! limit above that only lengthens the queue, up to delivery timeouts.
//!
//! pubhook runs with `PUBHOOK_WORKER_CONCURRENCY=slow_worker_concurrency` (high, as for a fan-out
//! to many slow endpoints) and `PUBHOOK_REQUEST_TIMEOUT=slow_request_timeout`. The figures are
//! taken once converged: from `slow_warmup` after the first arrival to a second before the last.
//! A delivery timed out when pubhook left before the answer (it closes the connection when its
//! request timeout passes, and retries the delivery later), or when the receiver held it for at
//! least the request timeout.

use std::time::{Duration, Instant};

use crate::cli::{Mode, ScenarioKind};
use crate::receiver::Pace;
use crate::scenarios::{
    create_owners, create_subscribers_at, event_data, fresh_pubhook_with_env, in_flight_plot,
    pair_counts, report_in_flight, settle, subscribe_all, Env, Outcome,
};
use crate::stats::{rate_between, Latencies};

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let pace = Pace {
        servers: plan.slow_servers,
        service: plan.slow_service,
    };
    let extra = [
        (
            "PUBHOOK_WORKER_CONCURRENCY",
            plan.slow_worker_concurrency.to_string(),
        ),
        (
            "PUBHOOK_REQUEST_TIMEOUT",
            format!("{}ms", plan.slow_request_timeout.as_millis()),
        ),
    ];
    let phase = ScenarioKind::SlowReceiver.name();
    let (mut pubhook, api) = fresh_pubhook_with_env(env, mode, phase, &extra).await?;
    let owners = create_owners(env, &api, 1).await?;
    let owner = owners.first().ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let registration = api.register(owner, "bench.slow", &event_data()?).await?;
    let subscribers = create_subscribers_at(env, &api, plan.subscribers, |n| {
        env.receivers.endpoint_on_first_port(n)
    })
    .await?;
    subscribe_all(env, &api, &subscribers, |_| registration.as_str()).await?;

    // Paced from here on: the echo challenges of the set-up were answered at once.
    env.receivers.set_pace(Some(pace));
    let sampler = env
        .receivers
        .sample_in_flight(plan.in_flight_every, 100_000);
    let started = Instant::now();
    for _ in 0..plan.slow_triggers {
        api.trigger(owner, &registration).await?;
    }
    let expected = (plan.slow_triggers * subscribers.len()) as u64;
    // Each delivery takes 1 / rate of the receiver's time, retries more; twice that, plus the
    // retry schedule, is enough for a limit that works.
    let timeout = Duration::from_secs_f64(2.0 * expected as f64 / pace.rate()) + plan.slow_warmup;
    env.progress.line(format!(
        "  {} triggers sent; waiting for {expected} deliveries at {:.0}/s",
        plan.slow_triggers,
        pace.rate()
    ));
    let deadline = Instant::now() + timeout;
    let mut complete = env
        .receivers
        .wait_for_posts(expected, timeout, env.progress, "  slow-receiver")
        .await;
    // The POSTs counted include retries and attempts pubhook gave up on: wait until every
    // delivery has been answered once.
    while complete && (env.receivers.answered_pairs() as u64) < expected {
        if Instant::now() >= deadline {
            complete = false;
            break;
        }
        settle(Duration::from_millis(100)).await;
    }
    // The answers of the last ones.
    settle(Duration::from_millis(1500)).await;
    let answered = env.receivers.answered_pairs() as u64;
    let samples = sampler.stop().await;
    pubhook.check_running()?;
    let arrivals = env.receivers.take();
    let held = env.receivers.take_held();
    env.receivers.set_pace(None);

    let mut out = Outcome::default();
    let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) else {
        anyhow::bail!("no delivery arrived");
    };
    let converged_from = first.at + plan.slow_warmup;
    let converged_to = last
        .at
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(last.at);
    out.metric(
        "deliveries",
        "POSTs received (retries included)",
        "",
        arrivals.len() as f64,
    );
    out.metric_opt(
        "deliveries_per_s",
        "POSTs per second at the receiver",
        "1/s",
        rate_between(first.at, last.at, arrivals.len()),
    );
    out.metric(
        "receiver_rate",
        "what the receiver serves at most, per second",
        "1/s",
        pace.rate(),
    );
    out.metric(
        "receiver_sustains",
        "in flight the receiver sustains (its rate × service time)",
        "",
        pace.servers as f64,
    );
    let converged = report_in_flight(
        &mut out,
        &samples,
        converged_from,
        converged_to,
        "once converged",
    );
    if let Some(median) = converged {
        out.metric(
            "in_flight_over_sustained",
            "in flight once converged ÷ what the receiver sustains",
            "",
            median / pace.servers as f64,
        );
    } else {
        out.notes.push(format!(
            "no sample after the {:.0} s warm-up: the run was too short to converge",
            plan.slow_warmup.as_secs_f64()
        ));
    }
    let held_converged: Vec<_> = held.iter().filter(|h| h.at >= converged_from).collect();
    if let Some(l) = Latencies::of(
        held_converged
            .iter()
            .filter(|h| !h.abandoned)
            .map(|h| h.held.as_secs_f64() * 1000.0)
            .collect(),
    ) {
        out.metric(
            "held_p50_ms",
            "time at the receiver once converged, p50",
            "ms",
            l.p50,
        );
        out.metric(
            "held_p99_ms",
            "time at the receiver once converged, p99",
            "ms",
            l.p99,
        );
    }
    let timed_out = |h: &crate::receiver::Held| h.abandoned || h.held >= plan.slow_request_timeout;
    let timeouts = held.iter().filter(|h| timed_out(h)).count();
    let timeouts_converged = held_converged.iter().filter(|h| timed_out(h)).count();
    out.metric(
        "timeouts",
        "delivery timeouts (pubhook left before the answer, or held ≥ the request timeout)",
        "",
        timeouts as f64,
    );
    out.metric(
        "timeouts_converged",
        "delivery timeouts once converged",
        "",
        timeouts_converged as f64,
    );
    let pairs = pair_counts(&arrivals, |_| true);
    out.metric(
        "retried",
        "POSTs beyond the first of their delivery (retries)",
        "",
        (arrivals.len() - pairs.len()) as f64,
    );
    out.check(
        "no delivery timed out once converged",
        timeouts_converged == 0,
        format!("{timeouts_converged} timed out after the warm-up, {timeouts} in all"),
    );
    out.check(
        "every subscriber got every trigger, answered",
        complete && answered == expected,
        format!(
            "{answered} of {expected} (subscriber, trigger) pairs answered, {} arrived",
            pairs.len()
        ),
    );
    out.plot = Some(in_flight_plot(started, &samples));
    Ok(out)
}
