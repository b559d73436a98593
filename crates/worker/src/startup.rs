//! The worker's life cycle: `Worker::build`, then `run_until_stopped(shutdown)`.
//!
//! Three parts run together, each with one job:
//!
//! - the **reader** (`read_jobs`) takes entries from the stream while the read-ahead bound
//!   ([`WorkerConfig::read_ahead`]) has room, charges each job to the account that owns its
//!   registration, and hands it to the dispatcher;
//! - the **dispatcher** (`crate::dispatch`) keeps per-account, per-registration run queues
//!   (`crate::fair`) and starts jobs and sends deliveries from them in turn, so that no
//!   account's slow or huge fan-out holds up another account's deliveries; what one account
//!   holds beyond its share of waiting jobs ([`WorkerConfig::waiting_share`]) it parks in the
//!   delayed set (`crate::parking`), so that no account's backlog fills the read-ahead and
//!   stops the reader before another account's job;
//! - three small tasks move due retries to the stream, reclaim the jobs of dead workers, and
//!   keep every job this worker holds claimed.
//!
//! On shutdown the reader stops after its current read, jobs read but not started are handed
//! back to the queue at once, started jobs get [`WorkerConfig::shutdown_grace`] to finish, and
//! whatever is still unfinished stays pending in the stream, to be reclaimed by another worker
//! after the visibility timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pubhook_core::domain::{now_millis, RegistrationId};
use pubhook_core::outbound::OutboundClient;
use pubhook_core::queue::Job;
use pubhook_core::store::{RecentOutcomes, Store, WorkerBeat, BEAT_INTERVAL, LIVE_FOR};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::consumer::{Consumer, Entry, EntryKey, Held};
use crate::delivery::DeliveryContext;
use crate::dispatch::{Admitted, Dispatcher, Event};
use crate::fair::{Shares, Tenant};
use crate::metrics::{sample_queue, WorkerMetrics};
use crate::probe::ProbePolicy;
use crate::retry::RetryPolicy;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests in flight to one origin at most: the ceiling of its adaptive limit.
    pub per_endpoint_concurrency: usize,
    /// The longest a `Retry-After` on a 429 or 503 pauses its origin.
    pub max_origin_pause: Duration,
    /// Jobs (fan-out pages, batches, retries) one account may run at once. Each account has
    /// its own allowance, so one account's jobs never hold a slot another account needs.
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
    /// When subscribers at `max_failed_count` are probed.
    pub probes: ProbePolicy,
}

impl WorkerConfig {
    /// Jobs a worker holds at most, started or waiting in its run queues: 32 per job slot. The
    /// bound on what a worker takes from the stream before it can start it. One account holds
    /// at most its job slots and [`Self::waiting_share`] of it (and, for a moment, one read being
    /// parked), so several accounts with backlogs fit before the reader waits for a job to end.
    pub fn read_ahead(&self) -> usize {
        self.job_slots.max(1) * READ_AHEAD_PER_SLOT
    }

    /// Jobs of one account a worker keeps waiting to start: 4 per job slot. What it reads of an
    /// account beyond that is parked in the delayed set (see `crate::parking`).
    pub fn waiting_share(&self) -> usize {
        self.job_slots.max(1) * WAITING_PER_SLOT
    }

    /// The shares of the fair queues: one account may hold all but an eighth of the requests
    /// in flight, so that an eighth is always there for the other accounts.
    fn shares(&self) -> Shares {
        let total = self.concurrency.max(1);
        Shares {
            total,
            per_account: (total - total / 8).max(1),
            per_origin: self.per_endpoint_concurrency,
            jobs_per_account: self.job_slots,
            waiting_per_account: self.waiting_share(),
            max_pause: self.max_origin_pause,
        }
    }
}

/// A delivery worker, ready to run.
pub struct Worker {
    consumer: Consumer,
    ctx: DeliveryContext,
    config: WorkerConfig,
    health: Health,
    metrics: Option<Arc<WorkerMetrics>>,
}

