//! Delivery: the signed POSTs of one batch (first attempts) or one retry, and their outcomes.
//!
//! Each attempt goes to the subscriber's endpoint **as it is now**, signed with its secret **as
//! it is now** (a secret reset applies to the next attempt, which during the reset's grace
//! period is also signed with the secret replaced), and is skipped when the subscriber
//! has reached `max_failed_count` (the fan-out does not look: this is where such subscribers are
//! skipped and counted). The subscriber's side of the outcomes (full attempt records,
//! `failed_count`) is written first, each on its own slot; then one script in the trigger's
//! queue shard records the outcomes on the trigger, queues retries and acknowledges the job, so
//! a job leaves the queue only once what it did is recorded; a crash before that repeats only
//! this job's deliveries.
//!
//! A job goes through three steps: [`prepare`] reads what it needs in one round trip and decides
//! which targets are skipped, [`send`] makes one attempt (the worker's fair queues decide when),
//! and [`record`] writes the outcomes. [`deliver`] runs the three at once, for tests and tools.
//!
//! Attempt records keep the endpoint without its query string, fragment or userinfo
//! ([`redacted_endpoint`]): tokens in an endpoint never reach Redis through a record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pubhook_core::domain::{
    now_millis, now_seconds, AccountId, RegistrationId, SignatureStyles, SubscriptionId,
    TriggeredId,
};
use pubhook_core::keys::Shard;
use pubhook_core::outbound::OutboundClient;
use pubhook_core::queue::{Job, Target, CONSUMER_GROUP};
use pubhook_core::store::{
    is_no_script, redacted_endpoint, redacted_url, AttemptOutcome, AttemptRecord, Batch,
    Connection, FailureClass, Store, StoreError, MAX_ATTEMPTS_PER_SUBSCRIPTION, STATE_FIELD,
};
use tracing::instrument;

use crate::adaptive::Feedback;
use crate::request::{add_source_event, delivery_headers, payload_body};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::scripts;

/// Bytes of a response kept in the attempt record.
pub const MAX_RESPONSE_SNIPPET_BYTES: usize = 1024;
/// Room reserved for one attempt record's JSON: four ids, the endpoint, a few numbers and a short
/// answer come to a few hundred bytes; a longer answer (up to [`MAX_RESPONSE_SNIPPET_BYTES`])
/// grows the buffer once or twice.
const RECORD_JSON_BYTES: usize = 512;
/// One attempt in this many also trims its subscription's records by age and count; the others
/// only add and renew the expiry, which keeps the record script short.
const TRIM_EVERY: u64 = 16;

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx answer: done, and the subscriber's `failed_count` is back to 0.
    Delivered,
    /// Failed; another attempt is scheduled after this delay.
    Retrying {
        /// Delay before the next attempt.
        after: Duration,
    },
    /// Failed, and no attempt is left (or the receiver answered `410 Gone`).
    GaveUp,
    /// Not attempted.
    Skipped(SkipReason),
}

/// Why a delivery was not attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The subscriber reached `max_failed_count`.
    FailedCountReached,
    /// The subscription was deleted before this attempt.
    SubscriptionGone,
    /// The subscriber's account was deleted.
    AccountGone,
    /// The subscriber has no endpoint (the bootstrap admin).
    NoEndpoint,
    /// The registration was deleted, and its payload with it.
    RegistrationGone,
}

impl SkipReason {
    /// The class stored in the attempt record.
    pub fn class(self) -> FailureClass {
        match self {
            Self::FailedCountReached => FailureClass::FailedCountReached,
            Self::SubscriptionGone => FailureClass::SubscriptionGone,
            Self::AccountGone => FailureClass::AccountGone,
            Self::NoEndpoint => FailureClass::NoEndpoint,
            Self::RegistrationGone => FailureClass::RegistrationGone,
        }
    }
}

/// Everything a delivery step needs.
#[derive(Clone)]
pub struct DeliveryContext {
    /// The store.
    pub store: Store,
    /// The outbound client, with its destination policy.
    pub outbound: OutboundClient,
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// Subscribers at or above this many failures are skipped.
    pub max_failed_count: u32,
    /// How long attempt records are kept.
    pub retention: Duration,
    /// How long recording a job's outcomes keeps trying while Redis answers unavailable (a slot
    /// moving between masters, a failover). The worker holds the job meanwhile, its heartbeat
    /// keeps it from being reclaimed, and every try is safe to repeat; giving up means the job
    /// is done again after the visibility timeout. The worker uses half that timeout.
    pub record_patience: Duration,
    /// When subscribers at `max_failed_count` are probed.
    pub probes: crate::probe::ProbePolicy,
    /// How long an ordered subscription's turn is held without news of its holder (see
    /// `crate::ordered`); the worker uses the visibility timeout.
    pub order_lease: Duration,
    /// When this worker last renewed each subscription's attempt records' expiry.
    pub renewals: Renewals,
}

