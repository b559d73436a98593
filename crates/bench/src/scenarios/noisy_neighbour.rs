//! *noisy neighbour*: account A subscribes its own slow endpoint to its registration many times
//! (1,000, then 10,000 rows) and triggers it once; meanwhile account B triggers its own
//! registration, with one subscriber on a fast endpoint, at a steady pace. B's trigger→receipt
//! latency shows whether A's fan-out delays anyone else. A's endpoint is on another receiver
//! port than B's subscriber, so the two are different origins, as in the review's case.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::api::{concurrently, Account, Api};
use crate::cli::{Mode, ScenarioKind};
use crate::scenarios::{
    create_owners, create_subscribers, event_data, fresh_pubhook, Env, Outcome,
};
use crate::stats::Latencies;

/// Receiver port of A's slow endpoint; B's subscriber 0 is on port 0.
const SLOW_PORT: usize = 1;
/// Time between B's triggers.
const B_PERIOD: Duration = Duration::from_millis(50);
/// How long A's fan-out runs before B starts, so that B meets it in full swing.
const HEAD_START: Duration = Duration::from_millis(300);
/// Longest wait for B's last deliveries after its last trigger.
const B_DRAIN: Duration = Duration::from_secs(5);

/// Runs the scenario once: one phase per size of A's fan-out.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    out.metric(
        "a_delay_ms",
        "A's endpoint answers after",
        "ms",
        env.plan.noisy_delay.as_secs_f64() * 1000.0,
    );
    let mut all_met = true;
    let mut details = Vec::new();
    for rows in env.plan.noisy_rows.clone() {
        let phase = run_phase(env, mode, rows).await?;
        let suffix = rows.to_string();
        out.metric(
            &format!("b_triggers_{suffix}"),
            &format!("B's triggers ({rows} rows of A)"),
            "",
            phase.sent as f64,
        );
        out.metric(
            &format!("a_deliveries_{suffix}"),
            &format!("A's deliveries answered meanwhile ({rows} rows)"),
            "",
            phase.a_answered as f64,
        );
        match Latencies::of(phase.latencies_ms.clone()) {
            Some(l) => {
                out.metric(
                    &format!("latency_p50_ms_{suffix}"),
                    &format!("B trigger → receipt p50 ({rows} rows of A)"),
                    "ms",
                    l.p50,
                );
                out.metric(
                    &format!("latency_p99_ms_{suffix}"),
                    &format!("B trigger → receipt p99 ({rows} rows of A)"),
                    "ms",
                    l.p99,
                );
                out.metric(
                    &format!("latency_max_ms_{suffix}"),
                    &format!("B trigger → receipt max ({rows} rows of A)"),
                    "ms",
                    l.max,
                );
                all_met &= l.p99 < 100.0 && phase.latencies_ms.len() == phase.sent;
                details.push(format!(
                    "{rows} rows: p99 {:.1} ms, {} of {} of B's triggers delivered",
                    l.p99,
                    phase.latencies_ms.len(),
                    phase.sent
                ));
            }
            None => {
                all_met = false;
                details.push(format!("{rows} rows: none of B's triggers delivered"));
            }
        }
    }
    out.check(
        "B's trigger → receipt p99 under 100 ms, every trigger delivered",
        all_met,
        details.join("; "),
    );
    Ok(out)
}

/// What one phase measured.
struct Phase {
    sent: usize,
    latencies_ms: Vec<f64>,
    a_answered: usize,
}

async fn run_phase(env: &Env<'_>, mode: Mode, rows: usize) -> anyhow::Result<Phase> {
    let plan = env.plan;
    let (mut pubhook, api) = fresh_pubhook(env, mode, ScenarioKind::NoisyNeighbour).await?;
    let data = event_data()?;
    let a = api
        .create_account(
            "noisy",
            &env.receivers
                .slow_endpoint(SLOW_PORT, plan.noisy_delay, "a"),
        )
        .await?;
    let a_registration = api.register(&a, "bench.noisy", &data).await?;
    let started = Instant::now();
    concurrently(
        (0..rows).map(|_| api.subscribe(&a, &a_registration)),
        plan.setup_concurrency,
    )
    .await?;
    env.progress.line(format!(
        "  A subscribed its slow endpoint {rows} times in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    let owners = create_owners(env, &api, 1).await?;
    let b = owners.first().ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let b_registration = api.register(b, "bench.quiet", &data).await?;
    let subscribers = create_subscribers(env, &api, 1).await?;
    let subscriber = subscribers
        .first()
        .ok_or_else(|| anyhow::anyhow!("no subscriber"))?;
    api.subscribe(subscriber, &b_registration).await?;

    api.trigger(&a, &a_registration).await?;
    tokio::time::sleep(HEAD_START).await;
    let sent = trigger_steadily(&api, b, &b_registration, plan.noisy_duration).await?;
    let deadline = Instant::now() + B_DRAIN;
    let latencies = loop {
        let latencies = b_latencies(env, &sent);
        if latencies.len() == sent.len() || Instant::now() >= deadline {
            break latencies;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let a_answered = env
        .receivers
        .take()
        .iter()
        .filter(|arrival| arrival.subscriber == crate::receiver::NO_SUBSCRIBER)
        .count();
    pubhook.check_running()?;
    env.progress.line(format!(
        "  {rows} rows: {} of B's {} triggers delivered; A answered {a_answered} meanwhile",
        latencies.len(),
        sent.len()
    ));
    Ok(Phase {
        sent: sent.len(),
        latencies_ms: latencies,
        a_answered,
    })
}

/// Triggers B's registration every [`B_PERIOD`] for `duration`; returns each trigger's id and
/// the instant its request was sent.
async fn trigger_steadily(
    api: &Api,
    owner: &Account,
    registration: &str,
    duration: Duration,
) -> anyhow::Result<HashMap<String, Instant>> {
    let mut sent = HashMap::new();
    let mut interval = tokio::time::interval(B_PERIOD);
    let end = Instant::now() + duration;
    while Instant::now() < end {
        interval.tick().await;
        let at = Instant::now();
        let id = api.trigger(owner, registration).await?;
        sent.insert(id, at);
    }
    Ok(sent)
}

/// Trigger → receipt of each of B's triggers that has arrived, in milliseconds.
fn b_latencies(env: &Env<'_>, sent: &HashMap<String, Instant>) -> Vec<f64> {
    env.receivers
        .snapshot()
        .iter()
        .filter_map(|arrival| {
            let at = sent.get(arrival.webhook_id.as_deref()?)?;
            Some(arrival.at.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect()
}
