//! What every route that triggers shares beyond the store's trigger: a payload of the trigger's
//! own ([`payload`]), `Idempotency-Key`s and senders' delivery ids ([`fire`]).
//!
//! **One-time keys.** A request with an `Idempotency-Key` (any trigger route) or a sender's
//! delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`) claims it in Redis before it writes
//! its trigger (`pubhook_core::store::claims`). A repeat finds the claim and answers the trigger
//! it names: 201 for a repeated idempotency key, as the first answer was; 200 for a redelivered
//! delivery id. An idempotency key is remembered with a fingerprint of the request (its route,
//! registration and body bytes), and a repeat with another fingerprint is 422.
//!
//! A repeat that arrives while the first request is still writing its trigger waits for it, up
//! to [`PATIENCE`], and then answers 409; a claim whose trigger is still not written after
//! [`ABANDONED_AFTER`] was left by a process that died, and the next repeat takes it over and
//! triggers. A request refused after its claim (rate limit, not the owner, Redis down) gives
//! the claim back, so its retry is not held up.

pub mod payload;

use std::time::Duration;

use pubhook_core::domain::{AccountId, RegistrationId};
use pubhook_core::inbound::{check_presented_key, fingerprint};
use pubhook_core::store::{Claim, ClaimOutcome, Store, TriggerExtras, TriggerRefusal, Triggered};

use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;
use crate::request_id::RequestId;
use crate::state::AppState;

/// How long a repeat waits for the first request of its key to write its trigger.
pub const PATIENCE: Duration = Duration::from_secs(3);
/// How old a claim whose trigger was never written must be before a repeat takes it over.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(30);
/// The first pause of a repeat waiting for its trigger; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(250);

const NOT_FOUND: &str = "Registration id not found";
const NOT_YOURS: &str = "You don't have access to this registration record or it no longer exists";
const STILL_PENDING: &str =
    "A request with this key is still being processed; retry it in a few seconds";
const OTHER_REQUEST: &str =
    "This Idempotency-Key was used for another request (another body or registration) in the last 24 hours";

/// One trigger to make, with what it may carry.
pub struct Fire<'a> {
    /// The account the trigger is made as (the owner, for a hook key).
    pub caller: AccountId,
    /// What is triggered.
    pub registration: RegistrationId,
    /// The trigger's own payload and sender's event name.
    pub event_data: Option<String>,
    /// The sender's event name.
    pub source_event: Option<String>,
    /// The `Idempotency-Key` and the parts of the request its fingerprint is made of.
    pub idempotency: Option<(&'a str, Vec<&'a [u8]>)>,
    /// The sender's delivery id.
    pub delivery_id: Option<&'a str>,
    /// The id of the triggering request, carried in the trigger's jobs for their logs.
    pub request_id: RequestId,
}

/// How a trigger request ended.
pub enum Fired {
    /// A new trigger.
    New(Triggered),
    /// A repeat of an idempotency key: the first trigger, answered as the first time (201).
    Repeated(Triggered),
    /// A delivery id seen before: the first trigger, answered 200.
    Redelivered(Triggered),
}

/// The refusals every route that triggers can answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum TriggerRefusals {
    /// `Registration id not found`
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// `A request with this key is still being processed; retry it in a few seconds`: a repeated
    /// `Idempotency-Key` (or delivery id) whose first request is still writing its trigger
    #[response(status = 409)]
    StillPending(ErrorBody),
    /// `event_data is larger than N bytes` (`limit_payload_bytes`)
    #[response(status = 413)]
    PayloadQuota(ErrorBody),
    /// `This Idempotency-Key was used for another request …`
    #[response(status = 422)]
    OtherRequest(ErrorBody),
    /// `Too many triggers: this account is over its rate limit` (`limit_triggers` a second)
    #[response(status = 429)]
    TooManyTriggers(ErrorBody),
    /// `Storage unavailable`: Redis cannot be reached
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The `Idempotency-Key` header as the OpenAPI document shows it; [`idempotency_key`] reads it.
#[derive(utoipa::IntoParams)]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
pub struct IdempotencyKey(
    /// 1 to 256 visible ASCII characters: a repeat of the same request within 24 hours answers
    /// the first trigger; the same key with another request is 422.
    #[param(min_length = 1, max_length = 256)]
    pub Option<String>,
);

/// The `Idempotency-Key` header, checked: `None` without one, 400 for an empty, oversized or
/// non-ASCII one.
pub fn idempotency_key(req: &actix_web::HttpRequest) -> Result<Option<&str>, ApiError> {
    presented_header(req, "idempotency-key", "Idempotency-Key")
}

/// A header carrying a client-chosen key, checked as [`check_presented_key`] does.
pub fn presented_header<'r>(
    req: &'r actix_web::HttpRequest,
    name: &str,
    shown: &str,
) -> Result<Option<&'r str>, ApiError> {
    req.headers()
        .get(name)
        .map(|value| {
            check_presented_key(value.as_bytes())
                .map_err(|e| ApiError::BadRequest(format!("Invalid {shown} header: it {e}")))
        })
        .transpose()
}

