//! The dispatcher: one task that owns the worker's [`FairQueues`] and turns events into work.
//!
//! Jobs arrive from the reader already parsed and charged to their owner account; the dispatcher
//! queues them, starts them when their account's turn and allowance come (a fan-out page runs
//! its script; a batch or retry is [`prepare`]d), queues each prepared delivery under its
//! origin, and sends deliveries in the fair order while requests in flight stay under the
//! worker's bound. A job's outcomes are [`record`]ed, and the job acknowledged, once the last of
//! its deliveries has an answer. Every step of a job runs in a task of its own and reports back
//! through one channel, so the dispatcher never waits on Redis or on an endpoint, and holds no
//! lock.
//!
//! Sends are the exception: they are many, each short of work of its own (the connection's I/O
//! runs in the HTTP client's connection tasks), so rather than a task each they are futures
//! that the dispatcher's own task drives, all in one set ([`Dispatcher::next_event`]). An
//! answer then costs no task to spawn, no event through the channel and no wake-up of another
//! task: the dispatcher wakes once for all the answers that came meanwhile. A send that panics
//! is caught as that send's failure alone, as a task's panic would be.
//!
//! After each read it takes out what an account holds beyond its share of waiting jobs and
//! parks it in the delayed set, paced by [`Parking`] (the reasons and bounds are in
//! `crate::parking`); a parked job leaves the worker, and its place in the read-ahead, as soon
//! as the script has moved it.

use crate::Map;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};

use pubhook_core::domain::{now_millis, AccountId, RegistrationId};
use pubhook_core::keys::Shard;
use pubhook_core::queue::Job;
use pubhook_core::store::StoreError;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::consumer::{Consumer, Entry, Held};
use crate::delivery::{
    prepare, record, send, Attempt, AttemptResult, DeliveryContext, DeliveryJob, DeliveryOutcome,
    Payload, PreparedAttempt, PreparedJob,
};
use crate::fair::{FairQueues, Origin, Shares, Tenant};
use crate::fan_out::{fan_out_page, FanOutOutcome, FanOutPage};
use crate::metrics::WorkerMetrics;
use crate::ordered::Turn;
use crate::parking::Parking;
use crate::stats::RecentStats;

/// The owner of a job's registration; `None` when the registration is gone.
pub(crate) type Owner = Option<AccountId>;
type JobTenant = Tenant<Owner, RegistrationId>;
/// A running job's number in this dispatcher.
type JobKey = u64;

/// A job read from the stream and held by this worker until it is finished or handed back.
pub(crate) struct Admitted {
    /// The stream entry.
    pub entry: Entry,
    /// Its job.
    pub job: Job,
    /// Who it is charged to.
    pub tenant: JobTenant,
    /// Its place in the worker's read-ahead bound.
    pub permit: OwnedSemaphorePermit,
    /// Whether it may be parked: not when it was taken over from another worker, whose
    /// delivery count must keep growing towards the dead-letter bound.
    pub may_park: bool,
}

/// A delivery waiting in the fair queues: its job, its index in the job, and the request.
type QueuedDelivery = (JobKey, usize, Attempt);

/// What the dispatcher reacts to.
pub(crate) enum Event {
    /// Jobs read from the stream.
    Read(Vec<Admitted>),
    /// A fan-out page ran.
    FannedOut(JobKey, Result<FanOutOutcome, StoreError>),
    /// A batch or retry was prepared.
    Prepared(JobKey, Result<PreparedJob, StoreError>),
    /// An attempt ended (the account and origin it counted against).
    Sent(JobKey, usize, Owner, Origin, AttemptResult),
    /// An attempt's send panicked: it has no result, and its job is let go of.
    SendPanicked(JobKey, Owner, Origin),
    /// A job's outcomes were recorded (or not).
    Recorded(JobKey, Result<(), StoreError>),
    /// This many jobs over their account's share were let go, and so many of them parked.
    Parked(usize, Result<usize, StoreError>),
    /// An origin's `Retry-After` pause ended: its deliveries may go again.
    PauseEnded,
}

/// A send in flight, driven by the dispatcher's task (see the module's doc).
type Sending = Pin<Box<dyn Future<Output = Event> + Send>>;

