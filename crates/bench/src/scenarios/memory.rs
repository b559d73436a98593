//! *Memory*: how much the API's resident memory grows for the costliest requests, against the
//! bytes those requests have in flight. Two phases, each on a fresh pubhook:
//!
//! 1. *pages*: registrations whose `event_data` is at the payload limit (`limit_payload_bytes`,
//!    256 KiB), read with `limit=100` by several readers at once, each following `next_start`
//!    to the end (the page budget `limit_page_bytes` is at its default of 1 MiB). In flight: the
//!    readers times the largest page body.
//! 2. *posts*: 20 concurrent `POST /v1/webhook/registration` of 1 MiB each (the body and payload
//!    limits raised to let them in). In flight: the 20 bodies.
//!
//! Growth is the API process's peak RSS during the phase (`VmHWM` after resetting it through
//! `/proc/<pid>/clear_refs`, and `VmRSS` sampled every few milliseconds) less its RSS before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::Value;

use crate::api::{concurrently, list_request, post_bytes_request, Account};
use crate::cli::Mode;
use crate::http::Pool;
use crate::pubhook::{reset_peak_rss, rss_of, Pubhook};
use crate::scenarios::{create_owners, fresh_pubhook_with_env, settle, Env, Outcome};

/// The payload limit of the pages phase: the default of `limit_payload_bytes`.
const PAYLOAD_LIMIT: usize = 256 * 1024;
/// The page budget of the pages phase: the default of `limit_page_bytes`.
const PAGE_BUDGET: usize = 1024 * 1024;
/// Size of each body of the posts phase.
const POST_BYTES: usize = 1024 * 1024;
/// Concurrent POSTs of the posts phase.
const CONCURRENT_POSTS: usize = 20;
/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);
/// The goal: growth under this many times the bytes in flight.
const GOAL_RATIO: f64 = 3.0;

/// The sizes of one run.
struct Sizes {
    records: usize,
    readers: usize,
    rounds: usize,
}

impl Sizes {
    fn of(quick: bool) -> Self {
        if quick {
            Self {
                records: 20,
                readers: 4,
                rounds: 2,
            }
        } else {
            Self {
                records: 100,
                readers: 8,
                rounds: 3,
            }
        }
    }
}

/// Runs the scenario once.
pub async fn run(env: &Env<'_>, mode: Mode) -> anyhow::Result<Outcome> {
    let sizes = Sizes::of(env.plan.quick);
    let mut out = Outcome::default();
    pages_phase(env, mode, &sizes, &mut out).await?;
    posts_phase(env, mode, &sizes, &mut out).await?;
    Ok(out)
}

async fn pages_phase(
    env: &Env<'_>,
    mode: Mode,
    sizes: &Sizes,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let settings = [
        ("PUBHOOK_LIMIT_PAYLOAD_BYTES", PAYLOAD_LIMIT.to_string()),
        ("PUBHOOK_LIMIT_PAGE_BYTES", PAGE_BUDGET.to_string()),
    ];
    let (mut pubhook, api) = fresh_pubhook_with_env(env, mode, "memory-pages", &settings).await?;
    let owner = create_owners(env, &api, 1)
        .await?
        .pop()
        .context("one owner")?;
    let payload = payload_of(PAYLOAD_LIMIT - 64)?;
    let events: Vec<String> = (0..sizes.records)
        .map(|i| format!("bench.memory.{i}"))
        .collect();
    concurrently(
        events
            .iter()
            .map(|event| api.register(&owner, event, &payload)),
        4,
    )
    .await?;
    env.progress.line(format!(
        "  {} registrations of {} KiB read by {} readers with limit=100, {} times each",
        sizes.records,
        PAYLOAD_LIMIT / 1024,
        sizes.readers,
        sizes.rounds
    ));

    let addr = pubhook.addr();
    let owner = Arc::new(owner);
    let rounds = sizes.rounds;
    let measured = measure(&pubhook, async {
        let readers = (0..sizes.readers).map(|_| {
            let owner = Arc::clone(&owner);
            async move { read_every_page(&Pool::new(addr), &owner, rounds).await }
        });
        let largest = concurrently(readers, sizes.readers).await?;
        Ok(largest.into_iter().max().unwrap_or(0))
    })
    .await?;
    pubhook.check_running()?;
    report(
        out,
        "page",
        "the largest pages",
        &measured,
        sizes.readers as f64 * measured.value as f64,
    );
    out.metric(
        "page_largest_kib",
        "largest page body",
        "KiB",
        measured.value as f64 / 1024.0,
    );
    Ok(())
}

/// Reads the whole list `rounds` times; returns the largest body seen.
async fn read_every_page(pool: &Pool, owner: &Account, rounds: usize) -> anyhow::Result<usize> {
    let mut largest = 0;
    for _ in 0..rounds {
        let mut start = 0;
        loop {
            let request = list_request(pool.addr(), owner, "/v1/webhook/registration", start, 100)?;
            let (status, body) = pool.send(request).await?;
            if status == StatusCode::NO_CONTENT {
                break;
            }
            if status != StatusCode::OK {
                bail!("GET page at {start}: {status}");
            }
            largest = largest.max(body.len());
            let page: Value = serde_json::from_slice(&body).context("page is JSON")?;
            match page["next_start"].as_u64() {
                Some(next) => start = next,
                None => break,
            }
        }
    }
    Ok(largest)
}

