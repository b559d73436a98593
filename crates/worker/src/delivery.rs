//! Delivery: the signed POSTs of one batch (first attempts) or one retry, and their outcomes.
//!
//! Each attempt goes to the subscriber's endpoint **as it is now**, signed with its secret **as
//! it is now** (a secret reset applies to the next attempt), and is skipped when the subscriber
//! has reached `max_failed_count`. Outcomes, `failed_count` changes, attempt records, retries and
//! the job's acknowledgement are written by one script, so a job leaves the queue only once what
//! it did is recorded; a crash before that repeats only this job's deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pubhook_core::domain::{
    now_millis, now_seconds, AccountId, RegistrationId, SubscriptionId, TriggeredId,
};
use pubhook_core::outbound::OutboundClient;
use pubhook_core::queue::{Job, Target, CONSUMER_GROUP};
use pubhook_core::store::{Store, StoreError};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::instrument;

use crate::request::{delivery_headers, payload_body};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::scripts;

/// Bytes of a response kept in the attempt record.
pub const MAX_RESPONSE_SNIPPET_BYTES: usize = 1024;

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
    /// Stable name used in attempt records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedCountReached => "failed_count_reached",
            Self::SubscriptionGone => "subscription_gone",
            Self::AccountGone => "account_gone",
            Self::NoEndpoint => "no_endpoint",
            Self::RegistrationGone => "registration_gone",
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
    /// Bounds on requests in flight.
    pub limits: Arc<ConcurrencyLimits>,
}