/// A started job.
struct Running {
    entry: Entry,
    tenant: JobTenant,
    _permit: OwnedSemaphorePermit,
    deliveries: Option<RunningDeliveries>,
    /// The job's span, with the triggering request's id: every task of the job runs in it, so
    /// each of its log lines carries that id.
    span: tracing::Span,
}

/// The state of a started batch or retry.
struct RunningDeliveries {
    job: DeliveryJob,
    payload: Option<Arc<Payload>>,
    results: Vec<Option<AttemptResult>>,
    unanswered: usize,
}

/// The dispatcher's state.
pub(crate) struct Dispatcher {
    ctx: DeliveryContext,
    consumer: Consumer,
    queues: FairQueues<Owner, RegistrationId, Admitted, QueuedDelivery>,
    parking: Parking<Owner>,
    /// Jobs being parked: still held until their script has run.
    parking_now: usize,
    running: Map<JobKey, Running>,
    next_key: JobKey,
    /// Entries held by this worker, which the heartbeat keeps claimed.
    held: Held,
    /// The tasks of jobs' steps, each with its job.
    tasks: Tasks<JobKey>,
    /// The sends in flight.
    sends: FuturesUnordered<Sending>,
    events: mpsc::UnboundedSender<Event>,
    /// Whether new jobs may start (false once shutting down).
    starting: bool,
    /// The last minute's outcomes, for the heartbeat.
    stats: RecentStats,
    /// The Prometheus metrics, when they are on.
    metrics: Option<Arc<WorkerMetrics>>,
}

impl Dispatcher {
    pub(crate) fn new(
        ctx: DeliveryContext,
        consumer: Consumer,
        shares: Shares,
        held: Held,
        events: mpsc::UnboundedSender<Event>,
        metrics: Option<Arc<WorkerMetrics>>,
    ) -> Self {
        Self {
            ctx,
            consumer,
            queues: FairQueues::new(shares),
            parking: Parking::new(shares.waiting_per_account),
            parking_now: 0,
            running: Map::default(),
            next_key: 0,
            held,
            tasks: Tasks::default(),
            sends: FuturesUnordered::new(),
            events,
            starting: true,
            stats: RecentStats::default(),
            metrics,
        }
    }

    /// Jobs started and not finished.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// The last minute's outcomes and slowest origins.
    pub(crate) fn stats(&self) -> &RecentStats {
        &self.stats
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.queues.in_flight()
    }

    /// Jobs started and not finished, or being parked: what shutdown waits for.
    pub(crate) fn unfinished(&self) -> usize {
        self.running.len() + self.parking_now
    }