/// How long a read waits for new jobs before checking for shutdown again.
const READ_BLOCK: Duration = Duration::from_millis(500);
/// Longest pause of the retry mover; it wakes earlier when a retry is due sooner.
const PROMOTE_IDLE: Duration = Duration::from_millis(100);
/// Jobs held (read, not finished) per job slot.
const READ_AHEAD_PER_SLOT: usize = 32;
/// Jobs of one account waiting to start per job slot: enough to refill its running jobs a few
/// times over between the returns of what it parked.
const WAITING_PER_SLOT: usize = 4;
/// Entries taken per read at most.
const READ_COUNT: usize = 100;
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
            record_patience: config.visibility_timeout / 2,
            probes: config.probes,
            order_lease: config.visibility_timeout,
            renewals: Default::default(),
        };
        Self {
            consumer,
            ctx,
            config,
            health: Health::default(),
            metrics: None,
        }
    }

    /// The same worker, recording its metrics in `registry` (and sampling the queue's figures
    /// into it while it runs). Without this call it records none.
    pub fn with_metrics(mut self, registry: &prometheus::Registry) -> anyhow::Result<Self> {
        self.metrics = Some(Arc::new(WorkerMetrics::register(registry)?));
        Ok(self)
    }

    /// Whether this worker is taking jobs, for its `/health/ready`.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// This worker's consumer name in the stream's group.
    pub fn name(&self) -> &str {
        self.consumer.name()
    }

    /// Runs until `shutdown` completes, then stops as the module documentation says.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let held: Held = Arc::default();
        let mut helpers = JoinSet::new();
        helpers.spawn(promote_retries(self.consumer.clone(), stop_rx.clone()));
        if let Some(metrics) = &self.metrics {
            let store = self.ctx.store.clone();
            let max = self.config.max_failed_count;
            helpers.spawn(sample_queue(store, metrics.clone(), max, stop_rx.clone()));
        }
        helpers.spawn(keep_claimed(
            self.consumer.clone(),
            held.clone(),
            self.config.visibility_timeout / 3,
            stop_rx.clone(),
        ));
        let (reclaimed_tx, reclaimed_rx) = mpsc::channel::<Entry>(256);
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

        let (events_tx, mut events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_jobs(
            self.consumer.clone(),
            Arc::new(Semaphore::new(self.config.read_ahead())),
            reclaimed_rx,
            held.clone(),
            events_tx.clone(),
            stop_rx.clone(),
        ));
        let mut dispatcher = Dispatcher::new(
            self.ctx.clone(),
            self.consumer.clone(),
            self.config.shares(),
            held,
            events_tx,
            self.metrics.clone(),
        );
        tokio::pin!(shutdown);
        let mut beats = Beats::new(self.ctx.store.clone(), self.name(), self.health.clone());
        let mut beat_every = tokio::time::interval(BEAT_INTERVAL);
        beat_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(event) = dispatcher.next_event(&mut events) => dispatcher.handle(event),
                _ = beat_every.tick() => beats.beat(&dispatcher),
                () = &mut shutdown => break,
            }
        }
        self.health.stopping();

        tracing::info!(
            running = dispatcher.running(),
            "worker stopping: finishing running jobs"
        );
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        let _ = stop_tx.send(true);
        // The reader ends after its current read (at most READ_BLOCK); what it read meanwhile
        // joins the waiting jobs, which go back to the queue at once.
        let _ = reader.await;
        while let Ok(event) = events.try_recv() {
            dispatcher.handle(event);
        }
        hand_back(&mut dispatcher).await;
        let finished = tokio::time::timeout_at(deadline, async {
            while dispatcher.unfinished() > 0 {
                match dispatcher.next_event(&mut events).await {
                    Some(event) => dispatcher.handle(event),
                    None => break,
                }
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                unfinished = dispatcher.running(),
                "jobs still running at the end of the grace period stay queued for another worker"
            );
        }
        dispatcher.abort();
        helpers.abort_all();
        beats.remove().await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Whether a worker is taking jobs: it has not begun to stop, and its latest heartbeat reached
/// Redis within [`LIVE_FOR`]. Shared with whatever serves the worker's `/health/ready`.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<HealthState>);

#[derive(Debug, Default)]
struct HealthState {
    /// When a heartbeat last reached Redis, Unix milliseconds (0: never).
    last_beat_ms: std::sync::atomic::AtomicU64,
    stopping: std::sync::atomic::AtomicBool,
}

impl Health {
    /// Whether the worker is taking jobs and can reach Redis.
    pub fn is_ready(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.0.last_beat_ms.load(Relaxed);
        let live_ms = u64::try_from(LIVE_FOR.as_millis()).unwrap_or(u64::MAX);
        !self.0.stopping.load(Relaxed) && last > 0 && now_millis().saturating_sub(last) <= live_ms
    }

    fn beat_reached_redis(&self, at_ms: u64) {
        self.0
            .last_beat_ms
            .store(at_ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn stopping(&self) {
        self.0
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Writes the worker's heartbeat (`store::workers`) from the main loop, which knows what it
/// holds. Each write runs on a task of its own, so a slow Redis never holds up dispatching; a
/// beat is skipped while the previous one is still being written.
struct Beats {
    store: Store,
    health: Health,
    beat: WorkerBeat,
    writing: Option<tokio::task::JoinHandle<()>>,
}

impl Beats {
    fn new(store: Store, id: &str, health: Health) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_default();
        let now = now_millis();
        Self {
            store,
            health,
            beat: WorkerBeat {
                id: id.to_owned(),
                host,
                pid: std::process::id(),
                started: now,
                last_beat: now,
                in_flight: 0,
                running_jobs: 0,
                last_minute: RecentOutcomes::default(),
                slowest_origins: Vec::new(),
            },
            writing: None,
        }
    }

    fn beat(&mut self, dispatcher: &Dispatcher) {
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        self.beat.last_beat = now_millis();
        self.beat.in_flight = dispatcher.in_flight() as u64;
        self.beat.running_jobs = dispatcher.running() as u64;
        (self.beat.last_minute, self.beat.slowest_origins) = dispatcher.stats().last_minute();
        let (store, health, beat) = (self.store.clone(), self.health.clone(), self.beat.clone());
        self.writing = Some(tokio::spawn(async move {
            match store.write_beat(&beat).await {
                Ok(()) => health.beat_reached_redis(beat.last_beat),
                Err(e) => tracing::warn!(error = %e, "the worker's heartbeat did not reach Redis"),
            }
        }));
    }

    /// Removes the heartbeat: the worker stopped.
    async fn remove(mut self) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        if let Err(e) = self.store.remove_beat(&self.beat.id).await {
            tracing::warn!(error = %e, "the stopped worker's heartbeat stays until it is stale");
        }
    }
}

/// Puts the jobs read but not started back on the queue, for another worker to take at once.
async fn hand_back(dispatcher: &mut Dispatcher) {
    let waiting = dispatcher.stop_starting();
    let entries: Vec<Entry> = waiting.iter().map(|job| job.entry.clone()).collect();
    match dispatcher.consumer().hand_back(&entries).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "jobs not started were handed back to the queue"),
        Err(e) => {
            tracing::warn!(error = %e, "handing back jobs failed; they are reclaimed after the visibility timeout")
        }
    }
}

/// Reads jobs while the read-ahead bound has room, charges each to its owner account, and
/// passes them to the dispatcher. A blocking read is never raced against anything: dropping it
/// would not cancel it in Redis, which could still hand it a job that nobody here would run
/// until the visibility timeout. So a read runs to its end (at most READ_BLOCK), and the stop
/// signal is noticed between reads.
async fn read_jobs(
    consumer: Consumer,
    room: Arc<Semaphore>,
    mut reclaimed: mpsc::Receiver<Entry>,
    held: Held,
    dispatcher: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        // Waiting for room is not a read, so it may be cut short by the stop signal.
        let first = tokio::select! {
            permit = room.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let count = (room.available_permits() + 1).min(READ_COUNT);
        // Reclaimed jobs first. They are never parked: parking makes a new entry, whose
        // delivery count would start again below the dead-letter bound.
        let (entries, may_park) = match reclaimed.try_recv() {
            Ok(entry) => (Ok(vec![entry]), false),
            Err(_) => (consumer.read(count, READ_BLOCK).await, true),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, "reading jobs failed");
                drop(first);
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        // A reclaimed entry this worker still holds is one whose heartbeat was late (Redis was
        // unreachable for a moment, a slot was moving): it is running here, and claiming it
        // again only refreshed its idle time. Running it twice would deliver it twice.
        let entries: Vec<Entry> = if may_park {
            entries
        } else {
            let held = held.lock().unwrap_or_else(|p| p.into_inner());
            entries
                .into_iter()
                .filter(|entry| !held.contains(&entry.key()))
                .collect()
        };
        if entries.is_empty() {
            drop(first);
            continue;
        }
        let jobs: Vec<(Entry, Job)> = entries
            .into_iter()
            .filter_map(|entry| match Job::from_json(&entry.raw) {
                Ok(job) => Some((entry, job)),
                Err(e) => {
                    // Left pending and unclaimed: reclaimed after the visibility timeout, and
                    // set aside as a dead letter after a few rounds.
                    tracing::error!(stream_id = %entry.id, error = %e, "unreadable job; it will be dead-lettered");
                    None
                }
            })
            .collect();
        let registrations: Vec<RegistrationId> =
            jobs.iter().map(|(_, job)| registration_of(job)).collect();
        let owners = consumer.owners(&registrations).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "reading the owners of jobs failed; they share one queue");
            vec![None; registrations.len()]
        });
        let mut first = Some(first);
        let mut admitted = Vec::with_capacity(jobs.len());
        for ((entry, job), (registration, account)) in
            jobs.into_iter().zip(registrations.into_iter().zip(owners))
        {
            let permit = match first.take() {
                Some(permit) => permit,
                // We read no more than the room there was, and only this task takes room.
                None => match room.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            held.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(entry.key());
            admitted.push(Admitted {
                entry,
                job,
                tenant: Tenant {
                    account,
                    registration,
                },
                permit,
                may_park,
            });
        }
        if !admitted.is_empty() && dispatcher.send(Event::Read(admitted)).is_err() {
            return;
        }
    }
}