async fn posts_phase(
    env: &Env<'_>,
    mode: Mode,
    sizes: &Sizes,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let room = (2 * POST_BYTES).to_string();
    let settings = [
        ("PUBHOOK_MAX_BODY_BYTES", room.clone()),
        ("PUBHOOK_LIMIT_PAYLOAD_BYTES", room),
    ];
    let (mut pubhook, api) = fresh_pubhook_with_env(env, mode, "memory-posts", &settings).await?;
    let owner = create_owners(env, &api, 1)
        .await?
        .pop()
        .context("one owner")?;
    let body = post_body(POST_BYTES)?;
    env.progress.line(format!(
        "  {CONCURRENT_POSTS} concurrent POSTs of {} KiB, {} times",
        body.len() / 1024,
        sizes.rounds
    ));
    let addr = pubhook.addr();
    let pool = Pool::new(addr);
    let measured = measure(&pubhook, async {
        for _ in 0..sizes.rounds {
            let posts = (0..CONCURRENT_POSTS).map(|_| async {
                let request =
                    post_bytes_request(addr, &owner, "/v1/webhook/registration", body.clone())?;
                let (status, answer) = pool.send(request).await?;
                if status != StatusCode::CREATED {
                    bail!(
                        "POST: {status} {}",
                        String::from_utf8_lossy(&answer[..answer.len().min(200)])
                    );
                }
                Ok(())
            });
            concurrently(posts, CONCURRENT_POSTS).await?;
        }
        Ok(body.len())
    })
    .await?;
    pubhook.check_running()?;
    report(
        out,
        "post",
        "20 concurrent 1 MiB POSTs",
        &measured,
        (CONCURRENT_POSTS * body.len()) as f64,
    );
    Ok(())
}

/// What a measured phase gave: its own result, and the API's memory around it.
struct Measured<T> {
    value: T,
    before: u64,
    peak: u64,
}

/// Runs `work` and measures the API process's resident memory: before it, and its peak during.
async fn measure<T>(
    pubhook: &Pubhook,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Measured<T>> {
    let pid = pubhook.api_pid().context("an API process")?;
    settle(Duration::from_millis(300)).await;
    let (before, _) = rss_of(pid)?;
    let peak_was_reset = reset_peak_rss(pid);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = rss_of(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            peak
        })
    };
    let result = work.await;
    done.store(true, Ordering::Relaxed);
    let sampled = sampler.await.context("the RSS sampler")?;
    let (_, hwm) = rss_of(pid)?;
    let peak = if peak_was_reset {
        sampled.max(hwm)
    } else {
        sampled
    };
    Ok(Measured {
        value: result?,
        before,
        peak,
    })
}

fn report<T>(out: &mut Outcome, key: &str, what: &str, m: &Measured<T>, in_flight: f64) {
    const MIB: f64 = 1_048_576.0;
    let growth = m.peak.saturating_sub(m.before) as f64;
    let ratio = if in_flight > 0.0 {
        growth / in_flight
    } else {
        0.0
    };
    out.metric(
        &format!("{key}_rss_before_mb"),
        &format!("{what}: API RSS before"),
        "MB",
        m.before as f64 / MIB,
    );
    out.metric(
        &format!("{key}_rss_growth_mb"),
        &format!("{what}: API peak RSS growth"),
        "MB",
        growth / MIB,
    );
    out.metric(
        &format!("{key}_in_flight_mb"),
        &format!("{what}: bytes in flight"),
        "MB",
        in_flight / MIB,
    );
    out.metric(
        &format!("{key}_rss_growth_ratio"),
        &format!("{what}: RSS growth / bytes in flight"),
        "x",
        ratio,
    );
    out.check(
        &format!("{what}: RSS growth under {GOAL_RATIO}x the bytes in flight"),
        ratio < GOAL_RATIO,
        format!(
            "{:.1} MB growth for {:.1} MB in flight",
            growth / MIB,
            in_flight / MIB
        ),
    );
}

/// A payload of about `bytes` bytes of compact JSON, shaped like real data (objects, numbers
/// with fractions, short strings), which costs a parser more than one long string.
fn payload_of(bytes: usize) -> anyhow::Result<Value> {
    let mut text = String::from("[");
    let mut n = 0u64;
    loop {
        let item = format!(
            r#"{{"id":{n},"price":{}.{:02},"qty":{},"sku":"SKU-{n:06}","tags":["a","bb"]}}"#,
            n % 997,
            n % 100,
            n % 7
        );
        // One byte for the comma, one for the closing bracket.
        if text.len() + item.len() + 2 > bytes {
            break;
        }
        if n > 0 {
            text.push(',');
        }
        text.push_str(&item);
        n += 1;
    }
    text.push(']');
    serde_json::from_str(&text).context("the generated payload is JSON")
}

/// A registration body of about `bytes` bytes.
fn post_body(bytes: usize) -> anyhow::Result<Bytes> {
    let payload = payload_of(bytes - 80)?;
    let body = serde_json::json!({
        "event": "bench.memory",
        "description": "pubhook-bench",
        "event_data": payload,
    });
    Ok(Bytes::from(serde_json::to_vec(&body).context("the body")?))
}