    /// The next event: a send's end, or what came through `events` (`None` once it is closed).
    /// Cancel-safe: an event not returned stays for the next call.
    pub(crate) async fn next_event(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Option<Event> {
        tokio::select! {
            Some(sent) = self.sends.next(), if !self.sends.is_empty() => Some(sent),
            event = events.recv() => event,
        }
    }

    /// Applies one event, then starts whatever the queues allow.
    pub(crate) fn handle(&mut self, event: Event) {
        match event {
            Event::Read(jobs) => {
                let mut accounts: Vec<Owner> = Vec::new();
                for job in jobs {
                    if !accounts.contains(&job.tenant.account) {
                        accounts.push(job.tenant.account);
                    }
                    self.queues.push_job(job.tenant, job);
                }
                for account in accounts {
                    self.park_excess(account);
                }
            }
            Event::Parked(count, outcome) => {
                self.parking_now -= count;
                match outcome {
                    Ok(parked) => {
                        tracing::debug!(count, parked, "jobs over their account's share parked")
                    }
                    Err(e) => {
                        tracing::warn!(count, error = %e, "parking jobs failed; they stay pending and are reclaimed after the visibility timeout")
                    }
                }
            }
            Event::FannedOut(key, outcome) => {
                match outcome {
                    Ok(outcome) => tracing::debug!(?outcome, "fan-out page"),
                    Err(e) => self.warn_failed(key, &e),
                }
                self.finish(key);
            }
            Event::Prepared(key, Ok(prepared)) => self.queue_deliveries(key, prepared),
            Event::Prepared(key, Err(e)) => {
                self.warn_failed(key, &e);
                self.finish(key);
            }
            Event::PauseEnded => {}
            Event::SendPanicked(key, account, origin) => {
                self.queues.delivery_finished(account, &origin);
                self.let_go_after_panic(key);
            }
            Event::Sent(key, index, account, origin, result) => {
                // Counted against the account and origin even when its job is gone (let go of
                // after another of its tasks panicked).
                match result.feedback() {
                    Some(feedback) => {
                        let paused = self.queues.delivery_answered(account, &origin, feedback);
                        if let Some(until) = paused {
                            self.wake_at(until);
                        }
                    }
                    None => self.queues.delivery_finished(account, &origin),
                }
                self.stats.note(&origin, &result);
                let deliveries = self
                    .running
                    .get_mut(&key)
                    .and_then(|running| running.deliveries.as_mut());
                if let Some(deliveries) = deliveries {
                    if let Some(metrics) = &self.metrics {
                        let payload = deliveries.payload.as_deref();
                        metrics.note(&deliveries.job, payload, &result, self.ctx.max_failed_count);
                    }
                    if let Some(slot) = deliveries.results.get_mut(index) {
                        *slot = Some(result);
                    }
                    deliveries.unanswered -= 1;
                    if deliveries.unanswered == 0 {
                        self.record(key);
                    }
                }
            }
            Event::Recorded(key, outcome) => {
                if let Err(e) = outcome {
                    self.warn_failed(key, &e);
                }
                self.finish(key);
            }
        }
        self.pump();
        if let Some(metrics) = &self.metrics {
            metrics.set_load(self.queues.in_flight(), self.running.len());
        }
    }

    /// Stops starting jobs and returns those still waiting, to be handed back.
    pub(crate) fn stop_starting(&mut self) -> Vec<Admitted> {
        self.starting = false;
        let waiting = self.queues.drain_waiting();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for job in &waiting {
            held.remove(&job.entry.key());
        }
        waiting
    }

    /// Stops every task and send; started jobs stay pending in the stream, for another worker.
    pub(crate) fn abort(&mut self) {
        self.tasks.abort_all();
        self.sends.clear();
    }

    fn pump(&mut self) {
        self.reap();
        while self.starting {
            let Some((tenant, admitted)) = self.queues.next_job() else {
                break;
            };
            self.start(tenant, admitted);
        }
        while let Some((tenant, origin, (key, index, attempt))) = self.queues.next_delivery() {
            let Some((payload, span)) = self.running.get(&key).and_then(|r| {
                let payload = r.deliveries.as_ref()?.payload.clone()?;
                Some((payload, r.span.clone()))
            }) else {
                // Only a job with a payload queues deliveries; nothing to send otherwise.
                self.queues.delivery_finished(tenant.account, &origin);
                continue;
            };
            let ctx = self.ctx.clone();
            let account = tenant.account;
            let counted = origin.clone();
            let sending = async move {
                let result = send(&ctx, &payload, attempt).await;
                Event::Sent(key, index, account, origin, result)
            };
            let sending = AssertUnwindSafe(sending.instrument(span))
                .catch_unwind()
                .map(move |ended| {
                    ended.unwrap_or_else(|_| Event::SendPanicked(key, account, counted))
                });
            self.sends.push(Box::pin(sending));
        }
    }

    /// Looks at the queues again at `until`, when an origin's pause ends.
    fn wake_at(&mut self, until: std::time::Instant) {
        let events = self.events.clone();
        self.tasks.spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            let _ = events.send(Event::PauseEnded);
        });
    }

    /// Parks what `account` holds beyond its share of waiting jobs (see `crate::parking`).
    fn park_excess(&mut self, account: Owner) {
        let excess = self.queues.take_excess(account, |job| job.may_park);
        if excess.is_empty() {
            return;
        }
        let count = excess.len();
        let due = self.parking.due_times(account, count, now_millis());
        let (jobs, permits): (Vec<(Entry, u64)>, Vec<OwnedSemaphorePermit>) = excess
            .into_iter()
            .zip(due)
            .map(|(job, due)| ((job.entry, due), job.permit))
            .unzip();
        self.parking_now += count;
        let consumer = self.consumer.clone();
        let held = self.held.clone();
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let parked = consumer.park(&jobs).await;
            // This worker lets them go either way: a job the script did not move stays pending
            // in the stream, and another worker (or this one) reclaims it once the heartbeat
            // stops renewing it.
            let mut ids = held.lock().unwrap_or_else(|p| p.into_inner());
            for (entry, _) in &jobs {
                ids.remove(&entry.key());
            }
            drop(ids);
            drop(permits);
            let _ = events.send(Event::Parked(count, parked));
        });
    }

    fn start(&mut self, tenant: JobTenant, admitted: Admitted) {
        let key = self.next_key;
        self.next_key += 1;
        let Admitted {
            entry, job, permit, ..
        } = admitted;
        let ctx = self.ctx.clone();
        let events = self.events.clone();
        let entry_id = entry.id.clone();
        let shard = entry.shard;
        let span = job_span(&job);
        let entered = span.enter();
        match job {
            Job::FanOutV1 {
                triggered_id,
                registration_id,
                request_id,
                after,
            } => {
                let consumer = self.consumer.clone();
                self.spawn_for(key, async move {
                    let page = FanOutPage {
                        triggered: triggered_id,
                        registration: registration_id,
                        request_id: request_id.as_deref(),
                        after: after.as_ref(),
                    };
                    let outcome = fan_out_page(&ctx.store, shard, &entry_id, page).await;
                    if matches!(&outcome, Ok(done) if done.written && (done.queued > 0 || done.more)) {
                        consumer.hint(shard);
                    }
                    let _ = events.send(Event::FannedOut(key, outcome));
                });
            }
            Job::DeliverBatchV1 {
                triggered_id,
                registration_id,
                request_id,
                targets,
            } => self.spawn_prepare(
                key,
                DeliveryJob {
                    triggered: triggered_id,
                    registration: registration_id,
                    request_id,
                    targets,
                    attempt: 1,
                    manual: false,
                    order: None,
                },
            ),
            Job::RetryV1 {
                triggered_id,
                registration_id,
                request_id,
                target,
                attempt,
            } => self.spawn_prepare(
                key,
                DeliveryJob {
                    triggered: triggered_id,
                    registration: registration_id,
                    request_id,
                    targets: vec![target],
                    attempt,
                    manual: false,
                    order: None,
                },
            ),
            Job::RedeliverV1 {
                triggered_id,
                registration_id,
                request_id,
                target,
                attempt,
            } => self.spawn_prepare(
                key,
                DeliveryJob {
                    triggered: triggered_id,
                    registration: registration_id,
                    request_id,
                    targets: vec![target],
                    attempt,
                    manual: true,
                    order: None,
                },
            ),
            Job::DeliverOrderedV1 {
                triggered_id,
                registration_id,
                request_id,
                target,
                attempt,
                order,
            } => self.spawn_ordered(
                key,
                shard,
                entry_id,
                DeliveryJob {
                    triggered: triggered_id,
                    registration: registration_id,
                    request_id,
                    targets: vec![target],
                    attempt,
                    manual: false,
                    order: Some(order),
                },
            ),
            Job::ProbeV1 { account_id } => {
                self.spawn_for(key, async move {
                    let outcome = crate::probe::run_probe(&ctx, &entry_id, account_id).await;
                    let _ = events.send(Event::Recorded(key, outcome));
                });
            }
            Job::IntentV1 {
                intent_id,
                operation,
            } => {
                self.spawn_for(key, async move {
                    let outcome =
                        crate::intents::run_intent(&ctx.store, &entry_id, intent_id, &operation)
                            .await;
                    let _ = events.send(Event::Recorded(key, outcome));
                });
            }
        }
        drop(entered);
        self.running.insert(
            key,
            Running {
                entry,
                tenant,
                _permit: permit,
                deliveries: None,
                span,
            },
        );
    }

    fn spawn_prepare(&mut self, key: JobKey, job: DeliveryJob) {
        let ctx = self.ctx.clone();
        let events = self.events.clone();
        self.spawn_for(key, async move {
            let prepared = prepare(&ctx, job).await;
            let _ = events.send(Event::Prepared(key, prepared));
        });
    }

    /// An ordered delivery asks for its subscription's turn first: in it, it is prepared as any
    /// other; out of it, it was parked to wait, and the job is done here.
    fn spawn_ordered(&mut self, key: JobKey, shard: Shard, entry_id: String, job: DeliveryJob) {
        let ctx = self.ctx.clone();
        let events = self.events.clone();
        self.spawn_for(key, async move {
            match crate::ordered::take_turn(&ctx, shard, &entry_id, &job).await {
                Ok(Turn::Go) => {
                    let prepared = prepare(&ctx, job).await;
                    let _ = events.send(Event::Prepared(key, prepared));
                }
                Ok(Turn::Wait) => {
                    let _ = events.send(Event::Recorded(key, Ok(())));
                }
                Err(e) => {
                    let _ = events.send(Event::Recorded(key, Err(e)));
                }
            }
        });
    }

    fn queue_deliveries(&mut self, key: JobKey, prepared: PreparedJob) {
        let Some(running) = self.running.get_mut(&key) else {
            return;
        };
        let PreparedJob {
            job,
            payload,
            attempts,
        } = prepared;
        let mut results = Vec::with_capacity(attempts.len());
        let mut unanswered = 0;
        for (index, attempt) in attempts.into_iter().enumerate() {
            match attempt {
                PreparedAttempt::Done(result) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.note(&job, payload.as_deref(), &result, self.ctx.max_failed_count);
                    }
                    results.push(Some(result));
                }
                PreparedAttempt::Send(attempt) => {
                    results.push(None);
                    unanswered += 1;
                    let origin: Origin = attempt.origin().into();
                    self.queues.cap_origin(&origin, attempt.max_concurrency());
                    self.queues
                        .push_delivery(running.tenant, origin, (key, index, attempt));
                }
            }
        }
        running.deliveries = Some(RunningDeliveries {
            job,
            payload,
            results,
            unanswered,
        });
        if unanswered == 0 {
            self.record(key);
        }
    }

    fn record(&mut self, key: JobKey) {
        let Some(running) = self.running.get_mut(&key) else {
            return;
        };
        let Some(deliveries) = running.deliveries.take() else {
            return;
        };
        let ctx = self.ctx.clone();
        let events = self.events.clone();
        let entry_id = running.entry.id.clone();
        let shard = running.entry.shard;
        let span = running.span.clone();
        let recording = async move {
            let results: Vec<AttemptResult> = deliveries.results.into_iter().flatten().collect();
            let recorded = record(&ctx, shard, &entry_id, &deliveries.job, &results).await;
            if recorded.is_ok() {
                log_recorded(&deliveries.job, &results);
            }
            let _ = events.send(Event::Recorded(key, recorded));
        };
        self.spawn_for(key, recording.instrument(span));
    }

    /// Runs `task` as one of the dispatcher's tasks, remembering what it works for. A task
    /// runs in the span current here (the job's, when a job is being started).
    fn spawn_for(&mut self, of: JobKey, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_for(of, task.in_current_span());
    }

    /// Collects ended tasks. A task that panicked sent no event, so its job would stay held,
    /// and claimed by the heartbeat, for ever: it is let go of instead, left pending in the
    /// stream to be reclaimed after the visibility timeout and, if it keeps failing, set aside
    /// as a dead letter like a job that crashes its worker.
    fn reap(&mut self) {
        for key in self.tasks.reap_panicked() {
            self.let_go_after_panic(key);
        }
    }

    /// Lets go of the job `key` after one of its tasks or sends panicked.
    fn let_go_after_panic(&mut self, key: JobKey) {
        let stream_id = self.running.get(&key).map(|r| r.entry.id.clone());
        tracing::error!(
            ?stream_id,
            "a job's task panicked; the job is let go of, to be reclaimed"
        );
        self.finish(key);
    }

    /// The job is done with here: recorded, or failed and left pending to be reclaimed.
    fn finish(&mut self, key: JobKey) {
        if let Some(running) = self.running.remove(&key) {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&running.entry.key());
            self.queues.job_finished(running.tenant.account);
        }
    }

    fn warn_failed(&self, key: JobKey, error: &StoreError) {
        let stream_id = self.running.get(&key).map(|r| r.entry.id.as_str());
        tracing::warn!(?stream_id, %error, "job failed; it stays queued");
    }

    /// The consumer, for handing jobs back.
    pub(crate) fn consumer(&self) -> &Consumer {
        &self.consumer
    }
}

