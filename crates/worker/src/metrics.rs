//! The worker's Prometheus metrics (`docs/operations.md` says what each means).
//!
//! Deliveries are counted by the dispatcher as their answers come back, from what the attempt
//! already carries (its outcome, error class, latency, the subscriber's `failed_count` before
//! it, the trigger's creation time read with the job's inputs): no Redis command is added per
//! delivery. The queue's figures are sampled every [`SAMPLE_EVERY`] by one task, with the
//! reads `pubhook status` makes.

use std::time::Duration;

use prometheus::{GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};
use pubhook_core::domain::now_micros;
use pubhook_core::metrics::{
    counter, counter_vec, float_gauge_vec, gauge, gauge_vec, histogram, LAG_BUCKETS,
    LATENCY_BUCKETS,
};
use pubhook_core::store::Store;
use tokio::sync::watch;

use crate::delivery::{AttemptResult, DeliveryJob, DeliveryOutcome, Payload};

/// How often the queue's figures are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Entries of the disabled subscribers' set checked against their accounts at each sample (see
/// `pubhook_core::store` `disabled`): a few reads, so that a stale entry is dropped soon.
const DISABLED_CHECKED: usize = 16;

/// The worker's metric families, registered in the process's registry.
pub struct WorkerMetrics {
    deliveries: IntCounterVec,
    attempts: IntCounterVec,
    retries_scheduled: IntCounter,
    latency: Histogram,
    first_attempt_lag: Histogram,
    endpoints_disabled: IntCounter,
    endpoints_reenabled: IntCounter,
    in_flight: IntGauge,
    running_jobs: IntGauge,
    queue_depth: IntGaugeVec,
    queue_pending: IntGaugeVec,
    oldest_pending_age: GaugeVec,
    delayed: IntGaugeVec,
    dead_letters: IntGaugeVec,
    at_max_failed_count: IntGauge,
}

