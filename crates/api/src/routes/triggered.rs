//! `/v1/webhook/triggered[/{id}]`: triggering a registration, reading what was triggered, and
//! asking for its deliveries again (`/redeliver`).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{epoch_seconds, AccountId, RegistrationId, SubscriptionId, TriggeredId};
use pubhook_core::keys::RateLimitKind;
use pubhook_core::store::{
    Account, DeliverySummary, RateLimit, RedeliveryRefusal, RedeliveryScope, Triggered,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::deliveries::{OutcomeOut, OutcomePage};
use super::hooks::answer;
use super::resource;
use crate::auth::{authenticate, Need};
use crate::body::read_body;
use crate::error::ApiError;
use crate::inbound::payload::trigger_body_payload;
use crate::inbound::{fire, idempotency_key, Fire, IdempotencyKey, TriggerRefusals};
use crate::openapi::schemas::ErrorBody;
use crate::paging::{
    budgeted_page, page_response, parse_digits, write_json, PageAnswers, PageParams, PageQuery,
    MAX_LIMIT,
};
use crate::request_id::{request_id_of, RequestId};
use crate::state::AppState;

/// Mounts the triggered routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhook/triggered")
            .route(web::get().to(list_all))
            .route(web::post().to(trigger_without_id)),
    )
    .service(
        resource("/v1/webhook/triggered/{id}")
            .route(web::post().to(trigger))
            .route(web::get().to(get_triggered)),
    )
    .service(
        resource("/v1/webhook/triggered/{id}/deliveries").route(web::get().to(list_deliveries)),
    )
    .service(resource("/v1/webhook/triggered/{id}/redeliver").route(web::post().to(redeliver)));
}

missing_id!(
    trigger_without_id,
    post,
    "/v1/webhook/triggered",
    "triggers",
    "Missing registration_id"
);

/// A triggered record as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Triggered)]
pub struct TriggeredOut {
    /// With `?attempts=N` on the single-record read: the outcomes of its first N delivery
    /// attempts, oldest first, as `/deliveries` pages them.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<Vec<OutcomeOut>>,
    /// With `?attempts=N`, when there may be more attempts: the `start` of the next page of
    /// `/v1/webhook/triggered/{id}/deliveries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_next_start: Option<u64>,
    /// Where the deliveries stand; only on the single-record read, so the trigger's own 201 and
    /// the list keep PyWebhooks' shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<DeliverySummary>,
    /// When it was triggered, Unix seconds.
    epoch: f64,
    /// The trigger's own payload, if it had one; only on the single-record read, as above.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_data: Option<Value>,
    /// Its id, sent to subscribers as `webhook-id`.
    id: TriggeredId,
    registration_id: RegistrationId,
    /// The sender's event name of an inbound hook; only on the single-record read.
    #[serde(skip_serializing_if = "Option::is_none")]
    source_event: Option<String>,
}

impl From<Triggered> for TriggeredOut {
    fn from(t: Triggered) -> Self {
        Self {
            attempts: None,
            attempts_next_start: None,
            deliveries: None,
            epoch: epoch_seconds(t.created),
            event_data: None,
            id: t.id,
            registration_id: t.registration_id,
            source_event: None,
        }
    }
}

/// The optional body of a trigger: any other body is ignored, as in PyWebhooks.
#[derive(ToSchema)]
pub struct TriggerIn {
    /// This trigger's own payload, delivered instead of the registration's.
    pub event_data: Value,
}