/// The span of a job: its kind, and for the jobs of a trigger the trigger and the id of the
/// request that made it (or asked for the redelivery).
fn job_span(job: &Job) -> tracing::Span {
    match job {
        Job::FanOutV1 {
            triggered_id,
            request_id,
            ..
        } => job_of_trigger("fan_out", *triggered_id, request_id.as_deref()),
        Job::DeliverBatchV1 {
            triggered_id,
            request_id,
            ..
        } => job_of_trigger("deliver_batch", *triggered_id, request_id.as_deref()),
        Job::RetryV1 {
            triggered_id,
            request_id,
            ..
        } => job_of_trigger("retry", *triggered_id, request_id.as_deref()),
        Job::RedeliverV1 {
            triggered_id,
            request_id,
            ..
        } => job_of_trigger("redeliver", *triggered_id, request_id.as_deref()),
        Job::DeliverOrderedV1 {
            triggered_id,
            request_id,
            ..
        } => job_of_trigger("deliver_ordered", *triggered_id, request_id.as_deref()),
        Job::ProbeV1 { .. } => tracing::info_span!("job", kind = "probe"),
        Job::IntentV1 { .. } => tracing::info_span!("job", kind = "intent"),
    }
}

fn job_of_trigger(
    kind: &'static str,
    triggered: pubhook_core::domain::TriggeredId,
    request_id: Option<&str>,
) -> tracing::Span {
    tracing::info_span!("job", kind, %triggered, request_id)
}