/// Makes the trigger of `fire`, once per one-time key. The rate limit is counted only for a
/// request that will trigger, not for repeats.
pub async fn fire(
    state: &AppState,
    fire: Fire<'_>,
    limit: impl std::future::Future<Output = Result<(), ApiError>>,
) -> Result<Fired, ApiError> {
    let store = &state.store;
    let keys = store.keys();
    let proposed = pubhook_core::domain::TriggeredId::generate();
    let mut claims: Vec<Claim> = Vec::with_capacity(2);
    if let Some(delivery) = fire.delivery_id {
        let key = keys.hook_delivery(fire.registration, &fingerprint(&[delivery.as_bytes()]));
        match claim(store, key, "delivery", proposed).await? {
            Claimed::Mine(claim) => claims.push(claim),
            Claimed::Answered(triggered) => return Ok(Fired::Redelivered(triggered)),
        }
    }
    if let Some((key, parts)) = &fire.idempotency {
        let key = keys.idempotency(fire.caller, &fingerprint(&[key.as_bytes()]));
        let request = fingerprint(parts);
        let outcome = claim(store, key, &request, proposed).await;
        match outcome {
            Ok(Claimed::Mine(claim)) => claims.push(claim),
            Ok(Claimed::Answered(triggered)) => {
                give_back(store, &claims).await;
                return Ok(Fired::Repeated(triggered));
            }
            Err(e) => {
                give_back(store, &claims).await;
                return Err(e);
            }
        }
    }
    let outcome = write(state, &fire, proposed, limit).await;
    if outcome.is_err() {
        give_back(store, &claims).await;
    }
    outcome.map(Fired::New)
}

async fn write(
    state: &AppState,
    fire: &Fire<'_>,
    id: pubhook_core::domain::TriggeredId,
    limit: impl std::future::Future<Output = Result<(), ApiError>>,
) -> Result<Triggered, ApiError> {
    // The rate-limit count and the registration check are independent reads of one slot each:
    // sent together, one round trip. Neither writes anything but the count.
    let (_, check) = tokio::try_join!(limit, async {
        Ok(state
            .store
            .check_trigger(Some(fire.caller), fire.registration)
            .await?)
    })?;
    match check {
        Ok(()) => {}
        Err(TriggerRefusal::NoSuchRegistration) => return Err(ApiError::NotFound(NOT_FOUND)),
        Err(TriggerRefusal::NotOwner) => return Err(ApiError::Unauthorized(NOT_YOURS)),
    }
    let request_id = fire.request_id.to_string();
    tracing::info!(triggered = %id, "trigger");
    let extras = TriggerExtras {
        id: Some(id),
        event_data: fire.event_data.clone(),
        source_event: fire.source_event.clone(),
    };
    Ok(state
        .store
        .record_trigger(fire.registration, Some(request_id), extras)
        .await?)
}

/// Gives back claims whose trigger was not written; a failure to do so only delays a retry
/// (the claim is taken over once abandoned), so it is logged, not answered.
async fn give_back(store: &Store, claims: &[Claim]) {
    for claim in claims {
        if let Err(e) = store.release_claim(claim).await {
            tracing::warn!(error = %e, "could not give a claim back");
        }
    }
}

enum Claimed {
    Mine(Claim),
    Answered(Triggered),
}

/// Claims `key` for a request of `request` (its fingerprint), or finds the trigger the request
/// that holds it made, waiting for it a while if it is not written yet.
async fn claim(
    store: &Store,
    key: String,
    request: &str,
    proposed: pubhook_core::domain::TriggeredId,
) -> Result<Claimed, ApiError> {
    let mut take_over: Option<String> = None;
    let mut waited = Duration::ZERO;
    let mut pause = FIRST_PAUSE;
    loop {
        let outcome = store
            .claim_trigger(key.clone(), request, proposed, take_over.as_deref())
            .await?;
        let (held_by, triggered, age, value) = match outcome {
            ClaimOutcome::Claimed(claim) => return Ok(Claimed::Mine(claim)),
            ClaimOutcome::Held {
                fingerprint,
                triggered,
                age,
                value,
            } => (fingerprint, triggered, age, value),
        };
        if held_by != request {
            return Err(ApiError::UnprocessableEntity(OTHER_REQUEST));
        }
        if let Some(found) = store.triggered(triggered).await? {
            return Ok(Claimed::Answered(found));
        }
        if age >= ABANDONED_AFTER {
            take_over = Some(value);
            continue;
        }
        if waited >= PATIENCE {
            return Err(ApiError::Conflict(STILL_PENDING));
        }
        tokio::time::sleep(pause).await;
        waited += pause;
        pause = (pause * 2).min(MAX_PAUSE);
        take_over = None;
    }
}