/// A page of triggered records.
#[derive(ToSchema)]
pub struct TriggeredPage {
    /// Oldest first.
    pub triggered_webhooks: Vec<TriggeredOut>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

const NOT_YOURS: &str = "You don't have access to this registration record or it no longer exists";

/// Counts a trigger against the caller's `limit_triggers` per second: 429 past it, and nothing
/// is written. Counted in Redis, so the limit holds across every API process.
pub(super) async fn limit_triggers(state: &AppState, caller: AccountId) -> Result<(), ApiError> {
    let limit = RateLimit::new(
        RateLimitKind::Triggers,
        state.quotas.triggers,
        Duration::from_secs(1),
    );
    let verdict = state
        .store
        .hit_rate_limit(limit, &caller.to_string())
        .await?;
    match verdict.retry_after() {
        Some(retry_after) => Err(ApiError::TooManyRequests {
            message: "Too many triggers: this account is over its rate limit",
            retry_after,
        }),
        None => Ok(()),
    }
}

/// `POST /v1/webhook/triggered/{registration_id}`: the owner (only) triggers; the triggered
/// record and its fan-out job are written in one atomic step, and delivery happens later.
///
/// A JSON object body with `event_data` gives this trigger its own payload, written in the same
/// step; any other body is ignored, as in PyWebhooks. An `Idempotency-Key` makes repeats answer
/// the first trigger (see `inbound`).
#[utoipa::path(
    post,
    path = "/v1/webhook/triggered/{id}",
    tag = "triggers",
    params(
        ("id" = String, Path, description = "The registration to trigger"),
        IdempotencyKey,
    ),
    request_body(content = Option<TriggerIn>, description = "Optional: this trigger's own payload"),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 201, description = "The triggered record (the first one again for a repeated `Idempotency-Key`)", body = TriggeredOut),
        (status = 400, description = "`Invalid Idempotency-Key header: …`, `Invalid payload: nested more than 128 levels deep`, a number too large for a double", body = ErrorBody),
        (status = 401, description = "`You don't have access to this registration record or it no longer exists`: not the owner's", body = ErrorBody),
        TriggerRefusals,
    ),
)]
#[instrument(skip_all, fields(registration = %path))]
async fn trigger(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    const NOT_FOUND: &str = "Registration id not found";
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = RegistrationId::parse(&path).ok_or(ApiError::NotFound(NOT_FOUND))?;
    let (body, _room) = read_body(&req, payload, &state).await?;
    let event_data = trigger_body_payload(body.clone())?;
    let quota = state.quotas.payload_bytes;
    if event_data
        .as_ref()
        .is_some_and(|text| quota > 0 && text.len() > quota)
    {
        return Err(ApiError::PayloadQuota(quota));
    }
    let idempotency = idempotency_key(&req)?;
    let registration_text = id.to_string();
    // The store checks the registration (live, the caller's) before it writes anything.
    let fired = fire(
        &state,
        Fire {
            caller: caller.id,
            registration: id,
            event_data,
            source_event: None,
            idempotency: idempotency.map(|key| {
                (
                    key,
                    vec![&b"trigger"[..], registration_text.as_bytes(), &body],
                )
            }),
            delivery_id: None,
            request_id: request_id_of(&req),
        },
        limit_triggers(&state, caller.id),
    )
    .await?;
    Ok(answer(fired))
}

/// `GET /v1/webhook/triggered/{id}[?attempts=N]`: one triggered record, for the registration's
/// owner or an admin. With `attempts` (1 to 100) it also carries the outcomes of its first N
/// delivery attempts, read beside the record, so a client shows a trigger with its attempts in
/// one round trip (the web console does).
#[utoipa::path(
    get,
    path = "/v1/webhook/triggered/{id}",
    tag = "triggers",
    params(("id" = String, Path, description = "The triggered record"), AttemptsParam),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "The record with `deliveries`, `event_data` / `source_event` when it has them, and `attempts` (with `attempts_next_start` when there may be more) when asked for", body = TriggeredOut),
        (status = 400, description = "`Invalid attempts parameter: expected 1 to 100`", body = ErrorBody),
        (status = 401, description = "`You don't have access to this registration record or it no longer exists`", body = ErrorBody),
        (status = 404, description = "`Triggered id not found`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn get_triggered(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let wanted = attempts_wanted(&req)?;
    let id = TriggeredId::parse(&path).ok_or(ApiError::NotFound(TRIGGERED_NOT_FOUND))?;
    // The record and its attempts are read at once; the attempts are shown only once the
    // record says the caller may read it.
    let (triggered, attempts) = tokio::join!(state.store.triggered(id), async {
        match wanted {
            Some(limit) => state.store.delivery_attempts(id, 0, limit).await.map(Some),
            None => Ok(None),
        }
    });
    let triggered = triggered?.ok_or(ApiError::NotFound(TRIGGERED_NOT_FOUND))?;
    check_readers(&state, &caller, &triggered, Readers::OwnerOrAdmin).await?;
    let attempts = attempts?;
    let summary = triggered.summary;
    let event_data = triggered
        .event_data
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let source_event = triggered.source_event.clone();
    let mut out = TriggeredOut::from(triggered);
    out.deliveries = Some(summary);
    out.event_data = event_data;
    out.source_event = source_event;
    if let Some(page) = attempts {
        out.attempts_next_start = page.next_start;
        out.attempts = Some(page.items.into_iter().map(OutcomeOut::from).collect());
    }
    Ok(HttpResponse::Ok().json(out))
}

/// The `attempts` parameter of the single-record read, as the OpenAPI document shows it;
/// [`attempts_wanted`] reads it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsParam {
    /// Also show the outcomes of the first this many delivery attempts, oldest first.
    #[param(minimum = 1, maximum = 100)]
    pub attempts: Option<u64>,
}