impl WorkerMetrics {
    /// The families, registered in `registry`.
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let r = registry;
        let shard = &["shard"];
        Ok(Self {
            deliveries: counter_vec(
                r,
                "pubhook_deliveries_total",
                "Deliveries by outcome (delivered, retrying, failed, skipped) and error class (none when delivered).",
                &["outcome", "error_class"],
            )?,
            attempts: counter_vec(
                r,
                "pubhook_delivery_attempts_total",
                "Requests made to endpoints, by kind: first, retry, redelivery.",
                &["kind"],
            )?,
            retries_scheduled: counter(
                r,
                "pubhook_retries_scheduled_total",
                "Failed attempts that scheduled another attempt.",
            )?,
            latency: histogram(
                r,
                "pubhook_delivery_duration_seconds",
                "Time from sending a delivery to its answer (or its failure).",
                LATENCY_BUCKETS,
            )?,
            first_attempt_lag: histogram(
                r,
                "pubhook_trigger_to_first_attempt_seconds",
                "Time from a trigger's record to the start of a first attempt of its deliveries.",
                LAG_BUCKETS,
            )?,
            endpoints_disabled: counter(
                r,
                "pubhook_endpoints_disabled_total",
                "Failed attempts that brought a subscriber's failed_count to max_failed_count.",
            )?,
            endpoints_reenabled: counter(
                r,
                "pubhook_endpoints_reenabled_total",
                "Successful deliveries (redeliveries) to a subscriber at max_failed_count, which re-enable it.",
            )?,
            in_flight: gauge(
                r,
                "pubhook_deliveries_in_flight",
                "Delivery requests this worker has in flight.",
            )?,
            running_jobs: gauge(
                r,
                "pubhook_worker_jobs_running",
                "Jobs this worker has started and not finished.",
            )?,
            queue_depth: gauge_vec(
                r,
                "pubhook_queue_depth",
                "Entries in the shard's stream: waiting, or read and not yet acknowledged (sampled).",
                shard,
            )?,
            queue_pending: gauge_vec(
                r,
                "pubhook_queue_pending",
                "Entries read by a worker and not yet acknowledged (sampled).",
                shard,
            )?,
            oldest_pending_age: float_gauge_vec(
                r,
                "pubhook_queue_oldest_pending_age_seconds",
                "Age of the shard's oldest pending entry, 0 when none (sampled).",
                shard,
            )?,
            delayed: gauge_vec(
                r,
                "pubhook_queue_delayed",
                "Retries, parked jobs, probes and intents waiting for their time (sampled).",
                shard,
            )?,
            dead_letters: gauge_vec(
                r,
                "pubhook_dead_letters",
                "Jobs set aside after crashing workers (sampled).",
                shard,
            )?,
            at_max_failed_count: gauge(
                r,
                "pubhook_endpoints_at_max_failed_count",
                "Subscribers at max_failed_count, whose deliveries are skipped (sampled).",
            )?,
        })
    }

    /// Counts one target of `job`: its outcome, and for an attempt made, its request, latency
    /// and (a first attempt) its lag behind the trigger.
    pub(crate) fn note(
        &self,
        job: &DeliveryJob,
        payload: Option<&Payload>,
        result: &AttemptResult,
        max_failed_count: u32,
    ) {
        let error_class = result.error_class().map_or("none", |class| class.as_str());
        let (outcome, failed) = match result.outcome {
            DeliveryOutcome::Delivered => ("delivered", false),
            DeliveryOutcome::Retrying { .. } => ("retrying", true),
            DeliveryOutcome::GaveUp => ("failed", true),
            DeliveryOutcome::Skipped(_) => ("skipped", false),
        };
        self.deliveries
            .with_label_values(&[outcome, error_class])
            .inc();
        if matches!(result.outcome, DeliveryOutcome::Skipped(_)) {
            return;
        }
        let kind = match (job.manual, job.attempt) {
            (true, _) => "redelivery",
            (false, 1) => "first",
            (false, _) => "retry",
        };
        self.attempts.with_label_values(&[kind]).inc();
        let latency_s = result.latency_ms() / 1000.0;
        self.latency.observe(latency_s);
        if matches!(result.outcome, DeliveryOutcome::Retrying { .. }) {
            self.retries_scheduled.inc();
        }
        let max = i64::from(max_failed_count);
        let before = result.failed_count_before();
        if failed && before + 1 == max {
            self.endpoints_disabled.inc();
        } else if !failed && before >= max {
            self.endpoints_reenabled.inc();
        }
        if kind == "first" {
            if let Some(created) = payload.and_then(Payload::trigger_created_micros) {
                // The attempt started its latency before it ended, now.
                let started = now_micros() - (result.latency_ms() * 1000.0) as i64;
                self.first_attempt_lag
                    .observe(started.saturating_sub(created).max(0) as f64 / 1e6);
            }
        }
    }

    /// The worker's load, from its dispatcher.
    pub(crate) fn set_load(&self, in_flight: usize, running_jobs: usize) {
        self.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        self.running_jobs
            .set(i64::try_from(running_jobs).unwrap_or(i64::MAX));
    }
}

/// Reads the queue's figures every [`SAMPLE_EVERY`] until `stop`: a handful of O(1) reads per
/// shard, sent at once, whatever the delivery rate.
pub(crate) async fn sample_queue(
    store: Store,
    metrics: std::sync::Arc<WorkerMetrics>,
    max_failed_count: u32,
    mut stop: watch::Receiver<bool>,
) {
    let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    loop {
        match store.queue_status().await {
            Ok(shards) => {
                for shard in shards {
                    let label = [shard.shard.as_str()];
                    metrics
                        .queue_depth
                        .with_label_values(&label)
                        .set(as_gauge(shard.queued));
                    metrics
                        .queue_pending
                        .with_label_values(&label)
                        .set(as_gauge(shard.pending));
                    metrics
                        .oldest_pending_age
                        .with_label_values(&label)
                        .set(shard.oldest_pending_ms.unwrap_or(0) as f64 / 1000.0);
                    metrics
                        .delayed
                        .with_label_values(&label)
                        .set(as_gauge(shard.delayed));
                    metrics
                        .dead_letters
                        .with_label_values(&label)
                        .set(as_gauge(shard.dead));
                }
            }
            Err(e) => tracing::debug!(error = %e, "sampling the queue for metrics failed"),
        }
        match store
            .prune_disabled(max_failed_count, DISABLED_CHECKED)
            .await
        {
            Ok(count) => metrics.at_max_failed_count.set(as_gauge(count)),
            Err(e) => tracing::debug!(error = %e, "counting disabled subscribers failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