/// Requests in flight: at most `total` in all and at most `per_endpoint` to any one endpoint
/// (scheme, host and port), so a slow endpoint cannot take all of them.
pub struct ConcurrencyLimits {
    total: Arc<Semaphore>,
    per_endpoint: usize,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Endpoints tracked before idle ones are forgotten.
const TRACKED_ENDPOINTS: usize = 10_000;

impl ConcurrencyLimits {
    /// Limits of `total` requests, `per_endpoint` of them to one endpoint.
    pub fn new(total: usize, per_endpoint: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_endpoint: per_endpoint.clamp(1, total.max(1)),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    async fn acquire(&self, endpoint: String) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let endpoint_semaphore = {
            let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
            // Idle endpoints are forgotten only when a new one would go past the bound.
            if endpoints.len() >= TRACKED_ENDPOINTS && !endpoints.contains_key(&endpoint) {
                endpoints.retain(|_, s| Arc::strong_count(s) > 1);
            }
            endpoints
                .entry(endpoint)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
                .clone()
        };
        // The endpoint's permit first: waiting for a busy endpoint must not hold a global one.
        // Semaphores here are never closed, so acquiring cannot fail.
        #[allow(clippy::expect_used)]
        let own = endpoint_semaphore
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        #[allow(clippy::expect_used)]
        let global = self
            .total
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        (own, global)
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
}

struct Subscriber {
    endpoint: String,
    secret_key: String,
    failed_count: i64,
}

struct AttemptResult {
    target: Target,
    endpoint: String,
    status: Option<u16>,
    error: Option<&'static str>,
    latency: Duration,
    snippet: String,
    outcome: DeliveryOutcome,
}

/// Delivers one job's targets and records everything, acknowledging `entry_id` (empty: nothing
/// to acknowledge). Returns each target's outcome, in order.
#[instrument(skip_all, fields(triggered = %job.triggered, attempt = job.attempt, targets = job.targets.len()))]
pub async fn deliver(
    ctx: &DeliveryContext,
    entry_id: &str,
    job: DeliveryJob,
) -> Result<Vec<DeliveryOutcome>, StoreError> {
    let (event, event_data, subscribers) = read_inputs(&ctx.store, &job).await?;

    let payload = match (event, event_data) {
        (Some(event), Some(data)) => Some((
            event,
            payload_body(&data).map(bytes::Bytes::from).map_err(|e| {
                StoreError::Internal(anyhow::Error::new(e).context("stored event_data is not JSON"))
            })?,
        )),
        _ => None,
    };
    let webhook_id = job.triggered.to_string();
    let attempts = job
        .targets
        .iter()
        .zip(subscribers)
        .map(|(target, subscriber)| {
            attempt_one(
                ctx,
                &job,
                target.clone(),
                subscriber,
                payload.as_ref(),
                &webhook_id,
            )
        });
    let results = futures_util::future::join_all(attempts).await;
    record(ctx, entry_id, &job, &results).await?;
    Ok(results.into_iter().map(|r| r.outcome).collect())
}

/// The registration's event and payload, and each target's subscriber as it is now (`None`
/// when its subscription, on a retry, or its account is gone): one round trip for the whole job.
async fn read_inputs(
    store: &Store,
    job: &DeliveryJob,
) -> Result<(Option<String>, Option<String>, Vec<Option<Subscriber>>), StoreError> {
    let keys = store.keys();
    let check_subscription = job.attempt > 1;
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(keys.registration(job.registration))
        .arg("event")
        .arg("event_data");
    for target in &job.targets {
        pipe.cmd("HMGET")
            .arg(keys.account(target.account_id))
            .arg("endpoint")
            .arg("secret_key")
            .arg("failed_count");
        if check_subscription {
            pipe.cmd("EXISTS")
                .arg(keys.subscription(target.subscription_id));
        }
    }
    let mut conn = store.connection().await?;
    let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(redis::Value::Nil);
    let (event, event_data): (Option<String>, Option<String>) = redis::from_redis_value(next())?;
    let mut subscribers = Vec::with_capacity(job.targets.len());
    for _ in &job.targets {
        let fields: (Option<String>, Option<String>, Option<i64>) =
            redis::from_redis_value(next())?;
        let subscription_exists = !check_subscription || redis::from_redis_value::<bool>(next())?;
        subscribers.push(match fields {
            (Some(endpoint), Some(secret_key), failed_count) if subscription_exists => {
                Some(Subscriber {
                    endpoint,
                    secret_key,
                    failed_count: failed_count.unwrap_or(0),
                })
            }
            _ => None,
        })
    }
    Ok((event, event_data, subscribers))
}

async fn attempt_one(
    ctx: &DeliveryContext,
    job: &DeliveryJob,
    target: Target,
    subscriber: Option<Subscriber>,
    payload: Option<&(String, bytes::Bytes)>,
    webhook_id: &str,
) -> AttemptResult {
    let skipped = |target: Target, endpoint: String, reason: SkipReason| AttemptResult {
        target,
        endpoint,
        status: None,
        error: None,
        latency: Duration::ZERO,
        snippet: String::new(),
        outcome: DeliveryOutcome::Skipped(reason),
    };
    let Some((event, body)) = payload else {
        return skipped(target, String::new(), SkipReason::RegistrationGone);
    };
    let Some(subscriber) = subscriber else {
        let reason = if job.attempt > 1 {
            SkipReason::SubscriptionGone
        } else {
            SkipReason::AccountGone
        };
        return skipped(target, String::new(), reason);
    };
    if subscriber.failed_count >= i64::from(ctx.max_failed_count) {
        return skipped(target, subscriber.endpoint, SkipReason::FailedCountReached);
    }
    let Ok(url) = url::Url::parse(&subscriber.endpoint) else {
        return skipped(target, subscriber.endpoint, SkipReason::NoEndpoint);
    };

    // Limited per origin, not per URL: one slow server behind many paths is still one server.
    let _permits = ctx.limits.acquire(url.origin().ascii_serialization()).await;
    let timestamp = now_seconds();
    let headers = delivery_headers(event, body, &subscriber.secret_key, webhook_id, timestamp);
    let started = Instant::now();
    // A `Bytes` clone shares the body: one copy of the payload per job, not per attempt.
    let sent = ctx.outbound.post(&url, headers, body.clone()).await;
    let (status, error, retry_after, snippet, latency) = match sent {
        Ok(response) => {
            let snippet =
                &response.snippet[..response.snippet.len().min(MAX_RESPONSE_SNIPPET_BYTES)];
            let error = (!(200..300).contains(&response.status)).then_some("http_status");
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
            Some(e.class()),
            None,
            String::new(),
            started.elapsed(),
        ),
    };
    let outcome = if error.is_none() {
        DeliveryOutcome::Delivered
    } else {
        match ctx.retry.after_failure(job.attempt, status, retry_after) {
            RetryDecision::RetryAfter(after) => DeliveryOutcome::Retrying { after },
            RetryDecision::GiveUp => DeliveryOutcome::GaveUp,
        }
    };
    tracing::debug!(subscription = %target.subscription_id, ?status, error, ?outcome, "attempt");
    AttemptResult {
        target,
        endpoint: subscriber.endpoint,
        status,
        error,
        latency,
        snippet,
        outcome,
    }
}

/// Writes the outcomes of a job with its acknowledgement, in one script.
async fn record(
    ctx: &DeliveryContext,
    entry_id: &str,
    job: &DeliveryJob,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    let keys = ctx.store.keys();
    let now_ms = now_millis();
    let (mut delivered, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    let mut accounts: Vec<(AccountId, &str)> = Vec::new();
    let mut attempts: Vec<(u64, String)> = Vec::new();
    let mut retries: Vec<(u64, String)> = Vec::new();
    for result in results {
        match &result.outcome {
            DeliveryOutcome::Delivered => {
                delivered += 1;
                accounts.push((result.target.account_id, "reset"));
            }
            DeliveryOutcome::Retrying { after } => {
                accounts.push((result.target.account_id, "incr"));
                let due = now_ms + u64::try_from(after.as_millis()).unwrap_or(u64::MAX / 2);
                let retry = Job::RetryV1 {
                    triggered_id: job.triggered,
                    registration_id: job.registration,
                    request_id: job.request_id.clone(),
                    target: result.target.clone(),
                    attempt: job.attempt + 1,
                };
                retries.push((due, retry.to_json()));
            }
            DeliveryOutcome::GaveUp => {
                failed += 1;
                accounts.push((result.target.account_id, "incr"));
            }
            DeliveryOutcome::Skipped(_) => skipped += 1,
        }
        attempts.push((now_ms, attempt_record(job, result, now_ms)));
    }
    let mut invocation = scripts::RECORD.key(keys.jobs());
    invocation
        .key(keys.delayed())
        .key(keys.triggered(job.triggered))
        .key(keys.deliveries(job.triggered))
        .arg(CONSUMER_GROUP)
        .arg(entry_id)
        .arg(ctx.retention.as_secs())
        .arg(delivered)
        .arg(failed)
        .arg(skipped)
        .arg(accounts.len())
        .arg(attempts.len())
        .arg(retries.len());
    for (account, op) in &accounts {
        invocation.arg(keys.account(*account)).arg(*op);
    }
    for (score, record) in &attempts {
        invocation.arg(*score).arg(record);
    }
    for (due, retry) in &retries {
        invocation.arg(*due).arg(retry);
    }
    let mut conn = ctx.store.connection().await?;
    let _: i64 = invocation.invoke_async(&mut conn).await?;
    Ok(())
}

/// One stored attempt, as `docs/api.md` describes it. A struct rather than a JSON map: it is
/// written once per delivery, on the hot path.
#[derive(Serialize)]
struct AttemptRecord<'a> {
    id: uuid::Uuid,
    subscription_id: SubscriptionId,
    account_id: AccountId,
    endpoint: &'a str,
    attempt: u32,
    outcome: &'static str,
    status_code: Option<u16>,
    error: Option<&'static str>,
    latency_ms: f64,
    epoch: f64,
    next_attempt_in_ms: Option<u64>,
    response: &'a str,
}

fn attempt_record(job: &DeliveryJob, result: &AttemptResult, now_ms: u64) -> String {
    let (outcome, retry_in_ms) = match &result.outcome {
        DeliveryOutcome::Delivered => ("delivered", None),
        DeliveryOutcome::Retrying { after } => ("retrying", Some(after.as_millis())),
        DeliveryOutcome::GaveUp => ("failed", None),
        DeliveryOutcome::Skipped(_) => ("skipped", None),
    };
    let skip_reason = match &result.outcome {
        DeliveryOutcome::Skipped(reason) => Some(reason.as_str()),
        _ => None,
    };
    let record = AttemptRecord {
        // From the thread's RNG: unique enough for a record id, without a syscall per attempt.
        id: uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
        subscription_id: result.target.subscription_id,
        account_id: result.target.account_id,
        endpoint: &result.endpoint,
        attempt: job.attempt,
        outcome,
        status_code: result.status,
        error: result.error.or(skip_reason),
        latency_ms: result.latency.as_secs_f64() * 1000.0,
        epoch: now_ms as f64 / 1000.0,
        next_attempt_in_ms: retry_in_ms.map(|ms| u64::try_from(ms).unwrap_or(u64::MAX)),
        response: &result.snippet,
    };
    // Ids, numbers and strings always serialise.
    serde_json::to_string(&record).unwrap_or_default()
}