/// `attempts` from the query string (its first value), 1 to [`MAX_LIMIT`] plain digits, or
/// `None` when absent.
fn attempts_wanted(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(raw) = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find_map(|(name, value)| (name == "attempts").then_some(value))
    else {
        return Ok(None);
    };
    match parse_digits(&raw) {
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::BadRequest(format!(
            "Invalid attempts parameter: expected 1 to {MAX_LIMIT}"
        ))),
    }
}

/// `GET /v1/webhook/triggered/{id}/deliveries`: the outcome of every delivery attempt of a
/// trigger, paged, oldest first, for the registration's owner or an admin. The subscribers'
/// endpoints and answers are not part of it (see `routes::deliveries`).
#[utoipa::path(
    get,
    path = "/v1/webhook/triggered/{id}/deliveries",
    tag = "deliveries",
    params(("id" = String, Path, description = "The triggered record"), PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of attempt outcomes, oldest first", body = OutcomePage),
        PageAnswers,
        (status = 401, description = "`You don't have access to this registration record or it no longer exists`", body = ErrorBody),
        (status = 404, description = "`Triggered id not found`", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn list_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let triggered = readable_triggered(&state, &caller, &path, Readers::OwnerOrAdmin).await?;
    let page = PageQuery::from_request(&req)?;
    let attempts = state
        .store
        .delivery_attempts(triggered.id, page.start, page.limit)
        .await?;
    page_response("deliveries", attempts, OutcomeOut::from)
}

/// Who may act on a triggered record besides its registration's owner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Readers {
    /// Admins too (reads).
    OwnerOrAdmin,
    /// Nobody else (redelivery, like the trigger itself).
    Owner,
}

const TRIGGERED_NOT_FOUND: &str = "Triggered id not found";

/// The triggered record `raw_id`, or 404.
pub(super) async fn find_triggered(state: &AppState, raw_id: &str) -> Result<Triggered, ApiError> {
    let id = TriggeredId::parse(raw_id).ok_or(ApiError::NotFound(TRIGGERED_NOT_FOUND))?;
    state
        .store
        .triggered(id)
        .await?
        .ok_or(ApiError::NotFound(TRIGGERED_NOT_FOUND))
}

/// The triggered record if the caller may act on it: the registration's owner, or an admin
/// when `readers` says so.
async fn readable_triggered(
    state: &AppState,
    caller: &Account,
    raw_id: &str,
    readers: Readers,
) -> Result<Triggered, ApiError> {
    let triggered = find_triggered(state, raw_id).await?;
    check_readers(state, caller, &triggered, readers).await?;
    Ok(triggered)
}

/// 401 unless the caller may act on `triggered`: the registration's owner, or an admin when
/// `readers` says so.
async fn check_readers(
    state: &AppState,
    caller: &Account,
    triggered: &Triggered,
    readers: Readers,
) -> Result<(), ApiError> {
    if caller.is_admin && readers == Readers::OwnerOrAdmin {
        return Ok(());
    }
    let owner = state
        .store
        .registration(triggered.registration_id)
        .await?
        .map(|r| r.account_id);
    if owner != Some(caller.id) {
        return Err(ApiError::Unauthorized(NOT_YOURS));
    }
    Ok(())
}

/// `GET /v1/webhook/triggered`: every triggered record, paged. Paging is checked before
/// authentication, as in PyWebhooks.
#[utoipa::path(
    get,
    path = "/v1/webhook/triggered",
    tag = "triggers",
    operation_id = "list_all_triggered",
    params(PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of every triggered record", body = TriggeredPage),
        PageAnswers,
    ),
)]
#[instrument(skip_all)]
async fn list_all(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::from_request(&req)?;
    authenticate(&req, &state, Need::Account).await?;
    let range = page.range(state.quotas.page_bytes);
    let triggered = state.store.triggered_page(range).await?;
    budgeted_page("triggered_webhooks", range, triggered, |t, out| {
        write_json(out, &TriggeredOut::from(t))
    })
}

/// The body of `POST /v1/webhook/triggered/{id}/redeliver`; none at all is `only_failed`.
/// Give one field or none.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverBody {
    /// Redeliver the delivery to this subscription, whatever its outcome.
    subscription_id: Option<String>,
    /// `true` (the default): every delivery that failed for good, or was skipped at
    /// `max_failed_count`; `false`: every finished delivery.
    only_failed: Option<bool>,
}

/// What a redelivery request queued.
#[derive(Serialize, ToSchema)]
pub struct RedeliveredOut {
    /// Deliveries queued again.
    redelivering: u64,
    /// Deliveries left alone because a redelivery of theirs is still pending.
    in_progress: u64,
    triggered_id: TriggeredId,
}