/// One line per recorded job of deliveries, in the job's span (so with its request id).
fn log_recorded(job: &crate::delivery::DeliveryJob, results: &[AttemptResult]) {
    let (mut delivered, mut retrying, mut failed, mut skipped) = (0u32, 0u32, 0u32, 0u32);
    for result in results {
        match result.outcome {
            DeliveryOutcome::Delivered => delivered += 1,
            DeliveryOutcome::Retrying { .. } => retrying += 1,
            DeliveryOutcome::GaveUp => failed += 1,
            DeliveryOutcome::Skipped(_) => skipped += 1,
        }
    }
    tracing::info!(
        attempt = job.attempt,
        delivered,
        retrying,
        failed,
        skipped,
        "deliveries recorded"
    );
}

/// Tasks, each with what it works for (`T`), so that the work of a task that panicked can be
/// let go of: a panic sends no event.
struct Tasks<T> {
    set: JoinSet<()>,
    of: Map<tokio::task::Id, T>,
}

impl<T> Default for Tasks<T> {
    fn default() -> Self {
        Self {
            set: JoinSet::new(),
            of: Map::default(),
        }
    }
}

impl<T> Tasks<T> {
    /// Runs `task`, working for nothing that needs letting go of.
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.set.spawn(task);
    }

    /// Runs `task`, working for `of`.
    fn spawn_for(&mut self, of: T, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.of.insert(id, of);
    }

    /// Forgets the tasks that ended, and gives what those that panicked worked for.
    fn reap_panicked(&mut self) -> Vec<T> {
        let mut panicked = Vec::new();
        while let Some(ended) = self.set.try_join_next_with_id() {
            let (id, panic) = match ended {
                Ok((id, ())) => (id, false),
                Err(e) => (e.id(), e.is_panic()),
            };
            if let Some(of) = self.of.remove(&id) {
                if panic {
                    panicked.push(of);
                }
            }
        }
        panicked
    }

    /// Stops every task.
    fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Tasks;

    #[tokio::test]
    async fn the_work_of_a_task_that_panicked_is_given_back_once() {
        let mut tasks: Tasks<&str> = Tasks::default();
        tasks.spawn_for("fine", async {});
        tasks.spawn_for("broken", async { panic!("a bug in a task") });
        tasks.spawn_for("slow", tokio::time::sleep(Duration::from_secs(60)));
        tasks.spawn(async { panic!("a task working for nothing") });
        let mut panicked = Vec::new();
        for _ in 0..100 {
            panicked.extend(tasks.reap_panicked());
            if !panicked.is_empty() && tasks.of.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(panicked, vec!["broken"]);
        assert_eq!(tasks.of.len(), 1, "the slow task is still remembered");
        tasks.abort_all();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            tasks.reap_panicked().is_empty(),
            "an aborted task did not panic"
        );
        assert!(tasks.of.is_empty(), "ended tasks are forgotten");
    }
}
