//! The worker's life cycle: `Worker::build`, then `run_until_stopped(shutdown)`.
//!
//! One loop reads jobs while job slots are free and runs each in its own task; beside it, three
//! small tasks move due retries to the stream, reclaim the jobs of dead workers, and keep this
//! worker's running jobs claimed. On shutdown the loop stops reading, running jobs get
//! [`WorkerConfig::shutdown_grace`] to finish, and whatever is still unfinished stays pending in
//! the stream, to be reclaimed by another worker after the visibility timeout.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pubhook_core::domain::now_millis;
use pubhook_core::outbound::OutboundClient;
use pubhook_core::queue::Job;
use pubhook_core::store::{Store, StoreError};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::consumer::{Consumer, Entry};
use crate::delivery::{deliver, ConcurrencyLimits, DeliveryContext, DeliveryJob};
use crate::fan_out::fan_out_page;
use crate::retry::RetryPolicy;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests in flight to one endpoint at most.
    pub per_endpoint_concurrency: usize,
    /// Jobs (fan-out pages, batches, retries) run at once.
    pub job_slots: usize,
    /// After this long without progress, a job is taken over by another worker.
    pub visibility_timeout: Duration,
    /// Delays between attempts.
    pub retry_schedule: Vec<Duration>,
    /// Random spread of those delays, as a fraction.
    pub retry_jitter: f64,
    /// Subscribers with this many failures are skipped.
    pub max_failed_count: u32,
    /// How long attempt records are kept.
    pub delivery_retention: Duration,
    /// How long running jobs may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

/// A delivery worker, ready to run.
pub struct Worker {
    consumer: Consumer,
    ctx: DeliveryContext,
    config: WorkerConfig,
}

/// How long a read waits for new jobs before checking for shutdown again.
const READ_BLOCK: Duration = Duration::from_millis(500);
/// Longest pause of the retry mover; it wakes earlier when a retry is due sooner.
const PROMOTE_IDLE: Duration = Duration::from_millis(100);
/// Pause after a Redis error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

impl Worker {
    /// A worker on `store` sending through `outbound`.
    pub fn build(store: Store, outbound: OutboundClient, config: WorkerConfig) -> Self {
        let name = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let consumer = Consumer::new(store.clone(), name, config.visibility_timeout);
        let ctx = DeliveryContext {
            store,
            outbound,
            retry: RetryPolicy::new(config.retry_schedule.clone(), config.retry_jitter),
            max_failed_count: config.max_failed_count,
            retention: config.delivery_retention,
            limits: Arc::new(ConcurrencyLimits::new(
                config.concurrency,
                config.per_endpoint_concurrency,
            )),
        };
        Self {
            consumer,
            ctx,
            config,
        }
    }

    /// This worker's consumer name in the stream's group.
    pub fn name(&self) -> &str {
        self.consumer.name()
    }

    /// Runs until `shutdown` completes, then stops as the module documentation says.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut helpers = JoinSet::new();
        helpers.spawn(promote_retries(self.consumer.clone(), stop_rx.clone()));
        helpers.spawn(keep_claimed(
            self.consumer.clone(),
            in_flight.clone(),
            self.config.visibility_timeout / 3,
            stop_rx.clone(),
        ));
        let (reclaimed_tx, mut reclaimed_rx) = tokio::sync::mpsc::channel::<Entry>(256);
        helpers.spawn(reclaim_stale(
            self.consumer.clone(),
            reclaimed_tx,
            self.config.visibility_timeout / 2,
            stop_rx.clone(),
        ));

        if let Err(e) = self.consumer.ensure_group().await {
            tracing::warn!(error = %e, "could not create the consumer group yet; will retry");
        }
        tracing::info!(consumer = self.name(), "worker started");

