//! Delivery attempts as the API shows them, and `/v1/webhook/subscription/{id}/deliveries`.
//!
//! Two views of one attempt (see `pubhook_core::store::deliveries`): the registration's owner
//! sees the **outcome** ([`OutcomeOut`]: subscription, outcome, status, error class, latency,
//! attempt number and time) through `GET /v1/webhook/triggered/{id}/deliveries`; the subscriber,
//! and admins, see the **full** attempt ([`AttemptOut`]: with the endpoint it went to, stored
//! without its query string, and the start of the answer) through the route here.

use actix_web::{web, HttpRequest, HttpResponse};
use pubhook_core::domain::{AccountId, SubscriptionId, TriggeredId};
use pubhook_core::store::{AttemptOutcome, AttemptRecord, FailureClass};
use serde::Serialize;
use tracing::instrument;
use utoipa::ToSchema;

use super::resource;
use super::subscriptions::owned_subscription;
use crate::auth::{authenticate, Need};
use crate::error::ApiError;
use crate::openapi::schemas::ErrorBody;
use crate::paging::{page_response, PageAnswers, PageParams, PageQuery};
use crate::state::AppState;

/// Mounts the subscriber's view of its attempts.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhook/subscription/{id}/deliveries")
            .route(web::get().to(subscription_deliveries)),
    );
}

/// One attempt as the registration's owner sees it: what happened, not where it went or what
/// the subscriber answered.
#[derive(Serialize, ToSchema)]
#[schema(as = AttemptOutcomeRecord)]
pub struct OutcomeOut {
    /// The attempt's own id.
    id: uuid::Uuid,
    /// The trigger it belongs to (its `webhook-id`).
    triggered_id: TriggeredId,
    /// The subscription row it was for.
    subscription_id: SubscriptionId,
    /// The subscriber.
    account_id: AccountId,
    /// 1 for the first, up to 1 + the number of retries.
    attempt: u32,
    outcome: AttemptOutcome,
    /// The HTTP status, or `null` when there was no answer.
    status_code: Option<u16>,
    /// `null` on success, else the failure class or the reason it was skipped.
    error: Option<FailureClass>,
    /// Time to the answer, in milliseconds.
    latency_ms: f64,
    /// When the attempt ended, Unix seconds.
    epoch: f64,
    /// When `outcome` is `retrying`, the delay before the next attempt.
    next_attempt_in_ms: Option<u64>,
    /// A redelivery asked for through the API.
    manual: bool,
}

/// A page of attempt outcomes (the registration owner's view).
#[derive(ToSchema)]
pub struct OutcomePage {
    /// The attempts.
    pub deliveries: Vec<OutcomeOut>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

/// A page of full attempts (the subscriber's view).
#[derive(ToSchema)]
pub struct AttemptPage {
    /// The attempts, newest first.
    pub deliveries: Vec<AttemptOut>,
    /// The `start` of the next page, when there may be one.
    pub next_start: Option<u64>,
}

impl From<AttemptRecord> for OutcomeOut {
    fn from(r: AttemptRecord) -> Self {
        Self {
            id: r.id,
            triggered_id: r.triggered_id,
            subscription_id: r.subscription_id,
            account_id: r.account_id,
            attempt: r.attempt,
            outcome: r.outcome,
            status_code: r.status_code,
            error: r.error,
            latency_ms: r.latency_ms,
            epoch: r.epoch,
            next_attempt_in_ms: r.next_attempt_in_ms,
            manual: r.manual,
        }
    }
}

/// One attempt as its subscriber (or an admin) sees it: the outcome, the endpoint it went to
/// (without query string) and the start of the answer.
#[derive(Serialize, ToSchema)]
#[schema(as = AttemptRecord)]
pub struct AttemptOut {
    #[serde(flatten)]
    outcome: OutcomeOut,
    /// The URL it went to, without query string, fragment or userinfo; `null` when the attempt
    /// was skipped before an endpoint was read.
    endpoint: Option<String>,
    /// The first 1 KiB of the answer's body, as text.
    response: Option<String>,
}

impl From<AttemptRecord> for AttemptOut {
    fn from(mut r: AttemptRecord) -> Self {
        let endpoint = r.endpoint.take();
        let response = r.response.take();
        Self {
            outcome: r.into(),
            endpoint,
            response,
        }
    }
}

/// `GET /v1/webhook/subscription/{id}/deliveries?start&limit`: the attempts of one
/// subscription, newest first, in full, for the subscriber or an admin. Someone else's (or a
/// nonexistent) subscription is 401 `Not authorized`, as for its delete.
#[utoipa::path(
    get,
    path = "/v1/webhook/subscription/{id}/deliveries",
    tag = "deliveries",
    params(("id" = String, Path, description = "The subscription"), PageParams),
    security(("api_key" = [], "username" = [])),
    responses(
        (status = 200, description = "A page of the subscription's attempts in full, newest first", body = AttemptPage),
        PageAnswers,
        (status = 401, description = "`Not authorized`: not the caller's, or no such subscription", body = ErrorBody),
    ),
)]
#[instrument(skip_all)]
async fn subscription_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state, Need::Account).await?;
    let id = owned_subscription(&state, &caller, &path).await?;
    let page = PageQuery::from_request(&req)?;
    let Some(id) = id else {
        // An admin asking for an id that cannot exist: nothing to show.
        return Ok(HttpResponse::NoContent().finish());
    };
    let attempts = state
        .store
        .subscription_attempts(id, page.start, page.limit)
        .await?;
    page_response("deliveries", attempts, AttemptOut::from)
}
