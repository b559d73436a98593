//! *ceiling*: a bare keep-alive POST loop against the same receivers, with the worker's
//! concurrency and a delivery's body and headers: how many HTTP round trips per second this
//! machine does at all. Every throughput figure is also given as a share of it.

use std::time::Instant;

use anyhow::Context as _;
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use tokio::task::JoinSet;

use crate::http::{Body, REQUEST_TIMEOUT};
use crate::load::closed_loop;
use crate::scenarios::{Env, Outcome, EVENT_DATA};
use crate::stats::Latencies;

/// Headers of the size a signed delivery carries.
const HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("user-agent", "pubhook/0.1.0"),
    ("event", "bench.fan-out"),
    (
        "pywebhooks-signature",
        "5f0c2d7a9e1b3c4d5e6f708192a3b4c5d6e7f809",
    ),
    ("webhook-id", "0d6f7a52-3b8e-4c1f-9a2d-6e5b4c3a2f10"),
    ("webhook-timestamp", "1700000000"),
    (
        "webhook-signature",
        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    ),
];

/// Runs the loop once; the key figure is `round_trips_per_s`.
pub async fn run(env: &Env<'_>) -> anyhow::Result<Outcome> {
    let plan = env.plan;
    env.receivers.reset();
    let body = Bytes::from_static(EVENT_DATA.as_bytes());
    let addrs: Vec<_> = (0..plan.ceiling_connections)
        .map(|i| env.receivers.addr_for(i))
        .collect();
    let hosts: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let result = closed_loop(
        plan.ceiling_connections,
        plan.ceiling_duration,
        StatusCode::OK,
        |i| addrs[i],
        move |i| {
            let mut builder = Request::builder()
                .method(Method::POST)
                .uri(format!("/s/{i}"))
                .header("host", hosts[i].as_str());
            for (name, value) in HEADERS {
                builder = builder.header(*name, *value);
            }
            Ok(builder.body(Body::new(body.clone()))?)
        },
    )
    .await;
    let received = env.receivers.posts();
    env.receivers.reset();
    let through_client = outbound_client_loop(env, Bytes::from_static(EVENT_DATA.as_bytes())).await;
    env.receivers.reset();

    let mut out = Outcome::default();
    out.metric_opt(
        "round_trips_per_s",
        "keep-alive POST round trips per second",
        "1/s",
        result.rate(),
    );
    out.metric("requests", "round trips", "", result.ok as f64);
    out.metric("errors", "failed requests", "", result.errors as f64);
    if let Some(l) = Latencies::of(result.latencies_ms) {
        out.metric("latency_p50_ms", "round trip p50", "ms", l.p50);
        out.metric("latency_p99_ms", "round trip p99", "ms", l.p99);
    }
    match through_client {
        Ok(rate) => out.metric(
            "outbound_client_round_trips_per_s",
            "the same loop through pubhook's outbound client, round trips per second",
            "1/s",
            rate,
        ),
        Err(err) => out
            .notes
            .push(format!("the outbound-client loop failed: {err:#}")),
    }
    out.check(
        "the receivers counted every round trip",
        received as usize >= result.ok && result.errors == 0,
        format!(
            "{} answered, {received} received, {} errors",
            result.ok, result.errors
        ),
    );
    if let Some(error) = result.first_error {
        out.notes.push(format!("first error: {error}"));
    }
    Ok(out)
}

/// The same loop through pubhook's own outbound client (its per-origin connections, the
/// destination policy's checks, the total timeout and the response cap), as the worker sends:
/// successful round trips per second. The gap to the bare loop is the client's cost.
async fn outbound_client_loop(env: &Env<'_>, body: Bytes) -> anyhow::Result<f64> {
    use pubhook_core::outbound::{DestinationPolicy, OutboundClient, OutboundConfig};
    let plan = env.plan;
    let client = OutboundClient::new(OutboundConfig {
        timeout: REQUEST_TIMEOUT,
        max_response_bytes: 4096,
        policy: DestinationPolicy::new(vec!["127.0.0.0/8".parse()?]),
        user_agent: "pubhook/0.1.0".to_owned(),
    })?;
    let mut headers = hyper::header::HeaderMap::new();
    for (name, value) in HEADERS {
        headers.insert(
            hyper::header::HeaderName::from_static(name),
            hyper::header::HeaderValue::from_static(value),
        );
    }
    let started = Instant::now();
    let deadline = started + plan.ceiling_duration;
    let mut tasks = JoinSet::new();
    for i in 0..plan.ceiling_connections {
        let url = url::Url::parse(&format!("http://{}/s/{i}", env.receivers.addr_for(i)))
            .context("a receiver URL")?;
        let (client, body, headers) = (client.clone(), body.clone(), headers.clone());
        tasks.spawn(async move {
            let mut ok = 0usize;
            // Bounded in count as well as in time.
            for _ in 0..5_000_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let answer = client.post(&url, headers.clone(), body.clone()).await;
                ok += usize::from(answer.is_ok_and(|a| a.status == 200));
            }
            ok
        });
    }
    let mut total = 0;
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            total += joined.unwrap_or(0);
        }
    };
    if tokio::time::timeout(plan.ceiling_duration + REQUEST_TIMEOUT * 2, collect)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