        let slots = Arc::new(Semaphore::new(self.config.job_slots.max(1)));
        let mut jobs = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            // Wait for a free slot (or shutdown) before reading, so nothing read waits unclaimed.
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit?,
                () = &mut shutdown => break,
            };
            let free = slots.available_permits() + 1;
            // Reclaimed jobs first. A blocking read is never raced against anything: dropping
            // it would not cancel it in Redis, which could still hand it a job that nobody
            // here would run until the visibility timeout. So a read runs to its end (at most
            // READ_BLOCK), and shutdown is noticed between reads.
            let entries = match reclaimed_rx.try_recv() {
                Ok(entry) => Ok(vec![entry]),
                Err(_) => self.consumer.read(free, READ_BLOCK).await,
            };
            let entries = match entries {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, "reading jobs failed");
                    drop(permit);
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            let mut permit = Some(permit);
            for entry in entries {
                let permit = match permit.take() {
                    Some(p) => p,
                    None => match slots.clone().try_acquire_owned() {
                        Ok(p) => p,
                        // More entries than slots cannot happen (we read `free`), but if it
                        // did, waiting is right.
                        Err(_) => slots.clone().acquire_owned().await?,
                    },
                };
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(entry.id.clone());
                let ctx = self.ctx.clone();
                let in_flight = in_flight.clone();
                jobs.spawn(async move {
                    run_job(&ctx, &entry).await;
                    in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&entry.id);
                    drop(permit);
                });
            }
            while jobs.try_join_next().is_some() {}
            if stop_requested(&mut shutdown).await {
                break;
            }
        }

        tracing::info!(
            running = jobs.len(),
            "worker stopping: finishing running jobs"
        );
        let _ = stop_tx.send(true);
        let finished = tokio::time::timeout(self.config.shutdown_grace, async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                unfinished = jobs.len(),
                "jobs still running at the end of the grace period stay queued for another worker"
            );
            jobs.abort_all();
        }
        helpers.abort_all();
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Runs one job; failures leave it pending, to be retried after the visibility timeout (and set
/// aside after too many tries).
async fn run_job(ctx: &DeliveryContext, entry: &Entry) {
    let job = match Job::from_json(&entry.raw) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(stream_id = %entry.id, error = %e, "unreadable job; it will be dead-lettered");
            return;
        }
    };
    let outcome: Result<(), StoreError> = match job {
        Job::FanOutV1 {
            triggered_id,
            registration_id,
            request_id,
            after,
        } => fan_out_page(
            &ctx.store,
            &entry.id,
            triggered_id,
            registration_id,
            request_id.as_deref(),
            after.as_ref(),
            ctx.max_failed_count,
        )
        .await
        .map(|outcome| tracing::debug!(?outcome, "fan-out page")),
        Job::DeliverBatchV1 {
            triggered_id,
            registration_id,
            request_id,
            targets,
        } => deliver(
            ctx,
            &entry.id,
            DeliveryJob {
                triggered: triggered_id,
                registration: registration_id,
                request_id,
                targets,
                attempt: 1,
            },
        )
        .await
        .map(drop),
        Job::RetryV1 {
            triggered_id,
            registration_id,
            request_id,
            target,
            attempt,
        } => deliver(
            ctx,
            &entry.id,
            DeliveryJob {
                triggered: triggered_id,
                registration: registration_id,
                request_id,
                targets: vec![target],
                attempt,
            },
        )
        .await
        .map(drop),
    };
    if let Err(e) = outcome {
        tracing::warn!(stream_id = %entry.id, error = %e, "job failed; it stays queued");
    }
}

/// Moves due retries to the stream, waking when the next one is due (at most every 100 ms).
async fn promote_retries(consumer: Consumer, mut stop: watch::Receiver<bool>) {
    loop {
        let now = now_millis();
        let pause = match consumer.promote_due(now).await {
            Ok((_, Some(next_due))) => {
                Duration::from_millis(next_due.saturating_sub(now_millis())).min(PROMOTE_IDLE)
            }
            Ok((_, None)) => PROMOTE_IDLE,
            Err(e) => {
                tracing::debug!(error = %e, "moving due retries failed");
                ERROR_BACKOFF
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Re-claims this worker's running jobs so their idle time never reaches the visibility timeout.
async fn keep_claimed(
    consumer: Consumer,
    in_flight: Arc<Mutex<HashSet<String>>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let ids: Vec<String> = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        if let Err(e) = consumer.heartbeat(&ids).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
}

/// Takes over the jobs of dead workers and hands them to the main loop.
async fn reclaim_stale(
    consumer: Consumer,
    to_loop: tokio::sync::mpsc::Sender<Entry>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match consumer.reclaim(100).await {
            Ok(entries) => {
                if !entries.is_empty() {
                    tracing::info!(count = entries.len(), "reclaimed jobs of a stopped worker");
                }
                for entry in entries {
                    if to_loop.send(entry).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "reclaiming failed"),
        }
    }
}

/// Whether `shutdown` has completed, without waiting for it.
async fn stop_requested(shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        biased;
        () = shutdown.as_mut() => true,
        () = std::future::ready(()) => false,
    }
}