/// When this worker last renewed the expiry of each subscription's attempt records (see
/// [`record`]). Shared by the clones of a [`DeliveryContext`]; taken once per job.
#[derive(Clone, Default)]
pub struct Renewals(Arc<std::sync::Mutex<crate::Map<SubscriptionId, Instant>>>);

/// Most subscriptions [`Renewals`] remembers; past it, it forgets them all (each is then
/// renewed once more at its next attempt).
const MOST_RENEWALS_KEPT: usize = 100_000;

impl Renewals {
    /// Whether the records of `subscription` need their expiry renewed now: not renewed by this
    /// worker within `every`. Notes the renewal when they do.
    fn due(
        map: &mut crate::Map<SubscriptionId, Instant>,
        subscription: SubscriptionId,
        every: Duration,
        now: Instant,
    ) -> bool {
        match map.get(&subscription) {
            Some(at) if now.duration_since(*at) < every => false,
            _ => {
                if map.len() >= MOST_RENEWALS_KEPT {
                    map.clear();
                }
                map.insert(subscription, now);
                true
            }
        }
    }
}

/// The deliveries of one job.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// The trigger, sent as `webhook-id`.
    pub triggered: TriggeredId,
    /// The registration whose payload is sent.
    pub registration: RegistrationId,
    /// The triggering request, for logs.
    pub request_id: Option<String>,
    /// Who receives it.
    pub targets: Vec<Target>,
    /// The attempt number of every target (1 for a batch).
    pub attempt: u32,
    /// A redelivery asked for through the API: attempted even when the subscriber has reached
    /// `max_failed_count` (a success then re-enables it), never retried, and its outcome
    /// recorded in the trigger's redeliveries.
    pub manual: bool,
    /// For a delivery to an ordered subscription (one target), its place in the order: it is
    /// sent only in its turn (see `crate::ordered`). `None` for every other job.
    pub order: Option<i64>,
}

/// What every attempt of one job sends: the event, the body (shared, one copy per job) and the
/// `webhook-id`.
pub struct Payload {
    event: String,
    body: bytes::Bytes,
    /// The sender's event name of an inbound hook, sent as `x-pubhook-source-event`.
    source_event: Option<String>,
    webhook_id: String,
    attempt: u32,
    manual: bool,
    triggered: TriggeredId,
    /// When the trigger was recorded (µs since the epoch), for the first attempts' lag.
    trigger_created_micros: Option<i64>,
}

impl Payload {
    /// When the trigger was recorded, µs since the epoch (`None`: not known).
    pub(crate) fn trigger_created_micros(&self) -> Option<i64> {
        self.trigger_created_micros
    }
}

/// A job read and checked, ready for its attempts.
pub struct PreparedJob {
    /// The job.
    pub job: DeliveryJob,
    /// What is sent; `None` when the registration is gone (every target is then skipped).
    pub payload: Option<Arc<Payload>>,
    /// One per target, in order.
    pub attempts: Vec<PreparedAttempt>,
}

/// One target of a prepared job.
pub enum PreparedAttempt {
    /// To be sent.
    Send(Attempt),
    /// Decided without a request (skipped).
    Done(AttemptResult),
}

/// One request to make.
pub struct Attempt {
    target: Target,
    url: url::Url,
    secret_key: String,
    /// The secret `secret_key` replaced, while its grace period lasts.
    previous_secret: Option<String>,
    /// The subscriber's `failed_count` as read before the attempt: a success resets it only
    /// when it was not 0 already.
    failed_count: i64,
    /// The extra signature headers the subscriber asked for.
    signature_styles: SignatureStyles,
    /// The cap an admin set on requests in flight to the subscriber's endpoint.
    max_concurrency: Option<u32>,
}

impl Attempt {
    /// The origin (scheme, host, port) the request goes to: concurrency is limited per origin,
    /// not per URL, since one slow server behind many paths is still one server.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The cap an admin set on requests in flight to the subscriber's endpoint, if any.
    pub fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency.map(|cap| cap as usize)
    }
}