/// `POST /v1/webhook/triggered/{id}/redeliver`: the registration's owner asks for a trigger's
/// deliveries again, with the same `webhook-id` (see `store::redeliveries`). The body chooses:
/// `{"subscription_id": ...}` one delivery, `{"only_failed": false}` every finished one, and
/// `{"only_failed": true}` (or no body) those that failed. Answers 202 with what was queued.
#[utoipa::path(
    post,
    path = "/v1/webhook/triggered/{id}/redeliver",
    tag = "triggers",
    operation_id = "redeliver_triggered",
    params(("id" = String, Path, description = "The triggered record")),
    request_body(content = Option<RedeliverBody>, description = "Optional: which deliveries"),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 202, description = "What was queued again", body = RedeliveredOut),
        RedeliveryRefusals,
        (status = 400, description = "`Invalid body: expected {\"subscription_id\": \"...\"} or {\"only_failed\": true|false} (…)`, or both fields given", body = ErrorBody),
        (status = 401, description = "`You don't have access to this registration record or it no longer exists`: not the owner's", body = ErrorBody),
        (status = 404, description = "`Triggered id not found` (unknown, or past `triggered_retention`); `Delivery not found`: no attempt on record for that subscription", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn redeliver(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let triggered = readable_triggered(&state, &caller, &path, Readers::Owner).await?;
    let (body, _room) = read_body(&req, payload, &state).await?;
    let scope = redelivery_scope(&body)?;
    let request_id = request_id_of(&req);
    queue_redelivery(&state, caller.id, &triggered, scope, &request_id).await
}

/// The deliveries a redelivery body asks for.
fn redelivery_scope(body: &[u8]) -> Result<RedeliveryScope, ApiError> {
    const EXPECTED: &str =
        "expected {\"subscription_id\": \"...\"} or {\"only_failed\": true|false}";
    let body: RedeliverBody = if body.iter().all(u8::is_ascii_whitespace) {
        RedeliverBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("Invalid body: {EXPECTED} ({e})")))?
    };
    match (body.subscription_id, body.only_failed) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(format!(
            "Invalid body: give subscription_id or only_failed, not both; {EXPECTED}"
        ))),
        (Some(raw), None) => SubscriptionId::parse(&raw)
            .map(RedeliveryScope::Subscription)
            .ok_or(ApiError::NotFound(DELIVERY_NOT_FOUND)),
        (None, Some(false)) => Ok(RedeliveryScope::All),
        (None, Some(true) | None) => Ok(RedeliveryScope::Failed),
    }
}

const DELIVERY_NOT_FOUND: &str = "Delivery not found";

/// The refusals both redelivery routes can answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum RedeliveryRefusals {
    /// `Delivery in progress: it is retrying or being redelivered` (one delivery asked for)
    #[response(status = 409)]
    InProgress(ErrorBody),
    /// `Too many redeliveries: this account is over its rate limit` (`limit_redeliveries` a
    /// minute)
    #[response(status = 429)]
    TooMany(ErrorBody),
}

/// Counts the request against the caller's `limit_redeliveries`, then queues the redelivery
/// of `scope` and answers 202 with what was queued.
pub(super) async fn queue_redelivery(
    state: &AppState,
    caller: AccountId,
    triggered: &Triggered,
    scope: RedeliveryScope,
    request_id: &RequestId,
) -> Result<HttpResponse, ApiError> {
    let limit = RateLimit::new(
        RateLimitKind::Redeliveries,
        state.quotas.redeliveries,
        Duration::from_secs(60),
    );
    let verdict = state
        .store
        .hit_rate_limit(limit, &caller.to_string())
        .await?;
    if let Some(retry_after) = verdict.retry_after() {
        return Err(ApiError::TooManyRequests {
            message: "Too many redeliveries: this account is over its rate limit",
            retry_after,
        });
    }
    tracing::info!(triggered = %triggered.id, "redeliver");
    match state
        .store
        .redeliver(triggered, scope, Some(request_id.as_str()))
        .await?
    {
        Ok(report) => Ok(HttpResponse::Accepted().json(RedeliveredOut {
            redelivering: report.queued,
            in_progress: report.in_progress,
            triggered_id: triggered.id,
        })),
        Err(RedeliveryRefusal::TriggerGone) => Err(ApiError::NotFound(TRIGGERED_NOT_FOUND)),
        Err(RedeliveryRefusal::DeliveryNotFound) => Err(ApiError::NotFound(DELIVERY_NOT_FOUND)),
        Err(RedeliveryRefusal::InProgress) => Err(ApiError::Conflict(
            "Delivery in progress: it is retrying or being redelivered",
        )),
    }
}
