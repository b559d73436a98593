//! `pubhook status`: the operator's view from a terminal, read from Redis directly.

use std::fmt::Write as _;
use std::time::Duration;

use pubhook_core::store::{RecentOutcomes, ShardStatus, Store, WorkerBeat};
use serde_json::json;

/// How often `--watch` refreshes.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Slowest origins shown.
const SLOWEST: usize = 5;

/// Prints the status once, as JSON, or again every [`WATCH_EVERY`] until interrupted.
pub async fn run(store: &Store, watch: bool, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let (shards, workers) = read(store).await?;
        println!("{}", to_json(&shards, &workers));
        return Ok(());
    }
    loop {
        let (shards, workers) = read(store).await?;
        let text = render(&shards, &workers);
        if watch {
            // Clear the screen and go home, then draw.
            print!("\x1b[2J\x1b[H{text}");
        } else {
            print!("{text}");
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(WATCH_EVERY) => {}
            () = crate::commands::shutdown_signal() => return Ok(()),
        }
    }
}

async fn read(store: &Store) -> anyhow::Result<(Vec<ShardStatus>, Vec<WorkerBeat>)> {
    let (shards, workers) = tokio::try_join!(store.queue_status(), store.live_workers())?;
    Ok((shards, workers))
}

/// The live workers' last-minute outcomes, added up.
fn outcomes(workers: &[WorkerBeat]) -> RecentOutcomes {
    workers
        .iter()
        .fold(RecentOutcomes::default(), |mut sum, worker| {
            sum.delivered += worker.last_minute.delivered;
            sum.retrying += worker.last_minute.retrying;
            sum.failed += worker.last_minute.failed;
            sum.skipped += worker.last_minute.skipped;
            sum
        })
}

/// The slowest origins over every live worker, weighted by their attempts.
fn slowest(workers: &[WorkerBeat]) -> Vec<(String, u64, f64)> {
    let mut origins: std::collections::HashMap<&str, (u64, f64)> = Default::default();
    for origin in workers.iter().flat_map(|w| &w.slowest_origins) {
        let sum = origins.entry(&origin.origin).or_default();
        sum.0 += origin.attempts;
        sum.1 += origin.mean_latency_ms * origin.attempts as f64;
    }
    let mut slowest: Vec<(String, u64, f64)> = origins
        .into_iter()
        .map(|(origin, (attempts, total))| {
            (origin.to_owned(), attempts, total / attempts.max(1) as f64)
        })
        .collect();
    slowest.sort_by(|a, b| b.2.total_cmp(&a.2));
    slowest.truncate(SLOWEST);
    slowest
}

fn to_json(shards: &[ShardStatus], workers: &[WorkerBeat]) -> serde_json::Value {
    let slowest: Vec<_> = slowest(workers)
        .into_iter()
        .map(|(origin, attempts, mean)| {
            json!({"origin": origin, "attempts": attempts, "mean_latency_ms": mean})
        })
        .collect();
    json!({
        "shards": shards,
        "workers": workers,
        "last_minute": outcomes(workers),
        "slowest_origins": slowest,
    })
}

fn render(shards: &[ShardStatus], workers: &[WorkerBeat]) -> String {
    let mut out = String::new();
    let total = |f: fn(&ShardStatus) -> u64| shards.iter().map(f).sum::<u64>();
    let oldest = shards.iter().filter_map(|s| s.oldest_pending_ms).max();
    let _ = writeln!(
        out,
        "queue: {} queued, {} pending (oldest {}), {} delayed, {} dead letters, {} shard(s)",
        total(|s| s.queued),
        total(|s| s.pending),
        oldest.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0)
        ),
        total(|s| s.delayed),
        total(|s| s.dead),
        shards.len()
    );
    let _ = writeln!(
        out,
        "\n{:<6} {:>9} {:>9} {:>12} {:>9} {:>9}",
        "shard", "queued", "pending", "oldest (s)", "delayed", "dead"
    );
    for s in shards {
        let oldest = s
            .oldest_pending_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{:.1}", ms as f64 / 1000.0));
        let _ = writeln!(
            out,
            "{:<6} {:>9} {:>9} {:>12} {:>9} {:>9}",
            s.shard, s.queued, s.pending, oldest, s.delayed, s.dead
        );
    }
    let _ = writeln!(out, "\nworkers: {} live", workers.len());
    if !workers.is_empty() {
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:>8} {:>10} {:>8} {:>12}",
            "id", "host", "pid", "in flight", "jobs", "up (s)"
        );
    }
    for w in workers {
        let up = w.last_beat.saturating_sub(w.started) / 1000;
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:>8} {:>10} {:>8} {:>12}",
            w.id, w.host, w.pid, w.in_flight, w.running_jobs, up
        );
    }
    let o = outcomes(workers);
    let _ = writeln!(
        out,
        "\nlast minute: {} delivered, {} retrying, {} failed for good, {} skipped",
        o.delivered, o.retrying, o.failed, o.skipped
    );
    let slowest = slowest(workers);
    if !slowest.is_empty() {
        let _ = writeln!(out, "\nslowest origins (mean over the last minute):");
        for (origin, attempts, mean) in slowest {
            let _ = writeln!(out, "  {mean:>9.1} ms  {attempts:>7} attempts  {origin}");
        }
    }
    out
}