/// The result of one target of a job.
pub struct AttemptResult {
    target: Target,
    record: AttemptRecord,
    /// The subscriber's `failed_count` before the attempt (0 when not attempted).
    failed_count: i64,
    /// The answer's `Retry-After`.
    retry_after: Option<Duration>,
    /// What became of it.
    pub outcome: DeliveryOutcome,
}

impl AttemptResult {
    /// What the attempt says about its origin's load, for the origin's adaptive limit: `None`
    /// when no request reached the origin (skipped, refused by the destination policy, a name
    /// that did not resolve).
    pub fn feedback(&self) -> Option<Feedback> {
        let latency = Duration::from_secs_f64(self.record.latency_ms.max(0.0) / 1000.0);
        match (self.record.status_code, self.record.error) {
            (Some(status), _) => Some(Feedback::of(Some(status), latency, self.retry_after)),
            (
                None,
                Some(FailureClass::Timeout | FailureClass::Connect | FailureClass::InvalidResponse),
            ) => Some(Feedback::of(None, latency, None)),
            _ => None,
        }
    }

    /// How long the attempt took, in milliseconds (0 when it was not attempted).
    pub fn latency_ms(&self) -> f64 {
        self.record.latency_ms
    }

    /// Why it failed or was skipped (`None` when delivered).
    pub fn error_class(&self) -> Option<FailureClass> {
        self.record.error
    }

    /// The subscriber's `failed_count` before the attempt (0 when not attempted).
    pub(crate) fn failed_count_before(&self) -> i64 {
        self.failed_count
    }
}

/// An account's `endpoint`, `secret_key`, `failed_count`, `state`, `signature_styles`,
/// `previous_secret_key` and `previous_secret_until`.
type AccountFields = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<u32>,
);

struct Subscriber {
    endpoint: String,
    secret_key: String,
    previous_secret: Option<String>,
    failed_count: i64,
    signature_styles: SignatureStyles,
    max_concurrency: Option<u32>,
}

