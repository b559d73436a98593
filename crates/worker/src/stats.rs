//! What a worker did over the last minute, kept in memory and published with its heartbeat
//! (`store::workers`): outcome counts, and the origins whose answers were slowest. Counting
//! costs no Redis command; `pubhook status` adds up the live workers' figures.

use crate::Map;
use std::time::{Duration, Instant};

use pubhook_core::store::{OriginLatency, RecentOutcomes};

use crate::delivery::{AttemptResult, DeliveryOutcome};
use crate::fair::Origin;

/// Length of one bucket; the window is [`BUCKETS`] of them.
const BUCKET: Duration = Duration::from_secs(5);
/// Buckets in the window: one minute.
const BUCKETS: usize = 12;
/// Origins shown as the slowest.
const SLOWEST: usize = 5;

/// One bucket's counts.
#[derive(Default)]
struct Bucket {
    /// Which bucket of time it holds (its start in [`BUCKET`]s since the stats began).
    index: u64,
    outcomes: RecentOutcomes,
    /// Per origin: answers and the sum of their latencies in ms.
    origins: Map<Origin, (u64, f64)>,
}

/// The last minute of one worker, in [`BUCKET`]-long buckets.
pub struct RecentStats {
    started: Instant,
    buckets: Vec<Bucket>,
}

impl Default for RecentStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
        }
    }
}

impl RecentStats {
    fn now_index(&self) -> u64 {
        let elapsed = self.started.elapsed().as_millis() / BUCKET.as_millis();
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    /// Counts one attempt to `origin`.
    pub fn note(&mut self, origin: &Origin, result: &AttemptResult) {
        let index = self.now_index();
        let bucket = &mut self.buckets[(index % BUCKETS as u64) as usize];
        if bucket.index != index {
            *bucket = Bucket {
                index,
                ..Bucket::default()
            };
        }
        let outcomes = &mut bucket.outcomes;
        match result.outcome {
            DeliveryOutcome::Delivered => outcomes.delivered += 1,
            DeliveryOutcome::Retrying { .. } => outcomes.retrying += 1,
            DeliveryOutcome::GaveUp => outcomes.failed += 1,
            // Not attempted: no answer, no latency.
            DeliveryOutcome::Skipped(_) => {
                outcomes.skipped += 1;
                return;
            }
        }
        let (answers, total_ms) = bucket.origins.entry(origin.clone()).or_default();
        *answers += 1;
        *total_ms += result.latency_ms();
    }

    /// The outcomes of the last minute, and the slowest origins by mean latency.
    pub fn last_minute(&self) -> (RecentOutcomes, Vec<OriginLatency>) {
        let now = self.now_index();
        let mut outcomes = RecentOutcomes::default();
        let mut origins: Map<&Origin, (u64, f64)> = Map::default();
        for bucket in &self.buckets {
            if now.saturating_sub(bucket.index) >= BUCKETS as u64 || bucket.index > now {
                continue;
            }
            outcomes.delivered += bucket.outcomes.delivered;
            outcomes.retrying += bucket.outcomes.retrying;
            outcomes.failed += bucket.outcomes.failed;
            outcomes.skipped += bucket.outcomes.skipped;
            for (origin, (answers, total_ms)) in &bucket.origins {
                let sum = origins.entry(origin).or_default();
                sum.0 += answers;
                sum.1 += total_ms;
            }
        }
        let mut slowest: Vec<OriginLatency> = origins
            .into_iter()
            .map(|(origin, (answers, total_ms))| OriginLatency {
                origin: origin.to_string(),
                attempts: answers,
                mean_latency_ms: total_ms / answers.max(1) as f64,
            })
            .collect();
        slowest.sort_by(|a, b| b.mean_latency_ms.total_cmp(&a.mean_latency_ms));
        slowest.truncate(SLOWEST);
        (outcomes, slowest)
    }
}
