//! *Trigger payload*: `POST /v1/webhook/triggered/{id}` at full speed for a fixed time, first
//! without a body (the registration's payload is sent), then with a body whose `event_data` is
//! about 1 KiB (the trigger's own payload, stored on its record), on the same pubhook, so the
//! two are side by side: rate, latency, and Redis commands per trigger. The registrations have
//! no subscribers, as in the api scenario, so a trigger costs its record and an empty fan-out.

use std::sync::Arc;

use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::json;

use crate::api::{trigger_request, trigger_with_body_request};
use crate::cli::{Mode, ScenarioKind};
use crate::load::closed_loop;
use crate::scenarios::api::report_phase;
use crate::scenarios::{fresh_pubhook, owners_with_registrations, CostMeter, Env, Outcome};

/// The `event_data` of each payload trigger: about 1 KiB of JSON.
fn payload_body() -> anyhow::Result<Vec<u8>> {
    let items: Vec<_> = (0..12)
        .map(|i| json!({"sku": format!("SKU-{i:04}"), "qty": i + 1, "price": 1999 + i}))
        .collect();
    let body = json!({"event_data": {"event": "order.shipped", "order": "ord_7f3a9c2e", "items": items, "note": "x".repeat(450)}});
    Ok(serde_json::to_vec(&body)?)
}

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    let (mut pubhook, api) = fresh_pubhook(env, mode, ScenarioKind::TriggerPayload).await?;
    let connections = plan.api_connections;
    let (accounts, registrations) =
        owners_with_registrations(env, &api, connections, "bench.payload").await?;
    let (accounts, registrations) = (Arc::new(accounts), Arc::new(registrations));
    let body = Bytes::from(payload_body()?);
    let addr = pubhook.addr();
    let mut out = Outcome::default();
    out.metric(
        "payload_body_bytes",
        "trigger body with event_data",
        "B",
        body.len() as f64,
    );

    env.progress.line(format!(
        "  POST /v1/webhook/triggered/{{id}} without a body on {connections} connections for {:.1} s",
        plan.api_duration.as_secs_f64()
    ));
    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let (owners, regs) = (Arc::clone(&accounts), Arc::clone(&registrations));
    let plain = closed_loop(
        connections,
        plan.api_duration,
        StatusCode::CREATED,
        |_| addr,
        move |i| trigger_request(addr, &owners[i], &regs[i]),
    )
    .await;
    let cost = meter.stop(&pubhook, env.redis).await?;
    report_phase(env, &mut out, "trigger", "trigger", &plain);
    cost.report(&mut out, "trigger", "triggers", plain.ok);

    env.progress.line(format!(
        "  POST /v1/webhook/triggered/{{id}} with a {} B event_data body on {connections} connections for {:.1} s",
        body.len(),
        plan.api_duration.as_secs_f64()
    ));
    let meter = CostMeter::start(&pubhook, env.redis).await?;
    let (owners, regs) = (Arc::clone(&accounts), Arc::clone(&registrations));
    let with_payload = closed_loop(
        connections,
        plan.api_duration,
        StatusCode::CREATED,
        |_| addr,
        move |i| trigger_with_body_request(addr, &owners[i], &regs[i], body.clone()),
    )
    .await;
    let cost = meter.stop(&pubhook, env.redis).await?;
    report_phase(env, &mut out, "payload", "payload trigger", &with_payload);
    cost.report(
        &mut out,
        "payload trigger",
        "payload triggers",
        with_payload.ok,
    );
    out.metric_opt(
        "redis_bytes_per_payload_trigger",
        "Redis memory per payload trigger (record with its payload, and job)",
        "B",
        (with_payload.ok > 0).then(|| cost.memory_growth / with_payload.ok as f64),
    );
    pubhook.check_running()?;
    out.check(
        "no request failed",
        plain.errors == 0 && with_payload.errors == 0,
        format!(
            "{} plain and {} payload trigger errors",
            plain.errors, with_payload.errors
        ),
    );
    Ok(out)
}