/// Delivers one job's targets and records everything, acknowledging `entry_id` (empty: nothing
/// to acknowledge) in the trigger's queue shard. Every request of the job is made at once; the worker itself goes through its
/// fair queues instead. Returns each target's outcome, in order.
#[instrument(skip_all, fields(triggered = %job.triggered, attempt = job.attempt, targets = job.targets.len()))]
pub async fn deliver(
    ctx: &DeliveryContext,
    entry_id: &str,
    job: DeliveryJob,
) -> Result<Vec<DeliveryOutcome>, StoreError> {
    let PreparedJob {
        job,
        payload,
        attempts,
    } = prepare(ctx, job).await?;
    let job = &job;
    let attempts = attempts.into_iter().map(|attempt| {
        let payload = payload.clone();
        async move {
            match (attempt, payload) {
                (PreparedAttempt::Done(result), _) => result,
                (PreparedAttempt::Send(attempt), Some(payload)) => {
                    send(ctx, &payload, attempt).await
                }
                (PreparedAttempt::Send(attempt), None) => {
                    skipped(job, attempt.target, None, SkipReason::RegistrationGone)
                }
            }
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let shard = ctx.store.keys().shard_of(job.triggered);
    record(ctx, shard, entry_id, job, &results).await?;
    Ok(results.into_iter().map(|r| r.outcome).collect())
}

/// Reads what `job` needs in one round trip (the payload, and each subscriber as it is now) and
/// decides which of its targets are skipped.
pub async fn prepare(ctx: &DeliveryContext, job: DeliveryJob) -> Result<PreparedJob, StoreError> {
    let (event, event_data, own, subscribers) = read_inputs(&ctx.store, &job).await?;
    let payload = match (event, event_data) {
        (Some(event), Some(data)) => Some(Arc::new(Payload {
            event,
            // A trigger's own payload is stored as the exact text to send.
            body: match own.event_data {
                Some(text) => bytes::Bytes::from(text),
                None => payload_body(&data).map(bytes::Bytes::from).map_err(|e| {
                    StoreError::Internal(
                        anyhow::Error::new(e).context("stored event_data is not JSON"),
                    )
                })?,
            },
            source_event: own.source_event,
            webhook_id: job.triggered.to_string(),
            attempt: job.attempt,
            manual: job.manual,
            triggered: job.triggered,
            trigger_created_micros: own.created,
        })),
        _ => None,
    };
    let attempts = job
        .targets
        .iter()
        .zip(subscribers)
        .map(|(target, subscriber)| {
            check_target(ctx, &job, payload.is_some(), target.clone(), subscriber)
        })
        .collect();
    Ok(PreparedJob {
        job,
        payload,
        attempts,
    })
}

fn check_target(
    ctx: &DeliveryContext,
    job: &DeliveryJob,
    has_payload: bool,
    target: Target,
    subscriber: Option<Subscriber>,
) -> PreparedAttempt {
    if !has_payload {
        return PreparedAttempt::Done(skipped(job, target, None, SkipReason::RegistrationGone));
    }
    let Some(subscriber) = subscriber else {
        let reason = if job.attempt > 1 || job.order.is_some() {
            SkipReason::SubscriptionGone
        } else {
            SkipReason::AccountGone
        };
        return PreparedAttempt::Done(skipped(job, target, None, reason));
    };
    if subscriber.failed_count >= i64::from(ctx.max_failed_count) && !job.manual {
        let endpoint = Some(subscriber.endpoint.as_str());
        return PreparedAttempt::Done(skipped(
            job,
            target,
            endpoint,
            SkipReason::FailedCountReached,
        ));
    }
    match url::Url::parse(&subscriber.endpoint) {
        Ok(url) => PreparedAttempt::Send(Attempt {
            target,
            url,
            secret_key: subscriber.secret_key,
            previous_secret: subscriber.previous_secret,
            failed_count: subscriber.failed_count,
            signature_styles: subscriber.signature_styles,
            max_concurrency: subscriber.max_concurrency,
        }),
        Err(_) => {
            let endpoint = Some(subscriber.endpoint.as_str());
            PreparedAttempt::Done(skipped(job, target, endpoint, SkipReason::NoEndpoint))
        }
    }
}

fn skipped(
    job: &DeliveryJob,
    target: Target,
    endpoint: Option<&str>,
    reason: SkipReason,
) -> AttemptResult {
    let outcome = DeliveryOutcome::Skipped(reason);
    let mut record = attempt_record(
        job.triggered,
        job.attempt,
        &target,
        endpoint.map(redacted_endpoint),
        &outcome,
        None,
        Some(reason.class()),
        Duration::ZERO,
        None,
    );
    record.manual = job.manual;
    AttemptResult {
        target,
        record,
        failed_count: 0,
        retry_after: None,
        outcome,
    }
}

/// What a triggered record may carry beyond its registration (see `TriggerExtras` in core).
#[derive(Default)]
struct TriggerOwn {
    event_data: Option<String>,
    source_event: Option<String>,
    /// When it was recorded, µs since the epoch.
    created: Option<i64>,
}

type Inputs = (
    Option<String>,
    Option<String>,
    TriggerOwn,
    Vec<Option<Subscriber>>,
);

/// The registration's event and payload, the trigger's own payload, source event and creation
/// time, and each target's subscriber as it is now (`None` when its subscription, on a retry,
/// or its account is gone): one round trip for the whole job.
async fn read_inputs(store: &Store, job: &DeliveryJob) -> Result<Inputs, StoreError> {
    let keys = store.keys();
    // A first attempt has just been read from the subscriber index; an ordered one may have
    // waited its turn for long.
    let check_subscription = job.attempt > 1 || job.order.is_some();
    // Each read is on one record's slot; sent at once, they are one round trip.
    let mut reads = Vec::with_capacity(2 + job.targets.len() * 2);
    let mut read = redis::cmd("HMGET");
    read.arg(keys.registration(job.registration))
        .arg("event")
        .arg("event_data")
        .arg(STATE_FIELD);
    reads.push(read);
    let mut own = redis::cmd("HMGET");
    own.arg(keys.triggered(job.triggered))
        .arg("event_data")
        .arg("source_event")
        .arg("created");
    reads.push(own);
    for target in &job.targets {
        let mut read = redis::cmd("HMGET");
        read.arg(keys.account(target.account_id))
            .arg("endpoint")
            .arg("secret_key")
            .arg("failed_count")
            .arg(STATE_FIELD)
            .arg("signature_styles")
            .arg("previous_secret_key")
            .arg("previous_secret_until")
            .arg("max_concurrency");
        reads.push(read);
        if check_subscription {
            let mut exists = redis::cmd("HMGET");
            exists
                .arg(keys.subscription(target.subscription_id))
                .arg("id")
                .arg(STATE_FIELD);
            reads.push(exists);
        }
    }
    let conn = store.connection().await?;
    let replies: Vec<redis::Value> = conn.each(reads).await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(redis::Value::Nil);
    // A record being deleted (its state field set) is gone already.
    let (event, event_data, state): (Option<String>, Option<String>, Option<String>) =
        redis::from_redis_value(next())?;
    let (event, event_data) = match state {
        Some(_) => (None, None),
        None => (event, event_data),
    };
    let (own_data, source_event, created): (Option<String>, Option<String>, Option<i64>) =
        redis::from_redis_value(next())?;
    let own = TriggerOwn {
        event_data: own_data,
        source_event,
        created,
    };
    let mut subscribers = Vec::with_capacity(job.targets.len());
    let now_ms = now_millis();
    for _ in &job.targets {
        let fields: AccountFields = redis::from_redis_value(next())?;
        let subscription_exists = !check_subscription || {
            let (id, state): (Option<String>, Option<String>) = redis::from_redis_value(next())?;
            id.is_some() && state.is_none()
        };
        subscribers.push(match fields {
            (
                Some(endpoint),
                Some(secret_key),
                failed_count,
                None,
                styles,
                previous,
                until,
                cap,
            ) if subscription_exists => {
                Some(Subscriber {
                    endpoint,
                    secret_key,
                    // Past its grace period the old secret stays in the record, unused, until
                    // the next reset replaces or drops it.
                    previous_secret: previous.filter(|_| until.is_some_and(|until| until > now_ms)),
                    failed_count: failed_count.unwrap_or(0),
                    signature_styles: styles
                        .map(|raw| SignatureStyles::from_stored(&raw))
                        .unwrap_or_default(),
                    max_concurrency: cap.filter(|&cap| cap > 0),
                })
            }
            _ => None,
        })
    }
    Ok((event, event_data, own, subscribers))
}

/// Makes one attempt: the signed POST, and what to do after it.
pub async fn send(ctx: &DeliveryContext, payload: &Payload, attempt: Attempt) -> AttemptResult {
    let timestamp = now_seconds();
    let mut headers = delivery_headers(
        &payload.event,
        &payload.body,
        &attempt.secret_key,
        attempt.previous_secret.as_deref(),
        &payload.webhook_id,
        timestamp,
        &attempt.signature_styles,
    );
    if let Some(source_event) = &payload.source_event {
        add_source_event(&mut headers, source_event);
    }
    let started = Instant::now();
    // A `Bytes` clone shares the body: one copy of the payload per job, not per attempt.
    let sent = ctx
        .outbound
        .post(&attempt.url, headers, payload.body.clone())
        .await;
    let (status, error, retry_after, snippet, latency) = match sent {
        Ok(response) => {
            let snippet =
                &response.snippet[..response.snippet.len().min(MAX_RESPONSE_SNIPPET_BYTES)];
            let error =
                (!(200..300).contains(&response.status)).then_some(FailureClass::HttpStatus);
            (
                Some(response.status),
                error,
                response.retry_after,
                String::from_utf8_lossy(snippet).into_owned(),
                response.latency,
            )
        }
        Err(e) => (
            None,
            Some(FailureClass::from(&e)),
            None,
            String::new(),
            started.elapsed(),
        ),
    };
    let outcome = if error.is_none() {
        DeliveryOutcome::Delivered
    } else if payload.manual {
        DeliveryOutcome::GaveUp
    } else {
        match ctx
            .retry
            .after_failure(payload.attempt, status, retry_after)
        {
            RetryDecision::RetryAfter(after) => DeliveryOutcome::Retrying { after },
            RetryDecision::GiveUp => DeliveryOutcome::GaveUp,
        }
    };
    tracing::debug!(subscription = %attempt.target.subscription_id, ?status, error = error.map(FailureClass::as_str), ?outcome, "attempt");
    let mut record = attempt_record(
        payload.triggered,
        payload.attempt,
        &attempt.target,
        Some(redacted_url(&attempt.url)),
        &outcome,
        status,
        error,
        latency,
        Some(snippet),
    );
    record.manual = payload.manual;
    AttemptResult {
        target: attempt.target,
        record,
        failed_count: attempt.failed_count,
        retry_after,
        outcome,
    }
}

/// Writes the outcomes of a job and acknowledges it in `shard` (the queue shard the job was
/// read from, its trigger's). First the subscriber's side, each on its own slot and all at once:
/// every attempt in full in its subscription's records, and `failed_count` where it changes
/// (+1 after a failure; 0 after a success, unless it was 0 already). Then one script in the
/// trigger's shard: each outcome in the trigger's records (the owner's view), the summary, the
/// retries, and the acknowledgement. A crash between the two repeats the job's attempts (the
/// subscriber's records then show both), and never loses an outcome.
pub async fn record(
    ctx: &DeliveryContext,
    shard: Shard,
    entry_id: &str,
    job: &DeliveryJob,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    let keys = ctx.store.keys();
    let patience = ctx.record_patience;
    let now_ms = now_millis();
    let (mut delivered, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    let mut accounts: Vec<(AccountId, &str)> = Vec::new();
    let mut retries: Vec<(u64, String)> = Vec::new();
    let mut redelivered: Vec<(String, &str)> = Vec::new();
    for result in results {
        if job.manual {
            redelivered.push((
                result.target.subscription_id.to_string(),
                match result.outcome {
                    DeliveryOutcome::Delivered => "delivered",
                    DeliveryOutcome::Skipped(_) => "skipped",
                    DeliveryOutcome::GaveUp | DeliveryOutcome::Retrying { .. } => "failed",
                },
            ));
        }
        match &result.outcome {
            DeliveryOutcome::Delivered => {
                delivered += 1;
                if result.failed_count != 0 {
                    accounts.push((result.target.account_id, "reset"));
                }
            }
            DeliveryOutcome::Retrying { after } => {
                accounts.push((result.target.account_id, "incr"));
                let due = now_ms + u64::try_from(after.as_millis()).unwrap_or(u64::MAX / 2);
                // An ordered delivery's retry stays an ordered job, which keeps the turn.
                let retry = match job.order {
                    Some(order) => crate::ordered::ordered_job(job, order, job.attempt + 1),
                    None => None,
                }
                .unwrap_or_else(|| Job::RetryV1 {
                    triggered_id: job.triggered,
                    registration_id: job.registration,
                    request_id: job.request_id.clone(),
                    target: result.target.clone(),
                    attempt: job.attempt + 1,
                });
                retries.push((due, retry.to_json()));
            }
            DeliveryOutcome::GaveUp => {
                failed += 1;
                accounts.push((result.target.account_id, "incr"));
            }
            DeliveryOutcome::Skipped(_) => skipped += 1,
        }
    }
    let retention_ms = ctx.retention.as_millis();
    let conn = ctx.store.connection().await?;

    // The subscriber's side, all in one pipeline on one Redis: each attempt in full in its
    // subscription's records. The set's expiry is renewed, with the record by the own-attempt
    // script, at a subscription's first attempt by this worker and then once per half of the
    // retention, to one and a half times the retention: so every record lives at least its
    // retention, and an idle set goes at most half a retention later. The attempts in between
    // are a plain `ZADD`; one attempt in `TRIM_EVERY` also trims the set by age and count.
    let renew_every = ctx.retention / 2;
    let renewed_expiry = ctx.retention.as_secs() + ctx.retention.as_secs() / 2;
    let mut own = Vec::with_capacity(results.len());
    let mut outcomes = Vec::with_capacity(results.len());
    {
        let mut renewals = ctx
            .renewals
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        for result in results {
            let score = (result.record.epoch * 1000.0) as u64;
            outcomes.push((score, record_json(&result.record.outcome_only())));
            let subscription = result.target.subscription_id;
            let key = keys.subscription_deliveries(subscription);
            // No expiry for records kept for ever, nor for one under a second (EXPIRE 0 would
            // delete the set).
            let renew =
                renewed_expiry > 0 && Renewals::due(&mut renewals, subscription, renew_every, now);
            let mut write = if renew {
                let mut write = redis::cmd("EVALSHA");
                write.arg(scripts::OWN_ATTEMPT.get_hash()).arg(1);
                write
            } else {
                redis::cmd("ZADD")
            };
            write.arg(&key).arg(score).arg(record_json(&result.record));
            if renew {
                write.arg(renewed_expiry);
            }
            own.push(write);
            if rand::random::<u64>() % TRIM_EVERY == 0 {
                own.extend(trims(&key, score, retention_ms));
            }
        }
    }
    let failed_counts: Vec<_> = accounts
        .iter()
        .map(|(account, op)| {
            let mut invocation = scripts::FAILED_COUNT.key(keys.account(*account));
            invocation.arg(*op);
            invocation
        })
        .collect();
    let counts = failed_counts.iter().map(|invocation| {
        let conn = conn.clone();
        until_available(patience, move || {
            let mut conn = conn.clone();
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        })
    });
    let written = write_own_attempts(patience, &conn, own);
    let (_, counts) =
        futures_util::future::try_join(written, futures_util::future::try_join_all(counts)).await?;
    note_disabled_changes(ctx, &accounts, &counts).await?;
    schedule_probes(ctx, results, &accounts, &counts).await?;

    // The trigger's side, with the acknowledgement.
    let mut invocation = record_invocation(ctx, shard, job.triggered, entry_id);
    invocation
        .arg(delivered)
        .arg(failed)
        .arg(skipped)
        .arg(outcomes.len())
        .arg(retries.len())
        .arg(redelivered.len());
    for (score, outcome) in &outcomes {
        invocation.arg(*score).arg(outcome);
    }
    for (due, retry) in &retries {
        invocation.arg(*due).arg(retry);
    }
    for (subscription, count) in &redelivered {
        invocation.arg(subscription).arg(*count);
    }
    let _: i64 = until_available(patience, || {
        let mut conn = conn.clone();
        let invocation = &invocation;
        async move { invocation.invoke_async(&mut conn).await }
    })
    .await?;
    // After the acknowledgement: a crash before it repeats the attempt in its turn, never a
    // later delivery's turn; a crash after it leaves the turn to lapse (see `crate::ordered`).
    if let (Some(_), [result]) = (job.order, results) {
        let retry = retries.first().map(|(_, json)| json.as_str());
        crate::ordered::end_turn(ctx, job, &result.outcome, retry).await?;
    }
    Ok(())
}

/// The trims of a subscription's attempt records at `key`, written at `score`: by age (when
/// they have a retention) and by count.
fn trims(key: &str, score: u64, retention_ms: u128) -> Vec<redis::Cmd> {
    let mut trims = Vec::with_capacity(2);
    if retention_ms > 0 {
        let before = u128::from(score).saturating_sub(retention_ms);
        let mut by_age = redis::cmd("ZREMRANGEBYSCORE");
        by_age.arg(key).arg("-inf").arg(format!("({before}"));
        trims.push(by_age);
    }
    let mut by_count = redis::cmd("ZREMRANGEBYRANK");
    by_count
        .arg(key)
        .arg(0)
        .arg(-i64::try_from(MAX_ATTEMPTS_PER_SUBSCRIPTION).unwrap_or(i64::MAX) - 1);
    trims.push(by_count);
    trims
}

/// Runs the subscriber-side `writes` (`ZADD`s, trims and own-attempt `EVALSHA`s) in one batch;
/// where Redis does not have the script yet (after a restart or `SCRIPT FLUSH`, or on a cluster
/// node that never ran it), loads it and sends the batch again. Writing a record twice leaves
/// one: it is the same member of the set.
async fn write_own_attempts(
    patience: Duration,
    conn: &Connection,
    writes: Vec<redis::Cmd>,
) -> Result<(), StoreError> {
    let batch: Batch = writes.into_iter().collect();
    let mut loaded = false;
    loop {
        let sent = until_available(patience, || conn.send_batch::<redis::Value>(&batch)).await;
        match sent {
            Err(StoreError::Internal(e)) if !loaded && caused_by_no_script(&e) => {
                let _: String = until_available(patience, || {
                    let mut conn = conn.clone();
                    async move { scripts::OWN_ATTEMPT.load_async(&mut conn).await }
                })
                .await?;
                loaded = true;
            }
            sent => return sent.map(drop),
        }
    }
}

/// Whether a store error is Redis answering that it does not have a script.
fn caused_by_no_script(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<redis::RedisError>()
            .is_some_and(is_no_script)
    })
}

/// Keeps the set of subscribers at `max_failed_count` in step (see `pubhook_core::store`
/// `disabled`): those a failure brought there, and those a success brought back from there
/// (`counts` are the new `failed_count`s of `accounts`, or the old ones negated after a reset).
/// No round trip for a job with neither, which is nearly every job.
async fn note_disabled_changes(
    ctx: &DeliveryContext,
    accounts: &[(AccountId, &str)],
    counts: &[i64],
) -> Result<(), StoreError> {
    let max = i64::from(ctx.max_failed_count);
    let (mut reached, mut left) = (Vec::new(), Vec::new());
    for ((account, op), count) in accounts.iter().zip(counts) {
        match *op {
            "incr" if *count >= max => reached.push(*account),
            "reset" if -*count >= max => left.push(*account),
            _ => {}
        }
    }
    ctx.store.note_disabled(&reached).await?;
    ctx.store.forget_disabled(&left).await
}

/// The record script on `triggered`'s side, in its queue shard, acknowledging `entry_id`: its
/// keys and first arguments, for the caller to add the counts, outcomes and retries.
pub(crate) fn record_invocation(
    ctx: &DeliveryContext,
    shard: Shard,
    triggered: TriggeredId,
    entry_id: &str,
) -> redis::ScriptInvocation<'static> {
    let keys = ctx.store.keys();
    let mut invocation = scripts::RECORD.key(keys.jobs(shard));
    invocation
        .key(keys.delayed(shard))
        .key(keys.triggered(triggered))
        .key(keys.deliveries(triggered))
        .key(keys.redeliveries(triggered))
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .arg(ctx.retention.as_secs());
    invocation
}

/// A record's JSON, for Redis, written into a buffer that fits a typical record (an endpoint
/// and a short answer) at once rather than one grown by doubling from 128 bytes.
fn record_json(record: &AttemptRecord) -> Vec<u8> {
    let mut json = Vec::with_capacity(RECORD_JSON_BYTES);
    // Ids, numbers and strings always serialise.
    let _ = serde_json::to_writer(&mut json, record);
    json
}

/// Queues the first probe of each subscriber this job found at `max_failed_count`: those a
/// failure brought there (`counts` are the new `failed_count`s of `accounts`), and those
/// skipped for it (one whose probe is waiting already keeps it). Nothing to send, and no round
/// trip, for a job with neither.
async fn schedule_probes(
    ctx: &DeliveryContext,
    results: &[AttemptResult],
    accounts: &[(AccountId, &str)],
    counts: &[i64],
) -> Result<(), StoreError> {
    if !ctx.probes.enabled {
        return Ok(());
    }
    let max = i64::from(ctx.max_failed_count);
    let mut disabled: Vec<AccountId> = accounts
        .iter()
        .zip(counts)
        .filter(|((_, op), count)| *op == "incr" && **count >= max)
        .map(|((account, _), _)| *account)
        .chain(results.iter().filter_map(|result| {
            (result.outcome == DeliveryOutcome::Skipped(SkipReason::FailedCountReached))
                .then_some(result.target.account_id)
        }))
        .collect();
    if disabled.is_empty() {
        return Ok(());
    }
    disabled.sort_unstable();
    disabled.dedup();
    let conn = ctx.store.connection().await?;
    let commands: Vec<redis::Cmd> = disabled
        .into_iter()
        .map(|account| crate::probe::schedule_first(ctx, account))
        .collect();
    let _: Vec<redis::Value> = conn.each(commands).await?;
    Ok(())
}

/// Tries `write` again while it fails as unavailable, for up to `patience`: while a slot moves
/// between masters or a master fails over, a record
/// written a moment later spares the delivery a repeat (a job not recorded is taken over after
/// the visibility timeout and done again). Safe for these writes: the shard script counts only
/// if its acknowledgement was the first, an attempt record is the same member again, and a
/// `failed_count` step that ran but whose answer was lost counts once more at worst.
async fn until_available<T, E, F, Fut>(patience: Duration, mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<StoreError>,
{
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(25);
    loop {
        match write().await.map_err(Into::into) {
            Err(StoreError::Unavailable(_)) if started.elapsed() + pause < patience => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            result => return result,
        }
    }
}

/// One attempt's full record, with the endpoint as redacted by the caller and the snippet as
/// text.
#[allow(clippy::too_many_arguments)]
fn attempt_record(
    triggered: TriggeredId,
    attempt: u32,
    target: &Target,
    endpoint: Option<String>,
    outcome: &DeliveryOutcome,
    status_code: Option<u16>,
    error: Option<FailureClass>,
    latency: Duration,
    response: Option<String>,
) -> AttemptRecord {
    let (outcome, retry_in) = match outcome {
        DeliveryOutcome::Delivered => (AttemptOutcome::Delivered, None),
        DeliveryOutcome::Retrying { after } => (AttemptOutcome::Retrying, Some(after.as_millis())),
        DeliveryOutcome::GaveUp => (AttemptOutcome::Failed, None),
        DeliveryOutcome::Skipped(_) => (AttemptOutcome::Skipped, None),
    };
    AttemptRecord {
        // From the thread's RNG: unique enough for a record id, without a syscall per attempt.
        id: uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
        triggered_id: triggered,
        subscription_id: target.subscription_id,
        account_id: target.account_id,
        endpoint,
        attempt,
        outcome,
        status_code,
        error,
        latency_ms: latency.as_secs_f64() * 1000.0,
        epoch: now_millis() as f64 / 1000.0,
        next_attempt_in_ms: retry_in.map(|ms| u64::try_from(ms).unwrap_or(u64::MAX)),
        response,
        manual: false,
    }
}
