//! *API*: authenticated `GET /v1/account/{id}`, then `POST /v1/webhook/triggered/{id}`, each at
//! full speed for a fixed time over keep-alive connections (one account and one registration per
//! connection; the registrations have no subscribers, so the triggers cost only their record and
//! an empty fan-out job).

use std::sync::Arc;

use hyper::StatusCode;

use crate::api::{get_account_request, trigger_request};
use crate::cli::{Mode, ScenarioKind};
use crate::load::{closed_loop, LoadResult};
use crate::scenarios::{
    fresh_pubhook_with_env, owners_with_registrations, report_rss, CostMeter, Env, Outcome,
};
use crate::stats::Latencies;

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    run_with(env, mode, ScenarioKind::Api.name(), &[]).await
}

/// [`run`] on a pubhook with `extra` settings, its logs named after `phase`.
pub async fn run_with(
    env: &Env<'_>,
    mode: Mode,
    phase: &str,
    extra: &[(&'static str, String)],
) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let (mut pubhook, api) = fresh_pubhook_with_env(env, mode, phase, extra).await?;
    let connections = plan.api_connections;
    let (accounts, registrations) =
        owners_with_registrations(env, &api, connections, "bench.api").await?;
    let (accounts, registrations) = (Arc::new(accounts), Arc::new(registrations));
    let addr = pubhook.addr();
    let mut out = Outcome::default();

    env.progress.line(format!(
        "  GET /v1/account/{{id}} on {connections} connections for {:.1} s",
        plan.api_duration.as_secs_f64()
    ));
    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let owners = Arc::clone(&accounts);
    let gets = closed_loop(
        connections,
        plan.api_duration,
        StatusCode::OK,
        |_| addr,
        move |i| get_account_request(addr, &owners[i]),
    )
    .await;
    let cost = meter.stop(&pubhook, env.redis).await?;
    report_phase(env, &mut out, "get", "GET", &gets);
    cost.report(&mut out, "GET", "GETs", gets.ok);

    env.progress.line(format!(
        "  POST /v1/webhook/triggered/{{id}} on {connections} connections for {:.1} s",
        plan.api_duration.as_secs_f64()
    ));
    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let owners = Arc::clone(&accounts);
    let triggers = closed_loop(
        connections,
        plan.api_duration,
        StatusCode::CREATED,
        |_| addr,
        move |i| trigger_request(addr, &owners[i], &registrations[i]),
    )
    .await;
    let cost = meter.stop(&pubhook, env.redis).await?;
    report_phase(env, &mut out, "trigger", "trigger", &triggers);
    cost.report(&mut out, "trigger", "triggers", triggers.ok);
    pubhook.check_running()?;
    report_rss(&mut out, &pubhook)?;
    out.metric_opt(
        "redis_bytes_per_trigger",
        "Redis memory per trigger (record and job)",
        "B",
        (triggers.ok > 0).then(|| cost.memory_growth / triggers.ok as f64),
    );
    out.check(
        "no request failed",
        gets.errors == 0 && triggers.errors == 0,
        format!("{} GET and {} trigger errors", gets.errors, triggers.errors),
    );
    Ok(out)
}

/// Adds the rate, latency percentiles and failures of one loop under `key`.
pub(crate) fn report_phase(
    env: &Env<'_>,
    out: &mut Outcome,
    key: &str,
    noun: &str,
    result: &LoadResult,
) {
    out.throughput(
        env,
        &format!("{key}_per_s"),
        &format!("{noun}s per second"),
        result.rate(),
    );
    if let Some(l) = Latencies::of(result.latencies_ms.clone()) {
        out.metric(
            &format!("{key}_p50_ms"),
            &format!("{noun} latency p50"),
            "ms",
            l.p50,
        );
        out.metric(
            &format!("{key}_p95_ms"),
            &format!("{noun} latency p95"),
            "ms",
            l.p95,
        );
        out.metric(
            &format!("{key}_p99_ms"),
            &format!("{noun} latency p99"),
            "ms",
            l.p99,
        );
        out.metric(
            &format!("{key}_max_ms"),
            &format!("{noun} latency max"),
            "ms",
            l.max,
        );
    }
    out.metric(
        &format!("{key}_errors"),
        &format!("{noun}s failed"),
        "",
        result.errors as f64,
    );
    if let Some(error) = &result.first_error {
        out.notes.push(format!("{noun}: first error: {error}"));
    }
}