/// The registration a job works for.
fn registration_of(job: &Job) -> RegistrationId {
    match job {
        Job::FanOutV1 {
            registration_id, ..
        }
        | Job::DeliverBatchV1 {
            registration_id, ..
        }
        | Job::RetryV1 {
            registration_id, ..
        }
        | Job::RedeliverV1 {
            registration_id, ..
        }
        | Job::DeliverOrderedV1 {
            registration_id, ..
        } => *registration_id,
        // A probe works for its subscriber's account only: a turn of its own, charged to no
        // registration's owner.
        Job::ProbeV1 { account_id } => {
            RegistrationId::parse(&account_id.to_string()).unwrap_or_else(RegistrationId::generate)
        }
        // An intent works for no registration: its own id (a UUID too) makes it a turn of its
        // own in the fair queues, charged to no account.
        Job::IntentV1 { intent_id, .. } => {
            RegistrationId::parse(&intent_id.to_string()).unwrap_or_else(RegistrationId::generate)
        }
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

/// Re-claims the jobs this worker holds so their idle time never reaches the visibility timeout.
async fn keep_claimed(
    consumer: Consumer,
    held: Held,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let ids: Vec<EntryKey> = held
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
    to_loop: mpsc::Sender<Entry>,
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

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn a_worker_is_ready_only_between_its_first_beat_and_its_stop() {
        let health = Health::default();
        assert!(!health.is_ready(), "no heartbeat has reached Redis yet");
        health.beat_reached_redis(now_millis());
        assert!(health.is_ready());
        let live_ms = u64::try_from(LIVE_FOR.as_millis()).unwrap();
        health.beat_reached_redis(now_millis() - live_ms - 1000);
        assert!(!health.is_ready(), "the last beat is too old");
        health.beat_reached_redis(now_millis());
        health.stopping();
        assert!(!health.is_ready(), "a stopping worker takes no more jobs");
    }
}
